"""Action recognition's config: its `model` section, its `train` keys, and the rules between them and the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vidfit.config import TrainConfig
from vidfit.models import BACKBONES, backbone_constraints, classifier_problems

if TYPE_CHECKING:
    from vidfit.config import Config


@dataclass
class ActionModelConfig:
    """Arguments of `vidfit.models.build_classifier`."""

    backbone: str = "r3d_18"
    view_fusion: Literal["early", "late"] = "late"
    input_type: Literal["rgb", "kpt", "rgb_kpt"] = "rgb"
    num_keypoints: int = 0
    keypoint_dims: int = 0
    activation_checkpointing: bool = False
    pretrained_path: str | None = None
    dropout: float = 0.0


@dataclass
class ActionTrainConfig(TrainConfig):
    """`TrainConfig` plus the weights of the classification losses."""

    frame_loss_weight: float = 0.5
    label_smoothing: float = 0.0


MONITORS = ("val/acc", "val/frame_acc", "val/loss")


def action_problems(config: Config) -> list[str]:
    """Action recognition's rules: the classifier's own checks, the clips it takes, what the data must load."""
    model, data, train = config.model, config.data, config.train
    needs = f"model.input_type={model.input_type!r} needs"
    rules = [
        (data.load_rgb or model.input_type == "kpt", f"{needs} data.load_rgb: true"),
        (model.input_type == "rgb" or data.load_kpt, f"{needs} data.load_kpt: true"),
        (0 <= train.label_smoothing < 1, f"train.label_smoothing={train.label_smoothing} must be in [0, 1)"),
        (train.frame_loss_weight >= 0, f"train.frame_loss_weight={train.frame_loss_weight} must be >= 0"),
    ]
    return _model_problems(config) + [message for ok, message in rules if not ok]


def _model_problems(config: Config) -> list[str]:
    """The classifier's own checks, then whether the backbone takes the clips the data section makes."""
    model, data = config.model, config.data
    problems = classifier_problems(
        backbone=model.backbone, view_fusion=model.view_fusion, input_type=model.input_type,
        num_keypoints=model.num_keypoints, keypoint_dims=model.keypoint_dims, dropout=model.dropout, prefix="model.",
    )  # fmt: skip
    frames, size = data.num_frames, data.image_size
    unchecked = model.input_type == "kpt" or model.backbone not in BACKBONES
    if unchecked or (size is not None and min(size) < 1):  # a bad image_size is the data package's to report
        return problems
    limits = backbone_constraints(model.backbone)
    where = f"model.backbone={model.backbone!r} needs"
    if limits.exact_shape is not None and (frames, *(size or (None, None))) != limits.exact_shape:
        shape = limits.exact_shape
        problems.append(
            f"{where} clips of exactly (T, H, W)={shape}: data.num_frames={shape[0]} and data.image_size="
            f"{list(shape[1:])}, got data.num_frames={frames}, data.image_size={list(size) if size else None}"
        )
    elif frames < limits.min_frames or (size is not None and min(size) < limits.min_size):
        problems.append(
            f"{where} data.num_frames >= {limits.min_frames} and data.image_size >= {limits.min_size} pixels, "
            f"got data.num_frames={frames}, data.image_size={list(size) if size else None}"
        )
    if limits.exact_shape is not None and config.train.chunk_infer_size != limits.exact_shape[0]:
        problems.append(
            f"{where} inference windows of exactly {limits.exact_shape[0]} frames: train.chunk_infer_size="
            f"{limits.exact_shape[0]}, got {config.train.chunk_infer_size}"
        )
    return problems
