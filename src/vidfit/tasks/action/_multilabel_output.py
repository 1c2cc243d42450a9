"""The files a multi-label `predict` writes: ActivityNet-style JSON with overlapping segments, and a CSV of
every frame's classes and probabilities, as one output set (both appear, or neither changes)."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from vidfit.data import IGNORE_LABEL, Timeline
from vidfit.infer import RESULTS_VERSION, VideoPrediction, segment_f1, segment_to_json
from vidfit.io import write_files_atomic
from vidfit.tasks.action._multilabel_scores import (
    MultiLabelMetrics,
    MultiLabelScore,
    class_segments,
    multi_label_metrics,
    score_multi_label,
)


def write_multi_label_predictions(
    predictions: Mapping[str, VideoPrediction],
    *,
    json_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    label_names: Sequence[str],
    thresholds: torch.Tensor,
    per_frame: bool = True,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Writes the results of a multi-label model.

    The JSON is ``{"version", "results": {video_id: [{"label", "score", "segment": [start_s, stop_s],
    "frames": [start, stop]}]}, "external_data": {}, "vidfit": {video_id: {...}}}``: one result per run of
    frames whose probability of a class reaches its threshold (runs of several classes may overlap), and a
    ``vidfit`` section with the video's classes at their thresholds, its probability of each class, the
    thresholds, the settings used and, where given, its scoring record under ``evaluation``
    (`evaluation_record`). The CSV has one row per frame: video_id, frame, pts_seconds, labels
    (the classes at or over their thresholds, joined by ``;``), and ``score:<class>``, its probability, per class.

    Args:
        per_frame: Whether the model's frame head was trained; off, results list the video's classes at their
            thresholds (``{"label", "score"}``) and the CSV has one row per video.
    """
    document = _document(predictions, label_names, thresholds, per_frame=per_frame)
    for video_id, record in (evaluations or {}).items():
        if video_id in document["vidfit"]:
            document["vidfit"][video_id]["evaluation"] = dict(record)
    text = json.dumps(document, indent=2)
    rows = (_frame_rows if per_frame else _video_rows)(predictions, label_names, thresholds)
    written = write_files_atomic(
        {
            json_path: functools.partial(_write_text, text=text),
            csv_path: functools.partial(_write_text, text=_csv(rows)),
        }
    )
    return written[0], written[1]


def _write_text(path: Path, *, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _document(
    predictions: Mapping[str, VideoPrediction], names: Sequence[str], thresholds: torch.Tensor, *, per_frame: bool
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    videos: dict[str, dict[str, Any]] = {}
    for video_id, prediction in predictions.items():
        probabilities = prediction.scores.float().sigmoid()
        chosen = [label for label in range(len(names)) if probabilities[label] >= thresholds[label]]
        if per_frame:
            results[video_id] = [segment_to_json(s, names) for s in _segments(prediction, thresholds)]
        else:
            results[video_id] = [{"label": names[c], "score": float(probabilities[c])} for c in chosen]
        videos[video_id] = {
            "multi_label": True,
            "labels": [names[label] for label in chosen],
            "scores": dict(zip(names, probabilities.tolist(), strict=True)),
            "thresholds": dict(zip(names, thresholds.tolist(), strict=True)),
            "frames": [prediction.first_frame, prediction.first_frame + len(prediction.frame_logits)],
            **prediction.settings(),
        }
    return {"version": RESULTS_VERSION, "results": results, "external_data": {}, "vidfit": videos}


def _segments(prediction: VideoPrediction, thresholds: torch.Tensor) -> list[Any]:
    if prediction.pts_seconds is None:
        raise ValueError("multi-label results need frame times: predict with ChunkedPredictor.predict_readers")
    return class_segments(
        prediction.frame_logits.float().sigmoid(), pts_seconds=prediction.pts_seconds, thresholds=thresholds,
        first_frame=prediction.first_frame,
    )  # fmt: skip


def _frame_rows(
    predictions: Mapping[str, VideoPrediction], names: Sequence[str], thresholds: torch.Tensor
) -> list[list[str]]:
    rows = [["video_id", "frame", "pts_seconds", "labels", *(f"score:{name}" for name in names)]]
    for video_id, prediction in predictions.items():
        if prediction.pts_seconds is None:
            raise ValueError(f"prediction of {video_id!r} has no frame times: predict with predict_readers")
        probabilities = prediction.frame_logits.float().sigmoid()
        over = (probabilities >= thresholds).tolist()
        for t, (seconds, values) in enumerate(
            zip(prediction.pts_seconds.tolist(), probabilities.tolist(), strict=True)
        ):
            labels = ";".join(name for name, chosen in zip(names, over[t], strict=True) if chosen)
            rows.append([video_id, str(prediction.first_frame + t), f"{seconds:.6f}", labels, *_numbers(values)])
    return rows


def _video_rows(
    predictions: Mapping[str, VideoPrediction], names: Sequence[str], thresholds: torch.Tensor
) -> list[list[str]]:
    rows = [["video_id", "labels", *(f"score:{name}" for name in names)]]
    for video_id, prediction in predictions.items():
        probabilities = prediction.scores.float().sigmoid()
        labels = ";".join(name for name, p, t in zip(names, probabilities, thresholds, strict=True) if p >= t)
        rows.append([video_id, labels, *_numbers(probabilities.tolist())])
    return rows


def _numbers(values: list[float]) -> list[str]:
    return [f"{value:.6f}" for value in values]


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


class _Labelled(Protocol):
    """What scoring needs of a predicted video's input: its id, timeline and video label."""

    @property
    def video_id(self) -> str: ...

    @property
    def timeline(self) -> Timeline | None: ...

    @property
    def label(self) -> str | None: ...


def write_multi_label_results(
    predictions: Mapping[str, VideoPrediction],
    *,
    videos: Sequence[_Labelled],
    paths: tuple[Path, Path],
    label_names: Sequence[str],
    thresholds: torch.Tensor,
    per_frame: bool,
) -> MultiLabelMetrics | None:
    """Writes a multi-label model's results (`write_multi_label_predictions`) and scores the videos that have
    a label or a timeline; their figures, None without any."""
    scored = [
        score_multi_label(
            predictions[video.video_id], video_id=video.video_id, timeline=video.timeline, label=video.label,
            label_names=label_names, thresholds=thresholds, frame_head_trained=per_frame,
        )
        for video in videos
        if video.video_id in predictions and (video.label is not None or video.timeline is not None)
    ]  # fmt: skip
    write_multi_label_predictions(
        predictions, json_path=paths[0], csv_path=paths[1], label_names=label_names, thresholds=thresholds,
        per_frame=per_frame,
        evaluations={s.video_id: evaluation_record(s, label_names=label_names, thresholds=thresholds) for s in scored},
    )  # fmt: skip
    return multi_label_metrics(scored, thresholds=thresholds) if scored else None


def evaluation_record(
    score: MultiLabelScore, *, label_names: Sequence[str], thresholds: torch.Tensor
) -> dict[str, Any]:
    """A video's scoring record in the results JSON (its ``vidfit`` section's ``evaluation``), what `vidfit report`
    draws its truth from: ``{"labels": [its classes], "frames": None | {"labelled", "correct", "segment_f1",
    "true_segments"}}``, the frames part as the single-label record's (`vidfit.infer.score_to_json`). A frame is
    correct when its classes at their thresholds are exactly its true ones; ``frames`` is None without a timeline
    (or an untrained frame head)."""
    labels = [name for name, present in zip(label_names, score.label.tolist(), strict=True) if present == 1]
    truth, probabilities = score.frame_labels, score.frame_probabilities
    if truth is None or probabilities is None:
        return {"labels": labels, "frames": None}
    labelled = (truth != IGNORE_LABEL).all(dim=1)
    if not bool(labelled.any()):
        return {"labels": labels, "frames": None}
    correct = ((probabilities >= thresholds) == (truth == 1)).all(dim=1) & labelled
    frames = {
        "labelled": int(labelled.sum()), "correct": int(correct.sum()),
        "segment_f1": segment_f1(score.predicted, score.true),
        "true_segments": [segment_to_json(segment, label_names) for segment in score.true],
    }  # fmt: skip
    return {"labels": labels, "frames": frames}
