"""Frames that carry their own index, so a test can tell which frame a decoder returned."""

from __future__ import annotations

import torch


def pattern_frames(num_frames: int, height: int = 32, width: int = 48, *, first_index: int = 0) -> torch.Tensor:
    """Frames whose pixels say which frame they are: red = index % 256, green = index // 256 * 16.

    A bar moving one column per frame gives the encoder real motion to predict.
    """
    frames = torch.zeros(num_frames, 3, height, width, dtype=torch.uint8)
    for offset in range(num_frames):
        index = first_index + offset
        frames[offset, 0] = index % 256
        frames[offset, 1] = (index // 256) * 16 % 256
        frames[offset, 2, :, index % width] = 255
    return frames


def frame_ids(frames: torch.Tensor) -> list[int]:
    """Reads back the indices `pattern_frames` painted (robust to lossy coding)."""
    red = frames[:, 0].float().mean(dim=(1, 2))
    green = frames[:, 1].float().mean(dim=(1, 2))
    return [round(r) + 256 * round(g / 16) for r, g in zip(red.tolist(), green.tolist(), strict=True)]
