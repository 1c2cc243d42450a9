"""Action recognition: clip and per-frame classification of long multi-view videos (``experiment.task: action``)."""

from vidfit.config import TaskSpec, register_task
from vidfit.models import BACKBONE_ALIASES
from vidfit.tasks.action._config import (
    MONITORS,
    ActionDataConfig,
    ActionModelConfig,
    ActionTrainConfig,
    action_problems,
    keypoints_by_default,
)
from vidfit.tasks.action._datamodule import VideoDataModule
from vidfit.tasks.action._module import VideoClassificationModule
from vidfit.tasks.action._plan_step import plan_step
from vidfit.tasks.action._predict import PredictResult, predict
from vidfit.tasks.action._run import check_checkpoint, data_and_module, load_module

TASK = register_task(
    TaskSpec(
        name="action",
        model_section=ActionModelConfig,
        data_section=ActionDataConfig,
        train_section=ActionTrainConfig,
        monitors=MONITORS,
        path_keys=(("model", "pretrained_path"),),
        defaults={("data", "load_kpt"): keypoints_by_default},
        value_aliases={("model", "backbone"): dict(BACKBONE_ALIASES)},
        problems=action_problems,
        data_and_module=data_and_module,
        predict=predict,
        plan_step=plan_step,
    )
)

__all__ = [
    "PredictResult",
    "VideoClassificationModule",
    "VideoDataModule",
    "check_checkpoint",
    "load_module",
    "predict",
]
