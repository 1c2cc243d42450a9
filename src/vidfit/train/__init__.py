"""The task-independent training engine: Lightning runs with the memory and speed practices on by default.

`fit`, `validate` and `test` take a config (`vidfit.config`); its ``experiment.task`` gives the Lightning
module and data. Auto-fit, the OOM guard, run folders and callbacks are shared by every task; a task's module
derives `GuardedModule` and its data module `TaskDataModule`."""

from vidfit.train._autofit import choose_batch_size
from vidfit.train._base import GuardedModule, channels_last
from vidfit.train._data import DatasetMode, TaskDataModule
from vidfit.train._distributed import broadcast_buffers
from vidfit.train._plan import PlanResult, plan_memory
from vidfit.train._run import FitResult, fit, test, validate

__all__ = [
    "DatasetMode",
    "FitResult",
    "GuardedModule",
    "PlanResult",
    "TaskDataModule",
    "broadcast_buffers",
    "channels_last",
    "choose_batch_size",
    "fit",
    "plan_memory",
    "test",
    "validate",
]
