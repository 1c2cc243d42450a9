"""Per-video predictions, their segments, scores against timelines, and JSON/CSV output."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidfit.infer._windows import Window

RESULTS_VERSION = "vidfit-0.1"


@dataclass(frozen=True)
class Segment:
    """A run of frames ``[start_frame, stop_frame)`` with one label, also in seconds."""

    start_frame: int
    stop_frame: int
    start_seconds: float
    stop_seconds: float
    label: int
    score: float


@dataclass
class VideoPrediction:
    """What `ChunkedPredictor` found in one video.

    Attributes:
        scores: Video-level scores (C,): logits, or probabilities for ``chunk_aggregation="prob"``.
        label: Index of the predicted class.
        windows: The windows the model saw.
        window_logits: Clip logits of each window (W, C).
        frame_logits: Per-frame logits (T, C), the mean over the windows covering each frame.
        pts_seconds: Presentation time of each frame (T,).
        used_chunk_infer_size: Window length in the end (-1 = whole video), after any OOM backoff.
        used_video_batch_size: Windows per forward pass in the end.
        oom_retries: Out-of-memory errors recovered from.
    """

    scores: torch.Tensor
    label: int
    windows: list[Window]
    window_logits: torch.Tensor
    frame_logits: torch.Tensor
    pts_seconds: torch.Tensor
    used_chunk_infer_size: int
    used_video_batch_size: int
    oom_retries: int

    @property
    def frame_labels(self) -> torch.Tensor:
        return self.frame_logits.argmax(dim=-1)

    def segments(self) -> list[Segment]:
        """Runs of equal frame labels; a segment ends where the next frame starts."""
        probabilities = self.frame_logits.softmax(dim=-1).max(dim=-1).values
        return [
            Segment(start, stop, begin, end, label, float(probabilities[start:stop].mean()))
            for start, stop, begin, end, label in _runs(self.frame_labels, self.pts_seconds)
        ]


def _runs(labels: torch.Tensor, pts_seconds: torch.Tensor) -> list[tuple[int, int, float, float, int]]:
    """Maximal runs of equal labels as (start, stop, start_seconds, stop_seconds, label)."""
    values, ends = labels.tolist(), _frame_end_seconds(pts_seconds)
    runs, start = [], 0
    for index in range(1, len(values) + 1):
        if index == len(values) or values[index] != values[start]:
            runs.append((start, index, float(pts_seconds[start]), float(ends[index - 1]), values[start]))
            start = index
    return runs


def _frame_end_seconds(pts_seconds: torch.Tensor) -> torch.Tensor:
    if len(pts_seconds) == 1:
        return pts_seconds.clone()
    last = pts_seconds[-1] + (pts_seconds[1:] - pts_seconds[:-1]).median()
    return torch.cat([pts_seconds[1:], last.reshape(1)])


def frame_accuracy(predicted: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -1) -> float:
    """Share of labelled frames whose predicted label is right; frames labelled `ignore_index` don't count."""
    labelled = target != ignore_index
    if not bool(labelled.any()):
        raise ValueError("no labelled frame to score")
    return float((predicted[labelled] == target[labelled]).float().mean())


def segment_f1(predicted: Sequence[Segment], target: Sequence[Segment], *, iou_threshold: float = 0.5) -> float:
    """F1 of segment detection: a predicted segment is a hit when it overlaps an unmatched true
    segment of the same label with temporal IoU >= `iou_threshold` (each true segment matches once)."""
    unmatched = list(target)
    hits = 0
    for segment in sorted(predicted, key=lambda s: -s.score):
        best = max(unmatched, key=lambda t: _iou(segment, t) if t.label == segment.label else -1.0, default=None)
        if best is not None and best.label == segment.label and _iou(segment, best) >= iou_threshold:
            unmatched.remove(best)
            hits += 1
    if not predicted or not target:
        return float(not predicted and not target)
    precision, recall = hits / len(predicted), hits / len(target)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def _iou(a: Segment, b: Segment) -> float:
    inter = max(0, min(a.stop_frame, b.stop_frame) - max(a.start_frame, b.start_frame))
    union = max(a.stop_frame, b.stop_frame) - min(a.start_frame, b.start_frame)
    return inter / union if union else 0.0


def segments_from_labels(labels: torch.Tensor, pts_seconds: torch.Tensor, *, ignore_index: int = -1) -> list[Segment]:
    """True segments of a per-frame label track (unlabelled runs left out), to score against."""
    return [Segment(*run, score=1.0) for run in _runs(labels, pts_seconds) if run[4] != ignore_index]


def write_predictions_json(
    predictions: Mapping[str, VideoPrediction], path: str | os.PathLike[str], *, label_names: Sequence[str]
) -> Path:
    """ActivityNet-style results (``results: {video_id: [{label, score, segment}]}``) plus a
    ``vidfit`` section with the video-level prediction and the settings used, written atomically."""
    results, videos = {}, {}
    for video_id, prediction in predictions.items():
        results[video_id] = [
            {"label": label_names[s.label], "score": s.score, "segment": [s.start_seconds, s.stop_seconds]}
            for s in prediction.segments()
        ]
        videos[video_id] = {
            "label": label_names[prediction.label],
            "scores": dict(zip(label_names, prediction.scores.tolist(), strict=True)),
            "num_windows": len(prediction.windows),
            "chunk_infer_size": prediction.used_chunk_infer_size,
            "video_batch_size": prediction.used_video_batch_size,
            "oom_retries": prediction.oom_retries,
        }
    document = {"version": RESULTS_VERSION, "results": results, "external_data": {}, "vidfit": videos}
    return _write_atomic(Path(path), json.dumps(document, indent=2))


def write_frame_csv(
    predictions: Mapping[str, VideoPrediction], path: str | os.PathLike[str], *, label_names: Sequence[str]
) -> Path:
    """One row per frame: video_id, frame, pts_seconds, label, score (its softmax probability)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["video_id", "frame", "pts_seconds", "label", "score"])
    for video_id, prediction in predictions.items():
        probabilities = prediction.frame_logits.softmax(dim=-1)
        for frame, (label, seconds) in enumerate(
            zip(prediction.frame_labels.tolist(), prediction.pts_seconds, strict=True)
        ):
            score = float(probabilities[frame, label])
            writer.writerow([video_id, frame, f"{float(seconds):.6f}", label_names[label], f"{score:.6f}"])
    return _write_atomic(Path(path), buffer.getvalue())


def _write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)
    return path
