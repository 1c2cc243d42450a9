"""VideoWriter: exact lossless round trips, explicit timestamps, and no half-written files."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.videos import frame_ids, pattern_frames
from vidfit.io import VideoReader, VideoWriter, write_video


def test_streaming_writes_append_and_rename_on_close(tmp_path: Path) -> None:
    frames = pattern_frames(20, 16, 24)
    target = tmp_path / "out" / "clip.mkv"
    with VideoWriter(target, fps=25, width=24, height=16, codec="libx264rgb", crf=0) as writer:
        writer.write(frames[:7])
        assert not target.exists()
        writer.write(frames[7:])
    assert [p.name for p in target.parent.iterdir()] == ["clip.mkv"]
    with VideoReader(target) as reader:
        assert torch.equal(reader.get_frames(0, 20).data, frames)
        assert reader.metadata.fps == pytest.approx(25, rel=1e-3)


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="interrupted"), VideoWriter(target, fps=30, width=8, height=8) as writer:
        writer.write(pattern_frames(3, 8, 8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_timestamps_are_refused(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "a.mkv", fps=30, width=8, height=8) as writer:
        with pytest.raises(ValueError, match=r"shape \(N, 3, 8, 8\)"):
            writer.write(torch.zeros(2, 3, 8, 9, dtype=torch.uint8))
        with pytest.raises(ValueError, match="increase strictly"):
            writer.write(pattern_frames(2, 8, 8), pts_seconds=torch.tensor([0.5, 0.5]))
        writer.write(pattern_frames(1, 8, 8))
    with pytest.raises(ValueError, match="fps=0"):
        VideoWriter(tmp_path / "b.mkv", fps=0, width=8, height=8)
    with pytest.raises(ValueError, match=r"must be even, got 9x8"):
        VideoWriter(tmp_path / "d.mp4", fps=30, width=9, height=8, codec="libx264")
    with pytest.raises(ValueError, match="crf and bframes"):
        write_video(tmp_path / "c.mkv", pattern_frames(2, 8, 8), fps=30, codec="ffv1", crf=0)


def test_x264_output_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    # A moving square over a noisy gradient: with x264's macroblock tree on, about half of these runs differ.
    generator = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = []
    for t in range(16):
        image = (80 + x + y).expand(3, 64, 64).clone()
        image[:, 20:36, 4 + 2 * t : 20 + 2 * t] = torch.tensor([250.0, 40.0, 10.0])[:, None, None]
        images.append(image + 6 * torch.randn(3, 64, 64, generator=generator))
    frames = torch.stack(images).clamp(0, 255).round().to(torch.uint8)
    encodings = {write_video(tmp_path / f"{i}.mp4", frames, fps=15, gop=12).read_bytes() for i in range(12)}
    assert len(encodings) == 1


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_keeps_every_frame_time_across_writes(tmp_path: Path, suffix: str) -> None:
    # Gaps from 1/60 s to 1/12 s around an average of about 22 fps; the 64-frame write boundaries fall on the
    # shortest gap (much less than 1 / fps), the longest one, and the shortest again.
    gaps = np.tile([1 / 60, 1 / 30, 1 / 24, 1 / 12, 1 / 60, 1 / 30], 30)[:149]
    gaps[[63, 127]] = 1 / 60
    gaps[[31, 95]] = 1 / 12
    pts_seconds = np.concatenate([[0.0], np.cumsum(gaps)]) + 0.5  # not starting at 0 either
    frames = pattern_frames(len(pts_seconds), 16, 16)
    target = tmp_path / f"vfr{suffix}"
    fps = len(pts_seconds) / (pts_seconds[-1] - pts_seconds[0])
    with VideoWriter(target, fps=fps, width=16, height=16, codec="libx264rgb", crf=0) as writer:
        for start in range(0, len(frames), 64):
            writer.write(frames[start : start + 64], pts_seconds=pts_seconds[start : start + 64])
    with av.open(str(target)) as container:
        stream_time_base = container.streams.video[0].time_base
    assert stream_time_base is not None
    time_base = float(stream_time_base)
    with VideoReader(target) as reader:
        np.testing.assert_allclose(reader.pts_seconds, pts_seconds, rtol=0, atol=time_base)
        assert frame_ids(reader.get_frames(0, len(pts_seconds)).data) == list(range(len(pts_seconds)))


def test_a_frame_not_after_the_previous_write_is_refused(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "a.mkv", fps=30, width=8, height=8) as writer:
        writer.write(pattern_frames(2, 8, 8), pts_seconds=np.array([0.0, 0.1]))
        with pytest.raises(ValueError, match="increase strictly across all written frames"):
            writer.write(pattern_frames(1, 8, 8), pts_seconds=np.array([0.1]))
        writer.write(pattern_frames(1, 8, 8), pts_seconds=np.array([0.101]))  # sooner than 1 / fps is fine


_FILE_SIZE_LIMIT_SCRIPT = """
import resource, signal, sys
import torch
from vidfit.io import VideoWriter

# Past the limit a write fails with EFBIG instead of the process being killed by SIGXFSZ, as under `ulimit -f`.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
noise = torch.Generator().manual_seed(0)
try:
    with VideoWriter(sys.argv[1], fps=30, width=64, height=64, codec="libx264rgb", crf=0) as writer:
        for _ in range(200):
            writer.write(torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=noise))
except Exception as error:
    print(type(error).__name__, error)
    sys.exit(3)
"""


def test_a_file_size_limit_leaves_no_temp_file(tmp_path: Path) -> None:
    # The encoder fails mid-write, then again while closing (the trailer cannot be written either):
    # the partial file must still go, and the error seen is the write's.
    target = tmp_path / "out" / "clip.mkv"
    done = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT_SCRIPT, str(target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "File too large" in done.stdout
    assert list(target.parent.iterdir()) == []


def test_abort_removes_the_temp_file_when_closing_the_container_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "clip.mp4"
    writer = VideoWriter(target, fps=30, width=8, height=8)
    writer.write(pattern_frames(3, 8, 8))
    container = writer._container
    assert container is not None
    real_close = container.close

    def failing_close() -> None:
        real_close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "_container", _Proxy(container, close=failing_close))
    with pytest.raises(RuntimeError, match="interrupted"), writer:
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_into_place_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "clip.mkv"
    target.mkdir()  # a folder where the video should go: the final rename fails
    with pytest.raises(IsADirectoryError), VideoWriter(target, fps=30, width=8, height=8) as writer:
        writer.write(pattern_frames(2, 8, 8))
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mkv"]
    assert target.is_dir()


class _Proxy:
    """Stands in for an object, with some attributes replaced."""

    def __init__(self, wrapped: object, **replaced: object) -> None:
        self._wrapped, self._replaced = wrapped, replaced

    def __getattr__(self, name: str) -> object:
        return self._replaced[name] if name in self._replaced else getattr(self._wrapped, name)
