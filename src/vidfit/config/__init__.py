"""Run configuration: the sections every run has, the task registry and its typed contract, loading and checking
YAML configs."""

from vidfit.config._contract import (
    DataAndModule,
    PlannedClips,
    PlanStep,
    PlanStepFunction,
    PredictFunction,
    PredictOutcome,
    ReportedOutcome,
    Stage,
    TaskData,
)
from vidfit.config._load import Config, config_from_dict, load_config, resolve_precision, save_config
from vidfit.config._parse import ConfigError
from vidfit.config._sections import DataConfig, ExperimentConfig, TrainConfig, TrainerConfig
from vidfit.config._tasks import (
    ENTRY_POINT_GROUP,
    TaskOrigin,
    TaskPluginWarning,
    TaskSpec,
    blame_task,
    get_task,
    register_task,
    task_names,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Config",
    "ConfigError",
    "DataAndModule",
    "DataConfig",
    "ExperimentConfig",
    "PlanStep",
    "PlanStepFunction",
    "PlannedClips",
    "PredictFunction",
    "PredictOutcome",
    "ReportedOutcome",
    "Stage",
    "TaskData",
    "TaskOrigin",
    "TaskPluginWarning",
    "TaskSpec",
    "TrainConfig",
    "TrainerConfig",
    "blame_task",
    "config_from_dict",
    "get_task",
    "load_config",
    "register_task",
    "resolve_precision",
    "save_config",
    "task_names",
]
