"""Lightning training of video models with the memory and speed practices on by default."""

from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ThroughputMonitor
from vidfit.train._config import Config, ConfigError, config_from_dict, load_config, save_config
from vidfit.train._datamodule import VideoDataModule
from vidfit.train._module import VideoClassificationModule
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

__all__ = [
    "Config",
    "ConfigError",
    "FitResult",
    "InterruptCheckpoint",
    "MemoryMonitor",
    "ThroughputMonitor",
    "VideoClassificationModule",
    "VideoDataModule",
    "check_checkpoint",
    "config_from_dict",
    "fit",
    "load_config",
    "load_module",
    "read_hyperparameters",
    "resolve_precision",
    "save_config",
    "test",
    "validate",
]
