"""The synthetic demo dataset: real videos, a manifest the data layer accepts, motions, determinism, reuse."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vidfit._synthetic import DemoDataset, make_demo_dataset
from vidfit.data import Manifest, load_manifest
from vidfit.data._chunks import build_chunk_index
from vidfit.io import VideoReader, probe

TINY: dict[str, Any] = {"num_videos_per_class": 2, "num_frames": 16, "size": (32, 32), "seed": 3}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), **TINY)


def _all_files(dataset: DemoDataset) -> list[Path]:
    return sorted(path for path in dataset.manifest_path.parent.rglob("*") if path.is_file())


def _shape_centres(path: Path) -> np.ndarray:
    """x, y of the shape in every frame: the centroid of strongly saturated pixels (the background is greyish)."""
    with VideoReader(path) as reader:
        frames = reader.get_frames(0, len(reader)).data.to(torch.int32)
    saturated = (frames.amax(dim=1) - frames.amin(dim=1) > 120).numpy()
    rows, cols = np.indices(saturated.shape[1:])
    weights = saturated.sum(axis=(1, 2))
    assert weights.min() > 0, f"{path}: the shape is missing from some frame"
    return (
        np.stack([(saturated * cols).sum(axis=(1, 2)), (saturated * rows).sum(axis=(1, 2))], axis=1) / weights[:, None]
    )


def test_writes_h264_videos_of_the_requested_frames_and_size(tiny: DemoDataset) -> None:
    manifest = load_manifest(tiny.manifest_path)
    assert (tiny.labels, tiny.num_videos, len(manifest.videos)) == (("idle", "left", "right", "jump"), 8, 8)
    for entry in manifest.videos:
        assert list(entry.views) == ["front", "left"]
        for path in entry.views.values():
            meta = probe(path)
            assert (meta.num_frames, meta.height, meta.width, meta.codec) == (16, 32, 32, "h264")
            assert meta.fps == pytest.approx(15.0)
    sizes = sum(path.stat().st_size for path in _all_files(tiny) if path.suffix in (".mp4", ".yaml"))
    assert tiny.total_bytes == sizes


def test_manifest_passes_the_data_layer_checks_with_balanced_splits(tiny: DemoDataset) -> None:
    manifest = load_manifest(tiny.manifest_path)
    index = build_chunk_index(manifest, on_error="raise")
    assert sorted(index.videos) == [f"vid_{i:03d}" for i in range(8)]
    for label in manifest.labels:
        splits = sorted(entry.split or "" for entry in manifest.videos if entry.label == label)
        assert splits == ["train", "val"], label


def test_timelines_cover_every_frame_and_end_in_the_video_label(tiny: DemoDataset) -> None:
    for entry in load_manifest(tiny.manifest_path).videos:
        assert entry.timeline is not None and entry.timeline.unit == "frames"
        segments = entry.timeline.segments
        assert segments[0].start == 0 and segments[-1].end == 16
        assert all(a.end == b.start for a, b in itertools.pairwise(segments))
        assert segments[-1].label == entry.label
        assert segments[0].label == "idle"


def test_shapes_move_as_labelled_and_the_left_view_is_mirrored(tiny: DemoDataset) -> None:
    for entry in load_manifest(tiny.manifest_path).videos:
        front, left = _shape_centres(entry.views["front"]), _shape_centres(entry.views["left"])
        dx_front, dx_left = front[-1, 0] - front[0, 0], left[-1, 0] - left[0, 0]
        x_range, y_range = np.ptp(front, axis=0)
        # Jitter alone moves the centroid by a pixel or two; actions move it by a quarter of the frame or more.
        if entry.label == "idle":
            assert x_range < 3.5 and y_range < 3.5, entry.id
        elif entry.label == "jump":
            assert y_range > 4.5 and x_range < 3.5, entry.id
        else:
            sign = 1 if entry.label == "right" else -1
            assert sign * dx_front > 6 and -sign * dx_left > 4, entry.id


def test_same_seed_gives_the_same_dataset_and_another_seed_does_not(tiny: DemoDataset, tmp_path: Path) -> None:
    again = make_demo_dataset(tmp_path / "again", **TINY)
    other = make_demo_dataset(tmp_path / "other", **{**TINY, "seed": 4})
    assert again.manifest_path.read_text() == tiny.manifest_path.read_text()

    def first_frames(manifest: Manifest) -> torch.Tensor:
        frames = []
        for entry in manifest.videos:
            for path in entry.views.values():
                with VideoReader(path) as reader:
                    frames.append(reader.get_frames(0, 1).data)
        return torch.cat(frames)

    reference = first_frames(load_manifest(tiny.manifest_path))
    assert torch.equal(first_frames(load_manifest(again.manifest_path)), reference)
    assert not torch.equal(first_frames(load_manifest(other.manifest_path)), reference)


def test_second_call_reuses_the_files(tiny: DemoDataset) -> None:
    before = {path: path.stat().st_mtime_ns for path in _all_files(tiny)}
    assert make_demo_dataset(tiny.manifest_path.parent, **TINY) == tiny
    assert {path: path.stat().st_mtime_ns for path in _all_files(tiny)} == before


def test_incomplete_or_different_dataset_is_regenerated(tmp_path: Path) -> None:
    small = {"num_videos_per_class": 1, "num_frames": 8, "size": (16, 16), "views": ("front",)}
    first = make_demo_dataset(tmp_path, **small)
    video = tmp_path / "vid_002" / "front.mp4"
    video.unlink()
    assert make_demo_dataset(tmp_path, **small) == first
    assert probe(video).num_frames == 8
    changed = make_demo_dataset(tmp_path, **{**small, "num_frames": 10})
    assert probe(video).num_frames == 10 and changed.total_bytes != first.total_bytes


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"num_videos_per_class": 0}, "num_videos_per_class=0"),
        ({"num_frames": 4}, "num_frames=4"),
        ({"seed": -1}, "seed=-1"),
        ({"size": (31, 32)}, r"size=\(31, 32\)"),
        ({"size": (32,)}, r"size=\(32,\)"),
        ({"fps": 0.0}, "fps=0.0"),
        ({"views": ()}, r"views=\(\)"),
        ({"views": "front"}, "views='front'"),
        ({"views": ("front", "front")}, "views=\\('front', 'front'\\)"),
        ({"views": ("a/b",)}, "'a/b'"),
        ({"classes": ("left", "right")}, "classes=\\('left', 'right'\\)"),
        ({"classes": ("idle", "spin")}, "classes=\\('idle', 'spin'\\)"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path: Path, arguments: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_demo_dataset(tmp_path, **arguments)
    assert not any(tmp_path.iterdir())
