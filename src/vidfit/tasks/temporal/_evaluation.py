"""The temporal task's evaluation: each whole video read at its frames and scored against its timeline.

`validate`, `test` and `predict` score alike: frame accuracy, segmental F1@{10,25,50} and edit score of the
frame classes (`_metrics`), and ActivityNet detection mAP at tIoU 0.3:0.1:0.7 of the scored segments
(`vidfit.infer.detection_map`), all at the video's own frames, as the action task scores its per-frame head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidfit.data import IGNORE_LABEL
from vidfit.infer import DetectionMAP, FrameScore, TimedSegment, VideoScore, detection_map, score_to_json
from vidfit.tasks.temporal._frames import StepTimes, runs_to_segments
from vidfit.tasks.temporal._metrics import (
    F1_OVERLAPS,
    SegmentationMetrics,
    SegmentationScore,
    score_segmentation,
    segmentation_metrics,
)
from vidfit.tasks.temporal._model import FrameResult


@dataclass(frozen=True)
class TemporalScore:
    """One video's record: small enough to gather from every rank or keep in the results.

    Attributes:
        position: The video's place in its split (manifest order).
        video_id: The video.
        segmentation: Its frame classes against its timeline; None without a timeline.
        predicted: The segments found, scored.
        true: The timeline's action segments.
        loss: The training loss over the whole video (nan when not computed, as in predict).
    """

    position: int
    video_id: str
    segmentation: SegmentationScore | None
    predicted: tuple[TimedSegment, ...]
    true: tuple[TimedSegment, ...]
    loss: float = float("nan")


def score_temporal(
    result: FrameResult, truth: np.ndarray | None, times: StepTimes, *, video_id: str, position: int,
    background: int | None, loss: float = float("nan"),
) -> TemporalScore:  # fmt: skip
    """The record of one video: `truth` is each frame's true class (T,), `IGNORE_LABEL` unlabelled; None without."""
    if truth is None or not bool((truth != IGNORE_LABEL).any()):
        return TemporalScore(position, video_id, None, tuple(result.segments), (), loss)
    segmentation = score_segmentation(result.frame_labels, truth, video_id=video_id, background=background)
    true = runs_to_segments(truth, None, times, background=background)
    return TemporalScore(position, video_id, segmentation, tuple(result.segments), tuple(true), loss)


def evaluation_record(
    score: TemporalScore, *, class_scores: Sequence[float], label_names: Sequence[str]
) -> dict[str, Any] | None:
    """The video's scoring record in the predictions JSON (its ``vidfit`` section's ``evaluation``), in the action
    task's shape (`vidfit.infer.score_to_json`): the true segments `vidfit report` draws, and the counts it sorts
    the videos by and `vidfit merge` adds up. None without a timeline. Its ``segment_f1`` is the video's own
    segmental F1@50; no video label is scored (``label`` None), as the task scores timelines only."""
    found = score.segmentation
    if found is None:
        return None
    hits, false_alarms, misses = found.f1_counts[F1_OVERLAPS.index(0.50)]
    f1 = 2 * hits / (2 * hits + false_alarms + misses) if hits else 0.0
    frames = FrameScore(found.num_labelled, found.num_correct, f1, score.predicted, score.true)
    return score_to_json(VideoScore(score.video_id, IGNORE_LABEL, tuple(class_scores), frames), label_names)


@dataclass(frozen=True)
class TemporalMetrics:
    """The figures of a set of videos.

    Attributes:
        loss: Mean loss over the videos that have one; None without.
        segmentation: Frame accuracy, segmental F1 and edit score over the videos with timelines; None without.
        detection: Detection mAP over the same videos; None without true segments.
    """

    loss: float | None
    segmentation: SegmentationMetrics | None
    detection: DetectionMAP | None

    def logged(self, stage: str) -> dict[str, float]:
        """The figures by the names evaluation logs them under (``val/loss``, ``val/f1@50``, ``val/mAP@0.5``)."""
        values = {} if self.loss is None else {f"{stage}/loss": self.loss}
        if self.segmentation is not None:
            values.update(self.segmentation.logged(stage))
        if self.detection is not None:
            values.update({f"{stage}/{name}": value for name, value in self.detection.figures().items()})
        return values

    def report_lines(self) -> list[str]:
        lines = [] if self.segmentation is None else [self.segmentation.report_line()]
        if self.detection is not None:
            found = self.detection
            at = ", ".join(f"{t:.1f}: {m:.3f}" for t, m in zip(found.tiou_thresholds, found.map_per_tiou, strict=True))
            lines.append(f"detection mAP {found.average_map:.3f} (at tIoU {at})")
        return lines


def temporal_metrics(scores: Sequence[TemporalScore]) -> TemporalMetrics:
    """The figures of `scores` (each video once)."""
    losses = [s.loss for s in scores if not np.isnan(s.loss)]
    framed = [s for s in scores if s.segmentation is not None]
    segmentation = (
        segmentation_metrics([s.segmentation for s in framed if s.segmentation is not None]) if framed else None
    )
    has_truth = any(s.true for s in framed)
    detection = (
        detection_map({s.video_id: s.predicted for s in framed}, {s.video_id: s.true for s in framed})
        if has_truth
        else None
    )
    return TemporalMetrics(sum(losses) / len(losses) if losses else None, segmentation, detection)
