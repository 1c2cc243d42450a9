"""A manifest view may name a stream (``{path: x.mp4, stream: 0}``); indexing, loading and prepare read that one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.io.test_streams import write_two_stream_mp4
from tests.videos import frame_ids
from vidfit.data import ManifestError, load_manifest, prepare_manifest, save_manifest
from vidfit.data._chunks import build_chunk_index
from vidfit.data._sampling import ReaderPool
from vidfit.io import VideoReader


def write_manifest(tmp_path: Path, view: str) -> Path:
    write_two_stream_mp4(tmp_path / "two.mp4")
    path = tmp_path / "manifest.yaml"
    path.write_text(f"labels: []\nroot: .\nvideos:\n  - id: v\n    split: train\n    views: {{front: {view}}}\n")
    return path


def test_view_naming_a_stream_is_indexed_and_read_from_it(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, "{path: two.mp4, stream: 0}"))
    assert manifest.videos[0].streams == {"front": 0}
    assert load_manifest(save_manifest(manifest, tmp_path / "copy.yaml")).videos[0].streams == {"front": 0}
    meta = build_chunk_index(manifest, cache_dir=tmp_path / "cache").videos["v"].views["front"]
    assert (meta.stream_index, meta.height) == (0, 180)
    cached = build_chunk_index(manifest, cache_dir=tmp_path / "cache").videos["v"].views["front"]
    assert cached == meta  # read back from the cache, streams included
    reader = ReaderPool(capacity=1, num_threads=1).get(meta)
    assert reader.metadata.stream_index == 0 and frame_ids(reader.get_frames(0, 2).data)[0] < 50


def test_view_without_a_stream_reads_the_best_one(tmp_path: Path) -> None:
    manifest = load_manifest(write_manifest(tmp_path, "two.mp4"))
    assert manifest.videos[0].streams == {}
    assert build_chunk_index(manifest).videos["v"].views["front"].stream_index == 1


def test_prepare_transcodes_the_named_stream(tmp_path: Path) -> None:
    prepared = prepare_manifest(
        write_manifest(tmp_path, "{path: two.mp4, stream: 0}"), size=(90, 160), gop=4, out_dir=tmp_path / "out"
    )
    video = load_manifest(prepared).videos[0]
    assert video.streams == {}  # the copy holds that stream alone
    with VideoReader(video.views["front"]) as reader:
        assert frame_ids(reader.get_frames(0, 2).data)[0] < 50  # the preview stream's ids start at 0, the main's at 100


def test_bad_stream_entries_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"views.front: must be a path or \{path, stream: N >= 0\}"):
        load_manifest(write_manifest(tmp_path, "{path: two.mp4, stream: -1}"))
    manifest = load_manifest(write_manifest(tmp_path, "{path: two.mp4, stream: 7}"))
    with pytest.raises(ManifestError, match=r"stream_index=7 is not one of its video streams \[0, 1\]"):
        build_chunk_index(manifest)
