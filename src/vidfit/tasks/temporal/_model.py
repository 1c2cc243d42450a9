"""The temporal model a config describes: one of the two heads behind one interface (loss, per-frame result)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vidfit.data import IGNORE_LABEL
from vidfit.infer import TimedSegment
from vidfit.tasks.temporal._actionformer import ActionDetector, PyramidOutput, pyramid_geometry
from vidfit.tasks.temporal._config import TemporalModelConfig
from vidfit.tasks.temporal._data import FeatureBatch
from vidfit.tasks.temporal._detect import assign_targets, decode, detection_loss
from vidfit.tasks.temporal._frames import (
    StepTimes,
    detections_to_segments,
    paint_segments,
    runs_to_segments,
    spread_to_frames,
)
from vidfit.tasks.temporal._mstcn import MultiStageTCN, mstcn_loss


@dataclass(frozen=True)
class FrameResult:
    """What the model says about one video, at its frames.

    Attributes:
        frame_labels: int64 (T,), the class of each frame.
        frame_scores: float (T,), how sure: the class's probability (MS-TCN), its segment's score (ActionFormer).
        class_scores: float (C,), the video's score of each class: the mean probability over its frames (MS-TCN),
            the best score of a segment of the class (ActionFormer).
        segments: The actions found, scored, in frames and seconds (for detection mAP and the JSON results).
    """

    frame_labels: np.ndarray
    frame_scores: np.ndarray
    class_scores: np.ndarray
    segments: list[TimedSegment]


def background_class(model: TemporalModelConfig, label_names: Sequence[str]) -> int | None:
    """The index of ``model.background`` among the labels; None without one."""
    names = list(label_names)
    return names.index(model.background) if model.background is not None and model.background in names else None


class TemporalNet(nn.Module):
    """The head of ``model.head`` over feature sequences, with its loss and its per-frame reading.

    Args:
        config: The `model` section.
        in_channels: Channels of the features (the index's ``feature_dim``).
        label_names: The classes, in label-index order.
    """

    action_classes: torch.Tensor

    def __init__(self, config: TemporalModelConfig, *, in_channels: int, label_names: Sequence[str]) -> None:
        super().__init__()
        self.head, self.num_classes = config.head, len(label_names)
        self.background = background_class(config, label_names)
        self.score_threshold = config.score_threshold
        sizes = {"in_channels": in_channels, "num_classes": self.num_classes, "channels": config.channels}
        self.net: nn.Module = (
            MultiStageTCN(**sizes, num_stages=config.num_stages, num_layers=config.num_layers, dropout=config.dropout)
            if config.head == "mstcn"
            else ActionDetector(**sizes, num_levels=config.num_levels, dropout=config.dropout)
        )
        actions = torch.ones(self.num_classes, dtype=torch.bool)
        if self.background is not None:
            actions[self.background] = False
        self.register_buffer("action_classes", actions, persistent=False)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | PyramidOutput:
        """MS-TCN: logits (S, B, C, L) of every stage; ActionFormer: the pyramid's scores and distances."""
        return self.net(features, mask)

    def counts(self, batch: FeatureBatch) -> tuple[torch.Tensor, ...]:
        """What the loss of `batch` is divided by, computed once for the whole batch (not per micro-batch)."""
        if isinstance(self.net, MultiStageTCN):
            pairs = (batch.mask[:, 1:] & batch.mask[:, :-1]).sum().clamp(min=1)
            return (batch.labels != IGNORE_LABEL).sum().clamp(min=1), pairs
        assert isinstance(self.net, ActionDetector)
        geometry = pyramid_geometry(batch.mask, num_levels=self.net.num_levels)
        targets = assign_targets(self.net, geometry, batch.labels, num_classes=self.num_classes,
                                 background=self.background)  # fmt: skip
        return (targets.positive.sum().clamp(min=1),)

    def loss(
        self,
        output: torch.Tensor | PyramidOutput,
        batch: FeatureBatch,
        *,
        counts: tuple[torch.Tensor, ...],
        smoothing_weight: float,
        regression_weight: float,
    ) -> torch.Tensor:
        """The head's loss of `batch`, divided by the whole batch's `counts`."""
        if isinstance(output, torch.Tensor):
            labelled, pairs = counts
            return mstcn_loss(output, batch.labels, batch.mask, smoothing_weight=smoothing_weight,
                              num_labelled=labelled, num_pairs=pairs)  # fmt: skip
        assert isinstance(self.net, ActionDetector)
        targets = assign_targets(self.net, output.geometry, batch.labels, num_classes=self.num_classes,
                                 background=self.background)  # fmt: skip
        return detection_loss(output, targets, action_classes=self.action_classes,
                              regression_weight=regression_weight, num_positives=counts[0])  # fmt: skip

    def frame_result(self, output: torch.Tensor | PyramidOutput, index: int, *, num_steps: int,
                     times: StepTimes) -> FrameResult:  # fmt: skip
        """Video `index` of the batch, read at every one of its frames."""
        if isinstance(output, torch.Tensor):
            step_logits = output[-1, index, :, :num_steps].detach().float().cpu().T
            probabilities = spread_to_frames(step_logits.softmax(dim=-1), times)
            best, classes = probabilities.max(dim=-1)
            label_track, score_track = classes.numpy(), best.numpy()
            segments = runs_to_segments(label_track, score_track, times, background=self.background)
            return FrameResult(label_track, score_track, probabilities.mean(dim=0).numpy(), segments)
        found = decode(output, index=index, num_steps=num_steps, action_classes=self.action_classes)
        segments = detections_to_segments(found, times)
        class_scores = np.zeros(self.num_classes)
        for segment in segments:
            class_scores[segment.label] = max(class_scores[segment.label], segment.score)
        fallback = int(class_scores.argmax())
        labels, scores = paint_segments(
            segments, times, background=self.background, fallback=fallback, threshold=self.score_threshold
        )
        return FrameResult(labels, scores, class_scores, segments)
