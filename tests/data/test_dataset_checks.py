"""A dataset config's checks: every bad value at once, and one frame size for what a batch stacks."""

from __future__ import annotations

import pytest

from tests.conftest import MakeVideo
from tests.data.conftest import MakeDataset
from vidfit.data import ManifestError, VideoDataset, VideoDatasetConfig


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as raised:
        VideoDatasetConfig(
            manifest="m.yaml", mode="video", num_frames=-1, frame_stride=0, image_size=(720, 100_000),
            max_video_frames=10**10, num_threads=-1, views=tuple(f"v{i}" for i in range(2000)),
        )  # fmt: skip
    assert list(raised.value.problems) == [  # type: ignore[attr-defined]
        "mode", "num_frames", "frame_stride", "max_video_frames", "num_threads", "image_size", "views",
    ]  # fmt: skip
    message = str(raised.value)
    assert "image_size=(720, 100000) must be (height, width) of positive integers up to 8192" in message
    assert "views=('v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', ...) must name 1 to 1024 views, got 2000" in message


def test_a_short_side_over_videos_of_two_shapes_is_refused_naming_them(
    make_dataset: MakeDataset, make_video: MakeVideo
) -> None:
    make_video("wide.mkv", num_frames=8, height=32, width=48)
    path = make_dataset(num_frames=(8, 8, 8), extra={1: {"views": {"front": "wide.mkv"}}})
    message = (
        r"image_size=16 \(the short side, aspect ratio kept\) gives frames of 2 sizes \(height x width\): 16x16 from "
        r"v0/front \(32x32\), v2/front \(32x32\); 16x24 from v1/front \(32x48\); one batch needs one size: set "
        r"image_size to \[height, width\]"
    )
    with pytest.raises(ManifestError, match=message):
        VideoDataset(VideoDatasetConfig(manifest=path, image_size=16))
    # A batch of chunks holds one, so only a sample's views must agree; a pair is one size for all.
    assert len(VideoDataset(VideoDatasetConfig(manifest=path, image_size=16, mode="chunk"))) == 3
    assert VideoDataset(VideoDatasetConfig(manifest=path, image_size=(16, 16)))[1]["video"].shape[-2:] == (16, 16)


def test_a_short_side_over_views_of_two_shapes_is_refused_in_either_mode(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(8,), views={"front": {}, "left": {"width": 64}})
    for mode in ("clip", "chunk"):
        with pytest.raises(ManifestError, match=r"16x16 from v0/front \(32x32\); 16x32 from v0/left \(32x64\); one"):
            VideoDataset(VideoDatasetConfig(manifest=path, image_size=16, mode=mode))  # type: ignore[arg-type]
