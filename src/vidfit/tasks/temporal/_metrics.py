"""The figures of temporal action segmentation, as MS-TCN's evaluation computes them, and their combination.

A port of ``eval.py`` of github.com/yabufarha/ms-tcn (``get_labels_start_end_time``, ``levenstein``,
``edit_score``, ``f_score``) on integer label tracks:

- segments are the maximal runs of one label, background runs left out (and here also the runs of frames a
  timeline leaves unlabelled, which MS-TCN's datasets never have);
- segmental F1@k: each predicted segment, in order, takes the true segment of its label it overlaps most (IoU);
  a hit when that IoU reaches k and that true segment is not taken yet, else a false positive; the true
  segments never taken are the misses. True positives, false positives and misses add up over every video,
  and F1 comes from the sums (as MS-TCN's ``main`` does);
- edit score: 1 minus the Levenshtein distance between the predicted and the true sequence of segment labels,
  over the longer one's length, averaged over the videos (two empty sequences score 1).

Figures are fractions in [0, 1], as vidfit reports every figure; the papers print them times 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidfit.data import IGNORE_LABEL

# The overlaps of segmental F1 the field reports: F1@{10,25,50}.
F1_OVERLAPS = (0.10, 0.25, 0.50)


@dataclass(frozen=True)
class LabelRun:
    """A segment of a label track: frames ``[start, stop)`` of one label."""

    label: int
    start: int
    stop: int


def label_runs(labels: np.ndarray, *, background: int | None) -> list[LabelRun]:
    """The maximal runs of equal labels in a track (T,), without the background's and unlabelled frames' runs."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels must be a track (T,), got shape {values.shape}")
    if not len(values):
        return []
    changes = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], changes])
    stops = np.concatenate([changes, [len(values)]])
    skipped = {IGNORE_LABEL} if background is None else {IGNORE_LABEL, background}
    return [
        LabelRun(int(values[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True) if values[a] not in skipped
    ]


def levenshtein(predicted: Sequence[int], target: Sequence[int]) -> int:
    """Edits (insertions, deletions, substitutions) that turn one sequence into the other."""
    previous = list(range(len(target) + 1))
    for i, p in enumerate(predicted, start=1):
        current = [i]
        for j, t in enumerate(target, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (p != t)))
        previous = current
    return previous[-1]


def edit_score(predicted: Sequence[LabelRun], target: Sequence[LabelRun]) -> float:
    """1 - the normalized Levenshtein distance of the two segment label sequences (1.0 for two empty ones)."""
    longest = max(len(predicted), len(target))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein([s.label for s in predicted], [s.label for s in target]) / longest


def f1_counts(predicted: Sequence[LabelRun], target: Sequence[LabelRun], *, overlap: float) -> tuple[int, int, int]:
    """(true positives, false positives, misses) of the predicted segments at IoU `overlap` (``f_score``)."""
    hits = [False] * len(target)
    true_positives = false_positives = 0
    for segment in predicted:
        # MS-TCN's IoU times "same label": the best may be a true segment of another label, then a miss.
        ious = [_iou(segment, truth) if truth.label == segment.label else 0.0 for truth in target]
        best = int(np.argmax(ious)) if ious else -1
        if best >= 0 and ious[best] >= overlap and not hits[best]:
            true_positives += 1
            hits[best] = True
        else:
            false_positives += 1
    return true_positives, false_positives, len(target) - sum(hits)


def _iou(a: LabelRun, b: LabelRun) -> float:
    intersection = min(a.stop, b.stop) - max(a.start, b.start)
    union = max(a.stop, b.stop) - min(a.start, b.start)
    return intersection / union if union > 0 else 0.0


@dataclass(frozen=True)
class SegmentationScore:
    """One video's segmentation record: small enough to gather from every rank.

    Attributes:
        video_id: The video.
        num_labelled: Frames the timeline labels.
        num_correct: Labelled frames predicted right.
        f1_counts: (true positives, false positives, misses) at each of `F1_OVERLAPS`.
        edit: Its edit score, in [0, 1].
    """

    video_id: str
    num_labelled: int
    num_correct: int
    f1_counts: tuple[tuple[int, int, int], ...]
    edit: float

    def __post_init__(self) -> None:
        if not 0 <= self.num_correct <= self.num_labelled:
            raise ValueError(f"need 0 <= num_correct <= num_labelled, got {self.num_correct}, {self.num_labelled}")
        if len(self.f1_counts) != len(F1_OVERLAPS):
            raise ValueError(f"f1_counts must hold one (tp, fp, fn) per overlap {F1_OVERLAPS}")


def score_segmentation(
    predicted: np.ndarray, target: np.ndarray, *, video_id: str, background: int | None
) -> SegmentationScore:
    """The record of one video's predicted label track (T,) against its true one (T,) (`IGNORE_LABEL` unlabelled).

    Args:
        background: The class that is no action (its runs are no segment), None when every class is one.
    """
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"video {video_id!r}: predicted {predicted.shape} and target {target.shape} must be (T,)")
    labelled = target != IGNORE_LABEL
    runs, truths = label_runs(predicted, background=background), label_runs(target, background=background)
    return SegmentationScore(
        video_id=video_id,
        num_labelled=int(labelled.sum()),
        num_correct=int((predicted[labelled] == target[labelled]).sum()),
        f1_counts=tuple(f1_counts(runs, truths, overlap=k) for k in F1_OVERLAPS),
        edit=edit_score(runs, truths),
    )


@dataclass(frozen=True)
class SegmentationMetrics:
    """The segmentation figures of a set of videos.

    Attributes:
        num_videos: Videos scored.
        frame_accuracy: Labelled frames predicted right, all videos together; None without labelled frames.
        f1: Segmental F1 at each of `F1_OVERLAPS`, from the true positives, false positives and misses of all
            the videos together.
        edit: Mean edit score over the videos.
    """

    num_videos: int
    frame_accuracy: float | None
    f1: tuple[float, ...]
    edit: float

    def logged(self, stage: str) -> dict[str, float]:
        """The figures by the names evaluation logs them under: ``val/frame_acc``, ``val/f1@50``, ``val/edit``."""
        values = {f"{stage}/f1@{round(k * 100)}": f for k, f in zip(F1_OVERLAPS, self.f1, strict=True)}
        values[f"{stage}/edit"] = self.edit
        if self.frame_accuracy is not None:
            values[f"{stage}/frame_acc"] = self.frame_accuracy
        return values

    def report_line(self) -> str:
        f1 = ", ".join(f"F1@{round(k * 100)} {f:.3f}" for k, f in zip(F1_OVERLAPS, self.f1, strict=True))
        accuracy = "-" if self.frame_accuracy is None else f"{self.frame_accuracy:.3f}"
        return f"segmentation: frame accuracy {accuracy}, {f1}, edit {self.edit:.3f} ({self.num_videos} videos)"


def segmentation_metrics(scores: Sequence[SegmentationScore]) -> SegmentationMetrics:
    """The figures of `scores` (each video once)."""
    if not scores:
        raise ValueError("no video to score")
    labelled = sum(s.num_labelled for s in scores)
    f1 = []
    for position in range(len(F1_OVERLAPS)):
        tp, fp, fn = (sum(s.f1_counts[position][i] for s in scores) for i in range(3))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return SegmentationMetrics(
        num_videos=len(scores),
        frame_accuracy=sum(s.num_correct for s in scores) / labelled if labelled else None,
        f1=tuple(f1),
        edit=sum(s.edit for s in scores) / len(scores),
    )
