"""Shared fixtures: tiny videos written at test time, and the CUDA marker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.videos import pattern_frames
from vidfit.io import write_video


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


MakeVideo = Callable[..., tuple[Path, torch.Tensor]]


@pytest.fixture
def make_video(tmp_path: Path) -> MakeVideo:
    """Factory writing a pattern video; returns its path and the frames that went in.

    Keyword arguments: name, num_frames, height, width, fps, codec, gop, crf, bframes, pts_seconds.
    The default is lossless RGB H.264 in Matroska, so decoded frames compare exactly.
    """

    def make(
        name: str = "video.mkv",
        *,
        num_frames: int = 24,
        height: int = 32,
        width: int = 48,
        fps: float = 30.0,
        codec: str = "libx264rgb",
        gop: int | None = 8,
        crf: int | None = 0,
        bframes: int | None = None,
        pts_seconds: torch.Tensor | None = None,
    ) -> tuple[Path, torch.Tensor]:
        frames = pattern_frames(num_frames, height, width)
        path = write_video(
            tmp_path / name,
            frames,
            fps=fps,
            codec=codec,
            gop=gop,
            crf=crf if codec.startswith("libx264") else None,
            bframes=bframes,
            pts_seconds=pts_seconds,
        )
        return path, frames

    return make
