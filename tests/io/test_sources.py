"""Sources other than local paths: HTTP with byte ranges, any fsspec URL, file objects."""

from __future__ import annotations

import builtins
import importlib.util
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import MakeVideo
from vidfit.io import VideoReader, probe, write_video
from vidfit.io._sources import source_stamp

pytest.importorskip("fsspec", reason="remote sources need the 'remote' extra (fsspec, aiohttp)")
pytest.importorskip("aiohttp", reason="http:// sources need aiohttp (the 'remote' extra)")


@dataclass
class ServedFiles:
    """Files served over HTTP on 127.0.0.1, with the bytes each GET sent."""

    root: Path
    url: str
    sent_bytes: list[int] = field(default_factory=list)


def _handler(served: ServedFiles) -> type[BaseHTTPRequestHandler]:
    class RangeHandler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self._respond(send_body=False)

        def do_GET(self) -> None:
            self._respond(send_body=True)

        def _respond(self, *, send_body: bool) -> None:
            file = served.root / self.path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            start, stop = 0, len(data)
            ranged = self.headers.get("Range", "").startswith("bytes=")
            if ranged:
                first, _, last = self.headers["Range"][len("bytes=") :].partition("-")
                start, stop = int(first), min(int(last) + 1 if last else len(data), len(data))
            self.send_response(206 if ranged else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(stop - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            self.end_headers()
            if send_body:
                served.sent_bytes.append(stop - start)
                self.wfile.write(data[start:stop])

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    return RangeHandler


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServedFiles]:
    root = tmp_path / "www"
    root.mkdir()
    served = ServedFiles(root, "")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def noise_video(root: Path, *, num_frames: int) -> Path:
    """A lossless MP4 of noise (which does not compress): about 0.2 MB per frame."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (num_frames, 3, 256, 256), dtype=torch.uint8, generator=generator)
    return write_video(root / "noise.mp4", frames, fps=25.0, codec="libx264rgb", crf=0, gop=10, bframes=2)


def test_http_seek_fetches_byte_ranges_not_the_file(http_server: ServedFiles) -> None:
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


def test_http_index_matches_local_index(make_video: MakeVideo, http_server: ServedFiles) -> None:
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


def test_missing_fsspec_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_fsspec(name: str, *args: object, **kwargs: object) -> object:
        if name == "fsspec" or name.startswith("fsspec."):
            raise ImportError("No module named 'fsspec'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_fsspec)
    monkeypatch.setattr("importlib.import_module", lambda name: no_fsspec(name))
    with pytest.raises(ImportError, match=r"needs fsspec and aiohttp: pip install 'vidfit\[remote\]'"):
        probe("https://example.invalid/video.mp4")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_names_the_package() -> None:
    with pytest.raises(ImportError, match=r"s3:// URLs needs fsspec and s3fs: pip install 'vidfit\[remote\]' s3fs"):
        probe("s3://bucket/video.mp4")
