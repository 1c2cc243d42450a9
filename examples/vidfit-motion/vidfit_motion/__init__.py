"""Per-frame motion vs idle (``experiment.task: motion``): a vidfit task in a package of its own.

A frame is idle where the manifest's timeline labels it ``model.idle_label`` and motion under any other
label; the model sees each frame's difference with the previous one.
"""

from vidfit.config import DataConfig, TaskSpec, TrainConfig, register_task
from vidfit_motion._model import MotionModelConfig
from vidfit_motion._module import data_and_module
from vidfit_motion._predict import predict

TASK = register_task(
    TaskSpec(
        name="motion",
        model_section=MotionModelConfig,
        data_section=DataConfig,
        train_section=TrainConfig,
        monitors=("val/frame_acc", "val/loss"),
        data_and_module=data_and_module,
        predict=predict,
        predict_options=("threshold",),
    )
)
