"""Lightning training of video models with the memory and speed practices on by default."""

from vidfit.train._autofit import AutoFit, AutoFitResult, choose_batch_size
from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ThroughputMonitor
from vidfit.train._config import Config, ConfigError, config_from_dict, load_config, save_config
from vidfit.train._datamodule import VideoDataModule
from vidfit.train._distributed import (
    ChunkResult,
    Ranks,
    agree_on_min,
    broadcast_from_rank_zero,
    gather_chunk_results,
    gather_to_rank_zero,
    is_rank_zero,
    join_launch,
)
from vidfit.train._guard import GuardedStep, OomGuard
from vidfit.train._module import VideoClassificationModule
from vidfit.train._plan import PlanResult, plan_memory
from vidfit.train._plan_grid import PlanGrid, parse_grid
from vidfit.train._run import (
    FitResult,
    check_checkpoint,
    fit,
    load_module,
    read_hyperparameters,
    resolve_precision,
    test,
    validate,
)
from vidfit.train._sr import (
    SRMetrics,
    SuperResolutionModule,
    build_sr_model,
    check_sr_checkpoint,
    checkpoint_task,
    distillation_loss,
    load_sr_module,
    load_teacher,
    rgb_to_luma,
)
from vidfit.train._sr_data import SuperResolutionDataModule

__all__ = [
    "AutoFit",
    "AutoFitResult",
    "ChunkResult",
    "Config",
    "ConfigError",
    "FitResult",
    "GuardedStep",
    "InterruptCheckpoint",
    "MemoryMonitor",
    "OomGuard",
    "PlanGrid",
    "PlanResult",
    "Ranks",
    "SRMetrics",
    "SuperResolutionDataModule",
    "SuperResolutionModule",
    "ThroughputMonitor",
    "VideoClassificationModule",
    "VideoDataModule",
    "agree_on_min",
    "broadcast_from_rank_zero",
    "build_sr_model",
    "check_checkpoint",
    "check_sr_checkpoint",
    "checkpoint_task",
    "choose_batch_size",
    "config_from_dict",
    "distillation_loss",
    "fit",
    "gather_chunk_results",
    "gather_to_rank_zero",
    "is_rank_zero",
    "join_launch",
    "load_config",
    "load_module",
    "load_sr_module",
    "load_teacher",
    "parse_grid",
    "plan_memory",
    "read_hyperparameters",
    "resolve_precision",
    "rgb_to_luma",
    "save_config",
    "test",
    "validate",
]
