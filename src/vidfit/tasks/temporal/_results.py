"""The temporal task's output files: ActivityNet-style segments (JSON) and one row per frame (CSV), written as one
output set, in the layout of the action task's (so that `vidfit merge` joins shards of either)."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidfit.infer import RESULTS_VERSION, segment_to_json
from vidfit.io import write_files_atomic
from vidfit.tasks.temporal._frames import StepTimes
from vidfit.tasks.temporal._model import FrameResult


def results_document(
    results: Mapping[str, tuple[FrameResult, StepTimes]],
    *,
    label_names: Sequence[str],
    head: str,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``{"version", "results": {video_id: [{"label", "score", "segment": [s, e], "frames": [a, b]}]},
    "external_data": {}, "vidfit": {video_id: {"frames", "label", "scores", "head", "num_windows"}}}``: every
    segment found (best first), and per video its frames ``[start, stop)``, top class and scores by class, and
    where given its scoring record under ``evaluation`` (`evaluation_record`: its true segments)."""
    segments, videos = {}, {}
    for video_id, (result, times) in results.items():
        ranked = sorted(result.segments, key=lambda s: -s.score)
        segments[video_id] = [segment_to_json(segment, label_names) for segment in ranked]
        videos[video_id] = {
            "frames": [times.first_frame, times.first_frame + times.num_frames],
            "label": label_names[int(result.class_scores.argmax())],
            "scores": {name: float(score) for name, score in zip(label_names, result.class_scores, strict=True)},
            "head": head,
            "num_windows": len(times.centre_frames),
        }
        if evaluations and video_id in evaluations:
            videos[video_id]["evaluation"] = dict(evaluations[video_id])
    return {"version": RESULTS_VERSION, "results": segments, "external_data": {}, "vidfit": videos}


def frame_rows(results: Mapping[str, tuple[FrameResult, StepTimes]], *, label_names: Sequence[str]) -> str:
    """One row per frame: video_id, frame, pts_seconds, label, score."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["video_id", "frame", "pts_seconds", "label", "score"])
    for video_id, (result, times) in results.items():
        for offset, (label, score) in enumerate(
            zip(result.frame_labels.tolist(), result.frame_scores.tolist(), strict=True)
        ):
            row = [video_id, times.first_frame + offset, f"{times.pts_seconds[offset]:.6f}", label_names[label]]
            writer.writerow([*row, f"{score:.6f}"])
    return buffer.getvalue()


def write_temporal_results(
    results: Mapping[str, tuple[FrameResult, StepTimes]],
    *,
    json_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    label_names: Sequence[str],
    head: str,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Writes the JSON and the CSV as one output set: both appear, or neither changes."""
    document = results_document(results, label_names=label_names, head=head, evaluations=evaluations)
    texts = {
        json_path: json.dumps(document, indent=2),
        csv_path: frame_rows(results, label_names=label_names),
    }
    written = write_files_atomic({path: functools.partial(_write, text=text) for path, text in texts.items()})
    return written[0], written[1]


def _write(path: Path, *, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")
