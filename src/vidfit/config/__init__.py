"""Run configuration: the sections every run has, the task registry, loading and checking YAML configs."""

from vidfit.config._load import Config, config_from_dict, load_config, resolve_precision, save_config
from vidfit.config._parse import ConfigError
from vidfit.config._sections import DataConfig, ExperimentConfig, TrainConfig, TrainerConfig
from vidfit.config._tasks import TaskSpec, get_task, register_task, task_names

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "TaskSpec",
    "TrainConfig",
    "TrainerConfig",
    "config_from_dict",
    "get_task",
    "load_config",
    "register_task",
    "resolve_precision",
    "save_config",
    "task_names",
]
