"""A manifest entry's clip range (start/end in seconds) is what predict reads, reports and scores."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MakeVideo
from tests.videos import frame_ids
from vidfit.apps import predict
from vidfit.config import load_config
from vidfit.data import load_manifest, save_manifest
from vidfit.infer import ChunkedPredictor
from vidfit.io import VideoReader
from vidfit.tasks.action import _predict as predict_module


def frames_in_clip(path: Path | str, start_seconds: float, end_seconds: float) -> tuple[list[int], list[float]]:
    """The frames of a clip and their times from the first frame, by a local decode of the file."""
    with VideoReader(path) as reader:
        decoded = reader.get_frames(0, len(reader))
    times = (decoded.pts_seconds - decoded.pts_seconds[0]).tolist()
    inside = [(index, t) for index, t in enumerate(times) if start_seconds <= t < end_seconds]
    return [index for index, _ in inside], [t for _, t in inside]


@dataclasses.dataclass
class _Output:
    logits: torch.Tensor
    frame_logits: torch.Tensor


class _Recorder:
    """A model that notes which frames of each view it is given (the frames carry their index)."""

    def __init__(self) -> None:
        self.seen: list[list[list[int]]] = []

    def __call__(self, video: torch.Tensor, **_: object) -> _Output:
        for clip in video:
            self.seen.append([frame_ids(view.transpose(0, 1)) for view in clip])
        batch, frames = video.shape[0], video.shape[3]
        return _Output(torch.zeros(batch, 2), torch.zeros(batch, frames, 2))


def test_predict_reads_exactly_the_clips_frames_of_every_view(make_video: MakeVideo, tmp_path: Path) -> None:
    make_video("front.mkv", num_frames=30, fps=30.0)
    make_video("left.mkv", num_frames=15, fps=15.0)
    document = {
        "labels": ["a", "b"],
        "root": ".",
        "videos": [{"id": "v", "views": {"front": "front.mkv", "left": "left.mkv"}, "start": 0.2, "end": 0.6}],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(document), encoding="utf-8")
    entry = load_manifest(tmp_path / "manifest.json").videos[0]
    config = load_config(None, [f"data.manifest={tmp_path / 'manifest.json'}", "data.frame_stride=2"])
    recorder = _Recorder()
    predictor = ChunkedPredictor(recorder, device="cpu")  # type: ignore[arg-type]
    job = predict_module.job_from_entry(entry)
    prediction = predict_module._predict_job(predictor, job=job, views=["front", "left"], config=config)
    expected, times = frames_in_clip(tmp_path / "front.mkv", 0.2, 0.6)
    assert expected == list(range(6, 18))
    front, left = recorder.seen[0]
    assert front == expected[::2]  # every data.frame_stride-th frame of the clip, from its first
    assert left == [frame // 2 for frame in expected[::2]]  # the 15 fps view's frame on screen at each
    assert prediction.first_frame == 6 and len(prediction.frame_logits) == len(expected)
    assert prediction.pts_seconds is not None
    np.testing.assert_allclose(prediction.pts_seconds.numpy(), times, atol=1e-6)


def test_predict_reports_the_clips_frames_in_the_videos_numbering(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(tiny_manifest)
    first, *others = manifest.videos
    ranged = dataclasses.replace(first, start_seconds=0.3, end_seconds=0.75)
    copy = save_manifest(dataclasses.replace(manifest, videos=(ranged, *others[:1])), tmp_path / "r.yaml")
    result = predict(tiny_checkpoint, [copy], out=tmp_path / "p.json", progress=False)
    expected, times = frames_in_clip(first.views["front"], 0.3, 0.75)
    assert len(expected) < 16 and expected[0] > 0
    prediction = result.predictions[first.id]
    assert prediction.first_frame == expected[0] and len(prediction.frame_logits) == len(expected)
    rows = [row for row in csv.DictReader(result.csv_path.open()) if row["video_id"] == first.id]
    assert [int(row["frame"]) for row in rows] == expected
    assert [float(row["pts_seconds"]) for row in rows] == pytest.approx(times, abs=1e-6)
    document = json.loads(result.json_path.read_text())
    assert document["vidfit"][first.id]["frames"] == [expected[0], expected[-1] + 1]
    assert all(expected[0] <= item["frames"][0] < item["frames"][1] <= expected[-1] + 1
               for item in document["results"][first.id])  # fmt: skip
    assert len([row for row in csv.DictReader(result.csv_path.open()) if row["video_id"] == others[0].id]) == 16
    assert result.frame_accuracy is not None  # the timeline, in the video's own frames, scores the clip's
