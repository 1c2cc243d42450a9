"""Action recognition's config: its `model` section, its `train` keys, and the rules between them and the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vidfit.config import Config, DataConfig, TrainConfig
from vidfit.data import AugmentConfig
from vidfit.data._augment import KeypointUnits
from vidfit.models import BACKBONES
from vidfit.models._backbone_recipes import backbone_constraints
from vidfit.models._backbones import BACKBONE_ALIASES
from vidfit.models._classifier import classifier_problems


@dataclass
class ActionModelConfig:
    """Arguments of `vidfit.models.build_classifier`.

    Attributes:
        pretrained: ``kinetics400`` starts the backbone from torchvision's Kinetics-400 weights (downloaded
            to the torch hub cache once) and normalizes input with their statistics; null starts it untrained.
        num_classes: The manifest's label count, which sets the classes; given, it must match (a check).
    """

    backbone: str = "r3d_18"
    view_fusion: Literal["early", "late"] = "late"
    input_type: Literal["rgb", "kpt", "rgb_kpt"] = "rgb"
    num_keypoints: int = 0
    keypoint_dims: int = 0
    activation_checkpointing: bool = False
    pretrained: str | None = None
    pretrained_path: str | None = None
    dropout: float = 0.0
    num_classes: int | None = None


@dataclass(frozen=True)
class ActionDataConfig(DataConfig):
    """`DataConfig` plus the augmentation of training clips, on their device (see `vidfit.data.AugmentConfig`).

    Attributes:
        augment: Random resized crop, flip and colour jitter of training clips (``enabled: true`` turns it on).
        keypoint_units: ``pixels`` of the decoded frames (after ``image_size``) or ``normalized`` (0 to 1)
            coordinates: how x, y of the keypoints follow the crop and flip.
    """

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    keypoint_units: KeypointUnits = "pixels"


@dataclass
class ActionTrainConfig(TrainConfig):
    """`TrainConfig` plus the weights of the classification losses."""

    frame_loss_weight: float = 0.5
    label_smoothing: float = 0.0


# The config of an action run, typed by its sections.
ActionConfig = Config[ActionModelConfig, DataConfig, ActionTrainConfig]

MONITORS = ("val/acc", "val/frame_acc", "val/loss")


def action_problems(config: ActionConfig) -> list[str]:
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


def _model_problems(config: ActionConfig) -> list[str]:
    """The classifier's own checks, then whether the backbone takes the clips the data section makes."""
    model, data = config.model, config.data
    problems = classifier_problems(
        backbone=model.backbone, view_fusion=model.view_fusion, input_type=model.input_type,
        num_keypoints=model.num_keypoints, keypoint_dims=model.keypoint_dims, dropout=model.dropout,
        pretrained=model.pretrained, pretrained_path=model.pretrained_path, prefix="model.",
    )  # fmt: skip
    if model.num_classes is not None and model.num_classes < 2:
        problems.append(f"model.num_classes={model.num_classes} must be >= 2")
    frames = data.num_frames
    # A short side alone (an int) is checked as a square: the long side is at least as long.
    size = (data.image_size, data.image_size) if isinstance(data.image_size, int) else data.image_size
    unchecked = model.input_type == "kpt" or model.backbone not in (*BACKBONES, *BACKBONE_ALIASES)
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
