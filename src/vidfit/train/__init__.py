"""The task-independent training engine: Lightning runs with the memory and speed practices on by default.

`fit`, `validate` and `test` take a config (`vidfit.config`); its ``experiment.task`` gives the Lightning
module and data. Auto-fit, the OOM guard, run folders and callbacks are shared by every task.
"""

from vidfit.train._autofit import AutoFit, AutoFitResult, choose_batch_size
from vidfit.train._base import GuardedModule
from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ThroughputReport
from vidfit.train._distributed import agree_on_min, broadcast_buffers
from vidfit.train._guard import GuardedStep, OomGuard
from vidfit.train._loaders import STAGE_SPLITS, check_splits, load_training_manifest, require_split, sharded_loader
from vidfit.train._plan import PlanResult, plan_memory
from vidfit.train._plan_grid import PlanGrid, parse_grid
from vidfit.train._run import FitResult, fit, test, validate

__all__ = [
    "STAGE_SPLITS",
    "AutoFit",
    "AutoFitResult",
    "FitResult",
    "GuardedModule",
    "GuardedStep",
    "InterruptCheckpoint",
    "MemoryMonitor",
    "OomGuard",
    "PlanGrid",
    "PlanResult",
    "ThroughputReport",
    "agree_on_min",
    "broadcast_buffers",
    "check_splits",
    "choose_batch_size",
    "fit",
    "load_training_manifest",
    "parse_grid",
    "plan_memory",
    "require_split",
    "sharded_loader",
    "test",
    "validate",
]
