"""Action recognition's config: its `model` section, its `train` keys, and the rules between them and the data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from vidfit.config import Config, DataConfig, TrainConfig
from vidfit.data import AugmentConfig, KeypointUnits
from vidfit.models import (
    BACKBONE_ALIASES,
    BACKBONES,
    LoraSettings,
    backbone_constraints,
    classifier_problems,
    is_hf_backbone,
)
from vidfit.tasks.action._evaluation import evaluation_names
from vidfit.tasks.action._multilabel import MULTI_LABEL_FIGURES, multi_label_problems


@dataclass
class ActionModelConfig:
    """Arguments of `vidfit.models.build_classifier`.

    Attributes:
        pretrained: ``kinetics400`` starts the backbone from torchvision's Kinetics-400 weights (downloaded
            to the torch hub cache once) and normalizes input with their statistics; null starts it untrained.
        num_keypoints: K, keypoints per frame of the keypoint input types; 0 takes it from the keypoint files.
        keypoint_dims: D, coordinates per keypoint; 0 takes it from the keypoint files.
        num_classes: The manifest's label count, which sets the classes; given, it must match (a check).
        multi_label: A frame may carry several classes (the manifest must say ``multi_label: true``): sigmoid
            heads trained with binary cross-entropy, a class predicted where its probability reaches its threshold.
        thresholds: With `multi_label`, the probability from which a class is predicted: one for every class, or
            a list of one per class in the manifest's label order (``--set model.thresholds=[0.4,0.6]`` at predict).
        freeze: ``hf:`` backbones: ``none``, ``all`` (train the heads only) or ``first:N`` (the patch embedding
            and the first N blocks run without gradients).
        lora: ``hf:`` backbones: LoRA adapters ``{rank, alpha, targets}`` through peft; only they train, and
            checkpoints hold them and the base model's name (``model.backbone``).
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
    multi_label: bool = False
    thresholds: float | list[float] = 0.5
    freeze: str = "none"
    lora: LoraSettings | None = None


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
    """`TrainConfig` plus the weights of the classification losses, and token dropping.

    Attributes:
        token_drop: ``hf:`` backbones: share of patch tokens dropped at random in training (tube masking, the same
            positions in every frame), in [0, 0.9]; validation and prediction see every token.
    """

    frame_loss_weight: float = 0.5
    label_smoothing: float = 0.0
    token_drop: float = 0.0


_LOG = logging.getLogger("vidfit")

# The config of an action run, typed by its sections.
ActionConfig = Config[ActionModelConfig, DataConfig, ActionTrainConfig]

# What `train.monitor` may name: every figure validation logs; the first (the loss, which any labelled data has) is
# the default. `val/acc` is top-1 video accuracy under the name earlier versions used.
MONITORS = (*evaluation_names("val"), *(f"val/{name}" for name in MULTI_LABEL_FIGURES))


def action_problems(config: ActionConfig) -> list[str]:
    """Action recognition's rules: the classifier's own checks, the clips it takes, what the data must load."""
    model, data, train = config.model, config.data, config.train
    needs = f"model.input_type={model.input_type!r} needs"
    rules = [
        (data.load_rgb or model.input_type == "kpt", f"{needs} data.load_rgb: true"),
        (model.input_type == "rgb" or data.load_kpt, f"{needs} data.load_kpt: true"),
        (
            model.input_type != "rgb" or not data.load_kpt,
            "data.load_kpt: true loads keypoints that model.input_type='rgb' does not use: set data.load_kpt: false, "
            "or model.input_type: rgb_kpt (video and keypoints)",
        ),
        (0 <= train.label_smoothing < 1, f"train.label_smoothing={train.label_smoothing} must be in [0, 1)"),
        (train.frame_loss_weight >= 0, f"train.frame_loss_weight={train.frame_loss_weight} must be >= 0"),
        (0 <= train.token_drop <= 0.9, f"train.token_drop={train.token_drop} must be in [0, 0.9]"),
        (
            not train.token_drop or (is_hf_backbone(model.backbone) and model.input_type != "kpt"),
            f"train.token_drop={train.token_drop} drops the patch tokens of an hf: backbone; "
            f"model.backbone={model.backbone!r} has none",
        ),
    ]
    return _model_problems(config) + [message for ok, message in rules if not ok] + multi_label_problems(config)


def _model_problems(config: ActionConfig) -> list[str]:
    """The classifier's own checks, then whether the backbone takes the clips the data section makes."""
    model, data = config.model, config.data
    # 0 keypoints (or dims) is "as the keypoint files hold" (`with_keypoint_shape`); below 0 is an error.
    problems = classifier_problems(
        backbone=model.backbone, view_fusion=model.view_fusion, input_type=model.input_type,
        num_keypoints=model.num_keypoints or 1, keypoint_dims=model.keypoint_dims or 1, dropout=model.dropout,
        pretrained=model.pretrained, pretrained_path=model.pretrained_path, prefix="model.", freeze=model.freeze,
        lora=model.lora,
    )  # fmt: skip
    if model.num_classes is not None and model.num_classes < 2:
        problems.append(f"model.num_classes={model.num_classes} must be >= 2")
    frames = data.num_frames
    # A short side alone (an int) is checked as a square: the long side is at least as long.
    size = (data.image_size, data.image_size) if isinstance(data.image_size, int) else data.image_size
    known = (*BACKBONES, *BACKBONE_ALIASES)
    unchecked = model.input_type == "kpt" or (model.backbone not in known and not is_hf_backbone(model.backbone))
    if unchecked or (size is not None and min(size) < 1):  # a bad image_size is the data package's to report
        return problems
    try:
        limits = backbone_constraints(model.backbone)
    except (OSError, ImportError, ValueError):  # an hf: model that cannot be read, reported above
        return problems
    where = f"model.backbone={model.backbone!r} needs"
    if limits.exact_shape is not None and (frames, *(size or (None, None))) != limits.exact_shape:
        shape = limits.exact_shape
        problems.append(
            f"{where} clips of exactly (T, H, W)={shape}: data.num_frames={shape[0]} and data.image_size="
            f"{list(shape[1:])}, got data.num_frames={frames}, data.image_size={list(size) if size else None}"
        )
    elif limits.exact_size is not None and tuple(size or ()) != limits.exact_size:
        problems.append(
            f"{where} frames of exactly (H, W)={limits.exact_size}: data.image_size={list(limits.exact_size)}, "
            f"got {list(size) if size else None}"
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


def keypoints_by_default(document: dict[str, Any]) -> bool:
    """The default of ``data.load_kpt``: keypoints are loaded where ``model.input_type`` reads them."""
    model = document.get("model")
    return isinstance(model, dict) and model.get("input_type", "rgb") in ("kpt", "rgb_kpt")


def with_keypoint_shape(config: ActionConfig, shape: Callable[[], tuple[int, int]]) -> ActionConfig:
    """`config` with ``model.num_keypoints`` and ``model.keypoint_dims`` left at 0 taken from the data.

    Args:
        shape: The data's keypoint shape (K, D); called only when the model reads keypoints and one is 0.
    """
    model = config.model
    if model.input_type == "rgb" or (model.num_keypoints and model.keypoint_dims):
        return config
    num_keypoints, keypoint_dims = shape()
    resolved = replace(
        model, num_keypoints=model.num_keypoints or num_keypoints, keypoint_dims=model.keypoint_dims or keypoint_dims
    )
    _LOG.info(
        "model.num_keypoints=%d, model.keypoint_dims=%d: from the keypoint files",
        resolved.num_keypoints, resolved.keypoint_dims,
    )  # fmt: skip
    return replace(config, model=resolved)
