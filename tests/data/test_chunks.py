"""Chunk index: boundary and overlap math, validation of every kind of problem, the on-disk cache."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vidfit.data._validate as validate_module
from tests.data.conftest import MakeDataset
from tests.videos import frame_ids
from vidfit.data import ManifestError, load_manifest
from vidfit.data._chunks import build_chunk_index, chunk_spans
from vidfit.io import VideoReader


def spans(num_frames: int, **kwargs: Any) -> list[tuple[int, int]]:
    return [(span.start, span.stop) for span in chunk_spans(num_frames, **kwargs)]


def test_seed_example_five_thousand_frames_make_five_chunks() -> None:
    assert spans(5000, max_video_frames=1000) == [(i, i + 1000) for i in range(0, 5000, 1000)]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_video_frames": None}, [(0, 23)]),
        ({"max_video_frames": 30}, [(0, 23)]),
        ({"max_video_frames": 10}, [(0, 10), (10, 20), (20, 23)]),
        ({"max_video_frames": 10, "chunk_overlap_frames": 4}, [(0, 10), (6, 16), (12, 22), (18, 23)]),
        ({"max_video_frames": 10, "tail": "merge"}, [(0, 10), (10, 23)]),
        ({"max_video_frames": 10, "tail": "drop"}, [(0, 10), (10, 20)]),
        ({"max_video_frames": 10, "tail": "drop", "min_tail_frames": 3}, [(0, 10), (10, 20), (20, 23)]),
        ({"max_video_frames": 10, "tail": "merge", "min_tail_frames": 4}, [(0, 10), (10, 23)]),
    ],
)
def test_chunk_boundaries(kwargs: dict, expected: list[tuple[int, int]]) -> None:
    assert spans(23, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_video_frames": 10, "tail": "pad"}, r"tail='pad' is not one of 'keep', 'merge', 'drop'"),
        ({"max_video_frames": 0}, r"max_video_frames=0 must be >= 1"),
        ({"max_video_frames": 10, "chunk_overlap_frames": 10}, r"chunk_overlap_frames=10 must be in \[0, "),
        ({"max_video_frames": 10, "min_tail_frames": 11}, r"min_tail_frames=11 must be in \[1, "),
    ],
)
def test_bad_chunking_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        chunk_spans(100, **kwargs)


@given(
    num_frames=st.integers(1, 3000),
    max_frames=st.integers(1, 400),
    overlap_fraction=st.floats(0, 0.99),
    tail=st.sampled_from(["keep", "merge", "drop"]),
    min_tail_fraction=st.floats(0, 1),
)
def test_chunk_properties(
    num_frames: int, max_frames: int, overlap_fraction: float, tail: str, min_tail_fraction: float
) -> None:
    overlap = int(overlap_fraction * max_frames)
    min_tail = max(1, round(min_tail_fraction * max_frames))
    result = chunk_spans(
        num_frames, max_video_frames=max_frames, chunk_overlap_frames=overlap, tail=tail, min_tail_frames=min_tail
    )
    stride = max_frames - overlap
    assert result[0].start == 0
    for before, after in itertools.pairwise(result):
        assert after.start == before.start + stride
        assert before.stop - after.start == overlap
    covered = np.zeros(num_frames, dtype=bool)
    for span in result:
        covered[span.start : span.stop] = True
    assert all(len(span) == max_frames for span in result[:-1])
    last = result[-1]
    assert 1 <= len(last) <= (max_frames + min_tail - 1 if tail == "merge" else max_frames)
    if tail != "keep":
        assert len(last) >= min_tail or len(result) == 1
    if tail == "drop":
        assert covered[: last.stop].all()
        assert num_frames - last.stop < min_tail
    else:
        assert covered.all()
        assert last.stop == num_frames


def test_index_and_seed_log_line(make_dataset: MakeDataset, caplog: pytest.LogCaptureFixture) -> None:
    manifest = load_manifest(make_dataset(num_frames=(25, 12, 7)))
    with caplog.at_level(logging.INFO, logger="vidfit.data"):
        index = build_chunk_index(manifest, max_video_frames=10)
    assert "Video chunking enabled: 3 videos -> 6 chunks (max 10 frames/chunk)" in caplog.messages
    assert [(c.video_id, c.chunk_index, c.start_frame, c.stop_frame) for c in index] == [
        ("v0", 0, 0, 10),
        ("v0", 1, 10, 20),
        ("v0", 2, 20, 25),
        ("v1", 0, 0, 10),
        ("v1", 1, 10, 12),
        ("v2", 0, 0, 7),
    ]
    assert index.videos["v1"].views["front"].num_frames == 12


def test_split_filter(make_dataset: MakeDataset) -> None:
    path = make_dataset(num_frames=(8, 8), extra={1: {"split": "val"}})
    index = build_chunk_index(load_manifest(path), split="val")
    assert [chunk.video_id for chunk in index] == ["v1"]


def test_every_problem_is_reported_at_once(make_dataset: MakeDataset, tmp_path: Path) -> None:
    segments = [
        {"start": 0, "end": 6, "label": "front"},
        {"start": 5, "end": 8, "label": "adjust"},
        {"start": 9, "end": 9, "label": "idle"},
        {"start": 12, "end": 30, "label": "idle"},
        {"start": 30, "end": 31, "label": "sneeze"},
    ]
    path = make_dataset(
        num_frames=(20, 20),
        views={"front": {}, "left": {"fps": 20.0}},
        timelines={0: {"unit": "frames", "segments": segments}},
        keypoints={"front": "npz"},
        extra={1: {"label": "dance"}},
    )
    (tmp_path / "v0" / "kpt_front" / "000004_sam3d_body.npz").unlink()
    (tmp_path / "v0" / "kpt_front" / "000005_sam3d_body.npz").unlink()
    (tmp_path / "v1" / "front.mkv").unlink()
    with pytest.raises(ManifestError) as caught:
        build_chunk_index(load_manifest(path), max_video_frames=10)
    found = [(p.video_id, p.file.name, p.field, p.message) for p in caught.value.problems]
    expected = [
        ("v0", "left.mkv", "duration_seconds", r"view 'left' lasts 1.000 s but reference view 'front' lasts 0.66"),
        ("v0", "manifest.yaml", "timeline.segments[1]", r"segment \[5, 8\) overlaps \[0, 6\)"),
        ("v0", "manifest.yaml", "timeline.segments[2]", r"segment \[9, 9\) is inverted or empty"),
        ("v0", "manifest.yaml", "timeline.segments[3]", r"segment \[12, 30\) is outside the video \[0, 20\) frames"),
        ("v0", "manifest.yaml", "timeline.segments[4]", r"segment \[30, 31\) is outside the video"),
        ("v0", "manifest.yaml", "timeline.segments[4]", r"label 'sneeze' is not one of the manifest's labels"),
        ("v0", "kpt_front", "keypoints.front", r"keypoint files missing for frames 4-5$"),
        ("v1", "front.mkv", "views.front", r"no such video file"),
        ("v1", "manifest.yaml", "label", r"label 'dance' is not one of the manifest's labels"),
    ]
    assert len(found) == len(expected)
    for (video_id, name, field, message), (want_id, want_name, want_field, pattern) in zip(
        found, expected, strict=True
    ):
        assert (video_id, name, field) == (want_id, want_name, want_field)
        assert re.search(pattern, message), (message, pattern)
    assert str(caught.value).startswith("9 problem(s) in the dataset:\n  - video 'v0': ")


def test_wrong_keypoint_shapes(make_dataset: MakeDataset, tmp_path: Path) -> None:
    path = make_dataset(num_frames=(6,), views={"front": {}, "left": {}}, keypoints={"front": "npy", "left": "npz"})
    np.save(tmp_path / "v0" / "kpt_front.npy", np.zeros((5, 2, 2), dtype=np.float32))
    np.savez(tmp_path / "v0" / "kpt_left" / "000000_sam3d_body.npz", np.zeros((1, 5, 3)))
    with pytest.raises(ManifestError) as caught:
        build_chunk_index(load_manifest(path))
    assert [problem.field for problem in caught.value.problems] == ["keypoints.front", "keypoints.left"]
    assert "shape (5, 2, 2) is not (6, K, D)" in caught.value.problems[0].message
    assert "shape (1, 5, 3) is not (K, D)" in caught.value.problems[1].message


def test_skip_leaves_bad_videos_out_and_reports_them(make_dataset: MakeDataset, tmp_path: Path) -> None:
    path = make_dataset(num_frames=(8, 8), extra={0: {"label": "dance"}})
    report = tmp_path / "skipped.json"
    index = build_chunk_index(load_manifest(path), on_error="skip", report_path=report)
    assert list(index.videos) == ["v1"]
    skipped = json.loads(report.read_text())["skipped"]
    assert [(s["video_id"], s["field"]) for s in skipped] == [("v0", "label")]


def test_bad_on_error_is_refused(make_dataset: MakeDataset) -> None:
    with pytest.raises(ValueError, match=r"on_error='ignore' is not one of 'raise', 'skip'"):
        build_chunk_index(load_manifest(make_dataset()), on_error="ignore")  # type: ignore[arg-type]


def test_cache_hits_until_a_file_changes(
    make_dataset: MakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = load_manifest(make_dataset(num_frames=(12, 9)))
    probed: list[Path] = []
    real_probe = validate_module.probe
    monkeypatch.setattr(validate_module, "probe", lambda p, **kw: probed.append(p) or real_probe(p, **kw))
    cache = tmp_path / "cache"
    first = build_chunk_index(manifest, max_video_frames=5, cache_dir=cache)
    assert len(probed) == 2
    second = build_chunk_index(manifest, max_video_frames=5, cache_dir=cache)
    assert len(probed) == 2
    assert second.chunks == first.chunks and second.videos == first.videos
    build_chunk_index(manifest, max_video_frames=6, cache_dir=cache)
    assert len(probed) == 4
    video = tmp_path / "v1" / "front.mkv"
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    build_chunk_index(manifest, max_video_frames=5, cache_dir=cache)
    assert len(probed) == 6


def test_every_overlap_is_found_not_only_between_neighbours(make_dataset: MakeDataset) -> None:
    segments = [
        {"start": 0, "end": 15, "label": "idle"},
        {"start": 6, "end": 8, "label": "front"},
        {"start": 2, "end": 4, "label": "front"},
        {"start": 16, "end": 18, "label": "front"},
    ]
    path = make_dataset(num_frames=(20,), timelines={0: {"unit": "frames", "segments": segments}})
    with pytest.raises(ManifestError) as caught:
        build_chunk_index(load_manifest(path))
    found = [(problem.field, problem.message) for problem in caught.value.problems]
    assert found == [
        ("timeline.segments[2]", "segment [2, 4) overlaps [0, 15)"),
        ("timeline.segments[1]", "segment [6, 8) overlaps [0, 15)"),
    ]


def test_checks_without_files_run_when_a_view_cannot_be_probed(make_dataset: MakeDataset, tmp_path: Path) -> None:
    segments = [{"start": 9, "end": 3, "label": "idle"}, {"start": 0, "end": 2, "label": "sneeze"}]
    path = make_dataset(
        num_frames=(20,),
        views={"front": {}, "left": {}},
        timelines={0: {"unit": "frames", "segments": segments}},
        keypoints={"left": "npz"},
        extra={0: {"label": "dance", "keypoints": {"front": "v0/nowhere", "left": "v0/kpt_left"}}},
    )
    (tmp_path / "v0" / "left.mkv").unlink()
    (tmp_path / "v0" / "kpt_left" / "000000_sam3d_body.npz").write_bytes(b"garbage")
    with pytest.raises(ManifestError) as caught:
        build_chunk_index(load_manifest(path))
    found = [(p.file.name, p.field, p.message.split(":")[0]) for p in caught.value.problems]
    unknown = "is not one of the manifest's labels ['idle', 'front', 'adjust']"
    assert found == [
        ("left.mkv", "views.left", "no such video file"),
        ("manifest.yaml", "label", f"label 'dance' {unknown}"),
        ("manifest.yaml", "timeline.segments[1]", f"label 'sneeze' {unknown}"),
        ("manifest.yaml", "timeline.segments[0]", "segment [9, 3) is inverted or empty"),
        ("nowhere", "keypoints.front", "is neither a folder of per-frame .npz files nor a .npy file (missing?)"),
        ("000000_sam3d_body.npz", "keypoints.left", "cannot read keypoints as a .npz archive"),
    ]


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_unreadable_keypoint_files_are_problems_naming_the_file(
    make_dataset: MakeDataset, tmp_path: Path, kind: str
) -> None:
    path = make_dataset(num_frames=(6, 6), keypoints={"front": kind})
    corrupt = tmp_path / "v0" / ("kpt_front/000000_sam3d_body.npz" if kind == "npz" else "kpt_front.npy")
    corrupt.write_bytes(b"garbage")
    manifest = load_manifest(path)
    with pytest.raises(ManifestError, match=rf"video 'v0': {re.escape(str(corrupt))}: keypoints.front: cannot read"):
        build_chunk_index(manifest)
    index = build_chunk_index(manifest, on_error="skip", cache_dir=tmp_path / "cache")
    assert list(index.videos) == ["v1"]
    assert [(p.video_id, p.file) for p in index.skipped] == [("v0", corrupt)]
    assert build_chunk_index(manifest, on_error="skip", cache_dir=tmp_path / "cache").skipped == index.skipped


def test_cache_rebuilds_when_a_size_or_a_keypoint_file_changes(
    make_dataset: MakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_dataset(num_frames=(6,), views={"front": {}, "left": {}}, keypoints={"front": "npy", "left": "npz"})
    manifest = load_manifest(path)
    probed: list[Path] = []
    real_probe = validate_module.probe
    monkeypatch.setattr(validate_module, "probe", lambda p, **kw: probed.append(p) or real_probe(p, **kw))

    def builds() -> int:
        """Index builds so far that probed the files (the two views) rather than reading the cache."""
        build_chunk_index(manifest, cache_dir=tmp_path / "cache", on_error="skip")
        return len(probed) // 2

    def same_mtime(file: Path, change: Callable[[], object]) -> None:
        stat = file.stat()
        change()
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert (builds(), builds()) == (1, 1)
    video = tmp_path / "v0" / "left.mkv"
    same_mtime(video, lambda: video.write_bytes(video.read_bytes() + b"\0"))
    assert builds() == 2
    keypoints = tmp_path / "v0" / "kpt_front.npy"
    same_mtime(keypoints, lambda: np.save(keypoints, np.zeros((6, 4, 3), dtype=np.float32)))
    assert builds() == 3
    np.savez(tmp_path / "v0" / "kpt_left" / "000006_sam3d_body.npz", keypoints=np.zeros((5, 3)))
    assert builds() == 4


def frames_in_clip(path: Path, start_seconds: float, end_seconds: float) -> list[int]:
    """The frames of a clip, by a local decode: those whose time from the first frame lies in the clip."""
    with VideoReader(path) as reader:
        frames = reader.get_frames(0, len(reader))
    times = (frames.pts_seconds - frames.pts_seconds[0]).tolist()
    return [index for index, t in zip(frame_ids(frames.data), times, strict=True) if start_seconds <= t < end_seconds]


def test_a_clip_range_is_chunked_inside_its_frames(make_dataset: MakeDataset, tmp_path: Path) -> None:
    path = make_dataset(num_frames=(30, 12), extra={0: {"start": 0.2, "end": 0.79}, 1: {"end": 99}})
    index = build_chunk_index(load_manifest(path), max_video_frames=10)
    expected = frames_in_clip(tmp_path / "v0" / "front.mkv", 0.2, 0.79)
    assert expected == list(range(6, 24))
    assert index.videos["v0"].frames == range(6, 24)
    assert [(c.video_id, c.start_frame, c.stop_frame) for c in index] == [
        ("v0", 6, 16), ("v0", 16, 24), ("v1", 0, 10), ("v1", 10, 12),
    ]  # fmt: skip


def test_a_clip_range_without_frames_is_a_problem_and_cached_ranges_survive(
    make_dataset: MakeDataset, tmp_path: Path
) -> None:
    path = make_dataset(num_frames=(12, 12), extra={0: {"start": 5.0}, 1: {"start": 0.1}})
    with pytest.raises(ManifestError, match=r"video 'v0'.*start: the clip \[5, the end\) s holds no frame"):
        build_chunk_index(load_manifest(path))
    manifest = load_manifest(path)
    kept = dataclasses.replace(manifest, videos=manifest.videos[1:])
    first = build_chunk_index(kept, cache_dir=tmp_path / "cache")
    again = build_chunk_index(kept, cache_dir=tmp_path / "cache")
    assert again.videos["v1"].frames == first.videos["v1"].frames == range(3, 12)
    assert again.chunks == first.chunks


def test_segments_may_overlap_in_a_multi_label_manifest_only(make_dataset: MakeDataset, tmp_path: Path) -> None:
    segments = [{"start": 0, "end": 15, "label": "idle"}, {"start": 6, "end": 8, "label": "front"}]
    manifest = load_manifest(make_dataset(num_frames=(20,), timelines={0: {"unit": "frames", "segments": segments}}))
    with pytest.raises(ManifestError, match=r"segment \[6, 8\) overlaps \[0, 15\)"):
        build_chunk_index(manifest, cache_dir=tmp_path / "cache")
    index = build_chunk_index(dataclasses.replace(manifest, multi_label=True), cache_dir=tmp_path / "cache")
    assert [c.video_id for c in index] == ["v0"]
    inverted = [*segments, {"start": 9, "end": 9, "label": "front"}]
    broken = make_dataset(num_frames=(20,), timelines={0: {"unit": "frames", "segments": inverted}})
    with pytest.raises(ManifestError, match=r"segment \[9, 9\) is inverted or empty"):
        build_chunk_index(dataclasses.replace(load_manifest(broken), multi_label=True))
