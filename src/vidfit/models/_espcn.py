"""ESPCN for video super-resolution, with early fusion of neighbouring frames.

Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network" (2016): all convolutions run at low resolution and a final
PixelShuffle rearranges ``channels * scale**2`` maps into the high-resolution frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALES = (2, 3, 4)


class ESPCN(nn.Module):
    """Upscales the centre of `num_frames` low-resolution frames stacked on channels.

    The network predicts a residual over the bicubic upscale of the centre frame. Its last convolution
    starts at zero, so an untrained model already returns bicubic, and training only has to learn the
    missing high frequencies instead of first learning to copy its input; this converges faster and
    never starts worse than the usual baseline. Outputs are not clamped (the loss needs the gradient);
    clamp to [0, 1] before converting to images.

    Attributes:
        num_frames: Low-resolution frames per sample (odd; the middle one is upscaled).
        scale: Upscaling factor.
        channels: Colour channels per frame.
    """

    def __init__(self, *, num_frames: int, scale: int, channels: int, features: tuple[int, int]) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.scale = scale
        self.channels = channels
        first, second = features
        last = nn.Conv2d(second, channels * scale**2, kernel_size=3, padding=1)
        for param in last.parameters():
            nn.init.zeros_(param)
        self.body = nn.Sequential(
            nn.Conv2d(num_frames * channels, first, kernel_size=5, padding=2),
            nn.Tanh(),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.Tanh(),
            last,
            nn.PixelShuffle(scale),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Super-resolves the centre frame.

        Args:
            frames: (B, num_frames, channels, h, w), uint8 (as loaders ship them, scaled here on the
                model's device) or float in [0, 1].

        Returns:
            The centre frame upscaled, float (B, channels, h * scale, w * scale) on the [0, 1] scale.

        Raises:
            ValueError: `frames` is not (B, num_frames, channels, h, w).
        """
        if frames.ndim != 5 or frames.shape[1:3] != (self.num_frames, self.channels):
            raise ValueError(
                f"frames must be (B, num_frames={self.num_frames}, channels={self.channels}, h, w), "
                f"got shape {tuple(frames.shape)}"
            )
        if frames.dtype == torch.uint8:
            frames = frames.float().div_(255)
        batch, _, _, height, width = frames.shape
        centre = frames[:, self.num_frames // 2]
        bicubic = F.interpolate(centre, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return bicubic + self.body(frames.reshape(batch, -1, height, width))


def build_espcn(
    *, num_frames: int = 3, scale: int = 4, channels: int = 3, features: tuple[int, int] = (64, 32)
) -> ESPCN:
    """Builds an ESPCN that upscales the centre of `num_frames` frames by `scale`.

    Args:
        num_frames: Odd number of consecutive low-resolution frames fused on channels.
        scale: 2, 3 or 4.
        channels: Colour channels per frame.
        features: Channels of the 5x5 and the 3x3 hidden convolutions.

    Raises:
        ValueError: A scale not in 2, 3, 4, an even or non-positive `num_frames`, or non-positive sizes.
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is not one of {', '.join(map(repr, SCALES))}")
    if num_frames < 1 or num_frames % 2 == 0:
        raise ValueError(f"num_frames={num_frames!r} must be odd and positive, so that there is a centre frame")
    if channels < 1 or len(features) != 2 or min(features) < 1:
        raise ValueError(f"channels={channels!r} and features={features!r} must be positive (features: two sizes)")
    return ESPCN(num_frames=num_frames, scale=scale, channels=channels, features=(features[0], features[1]))
