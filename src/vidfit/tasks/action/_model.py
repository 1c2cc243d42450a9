"""The classifier an action config describes, for training and for inference alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidfit.config import ConfigError
from vidfit.infer import CheckpointState, ChunkedPredictor, check_weights
from vidfit.memory import Precision
from vidfit.models import VideoClassifier, backbone_constraints, build_classifier
from vidfit.tasks.action._config import ActionConfig


def build_model(
    config: ActionConfig, *, label_names: Sequence[str], views: Sequence[str], load_pretrained: bool = True
) -> VideoClassifier:
    """The classifier of ``model.*`` over `views`, predicting `label_names`.

    Args:
        load_pretrained: Read the ``model.pretrained`` or ``model.pretrained_path`` weights; off when a
            checkpoint's weights will replace them, or for an estimate (the input normalization of
            ``model.pretrained`` is kept either way).

    Raises:
        ConfigError: ``model.num_classes`` is given and differs from the number of `label_names`.
        PretrainedWeightsUnavailableError: ``model.pretrained`` weights are neither cached nor downloadable.
    """
    model = config.model
    if model.num_classes is not None and model.num_classes != len(label_names):
        raise ConfigError(
            f"model.num_classes={model.num_classes} but the manifest has {len(label_names)} labels "
            f"({', '.join(label_names)}): the classes come from the manifest; fix or drop model.num_classes"
        )
    return build_classifier(
        backbone=model.backbone, num_classes=len(label_names), views=tuple(views), view_fusion=model.view_fusion,
        input_type=model.input_type, num_keypoints=model.num_keypoints, keypoint_dims=model.keypoint_dims,
        activation_checkpointing=model.activation_checkpointing, pretrained=model.pretrained,
        pretrained_path=model.pretrained_path if load_pretrained else None,
        dropout=model.dropout, load_pretrained=load_pretrained, freeze=model.freeze, lora=model.lora,
        token_drop=config.train.token_drop,
    )  # fmt: skip


def check_classifier_weights(checkpoint: CheckpointState, config: ActionConfig, *, key: str = "checkpoint") -> None:
    """Refuses a checkpoint whose weights are not those of the classifier its header describes.

    The classifier is built on the meta device: no memory, no pretrained weights read.

    Raises:
        CheckpointError: Another backbone's weights, heads of another label count...: naming `key` and the file.
    """
    hyper = checkpoint.hyper_parameters
    with torch.device("meta"):
        model = build_model(config, label_names=hyper["label_names"], views=hyper["views"], load_pretrained=False)
    check_weights(model, checkpoint, key=key)


def min_window_frames(config: ActionConfig) -> int:
    """The shortest inference window the backbone takes; shorter ones (a video's tail) are padded to it."""
    model = config.model
    return 1 if model.input_type == "kpt" else backbone_constraints(model.backbone).min_window_frames


def chunked_predictor(
    model: VideoClassifier, config: ActionConfig, *, device: torch.device, precision: Precision = "32"
) -> ChunkedPredictor:
    """`model` behind a `ChunkedPredictor` with the config's `train.chunk_*` and `video_batch_size`.

    Windows shorter than the backbone takes (a video's tail, a short video) are padded to its minimum.
    """
    settings = config.train
    return ChunkedPredictor(
        model,
        chunk_infer_size=settings.chunk_infer_size,
        chunk_overlap=settings.chunk_overlap,
        chunk_aggregation=settings.chunk_aggregation,
        video_batch_size=settings.video_batch_size,
        precision=precision,
        device=device,
        min_window_frames=min_window_frames(config),
    )
