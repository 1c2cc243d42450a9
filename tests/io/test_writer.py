"""VideoWriter: exact lossless round trips, explicit timestamps, and no half-written files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.videos import pattern_frames
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
