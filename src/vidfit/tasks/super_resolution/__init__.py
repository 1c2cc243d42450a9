"""Video super-resolution: ESPCN upscaling of each frame from its neighbours (``experiment.task: super_resolution``)."""

from vidfit.config import TaskSpec, register_task
from vidfit.tasks.super_resolution._config import MONITORS, SRDataConfig, SRModelConfig, SRTrainConfig, sr_problems
from vidfit.tasks.super_resolution._datamodule import SuperResolutionDataModule, data_and_module
from vidfit.tasks.super_resolution._module import SuperResolutionModule, load_sr_module, load_teacher
from vidfit.tasks.super_resolution._upscale import UpscaleRun, upscale

TASK = register_task(
    TaskSpec(
        name="super_resolution",
        model_section=SRModelConfig,
        data_section=SRDataConfig,
        train_section=SRTrainConfig,
        monitors=MONITORS,
        # ESPCN takes a centre frame and its neighbours: 3 frames unless the config says otherwise.
        defaults={("data", "num_frames"): 3},
        path_keys=(("train", "teacher"),),
        problems=sr_problems,
        data_and_module=data_and_module,
        predict=upscale,
        predict_options=("codec",),
    )
)

__all__ = [
    "SuperResolutionDataModule",
    "SuperResolutionModule",
    "UpscaleRun",
    "load_sr_module",
    "load_teacher",
    "upscale",
]
