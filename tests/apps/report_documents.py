"""Predictions documents as `vidfit predict` writes them, made up for the report's tests and benchmark."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FPS = 25.0


def segments_json(runs: Sequence[tuple[int, int, str, float]]) -> list[dict[str, Any]]:
    """ActivityNet-style entries of (start frame, stop frame, label, score) runs at `FPS`."""
    return [
        {"label": label, "score": score, "segment": [start / FPS, stop / FPS], "frames": [start, stop]}
        for start, stop, label, score in runs
    ]


def video_record(
    *,
    classes: Sequence[str],
    frames: tuple[int, int],
    label: str | None,
    predicted: str,
    true: Sequence[tuple[int, int, str, float]] | None,
    correct: int = 0,
) -> dict[str, Any]:
    """A video's ``vidfit`` section, with its evaluation when it has a label or a timeline."""
    record: dict[str, Any] = {
        "frames": list(frames), "label": predicted,
        "scores": {name: (1.0 if name == predicted else 0.0) for name in classes},
    }  # fmt: skip
    if label is not None or true is not None:
        record["evaluation"] = {
            "label": label,
            "frames": None
            if true is None
            else {
                "labelled": sum(stop - start for start, stop, _, _ in true), "correct": correct, "segment_f1": 0.5,
                "true_segments": segments_json(true),
            },
        }  # fmt: skip
    return record


def runs_of(labels: np.ndarray, classes: Sequence[str], scores: np.ndarray | None = None) -> list[tuple]:
    """Runs of equal labels in a per-frame track, as (start, stop, class name, mean score)."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts, stops = np.r_[0, change], np.r_[change, len(labels)]
    means = np.ones(len(starts)) if scores is None else np.add.reduceat(scores, starts) / (stops - starts)
    return list(zip(starts.tolist(), stops.tolist(), [classes[i] for i in labels[starts]], means.tolist(), strict=True))


def write_document(path: Path, videos: dict[str, tuple[list[tuple], dict[str, Any]]]) -> Path:
    """Writes ``{video_id: (predicted runs, vidfit record)}`` as a predictions JSON."""
    document = {
        "version": "vidfit-0.1",
        "results": {video_id: segments_json(runs) for video_id, (runs, _) in videos.items()},
        "external_data": {},
        "vidfit": {video_id: record for video_id, (_, record) in videos.items()},
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def long_video_document(path: Path, *, num_frames: int = 100_000, num_classes: int = 5, seed: int = 0) -> Path:
    """One video of `num_frames` whose prediction changes every frame: the worst case for the timelines."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{i}" for i in range(num_classes)]
    true = np.repeat(rng.integers(0, num_classes, num_frames // 500 + 1), 500)[:num_frames]
    predicted = np.where(np.arange(num_frames) % 2 == 0, true, (true + 1) % num_classes)
    runs = runs_of(predicted, classes, rng.uniform(0.2, 1.0, num_frames))
    truth = runs_of(true, classes)
    record = video_record(
        classes=classes, frames=(0, num_frames), label=None, predicted=classes[0], true=truth,
        correct=int((predicted == true).sum()),
    )  # fmt: skip
    return write_document(path, {"long": (runs, record)})


def many_videos_document(
    path: Path,
    *,
    num_videos: int = 1000,
    num_frames: int = 3000,
    num_classes: int = 20,
    seed: int = 0,
    flicker: bool = False,
) -> Path:
    """`num_videos` videos of `num_frames`, each a few true segments and a noisier prediction of them (with
    `flicker`, a prediction wrong every other frame: a segment per frame, the worst case for the page's size)."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{i}" for i in range(num_classes)]
    videos = {}
    for index in range(num_videos):
        cuts = np.sort(rng.choice(np.arange(1, num_frames), size=5, replace=False))
        true = np.repeat(rng.integers(0, num_classes, 6), np.diff(np.r_[0, cuts, num_frames]))
        predicted = true.copy()
        for start in rng.integers(0, num_frames - 50, 8):  # short wrong stretches
            predicted[start : start + rng.integers(5, 50)] = rng.integers(0, num_classes)
        if flicker:
            predicted[1::2] = (true[1::2] + 1) % num_classes
        record = video_record(
            classes=classes, frames=(0, num_frames), label=classes[int(true[0])], predicted=classes[int(predicted[0])],
            true=runs_of(true, classes), correct=int((predicted == true).sum()),
        )  # fmt: skip
        videos[f"video_{index:04d}"] = (runs_of(predicted, classes, rng.uniform(0.3, 1.0, num_frames)), record)
    return write_document(path, videos)
