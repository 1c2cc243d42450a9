"""Multi-label action recognition (``model.multi_label: true``): a frame may carry several classes.

The classifier's heads are read through a sigmoid per class instead of a softmax over the classes: training
minimises binary cross-entropy on every known (frame, class) and (clip, class) entry, and a class is predicted
where its probability reaches its threshold (``model.thresholds``, one for all classes or one per class). The
manifest must say ``multi_label: true`` (its segments may then overlap) exactly when the model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MultilabelF1Score

from vidfit.config import ConfigError
from vidfit.data import IGNORE_LABEL, Manifest, VideoBatch

if TYPE_CHECKING:
    from vidfit.tasks.action._config import ActionConfig

# The figures multi-label evaluation logs besides the loss and the detection figures single-label shares
# (``mAP``, ``mAP@0.5``, ``f1@0.5``): per-frame mAP and macro F1 at the thresholds, video-level mAP.
MULTI_LABEL_FIGURES = ("frame_map", "frame_f1", "video_map")
# Figures only a single-label model logs: one class per video or per frame.
SINGLE_LABEL_FIGURES = ("acc", "top1", "top5", "mean_class_acc", "frame_acc")


def multi_label_problems(config: ActionConfig) -> list[str]:
    """The rules of ``model.multi_label`` and ``model.thresholds`` between the sections (no manifest read)."""
    model, train = config.model, config.train
    values = model.thresholds if isinstance(model.thresholds, list) else [model.thresholds]
    problems = []
    if not values or not all(0 < value < 1 for value in values):
        problems.append(f"model.thresholds={model.thresholds!r} must be a probability in (0, 1), or a list of them")
    figure = train.monitor.partition("/")[2]
    if model.multi_label and figure in SINGLE_LABEL_FIGURES:
        problems.append(
            f"train.monitor={train.monitor!r} is a single-label figure; with model.multi_label: true monitor one of "
            + ", ".join(f"'val/{name}'" for name in ("loss", *MULTI_LABEL_FIGURES, "mAP", "f1@0.5"))
        )
    if not model.multi_label and figure in MULTI_LABEL_FIGURES:
        problems.append(f"train.monitor={train.monitor!r} needs model.multi_label: true")
    if model.multi_label and train.chunk_aggregation == "prob":
        problems.append(
            "train.chunk_aggregation='prob' averages softmax probabilities, which a multi-label model does not "
            "make (model.multi_label: true): use 'mean', 'max' or 'last'"
        )
    return problems


def check_manifest_agrees(config: ActionConfig, manifest: Manifest) -> None:
    """Refuses a multi-label manifest for a single-label model, and the reverse, naming both keys.

    Raises:
        ConfigError: ``model.multi_label`` and the manifest's ``multi_label`` differ.
    """
    if manifest.multi_label == config.model.multi_label:
        return
    where = manifest.path or config.data.manifest
    if manifest.multi_label:
        raise ConfigError(
            f"{where}: the manifest says multi_label: true (a frame may carry several classes), but "
            "model.multi_label is false: set model.multi_label: true to train sigmoid heads on it"
        )
    raise ConfigError(
        f"{where}: model.multi_label: true needs a manifest that says multi_label: true (its segments may "
        "overlap); this one does not: add multi_label: true to it, or set model.multi_label: false"
    )


def class_thresholds(thresholds: float | list[float], label_names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """The probability each class is predicted from, (C,): ``model.thresholds`` for every class or per class.

    Raises:
        ConfigError: A list of thresholds not one per class.
    """
    if not isinstance(thresholds, list):
        return torch.full((len(label_names),), float(thresholds))
    if len(thresholds) != len(label_names):
        raise ConfigError(
            f"model.thresholds lists {len(thresholds)} values but the model has {len(label_names)} classes "
            f"({', '.join(label_names)}): give one per class, in this order, or a single value"
        )
    return torch.tensor(thresholds, dtype=torch.float32)


def multi_label_counts(batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Known (clip, class) and (frame, class) entries of a batch, at least 1 each: what its losses average over."""
    return (batch.label != IGNORE_LABEL).sum().clamp(min=1), (batch.frame_labels != IGNORE_LABEL).sum().clamp(min=1)


def multi_label_loss(
    logits: torch.Tensor,
    frame_logits: torch.Tensor,
    batch: VideoBatch,
    *,
    counts: tuple[torch.Tensor, torch.Tensor],
    frame_loss_weight: float,
    label_smoothing: float,
) -> torch.Tensor:
    """Clip plus weighted per-frame binary cross-entropy, each summed over the known entries and divided by `counts`.

    `counts` are the whole batch's (`multi_label_counts`), so that the losses of its micro-batches add up to the
    batch's. Label smoothing moves every known target towards 0.5 by half of `label_smoothing`.
    """
    clip = _masked_binary_cross_entropy(logits, batch.label, label_smoothing) / counts[0]
    frames = _masked_binary_cross_entropy(frame_logits, batch.frame_labels, label_smoothing) / counts[1]
    return clip + frame_loss_weight * frames


def _masked_binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    known = targets != IGNORE_LABEL
    soft = targets.clamp(min=0).float() * (1 - smoothing) + smoothing / 2
    losses = F.binary_cross_entropy_with_logits(logits.float(), soft, reduction="none")
    return (losses * known).sum()


def training_metrics(num_classes: int) -> nn.ModuleDict:
    """Micro F1 at 0.5 of training clips and frames, unknown entries ignored (logged as ``train/f1``, ``frame_f1``)."""
    return nn.ModuleDict(
        {
            f"train_{kind}": MultilabelF1Score(num_classes, average="micro", ignore_index=IGNORE_LABEL)
            for kind in ("f1", "frame_f1")
        }
    )


def update_training_metrics(
    metrics: nn.ModuleDict, logits: torch.Tensor, frame_logits: torch.Tensor, batch: VideoBatch
) -> None:
    """Adds a training batch's clip logits (B, C) and frame logits (B*T, C) to `training_metrics`."""
    cast(Metric, metrics["train_f1"]).update(logits, batch.label.long())
    cast(Metric, metrics["train_frame_f1"]).update(frame_logits, batch.frame_labels.flatten(0, 1).long())
