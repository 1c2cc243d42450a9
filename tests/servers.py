"""HTTP servers on 127.0.0.1 for tests: with or without byte ranges, and the faults a network has.

`serve(root, ...)` starts a `ThreadingHTTPServer` on a free port that serves the files under `root`
(read from disk at every request, so a test can change one between two requests), and shuts it down
when the block ends. A stalled answer waits at most `STALL_SECONDS`, and is released at shutdown.
"""

from __future__ import annotations

import email.utils
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
import torch

from vidfit.io import VideoReader, write_video

STALL_SECONDS = 60.0
Fault = Literal["stall", "status", "short", "reset", "redirect_loop", "redirects"]


@dataclass
class ServedFiles:
    """Files served over HTTP on 127.0.0.1, with what each request asked for and each answer sent.

    Attributes:
        root: The folder served.
        url: ``http://127.0.0.1:<port>``.
        sent_bytes: Body bytes of each answer, in order.
        ranges: The Range header of each request ("" without one).
        fault_on: Set by a test to start the fault of a `Behaviour` whose `fault_after` is None.
        stalled: Set when an answer stalls after its headers.
        released: Set at shutdown: a stalled answer ends.
    """

    root: Path
    url: str = ""
    sent_bytes: list[int] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    fault_on: threading.Event = field(default_factory=threading.Event)
    stalled: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Behaviour:
    """How the server answers.

    Attributes:
        ranges: Answers Range requests with 206; False sends the whole file with 200 (as ``http.server`` does).
        content_length: Sends Content-Length; False closes the connection after the body (HTTP/1.0).
        validators: ``"etag"`` (and Last-Modified), ``"last-modified"`` alone, or ``"none"``.
        fault: What goes wrong: an answer that stalls after its headers, a `status`, a body cut short
            (``"short"``: half of it, then the connection closes; ``"reset"``: the same ended by a TCP reset),
            a redirect loop, or redirects each to a new place (``"redirects"``).
        fault_after: Requests answered well before the fault; None: until the test sets `ServedFiles.fault_on`.
        status: The status of the ``"status"`` fault.
        close_idle: Closes each connection after its answer without saying so (as a server whose
            keep-alive timeout passed): the client's next request on it finds it closed.
    """

    ranges: bool = True
    content_length: bool = True
    validators: Literal["etag", "last-modified", "none"] = "etag"
    fault: Fault | None = None
    fault_after: int | None = 0
    status: int = 500
    close_idle: bool = False


def _handler(served: ServedFiles, behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if behaviour.content_length else "HTTP/1.0"

        def do_GET(self) -> None:
            served.ranges.append(self.headers.get("Range", ""))
            after = behaviour.fault_after
            faulty = behaviour.fault is not None and (
                served.fault_on.is_set() if after is None else len(served.ranges) > after
            )
            if faulty and behaviour.fault == "status":
                self.send_error(behaviour.status)
            elif faulty and behaviour.fault in ("redirect_loop", "redirects"):
                self.send_response(302)
                loop = "/a.mp4" if self.path != "/a.mp4" else "/b.mp4"
                self.send_header(
                    "Location", loop if behaviour.fault == "redirect_loop" else f"/r{len(served.ranges)}.mp4"
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send_file(behaviour.fault if faulty else None)
            self.close_connection = self.close_connection or behaviour.close_idle

        def _send_file(self, fault: Fault | None) -> None:
            file = served.root / self.path.lstrip("/")
            if not file.is_file():
                self.send_error(404)
                return
            data, stat = file.read_bytes(), file.stat()
            start, stop = 0, len(data)
            ranged = behaviour.ranges and self.headers.get("Range", "").startswith("bytes=")
            if ranged:
                first, _, last = self.headers["Range"][len("bytes=") :].partition("-")
                start, stop = int(first), min(int(last) + 1 if last else len(data), len(data))
            self.send_response(206 if ranged else 200)
            if behaviour.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if behaviour.content_length:
                self.send_header("Content-Length", str(stop - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            if behaviour.validators == "etag":
                self.send_header("ETag", f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"')
            if behaviour.validators != "none":
                self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime_ns / 1e9, usegmt=True))
            self.end_headers()
            self._body(data[start:stop], fault)

        def _body(self, body: bytes, fault: Fault | None) -> None:
            if fault == "stall":
                self.wfile.flush()
                served.stalled.set()
                served.released.wait(STALL_SECONDS)
                self.close_connection = True
                return
            if fault in ("short", "reset"):
                body = body[: len(body) // 2]
                self.close_connection = True
            served.sent_bytes.append(len(body))
            self.wfile.write(body)
            if fault == "reset":  # closed at once with SO_LINGER 0: a TCP reset, not the end of the stream
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                os.close(self.connection.detach())

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (a timeout, Ctrl-C) breaks the pipe: expected here


@contextmanager
def serve(root: Path, behaviour: Behaviour | None = None) -> Iterator[ServedFiles]:
    """Serves the files under `root` on 127.0.0.1 for the length of the block."""
    served = ServedFiles(root)
    server = _QuietServer(("127.0.0.1", 0), _handler(served, behaviour or Behaviour()))
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve_stdlib(root: Path) -> Iterator[str]:
    """Python's own ``http.server`` over `root` (no byte ranges), for the length of the block; yields its URL."""

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def refused_url() -> str:
    """A URL on 127.0.0.1 whose port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/video.mp4"


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[ServedFiles]:
    """A server with byte ranges, ETag and Last-Modified over ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as served:
        yield served


@dataclass(frozen=True)
class NoiseVideo:
    """A lossless MP4 of noise (which does not compress) and its frames as the local file decodes them."""

    path: Path
    frames: torch.Tensor


def write_noise_video(path: Path, *, num_frames: int, size: int, seed: int = 0) -> NoiseVideo:
    """About ``0.43 * size**2`` bytes per frame; B-frames and a keyframe every 12 frames."""
    generator = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (num_frames, 3, size, size), dtype=torch.uint8, generator=generator)
    write_video(path, frames, fps=25.0, codec="libx264rgb", crf=0, gop=12, bframes=2)
    with VideoReader(path) as reader:
        return NoiseVideo(path, reader.get_frames(0, len(reader)).data.clone())


LARGE_FRAMES, LARGE_SIZE = 200, 96


@pytest.fixture(scope="session")
def large_video(tmp_path_factory: pytest.TempPathFactory) -> NoiseVideo:
    """A 5.5 MB MP4 of 200 frames (96x96 noise), over the 5 MB the remote tests must serve.

    Frames of under 32 KiB, PyAV's read buffer, are what a container sharing its file object with
    another one decoded wrongly: larger ones were read after a real seek of the file.
    """
    path = tmp_path_factory.mktemp("remote") / "large.mp4"
    video = write_noise_video(path, num_frames=LARGE_FRAMES, size=LARGE_SIZE)
    assert video.path.stat().st_size >= 5_000_000
    return video
