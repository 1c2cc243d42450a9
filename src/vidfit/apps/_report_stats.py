"""Confusion matrices and per-class precision, recall and F1 of a predictions document, from its segments.

Frames are counted from the segments themselves (runs of frames), never one frame at a time, so a video of
100,000 frames costs as much as its number of segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidfit.apps._report_data import Segment, VideoRecord
from vidfit.apps._report_runs import unique_sorted


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of each class, with its support.

    Attributes:
        precision: Per class: right / predicted (NaN where it was never predicted).
        recall: Per class: right / true (NaN where it has no true frame or video).
        f1: Per class: their harmonic mean (NaN where either is).
        support: Per class: true frames (or videos).
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def frame_confusion(videos: Sequence[VideoRecord], num_classes: int) -> np.ndarray | None:
    """Frames of each true class (rows) predicted as each class (columns), over the labelled frames of every
    video with both a timeline and predicted segments; None without any such video."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    counted = False
    for video in videos:
        if video.true and video.predicted:
            counted = True
            _, lengths, true, predicted = _pieces(video.true, video.predicted)
            both = (true >= 0) & (predicted >= 0)
            np.add.at(matrix, (true[both], predicted[both]), lengths[both])
    return matrix if counted else None


def _pieces(
    true: Sequence[Segment], predicted: Sequence[Segment]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frames cut at every segment boundary: each piece's start, length, true and predicted class (-1: none).

    Both lists hold segments that do not overlap (one label a frame).
    """
    t, p = _table(true), _table(predicted)
    bounds = unique_sorted(np.concatenate([t[:, 0], t[:, 1], p[:, 0], p[:, 1]]))[0]
    pieces, lengths = bounds[:-1], np.diff(bounds)
    return pieces, lengths, _class_at(t, pieces), _class_at(p, pieces)


def _table(segments: Sequence[Segment]) -> np.ndarray:
    table = np.asarray([s[:3] for s in segments], dtype=np.int64).reshape(-1, 3)
    return table[np.argsort(table[:, 0], kind="stable")]


def _class_at(table: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The class of the segment covering each frame, -1 where none does."""
    run = np.searchsorted(table[:, 0], frames, side="right") - 1
    safe = np.maximum(run, 0)
    inside = (run >= 0) & (frames < table[safe, 1]) if len(table) else np.zeros(len(frames), dtype=bool)
    return np.where(inside, table[safe, 2] if len(table) else -1, -1)


def video_confusion(videos: Sequence[VideoRecord], num_classes: int) -> np.ndarray | None:
    """Videos of each true class (rows) predicted as each class (columns), single-label videos with a label;
    None without any."""
    pairs = [(v.label[0], v.predicted_label[0]) for v in videos if len(v.label) == 1 and len(v.predicted_label) == 1]
    if not pairs:
        return None
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, tuple(np.asarray(pairs).T), 1)
    return matrix


def confusion_scores(matrix: np.ndarray) -> ClassScores:
    """Per-class precision, recall and F1 of a confusion matrix (rows true, columns predicted)."""
    right = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    return _scores(right, predicted, support)


def multi_label_frame_scores(videos: Sequence[VideoRecord], num_classes: int) -> ClassScores | None:
    """Per-class frame precision, recall and F1 where several classes may hold at once: each class's predicted
    frames against its true frames, over the videos with a timeline; None without any."""
    right, predicted, support = (np.zeros(num_classes) for _ in range(3))
    counted = False
    for video in (v for v in videos if v.true):
        counted = True
        for label in {s[2] for s in video.true} | {s[2] for s in video.predicted}:
            true = _union([s for s in video.true if s[2] == label])
            guess = _union([s for s in video.predicted if s[2] == label])
            right[label] += _overlap(true, guess)
            predicted[label] += int((guess[:, 1] - guess[:, 0]).sum())
            support[label] += int((true[:, 1] - true[:, 0]).sum())
    return _scores(right, predicted, support) if counted else None


def _union(segments: Sequence[Segment]) -> np.ndarray:
    """The frames the segments cover, as sorted runs that do not overlap."""
    runs: list[list[int]] = []
    for start, stop, _, _ in sorted(segments):
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], stop)
        else:
            runs.append([start, stop])
    return np.asarray(runs, dtype=np.int64).reshape(-1, 2)


def _overlap(a: np.ndarray, b: np.ndarray) -> int:
    """Frames two sets of sorted, disjoint runs share."""
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0, int(min(a[i, 1], b[j, 1]) - max(a[i, 0], b[j, 0])))
        if a[i, 1] <= b[j, 1]:
            i += 1
        else:
            j += 1
    return total


def _scores(right: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> ClassScores:
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, right / predicted, np.nan)
        recall = np.where(support > 0, right / support, np.nan)
        f1 = 2 * precision * recall / (precision + recall)
        f1 = np.where((precision + recall) == 0, 0.0, f1)
    return ClassScores(precision, recall, f1, np.asarray(support, dtype=np.int64))
