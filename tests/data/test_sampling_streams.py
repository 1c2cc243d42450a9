"""Open readers are one stream of one file: views (or videos) that are two streams of one file read their own."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml

from tests.videos import frame_ids, pattern_frames
from vidfit.data import VideoDataset, VideoDatasetConfig
from vidfit.io import VideoReader
from vidfit.tasks.action._predict import _match_views

# (frames per second, frames, first frame id) per stream: two seconds each, on two clocks; the ids tell them apart.
STREAMS = ((Fraction(25), 50, 0), (Fraction(10), 20, 500))
HEIGHT, WIDTH = 64, 96


def write_two_clock_file(path: Path) -> Path:
    """A Matroska file of two lossless RGB streams of two seconds: 50 frames at 25 fps, then 20 at 10 fps."""
    with av.open(str(path), mode="w") as container:
        streams = []
        for rate, _, _ in STREAMS:
            stream = container.add_stream("libx264rgb", rate=rate)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "rgb24"
            stream.options = {"crf": "0", "g": "8"}
            streams.append(stream)
        for stream, (_, count, first) in zip(streams, STREAMS, strict=True):
            for array in pattern_frames(count, HEIGHT, WIDTH, first_index=first).permute(0, 2, 3, 1).numpy():
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
            container.mux(stream.encode(None))
    return path


@pytest.fixture
def two_clocks(tmp_path: Path) -> Path:
    return write_two_clock_file(tmp_path / "two.mkv")


def _manifest(folder: Path, videos: list[dict[str, object]]) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"labels": ["a"], "root": ".", "videos": videos}), encoding="utf-8")
    return path


def test_two_views_that_are_two_streams_of_one_file_read_each_its_stream(two_clocks: Path) -> None:
    views = {"front": {"path": two_clocks.name, "stream": 1}, "side": {"path": two_clocks.name, "stream": 0}}
    manifest = _manifest(two_clocks.parent, [{"id": "v", "split": "train", "views": views}])
    dataset = VideoDataset(VideoDatasetConfig(manifest=manifest, mode="chunk", split="train"))
    sample = dataset[0]
    view_frames = sample["meta"]["view_frame_indices"].numpy()
    # Frame i of the 10 fps view is on screen over [i/10, (i+1)/10): the 25 fps frame at its middle is 2.5 i + 1.25.
    assert view_frames[0].tolist() == list(range(20))
    assert view_frames[1].tolist() == [(250 * i + 125) // 100 for i in range(20)]
    video = sample["video"]  # (V, 3, T, H, W)
    for slot, stream_index in enumerate((1, 0)):
        with VideoReader(two_clocks, stream_index=stream_index) as reader:
            direct = reader.get_frames_at(view_frames[slot].tolist()).data
        assert torch.equal(video[slot].permute(1, 0, 2, 3), direct)
    assert frame_ids(video[1].permute(1, 0, 2, 3)) == view_frames[1].tolist()  # stream 0's ids start at 0
    # Prediction opens one reader per stream and matches views the same way: it sees these frames.
    with VideoReader(two_clocks, stream_index=1) as front, VideoReader(two_clocks, stream_index=0) as side:
        assert np.array_equal(_match_views("v", [front, side], range(len(front))), view_frames)
    dataset.close()


def test_two_videos_on_two_streams_of_one_file_read_each_its_stream(two_clocks: Path) -> None:
    videos = [
        {"id": f"s{stream}", "split": "train", "views": {"front": {"path": two_clocks.name, "stream": stream}}}
        for stream in (1, 0)
    ]
    config = VideoDatasetConfig(manifest=_manifest(two_clocks.parent, videos), mode="chunk", split="train")
    dataset = VideoDataset(config)
    for position, (_, count, first) in zip(range(len(dataset)), (STREAMS[1], STREAMS[0]), strict=True):
        sample = dataset[position]
        assert frame_ids(sample["video"][0].permute(1, 0, 2, 3)) == list(range(first, first + count))
    dataset.close()
