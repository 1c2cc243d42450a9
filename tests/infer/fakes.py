"""A model whose outputs can be computed by hand: linear in each frame's mean colour."""

from __future__ import annotations

from types import SimpleNamespace

import torch

WEIGHT = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0], [0.5, 0.0, 1.0]])


class ColourModel(torch.nn.Module):
    """Frame logits are ``mean colour (+ keypoint sum) @ WEIGHT`` per frame; clip logits their mean over time.

    Args:
        max_frames: Raises an out-of-memory error when batch * frames exceeds it, like a GPU would.
        oom_error: The error raised, `torch.OutOfMemoryError` or a RuntimeError with CUDA's message.
    """

    def __init__(self, max_frames: int | None = None, oom_error: type[RuntimeError] = torch.OutOfMemoryError) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(WEIGHT.clone())
        self.max_frames, self.oom_error = max_frames, oom_error
        self.batch_shapes: list[tuple[int, ...]] = []
        self.autocast_enabled: list[bool] = []

    def forward(
        self, video: torch.Tensor, *, keypoints: torch.Tensor | None = None, keypoint_mask: torch.Tensor | None = None
    ) -> SimpleNamespace:
        self.batch_shapes.append(tuple(video.shape))
        self.autocast_enabled.append(torch.is_autocast_enabled(video.device.type))
        if self.max_frames is not None and video.shape[0] * video.shape[3] > self.max_frames:
            raise self.oom_error("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        colour = video.float().mean(dim=(1, 4, 5)).transpose(1, 2) / 255  # (B, T, 3)
        if keypoints is not None:
            present = 1.0 if keypoint_mask is None else keypoint_mask.float().sum(dim=1)[..., None]
            colour = colour + keypoints.sum(dim=(1, 3, 4))[..., None] * present
        frame_logits = colour @ self.weight.to(colour.device)
        return SimpleNamespace(logits=frame_logits.mean(dim=1), frame_logits=frame_logits)


def random_video(num_frames: int, views: int = 2) -> torch.Tensor:
    """uint8 video (V, 3, T, 4, 4), the same for the same arguments."""
    generator = torch.Generator().manual_seed(num_frames * 10 + views)
    return torch.randint(0, 256, (views, 3, num_frames, 4, 4), generator=generator).to(torch.uint8)
