"""Sources other than local paths: HTTP with byte ranges, any fsspec URL, file objects."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MakeVideo
from tests.servers import ServedFiles, http_server  # noqa: F401  (the fixture; tests/data imports it from here)
from vidfit.data import ManifestError, load_manifest
from vidfit.io import VideoReader, probe, write_video
from vidfit.io._sources import join_location, source_stamp


def noise_video(root: Path, *, num_frames: int) -> Path:
    """A lossless MP4 of noise (which does not compress): about 0.2 MB per frame."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (num_frames, 3, 256, 256), dtype=torch.uint8, generator=generator)
    return write_video(root / "noise.mp4", frames, fps=25.0, codec="libx264rgb", crf=0, gop=10, bframes=2)


def test_http_seek_fetches_byte_ranges_not_the_file(http_server: ServedFiles) -> None:  # noqa: F811
    local = noise_video(http_server.root, num_frames=100)
    size = local.stat().st_size
    assert size > 15_000_000
    with VideoReader(local) as reader:
        expected = reader.get_frames(55, 65).data
    with VideoReader(f"{http_server.url}/noise.mp4") as reader:
        assert reader.metadata.num_frames == 100
        assert reader.metadata.path == f"{http_server.url}/noise.mp4"
        assert torch.equal(reader.get_frames(55, 65).data, expected)
    fetched = sum(http_server.sent_bytes)
    assert 0 < fetched < size * 0.35, f"fetched {fetched} of {size} bytes"


def test_http_index_matches_local_index(make_video: MakeVideo, http_server: ServedFiles) -> None:  # noqa: F811
    path, _ = make_video("lossy.mp4", num_frames=40, codec="libx264", crf=28, gop=12, bframes=3)
    (http_server.root / "lossy.mp4").write_bytes(path.read_bytes())
    with VideoReader(path) as local, VideoReader(f"{http_server.url}/lossy.mp4") as remote:
        np.testing.assert_array_equal(local.pts_seconds, remote.pts_seconds)
        np.testing.assert_array_equal(local._source._index.keyframes, remote._source._index.keyframes)  # type: ignore[union-attr]
        assert torch.equal(local.get_frames_at([0, 13, 14, 39]).data, remote.get_frames_at([0, 13, 14, 39]).data)
    stamp = source_stamp(f"{http_server.url}/lossy.mp4")
    assert stamp is not None and stamp[0] == path.stat().st_size
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4: no such video file"):
        probe(f"{http_server.url}/missing.mp4")


def test_matroska_over_a_url_is_indexed_by_reading_it(make_video: MakeVideo) -> None:
    """Matroska indexes keyframes only, so its packets are read; an fsspec memory:// URL stands in for a store."""
    import fsspec

    path, frames = make_video("video.mkv", num_frames=20)
    url = "memory://vidfit-test/video.mkv"
    with fsspec.open(url, "wb") as file:
        file.write(path.read_bytes())
    try:
        with VideoReader(url) as reader:
            assert torch.equal(reader.get_frames(3, 9).data, frames[3:9])
    finally:
        fsspec.filesystem("memory").rm(url)


def test_file_object_is_read_and_left_open(make_video: MakeVideo) -> None:
    path, frames = make_video("video.mp4", num_frames=20)
    with path.open("rb") as file:
        with VideoReader(file) as reader:
            assert reader.metadata.path == str(path)
            assert torch.equal(reader.get_frames_at([2, 17]).data, frames[[2, 17]])
        assert not file.closed
    with pytest.raises(TypeError, match="must be a path, a URL or a seekable binary file object"):
        VideoReader(12)  # type: ignore[arg-type]


def test_missing_fsspec_names_the_install_and_http_needs_none(
    make_video: MakeVideo,
    http_server: ServedFiles,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, frames = make_video("video.mp4", num_frames=6)
    (http_server.root / "video.mp4").write_bytes(path.read_bytes())
    real_import = builtins.__import__

    def no_fsspec(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] in ("fsspec", "aiohttp"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_fsspec)
    monkeypatch.setattr("importlib.import_module", lambda name: no_fsspec(name))
    with pytest.raises(ImportError, match=r"memory:// URLs needs fsspec: pip install 'vidfit\[remote\]'$"):
        probe("memory://bucket/video.mp4")
    with VideoReader(f"{http_server.url}/video.mp4") as reader:  # http(s) is read by Python's own client
        assert torch.equal(reader.get_frames(0, 6).data, frames)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_names_the_package() -> None:
    with pytest.raises(ImportError, match=r"s3:// URLs needs fsspec and s3fs: pip install 'vidfit\[remote\]' s3fs"):
        probe("s3://bucket/video.mp4")


def test_url_joining_stays_on_its_host(http_server: ServedFiles) -> None:  # noqa: F811
    base = "http://host/data"
    assert join_location(base, "../../../other.host/x.mp4") == "http://host/other.host/x.mp4"
    assert join_location(base, "//other.host/x.mp4") == "http://host/other.host/x.mp4"
    assert join_location(base, "/x.mp4") == "http://host/x.mp4"
    assert join_location(base, "a/../b.mp4") == "http://host/data/b.mp4"
    assert join_location(base, "https://cdn.example/x.mp4") == "https://cdn.example/x.mp4"  # a URL as written
    (http_server.root / "data").mkdir()
    manifest = "labels: []\nroot: .\nvideos:\n  - id: a\n    views: {front: ../../../other.host/x.mp4}\n"
    (http_server.root / "data" / "m.yaml").write_text(manifest)
    url = f"{http_server.url}/data/m.yaml"
    loaded = load_manifest(url, allow_outside_root=True)
    assert loaded.videos[0].views["front"] == f"{http_server.url}/other.host/x.mp4"
    with pytest.raises(ManifestError, match="outside the data root"):
        load_manifest(url)
