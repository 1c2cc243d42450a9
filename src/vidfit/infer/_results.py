"""Per-video predictions, their segments, scores against timelines, and JSON/CSV output."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidfit.data import IGNORE_LABEL
from vidfit.infer._windows import Aggregation, Window
from vidfit.io import write_files_atomic
from vidfit.io._atomic import write_text_atomic
from vidfit.memory._step import Precision

RESULTS_VERSION = "vidfit-0.1"
# Classes listed per video where the model gives no segments, as ActivityNet's classification results list them.
TOP_CLASSES = 5


@dataclass(frozen=True)
class Segment:
    """A run of frames ``[start_frame, stop_frame)`` with one label, also in seconds ``[start, stop)``.

    Attributes:
        start_frame: First frame of the run.
        stop_frame: One past its last frame.
        start_seconds: Presentation time of the first frame.
        stop_seconds: When the last frame stops showing: the next frame's time.
        label: Class index.
        score: Mean over the run's frames of the score given for each frame (1.0 for true segments).
    """

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
        label: Index of the predicted class, the argmax of `scores`.
        windows: The windows the model saw, in order.
        window_logits: Clip logits of each window (W, C).
        frame_logits: Per-frame logits (T, C), the mean over the windows covering each frame.
        pts_seconds: Presentation time of each frame (T,), None when the frames came without times.
        chunk_aggregation: How `scores` were made from `window_logits`.
        chunk_overlap: Frames shared by neighbouring windows.
        precision: The autocast precision of the forward passes.
        used_chunk_infer_size: Window length in the end (-1 = whole video), after any OOM backoff.
        used_video_batch_size: Windows per forward pass in the end.
        oom_retries: Out-of-memory errors recovered from, each restarting the video.
        first_frame: The video's index of the first frame predicted (a manifest entry's clip range starts
            there): frame ``t`` of the prediction is the video's frame ``first_frame + t``, as segments and the
            per-frame CSV count them; windows count from it.
    """

    scores: torch.Tensor
    label: int
    windows: list[Window]
    window_logits: torch.Tensor
    frame_logits: torch.Tensor
    pts_seconds: torch.Tensor | None
    chunk_aggregation: Aggregation
    chunk_overlap: int
    precision: Precision
    used_chunk_infer_size: int
    used_video_batch_size: int
    oom_retries: int
    first_frame: int = 0

    def settings(self) -> dict[str, Any]:
        """How the video was predicted, as the results JSON records it beside the scores."""
        return {
            "chunk_aggregation": self.chunk_aggregation,
            "num_windows": len(self.windows),
            "chunk_infer_size": self.used_chunk_infer_size,
            "chunk_overlap": self.chunk_overlap,
            "precision": self.precision,
            "video_batch_size": self.used_video_batch_size,
            "oom_retries": self.oom_retries,
        }

    @property
    def frame_labels(self) -> torch.Tensor:
        """Predicted class of each frame (T,)."""
        return self.frame_logits.argmax(dim=-1)

    @property
    def frame_scores(self) -> torch.Tensor:
        """Softmax probability of each frame's predicted class (T,)."""
        return self.frame_logits.softmax(dim=-1).max(dim=-1).values

    def segments(self) -> list[Segment]:
        """Runs of equal predicted frame labels, scored by their frames' mean probability."""
        if self.pts_seconds is None:
            raise ValueError("segments need frame times: pass pts_seconds= to ChunkedPredictor.predict_tensor")
        return frames_to_segments(
            self.frame_labels,
            pts_seconds=self.pts_seconds,
            frame_scores=self.frame_scores,
            first_frame=self.first_frame,
        )


def frames_to_segments(
    labels: torch.Tensor,
    *,
    pts_seconds: torch.Tensor,
    frame_scores: torch.Tensor | None = None,
    ignore_index: int = IGNORE_LABEL,
    first_frame: int = 0,
) -> list[Segment]:
    """Maximal runs of equal labels in a per-frame label track, as half-open segments.

    A segment's end in seconds is the next frame's time; the last frame lasts the median frame
    duration (a one-frame video gives a segment of zero seconds). With a constant frame rate,
    ``pts_seconds = begin_seconds + torch.arange(T) / fps``.

    Args:
        labels: Class index of each frame (T,).
        pts_seconds: Presentation time of each frame (T,).
        frame_scores: Score of each frame's label (T,), averaged over a segment; 1.0 when None.
        ignore_index: Label of unlabelled frames; their runs are left out.
        first_frame: The video's index of the track's first frame; segments count frames from it.
    """
    if labels.shape != pts_seconds.shape or (frame_scores is not None and frame_scores.shape != labels.shape):
        shapes = [tuple(t.shape) for t in (labels, pts_seconds, frame_scores) if t is not None]
        raise ValueError(f"labels, pts_seconds and frame_scores must all be (T,), got {shapes}")
    values, ends = labels.tolist(), _frame_end_seconds(pts_seconds.double())
    segments, start = [], 0
    for index in range(1, len(values) + 1):
        if index < len(values) and values[index] == values[start]:
            continue
        if values[start] != ignore_index:
            score = 1.0 if frame_scores is None else float(frame_scores[start:index].float().mean())
            segments.append(
                Segment(
                    first_frame + start, first_frame + index, float(pts_seconds[start]), float(ends[index - 1]),
                    values[start], score,
                )
            )  # fmt: skip
        start = index
    return segments


def _frame_end_seconds(pts_seconds: torch.Tensor) -> torch.Tensor:
    if len(pts_seconds) < 2:
        return pts_seconds.clone()
    last = pts_seconds[-1] + (pts_seconds[1:] - pts_seconds[:-1]).median()
    return torch.cat([pts_seconds[1:], last.reshape(1)])


def frame_accuracy(predicted: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_LABEL) -> float:
    """Share of labelled frames whose predicted label is right; frames labelled `ignore_index` don't count."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} must have one shape")
    labelled = target != ignore_index
    if not bool(labelled.any()):
        raise ValueError("no labelled frame to score")
    return float((predicted[labelled] == target[labelled]).float().mean())


def segment_f1(predicted: Sequence[Segment], target: Sequence[Segment], *, iou_threshold: float = 0.5) -> float:
    """F1 of segment detection at a temporal IoU threshold.

    Predicted segments are taken by decreasing score; each is a hit when, among the true segments
    of its label not matched yet, the one it overlaps most has frame IoU >= `iou_threshold`, which
    is then matched. Precision is hits / predicted, recall hits / true. Two empty lists score 1.0.
    """
    if not predicted or not target:
        return float(not predicted and not target)
    unmatched = list(target)
    hits = 0
    for segment in sorted(predicted, key=lambda s: -s.score):
        candidates = [t for t in unmatched if t.label == segment.label]
        best = max(candidates, key=lambda t: _iou(segment, t), default=None)
        if best is not None and _iou(segment, best) >= iou_threshold:
            unmatched.remove(best)
            hits += 1
    return 2 * hits / (len(predicted) + len(target))


def _iou(a: Segment, b: Segment) -> float:
    intersection = max(0, min(a.stop_frame, b.stop_frame) - max(a.start_frame, b.start_frame))
    union = max(a.stop_frame, b.stop_frame) - min(a.start_frame, b.start_frame)
    return intersection / union if union else 0.0


def write_predictions(
    predictions: Mapping[str, VideoPrediction],
    *,
    json_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    label_names: Sequence[str],
    per_frame: bool = True,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Writes the JSON results and the CSV as one output set: both appear, or neither changes.

    Args:
        predictions: By video id.
        json_path: The ActivityNet-style results (`_predictions_json`).
        csv_path: One row per frame; with `per_frame` off, one row per video (video_id, label, score).
        label_names: Class names, by index.
        per_frame: Whether the model's frame head was trained (its training data had timelines). Off, the
            results list each video's most likely classes, as ActivityNet's classification results do, and no
            segment or per-frame label comes from the untrained head.
        evaluations: Each video's scoring record (`vidfit.infer.score_to_json`), kept in its ``vidfit`` section.
    """
    text = _predictions_json(predictions, label_names, per_frame=per_frame, evaluations=evaluations or {})
    rows = _frame_csv(predictions, label_names) if per_frame else _video_csv(predictions, label_names)
    written = write_files_atomic(
        {
            json_path: functools.partial(_write_text, text=text),
            csv_path: functools.partial(_write_text, text=rows),
        }
    )
    return written[0], written[1]


def _write_text(path: Path, *, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_predictions_json(
    predictions: Mapping[str, VideoPrediction], path: str | os.PathLike[str], *, label_names: Sequence[str]
) -> Path:
    """Writes the ActivityNet-style results alone, atomically (see `_predictions_json`)."""
    return write_text_atomic(path, _predictions_json(predictions, label_names))


def write_frame_csv(
    predictions: Mapping[str, VideoPrediction], path: str | os.PathLike[str], *, label_names: Sequence[str]
) -> Path:
    """Writes one row per frame alone, atomically: video_id, frame, pts_seconds, label, score (its probability)."""
    return write_text_atomic(path, _frame_csv(predictions, label_names))


def _predictions_json(
    predictions: Mapping[str, VideoPrediction],
    label_names: Sequence[str],
    *,
    per_frame: bool = True,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """ActivityNet-style results.

    The document is ``{"version", "results": {video_id: [{"label", "score", "segment": [start_s, stop_s],
    "frames": [start, stop]}]}, "external_data": {}, "vidfit": {video_id: {...}}}``: one result per predicted
    segment (without `per_frame`: the video's `TOP_CLASSES` most likely classes, ``{"label", "score"}``), and a
    ``vidfit`` section with the frames predicted ``[start, stop)``, the video-level label, its scores by class
    name, the settings used and, where given, the video's scoring record under ``evaluation``.
    """
    results: dict[str, list[dict[str, Any]]] = {}
    videos: dict[str, dict[str, Any]] = {}
    for video_id, prediction in predictions.items():
        if per_frame:
            results[video_id] = [segment_to_json(s, label_names) for s in prediction.segments()]
        else:
            results[video_id] = [
                {"label": label_names[label], "score": probability} for probability, label in _top_classes(prediction)
            ]
        videos[video_id] = {
            # The frames predicted, [start, stop): the per-frame CSV's rows of the video (`vidfit merge` checks them).
            "frames": [prediction.first_frame, prediction.first_frame + len(prediction.frame_logits)],
            "label": label_names[prediction.label],
            "scores": dict(zip(label_names, prediction.scores.tolist(), strict=True)),
            **prediction.settings(),
        }
        if evaluations and video_id in evaluations:
            videos[video_id]["evaluation"] = dict(evaluations[video_id])
    document = {"version": RESULTS_VERSION, "results": results, "external_data": {}, "vidfit": videos}
    return json.dumps(document, indent=2)


def segment_to_json(segment: Segment, label_names: Sequence[str]) -> dict[str, Any]:
    """An ActivityNet result entry: label, score, segment in seconds; and vidfit's frame range ``[start, stop)``."""
    return {
        "label": label_names[segment.label],
        "score": segment.score,
        "segment": [segment.start_seconds, segment.stop_seconds],
        "frames": [segment.start_frame, segment.stop_frame],
    }


def _top_classes(prediction: VideoPrediction) -> list[tuple[float, int]]:
    """(probability, class) of the video's `TOP_CLASSES` most likely classes, most likely first."""
    scores = prediction.scores.float()
    probabilities = scores if prediction.chunk_aggregation == "prob" else scores.softmax(dim=-1)
    found = probabilities.topk(min(TOP_CLASSES, len(probabilities)))
    return [(float(p), int(i)) for p, i in zip(found.values, found.indices, strict=True)]


def _video_csv(predictions: Mapping[str, VideoPrediction], label_names: Sequence[str]) -> str:
    """One row per video: video_id, label, score (its probability)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["video_id", "label", "score"])
    for video_id, prediction in predictions.items():
        probability, label = _top_classes(prediction)[0]
        writer.writerow([video_id, label_names[label], f"{probability:.6f}"])
    return buffer.getvalue()


def _frame_csv(predictions: Mapping[str, VideoPrediction], label_names: Sequence[str]) -> str:
    """One row per frame: video_id, frame, pts_seconds, label, score (its probability)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["video_id", "frame", "pts_seconds", "label", "score"])
    for video_id, prediction in predictions.items():
        if prediction.pts_seconds is None:
            raise ValueError(f"prediction of {video_id!r} has no frame times: pass pts_seconds= to predict_tensor")
        labels, scores = prediction.frame_labels.tolist(), prediction.frame_scores.tolist()
        for frame, seconds in enumerate(prediction.pts_seconds.tolist()):
            row = [video_id, prediction.first_frame + frame, f"{seconds:.6f}", label_names[labels[frame]]]
            writer.writerow([*row, f"{scores[frame]:.6f}"])
    return buffer.getvalue()
