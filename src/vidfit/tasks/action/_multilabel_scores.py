"""Multi-label videos scored: classes at their thresholds, overlapping segments, per-frame mAP and F1, detection.

`validate`, `test` and `predict` score each whole video with `score_multi_label` and combine the records with
`multi_label_metrics`, as the single-label path does with `vidfit.infer.score_video`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchmetrics.functional.classification import multilabel_average_precision

from vidfit.data import IGNORE_LABEL, Timeline, VideoBatch, clip_multi_hot, frame_multi_hot
from vidfit.infer import DetectionMAP, TimedSegment, VideoPrediction, detection_map, frames_to_segments, segment_f1
from vidfit.tasks.action._multilabel import class_thresholds, multi_label_counts, multi_label_loss

if TYPE_CHECKING:
    from vidfit.tasks.action._config import ActionConfig


@dataclass(frozen=True)
class MultiLabelScore:
    """What the figures need of one predicted video, small enough to gather from every rank.

    Attributes:
        video_id: The video.
        probabilities: Its video-level class probabilities (C,).
        label: Its classes (C,) int8: 1 present (its label's, or on any frame of its timeline), 0 absent,
            `IGNORE_LABEL` everywhere when the video has neither label nor timeline.
        frame_probabilities: Each frame's class probabilities (T, C); None without a timeline to score them by.
        frame_labels: Each frame's classes (T, C) int8 from the timeline; None without one.
        predicted: The predicted segments (runs of frames at or over a class's threshold), with their scores.
        true: The timeline's runs of frames of each class.
    """

    video_id: str
    probabilities: torch.Tensor
    label: torch.Tensor
    frame_probabilities: torch.Tensor | None
    frame_labels: torch.Tensor | None
    predicted: tuple[TimedSegment, ...]
    true: tuple[TimedSegment, ...]


def class_segments(
    probabilities: torch.Tensor, *, pts_seconds: torch.Tensor, thresholds: torch.Tensor, first_frame: int = 0
) -> list[TimedSegment]:
    """Runs of frames whose probability of a class reaches its threshold, every class apart (they may overlap).

    Each segment's score is the mean probability of its class over its frames; segments are ordered by start.
    """
    segments = []
    for label in range(probabilities.shape[1]):
        column = probabilities[:, label]
        track = torch.where(column >= thresholds[label], label, IGNORE_LABEL)
        found = frames_to_segments(track, pts_seconds=pts_seconds, frame_scores=column, first_frame=first_frame)
        segments += found
    return sorted(segments, key=lambda s: (s.start_frame, s.label))


def score_multi_label(
    prediction: VideoPrediction,
    *,
    video_id: str,
    timeline: Timeline | None,
    label: str | None,
    label_names: Sequence[str],
    thresholds: torch.Tensor,
    frame_head_trained: bool = True,
) -> MultiLabelScore:
    """One video's record: its probabilities and classes, frame by frame where its timeline says them."""
    names, pts = tuple(label_names), prediction.pts_seconds
    if pts is None:
        raise ValueError(f"video {video_id!r}: multi-label scoring needs the prediction's frame times")
    frames = prediction.first_frame + np.arange(len(pts))
    truth = frame_multi_hot(timeline, labels=names, frame_indices=frames, times_seconds=pts.numpy())
    index = IGNORE_LABEL if label is None else names.index(label)
    video_label = torch.from_numpy(clip_multi_hot(truth, video_label=index))
    probabilities = prediction.frame_logits.float().sigmoid()
    predicted = class_segments(
        probabilities, pts_seconds=pts, thresholds=thresholds, first_frame=prediction.first_frame
    )
    if timeline is None or not frame_head_trained:
        return MultiLabelScore(video_id, prediction.scores.sigmoid(), video_label, None, None, tuple(predicted), ())
    truth_tensor = torch.from_numpy(truth)
    present = torch.full_like(thresholds, 0.5)  # a true class is 1, an absent one 0
    true = class_segments(truth_tensor.float(), pts_seconds=pts, thresholds=present, first_frame=prediction.first_frame)
    return MultiLabelScore(
        video_id, prediction.scores.sigmoid(), video_label, probabilities, truth_tensor, tuple(predicted), tuple(true)
    )


@dataclass(frozen=True)
class MultiLabelMetrics:
    """The figures of a set of multi-label videos.

    Attributes:
        num_videos: Videos scored.
        num_labelled_frames: Frames of the videos with timelines.
        frame_map: Mean over the classes present on some frame of the average precision of the frames'
            probabilities (MultiTHUMOS' and Charades' per-frame mAP); None without timelines.
        frame_f1: Mean over the same classes of the F1 of the frames predicted at the thresholds.
        video_map: Mean over the classes present in some video of the AP of the video-level probabilities
            (Charades' classification mAP); None without known video classes.
        segment_f1: Mean over the videos with timelines of the F1 of their segments at tIoU 0.5.
        detection: ActivityNet-style detection mAP of the segments at tIoU 0.3:0.1:0.7.
    """

    num_videos: int
    num_labelled_frames: int
    frame_map: float | None
    frame_f1: float | None
    video_map: float | None
    segment_f1: float | None
    detection: DetectionMAP | None

    def logged(self, stage: str) -> dict[str, float]:
        """The figures there are, by the names evaluation logs them under (``val/frame_map``, ``val/mAP``...)."""
        values = {
            "frame_map": self.frame_map, "frame_f1": self.frame_f1, "video_map": self.video_map,
            "f1@0.5": self.segment_f1, **({} if self.detection is None else self.detection.figures()),
        }  # fmt: skip
        return {f"{stage}/{name}": value for name, value in values.items() if value is not None}

    def report_lines(self) -> list[str]:
        """What the command line prints of the figures."""
        lines = []
        if self.video_map is not None:
            lines.append(f"video mAP {self.video_map:.3f}")
        if self.frame_map is not None and self.frame_f1 is not None and self.segment_f1 is not None:
            lines.append(
                f"frame mAP {self.frame_map:.3f}, frame F1 {self.frame_f1:.3f}, segment F1@0.5 {self.segment_f1:.3f}"
            )
        if self.detection is not None:
            lines.append(f"detection mAP {self.detection.average_map:.3f}")
        return lines


def multi_label_metrics(scores: Sequence[MultiLabelScore], *, thresholds: torch.Tensor) -> MultiLabelMetrics:
    """The figures of scored videos (see `MultiLabelMetrics`); a class never present counts in no mean."""
    framed = [s for s in scores if s.frame_probabilities is not None and s.frame_labels is not None]
    known = [s for s in scores if bool((s.label != IGNORE_LABEL).all())]
    video_map = None
    if known:
        video_map = _mean_average_precision(
            torch.stack([s.probabilities for s in known]), torch.stack([s.label for s in known])
        )
    if not framed:
        return MultiLabelMetrics(len(scores), 0, None, None, video_map, None, None)
    probabilities = torch.cat([s.frame_probabilities for s in framed if s.frame_probabilities is not None])
    truth = torch.cat([s.frame_labels for s in framed if s.frame_labels is not None])
    detection = None
    if any(s.true for s in framed):
        detection = detection_map({s.video_id: s.predicted for s in framed}, {s.video_id: s.true for s in framed})
    return MultiLabelMetrics(
        num_videos=len(scores), num_labelled_frames=len(truth),
        frame_map=_mean_average_precision(probabilities, truth), frame_f1=_macro_f1(probabilities, truth, thresholds),
        video_map=video_map, segment_f1=float(np.mean([segment_f1(s.predicted, s.true) for s in framed])),
        detection=detection,
    )  # fmt: skip


def _present(truth: torch.Tensor) -> torch.Tensor:
    """The classes (columns) present somewhere in `truth` (N, C)."""
    return (truth == 1).any(dim=0)


def _mean_average_precision(probabilities: torch.Tensor, truth: torch.Tensor) -> float | None:
    """Mean over the classes present of torchmetrics' average precision; None when no class is."""
    present = _present(truth)
    if not bool(present.any()):
        return None
    columns = int(present.sum())
    scores = multilabel_average_precision(
        probabilities[:, present].float(), truth[:, present].long(), num_labels=columns, average=None
    )
    return float(scores.mean())


def _macro_f1(probabilities: torch.Tensor, truth: torch.Tensor, thresholds: torch.Tensor) -> float | None:
    """Mean over the classes present of the F1 of the entries at or over each class's threshold."""
    present = _present(truth)
    if not bool(present.any()):
        return None
    predicted, actual = probabilities >= thresholds, truth == 1
    hits = (predicted & actual).sum(dim=0).double()
    f1 = 2 * hits / (predicted.sum(dim=0) + actual.sum(dim=0)).double()
    return float(f1[present].mean())


@dataclass(frozen=True)
class EvaluatedMultiLabelVideo:
    """What one rank found in one video of the split, with a multi-label model.

    Attributes:
        position: The video's place in the split (manifest order).
        score: Its record for the figures.
        loss: Its clip loss plus the weighted frame loss, over every known entry.
    """

    position: int
    score: MultiLabelScore
    loss: float


def evaluate_multi_label(
    prediction: VideoPrediction,
    *,
    position: int,
    video_id: str,
    timeline: Timeline | None,
    label: str | None,
    label_names: Sequence[str],
    config: ActionConfig,
    frame_head_trained: bool,
) -> EvaluatedMultiLabelVideo:
    """A whole video's record and loss, as validation keeps them (`multi_label_values` combines them)."""
    thresholds = class_thresholds(config.model.thresholds, tuple(label_names))
    score = score_multi_label(
        prediction, video_id=video_id, timeline=timeline, label=label, label_names=label_names,
        thresholds=thresholds, frame_head_trained=frame_head_trained,
    )  # fmt: skip
    frames = score.frame_labels
    if frames is None:
        frames = torch.full(tuple(prediction.frame_logits.shape), IGNORE_LABEL, dtype=torch.int8)
    video = VideoBatch(label=score.label[None], frame_labels=frames[None])
    loss = multi_label_loss(
        prediction.scores[None], prediction.frame_logits[None], video, counts=multi_label_counts(video),
        frame_loss_weight=config.train.frame_loss_weight, label_smoothing=config.train.label_smoothing,
    )  # fmt: skip
    return EvaluatedMultiLabelVideo(position, score, float(loss))


def multi_label_values(
    videos: Sequence[EvaluatedMultiLabelVideo], *, stage: str, label_names: Sequence[str], config: ActionConfig
) -> dict[str, float]:
    """``stage/loss`` (mean over the videos) and the figures of `MultiLabelMetrics`; empty without videos."""
    if not videos:
        return {}
    thresholds = class_thresholds(config.model.thresholds, tuple(label_names))
    metrics = multi_label_metrics([video.score for video in videos], thresholds=thresholds)
    return {f"{stage}/loss": sum(video.loss for video in videos) / len(videos), **metrics.logged(stage)}
