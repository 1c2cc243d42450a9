"""Segments, scores against timelines, and the JSON/CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from tests.infer.fakes import ColourModel
from vidfit.infer import ChunkedPredictor, VideoPrediction, frame_accuracy, segment_f1
from vidfit.infer._results import Segment, frames_to_segments, write_frame_csv, write_predictions_json

NAMES = ["red", "green", "blue"]


def green_then_red(pts_seconds: torch.Tensor | None) -> VideoPrediction:
    """Six frames, green then red from frame 3: frame labels 1, 1, 1, 0, 0, 0 under `ColourModel`."""
    video = torch.zeros(1, 3, 6, 2, 2, dtype=torch.uint8)
    video[:, 1, :3] = 255
    video[:, 0, 3:] = 255
    predictor = ChunkedPredictor(ColourModel(), chunk_infer_size=4, chunk_overlap=1)
    return predictor.predict_tensor(video, pts_seconds=pts_seconds)


def test_runs_of_labels_become_half_open_segments_in_seconds() -> None:
    labels = torch.tensor([2, 2, -1, -1, 0, 0, 0, 2])
    pts = 10.0 + torch.arange(8, dtype=torch.float64) / 4  # 4 fps from 10 s
    segments = frames_to_segments(labels, pts_seconds=pts, frame_scores=torch.arange(8) / 10)
    assert segments == [
        Segment(0, 2, 10.0, 10.5, 2, pytest.approx(0.05)),  # type: ignore[arg-type]
        Segment(4, 7, 11.0, 11.75, 0, pytest.approx(0.5)),  # type: ignore[arg-type]
        Segment(7, 8, 11.75, 12.0, 2, pytest.approx(0.7)),  # type: ignore[arg-type]
    ]
    assert [s.score for s in frames_to_segments(labels[:2], pts_seconds=pts[:2])] == [1.0]
    with pytest.raises(ValueError, match=r"must all be \(T,\), got \[\(8,\), \(7,\)\]"):
        frames_to_segments(labels, pts_seconds=pts[:7])


def test_prediction_segments_use_frame_times_and_probabilities() -> None:
    prediction = green_then_red(torch.arange(6, dtype=torch.float64) * 0.5 + 10)
    segments = prediction.segments()
    assert [(s.start_frame, s.stop_frame, s.label) for s in segments] == [(0, 3, 1), (3, 6, 0)]
    assert [(s.start_seconds, s.stop_seconds) for s in segments] == [(10.0, 11.5), (11.5, 13.0)]
    assert segments[0].score == pytest.approx(float(prediction.frame_logits[:3].softmax(-1)[:, 1].mean()))
    with pytest.raises(ValueError, match="segments need frame times: pass pts_seconds="):
        green_then_red(None).segments()


def test_frame_accuracy_ignores_unlabelled_frames() -> None:
    assert frame_accuracy(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 0, -1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no labelled frame"):
        frame_accuracy(torch.tensor([1]), torch.tensor([-1]))
    with pytest.raises(ValueError, match=r"predicted \(2,\) and target \(3,\) must have one shape"):
        frame_accuracy(torch.tensor([1, 1]), torch.tensor([1, 1, 1]))


def segment(start: int, stop: int, label: int, score: float = 1.0) -> Segment:
    return Segment(start, stop, float(start), float(stop), label, score)


def test_segment_f1_by_hand() -> None:
    truth = [segment(0, 10, 1), segment(10, 20, 0)]
    # IoU 8/10 with the first true segment: a hit; (12, 30) has IoU 8/20 with (10, 20): a miss.
    assert segment_f1([segment(0, 8, 1), segment(12, 30, 0)], truth) == pytest.approx(0.5)
    # Labels must agree; a true segment matches once, taken by the higher score first.
    assert segment_f1([segment(0, 10, 0)], truth) == 0.0
    assert segment_f1([segment(0, 9, 1, 0.2), segment(0, 10, 1, 0.9)], truth[:1]) == pytest.approx(2 / 3)
    assert segment_f1([segment(0, 8, 1)], truth, iou_threshold=0.9) == 0.0
    assert segment_f1([], []) == 1.0 and segment_f1([], truth) == 0.0


def test_output_files_round_trip(tmp_path: Path) -> None:
    prediction = green_then_red(torch.arange(6, dtype=torch.float64) * 0.5 + 10)
    json_path = write_predictions_json({"v1": prediction}, tmp_path / "out" / "p.json", label_names=NAMES)
    document = json.loads(json_path.read_text())
    segments = prediction.segments()
    assert document["version"] == "vidfit-0.1" and document["external_data"] == {}
    assert document["results"]["v1"] == [
        {"label": "green", "score": segments[0].score, "segment": [10.0, 11.5], "frames": [0, 3]},
        {"label": "red", "score": segments[1].score, "segment": [11.5, 13.0], "frames": [3, 6]},
    ]
    assert document["vidfit"]["v1"] == {
        "frames": [0, 6],
        "label": NAMES[prediction.label],
        "scores": dict(zip(NAMES, prediction.scores.tolist(), strict=True)),
        "chunk_aggregation": "mean",
        "num_windows": 2,
        "chunk_infer_size": 4,
        "chunk_overlap": 1,
        "precision": "32",
        "video_batch_size": 1,
        "oom_retries": 0,
    }
    csv_path = write_frame_csv({"v1": prediction}, tmp_path / "out" / "f.csv", label_names=NAMES)
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["video_id"], r["frame"], r["pts_seconds"], r["label"]) for r in rows[2:4]] == [
        ("v1", "2", "11.000000", "green"),
        ("v1", "3", "11.500000", "red"),
    ]
    assert float(rows[0]["score"]) == pytest.approx(float(prediction.frame_scores[0]), abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f.csv", "p.json"]  # no temp files left


def test_files_need_frame_times(tmp_path: Path) -> None:
    prediction = green_then_red(None)
    with pytest.raises(ValueError, match="prediction of 'v1' has no frame times"):
        write_frame_csv({"v1": prediction}, tmp_path / "f.csv", label_names=NAMES)
    with pytest.raises(ValueError, match="segments need frame times"):
        write_predictions_json({"v1": prediction}, tmp_path / "p.json", label_names=NAMES)
    assert list(tmp_path.iterdir()) == []
