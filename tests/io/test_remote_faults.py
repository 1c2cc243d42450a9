"""Networks, each fault served on 127.0.0.1: one line naming the URL and the cause, bounded waits, Ctrl-C,
servers without byte ranges or Content-Length, and small files fetched once."""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.servers import (  # noqa: F401  (fixtures)
    STALL_SECONDS,
    Behaviour,
    NoiseVideo,
    large_video,
    refused_url,
    serve,
    serve_stdlib,
    write_noise_video,
)
from vidfit.io import RemoteError, VideoReader, probe
from vidfit.io._http import READ_TIMEOUT_ENV, read_timeout_seconds
from vidfit.io._remote import SPOOL_LIMIT_ENV

# Behaviour, and the cause the error line gives. A fault after the first answer happens inside FFmpeg's reads.
FAULTS = {
    "HTTP 500 at the first request": (Behaviour(fault="status"), "the server answered HTTP 500 Internal Server Error"),
    "HTTP 503 while reading": (
        Behaviour(fault="status", status=503, fault_after=1),
        "the server answered HTTP 503 Service Unavailable",
    ),
    "redirect loop": (
        Behaviour(fault="redirect_loop"),
        r"redirect loop: \S+/v\.mp4 -> \S+/a\.mp4 -> \S+/b\.mp4 -> \S+/a\.mp4",
    ),
    "more than 10 redirects": (Behaviour(fault="redirects"), r"more than 10 redirects \(the last to \S+/r\d+\.mp4\)"),
    "body shorter than its Content-Length": (
        Behaviour(fault="short", fault_after=1),
        r"the connection closed after \d+ of \d+ bytes of the answer",
    ),
    "dropped connection": (
        Behaviour(fault="reset", fault_after=1),
        r"the connection was reset \(by the server or the network\)",
    ),
}


@pytest.fixture
def root(tmp_path: Path, large_video: NoiseVideo) -> Path:  # noqa: F811
    folder = tmp_path / "www"
    folder.mkdir()
    shutil.copy(large_video.path, folder / "v.mp4")
    return folder


def _one_error_line(url: str, cause: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`vidfit info URL` fails with exit 2 and the one line ``error: <url>: <cause>``."""
    from vidfit.cli import main

    # The command adds a handler on the captured stderr to vidfit's logger: gone with this test.
    monkeypatch.setattr(logging.getLogger("vidfit"), "handlers", [])
    capsys.readouterr()
    assert main(["info", url]) == 2
    assert re.fullmatch(rf"error: {re.escape(url)}: {cause}\n", capsys.readouterr().err)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_network_fault_is_one_line_naming_the_url_and_the_cause(
    root: Path, fault: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    behaviour, cause = FAULTS[fault]
    with serve(root, behaviour) as served:
        url = f"{served.url}/v.mp4"
        with pytest.raises(RemoteError, match=rf"^{re.escape(url)}: {cause}$"):
            probe(url)
        _one_error_line(url, cause, capsys, monkeypatch)


def test_a_refused_connection_is_one_line_naming_the_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = refused_url()
    with pytest.raises(RemoteError, match=rf"^{re.escape(url)}: connection refused$"):
        VideoReader(url)
    _one_error_line(url, "connection refused", capsys, monkeypatch)


def test_a_kept_alive_connection_the_server_closed_is_opened_again(root: Path, large_video: NoiseVideo) -> None:  # noqa: F811
    with serve(root, Behaviour(close_idle=True)) as served, VideoReader(f"{served.url}/v.mp4") as reader:
        assert torch.equal(reader.get_frames(0, len(reader)).data, large_video.frames)


def test_a_stalled_answer_ends_at_the_read_timeout_naming_the_url(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, "0.5")
    cause = rf"no answer for 0\.5 s \(the read timeout, {READ_TIMEOUT_ENV}\)"
    with serve(root, Behaviour(fault="stall", fault_after=None)) as served:
        url = f"{served.url}/v.mp4"
        with VideoReader(url) as reader:
            served.fault_on.set()  # from now on every answer stalls after its headers
            started = time.monotonic()
            with pytest.raises(RemoteError, match=rf"^{re.escape(url)}: {cause}$"):
                reader.get_frames(150, 200)  # the middle of the file: not fetched by the opening
            assert time.monotonic() - started < STALL_SECONDS / 2, "the server ended the stall, not the client"
        with pytest.raises(RemoteError, match=rf"^{re.escape(url)}: {cause}$"):
            probe(url)


def test_the_read_timeout_is_30_s_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(READ_TIMEOUT_ENV, raising=False)
    assert read_timeout_seconds() == 30.0
    monkeypatch.setenv(READ_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=rf"^{READ_TIMEOUT_ENV}='soon' must be a positive number of seconds$"):
        probe("http://127.0.0.1:9/v.mp4")


@pytest.mark.slow
def test_ctrl_c_stops_a_stalled_read_at_once(root: Path) -> None:
    """SIGINT while the CLI waits inside FFmpeg's read of a stalled answer: `interrupted` at once, exit 130."""
    with serve(root, Behaviour(fault="stall", fault_after=1)) as served:
        process = subprocess.Popen(
            [sys.executable, "-m", "vidfit.cli", "info", f"{served.url}/v.mp4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, READ_TIMEOUT_ENV: str(STALL_SECONDS)},
        )
        try:
            assert served.stalled.wait(120), "the command never reached the stalled answer"
            time.sleep(0.5)  # let it block in the socket read
            process.send_signal(signal.SIGINT)
            stopped = _stderr_until(process, b"interrupted\n", timeout_seconds=10)
            # Then the interpreter exits: with torch loaded, seconds more on a busy machine.
            err = (stopped + process.communicate(timeout=120)[1]).decode()
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert stopped.endswith(b"interrupted\n"), f"not stopped 10 s after SIGINT; stderr: {stopped!r}"
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def _stderr_until(process: subprocess.Popen[bytes], text: bytes, *, timeout_seconds: float) -> bytes:
    """What `process` writes to stderr until it has written `text`, or until the time is up."""
    data, deadline = b"", time.monotonic() + timeout_seconds
    while not data.endswith(text) and (left := deadline - time.monotonic()) > 0:
        if select.select([process.stderr], [], [], left)[0]:
            chunk = os.read(process.stderr.fileno(), 4096)  # type: ignore[union-attr]
            if not chunk:
                break
            data += chunk
    return data


def test_a_server_without_byte_ranges_is_read_once_through_a_spool_file(
    root: Path,
    large_video: NoiseVideo,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.WARNING, logger="vidfit.io")
    with serve_stdlib(root) as url, VideoReader(f"{url}/v.mp4") as reader:  # Python's own http.server
        assert torch.equal(reader.get_frames(0, len(reader)).data, large_video.frames)
        assert torch.equal(reader.get_frames_at([3, 150, 151]).data, large_video.frames[[3, 150, 151]])
    notices = [r.getMessage() for r in caplog.records if "does not serve byte ranges" in r.getMessage()]
    assert len(notices) == 1 and notices[0].startswith(f"{url}/v.mp4: ")
    for behaviour in (Behaviour(ranges=False), Behaviour(ranges=False, content_length=False)):
        with serve(root, behaviour) as served, VideoReader(f"{served.url}/v.mp4") as reader:
            assert torch.equal(reader.get_frames(100, 200).data, large_video.frames[100:])
        assert served.sent_bytes == [(root / "v.mp4").stat().st_size]  # one request, each byte once
    err = capfd.readouterr().err
    assert "PyAV library exception" not in err and "Exception ignored" not in err and "block_size" not in err, err


@pytest.mark.parametrize("content_length", [True, False])
def test_a_file_over_the_spool_limit_is_refused_in_one_line(
    root: Path, content_length: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SPOOL_LIMIT_ENV, "1000000")
    with serve(root, Behaviour(ranges=False, content_length=content_length)) as served:
        url = f"{served.url}/v.mp4"
        with pytest.raises(
            RemoteError,
            match=rf"^{re.escape(url)}: the server does not serve byte ranges, and the file( \(\d+ bytes\))? is "
            rf"larger than the spool limit \(1000000 bytes, {SPOOL_LIMIT_ENV}\)$",
        ):
            probe(url)


def test_a_small_file_is_fetched_once(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    video = write_noise_video(tmp_path / "www" / "small.mp4", num_frames=36, size=96)
    size = video.path.stat().st_size
    assert 900_000 < size < 1_200_000
    with serve(tmp_path / "www") as served:
        with VideoReader(f"{served.url}/small.mp4") as reader:
            assert torch.equal(reader.get_frames(10, 20).data, video.frames[10:20])
        assert sum(served.sent_bytes) <= size
