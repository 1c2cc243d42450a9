"""The task's `model` section and its network: a 2-D convolution over frame differences, a label per frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vidfit.config import Config, DataConfig, TrainConfig

LABELS = ("idle", "motion")


@dataclass
class MotionModelConfig:
    """The `model` section: feature maps of the convolution, and the manifest label that means idle."""

    channels: int = 8
    idle_label: str = "idle"


MotionConfig = Config[MotionModelConfig, DataConfig, TrainConfig]


@dataclass(frozen=True)
class MotionOutput:
    """Logits of `LABELS`: of each clip (B, 2) and of each frame (B, T, 2), as `vidfit.infer` reads them."""

    logits: torch.Tensor
    frame_logits: torch.Tensor


class MotionNet(nn.Module):
    """How much each frame differs from the one before, seen by a 3x3 convolution and pooled to 2 logits."""

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, kernel_size=3, padding=1)
        self.head = nn.Linear(channels, len(LABELS))

    def forward(
        self, video: torch.Tensor, *, keypoints: torch.Tensor | None = None, keypoint_mask: torch.Tensor | None = None
    ) -> MotionOutput:
        """`video`: uint8 (B, V, 3, T, H, W), of which the first view is seen (keypoints are not)."""
        frames = video[:, 0].float() / 255  # (B, 3, T, H, W)
        change = (frames[:, :, 1:] - frames[:, :, :-1]).abs()
        # The first frame has no predecessor: it takes its successor's change (none in a 1-frame clip).
        change = torch.cat([change[:, :, :1], change], dim=2) if change.shape[2] else torch.zeros_like(frames)
        batch, _, num_frames, height, width = change.shape
        per_frame = change.transpose(1, 2).reshape(batch * num_frames, 3, height, width)
        features = torch.relu(self.conv(per_frame)).amax(dim=(2, 3))  # where the frame changes most
        frame_logits = self.head(features).view(batch, num_frames, len(LABELS))
        return MotionOutput(frame_logits.mean(dim=1), frame_logits)
