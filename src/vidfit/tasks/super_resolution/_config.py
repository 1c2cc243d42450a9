"""Super-resolution's config: its `model` section (ESPCN), patch keys in `data`, distillation keys in `train`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vidfit.config import Config, DataConfig, TrainConfig


@dataclass
class SRModelConfig:
    """Arguments of `vidfit.models.build_espcn` (its num_frames is data.num_frames)."""

    scale: Literal[2, 3, 4] = 4
    espcn_features: tuple[int, int] = (64, 32)


@dataclass(frozen=True)
class SRDataConfig(DataConfig):
    """`DataConfig` plus the high-resolution patch side in pixels and the patches cut from each chunk per epoch."""

    patch_size: int = 96
    patches_per_chunk: int = 8


@dataclass
class SRTrainConfig(TrainConfig):
    """`TrainConfig` plus distillation from a teacher checkpoint, weighting its output against the ground truth."""

    teacher: str | None = None
    distill_weight: float = 0.5


# The config of a super-resolution run, typed by its sections.
SRConfig = Config[SRModelConfig, SRDataConfig, SRTrainConfig]

MONITORS = ("val/psnr", "val/ssim", "val/loss")


def sr_problems(config: Config) -> list[str]:
    """Super-resolution's rules between keys."""
    data, train, model = config.data, config.train, config.model
    task = "for experiment.task: super_resolution"
    rules = [
        (data.num_frames % 2 == 1, f"data.num_frames={data.num_frames} must be odd {task}: the centre is upscaled"),
        # SSIM's 11-pixel Gaussian window needs patches of 16 pixels or more.
        (
            data.patch_size >= 16 and data.patch_size % model.scale == 0,
            f"data.patch_size={data.patch_size} must be a multiple of model.scale={model.scale} and >= 16",
        ),
        (
            not isinstance(data.image_size, int),
            f"data.image_size={data.image_size} (a short side) is not supported {task}: give [height, width] or null",
        ),
        (data.patches_per_chunk >= 1, f"data.patches_per_chunk={data.patches_per_chunk} must be >= 1"),
        (min(model.espcn_features) >= 1, f"model.espcn_features={list(model.espcn_features)} must be >= 1"),
        (0 <= train.distill_weight <= 1, f"train.distill_weight={train.distill_weight} must be in [0, 1]"),
    ]
    return [message for ok, message in rules if not ok]
