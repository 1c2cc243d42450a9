"""An anchor-free temporal action detector of the ActionFormer family, over a whole video's features.

Zhang, Wu and Li, "ActionFormer: Localizing Moments of Actions with Transformers" (ECCV 2022), in the
convolutional form its code offers (``backbone_type: conv``): an embedding, a stem at full resolution, and a
pyramid of levels each half as long as the one before; at every step of every level, shared heads give the
score of each class and the distances to the action's start and end (in that level's stride, scaled per level).
Training targets are assigned as the paper's code does: a step is a positive of a true segment when it lies
near its centre (centre sampling, radius 1.5 strides) and the farther of its two distances falls in its level's
regression range; of several, the shortest segment. Losses are sigmoid focal loss over every valid step and
class, and the distance-IoU loss of the positives, both over the batch's positives. Decoding keeps the
confident (step, class) pairs, turns them into segments and removes duplicates with non-maximum suppression.
Every layer masks the padded steps, so a batch of whole videos pads them to one length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Distances (in level-0 steps) each level regresses, from ActionFormer's defaults: level l takes [4*2^(l-1), 4*2^l).
_RANGE_STEPS = 4
_CENTRE_RADIUS = 1.5
_PRIOR_PROBABILITY = 0.01
_FOCAL_ALPHA, _FOCAL_GAMMA = 0.25, 2.0
# Decoding: pairs below this score are dropped before NMS; at most this many per level, and per video after.
_MIN_SCORE, _TOP_PER_LEVEL, _MAX_SEGMENTS, _NMS_IOU = 0.001, 2000, 200, 0.5


class _ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of every step of (B, C, L)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _Block(nn.Module):
    """Two masked convolutions with a residual; `stride` 2 halves the length (and the mask)."""

    def __init__(self, channels: int, *, stride: int, dropout: float) -> None:
        super().__init__()
        self.stride = stride
        self.first = nn.Conv1d(channels, channels, 3, stride=stride, padding=1)
        self.second = nn.Conv1d(channels, channels, 3, padding=1)
        self.norms = nn.ModuleList([_ChannelNorm(channels), _ChannelNorm(channels)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask[:, :, :: self.stride]
        out = F.relu(self.norms[0](self.first(x))) * mask
        out = self.dropout(self.norms[1](self.second(out)))
        return F.relu(out + x[:, :, :: self.stride]) * mask, mask


class _Head(nn.Module):
    def __init__(self, channels: int, outputs: int, *, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=1) for _ in range(num_layers))
        self.norms = nn.ModuleList(_ChannelNorm(channels) for _ in range(num_layers))
        self.out = nn.Conv1d(channels, outputs, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = F.relu(norm(layer(x))) * mask
        return self.out(x) * mask


@dataclass(frozen=True)
class PyramidGeometry:
    """Where the steps of every level lie, levels one after another.

    Attributes:
        positions: (P,) each step's place in level-0 steps.
        strides: (P,) each step's level stride.
        mask: (B, P) the steps inside the videos.
    """

    positions: torch.Tensor
    strides: torch.Tensor
    mask: torch.Tensor


def pyramid_geometry(mask: torch.Tensor, *, num_levels: int) -> PyramidGeometry:
    """The steps of each level for videos whose valid steps are `mask` (B, L), padded as the detector pads them."""
    max_stride = 2 ** (num_levels - 1)
    length = mask.shape[1]
    padded = F.pad(mask, (0, -(-length // max_stride) * max_stride - length))
    positions, strides, masks = [], [], []
    for level in range(num_levels):
        stride = 2**level
        level_mask = padded[:, ::stride]
        positions.append(torch.arange(level_mask.shape[1], device=mask.device, dtype=torch.float32) * stride)
        strides.append(torch.full((level_mask.shape[1],), float(stride), device=mask.device))
        masks.append(level_mask)
    return PyramidGeometry(torch.cat(positions), torch.cat(strides), torch.cat(masks, dim=1))


@dataclass(frozen=True)
class PyramidOutput:
    """What the detector says at every step of every level, levels one after another.

    Attributes:
        class_logits: (B, P, C) over the P steps of all levels.
        offsets: (B, P, 2) distances to the start and the end, in the step's stride, >= 0.
        geometry: Where the steps lie.
    """

    class_logits: torch.Tensor
    offsets: torch.Tensor
    geometry: PyramidGeometry


class ActionDetector(nn.Module):
    """Class scores and start/end distances at every step of a feature pyramid.

    Args:
        in_channels: Channels of the features.
        num_classes: Classes (background included when the labels have one: it is simply never a target).
        channels: Channels of every layer.
        num_levels: Pyramid levels; the input length is padded to a multiple of 2^(levels - 1).
        num_stem_blocks: Full-resolution blocks before the pyramid.
        dropout: Dropout inside the blocks.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 64,
        num_levels: int = 6,
        num_stem_blocks: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if min(in_channels, num_classes, channels, num_levels) < 1 or num_stem_blocks < 0 or not 0 <= dropout < 1:
            raise ValueError(
                f"need in_channels, num_classes, channels, num_levels >= 1, num_stem_blocks >= 0 and dropout in "
                f"[0, 1), got {in_channels}, {num_classes}, {channels}, {num_levels}, {num_stem_blocks}, {dropout}"
            )
        self.num_levels = num_levels
        self.embed = nn.ModuleList(
            [nn.Conv1d(in_channels, channels, 3, padding=1), nn.Conv1d(channels, channels, 3, padding=1)]
        )
        self.embed_norms = nn.ModuleList([_ChannelNorm(channels), _ChannelNorm(channels)])
        self.stem = nn.ModuleList(_Block(channels, stride=1, dropout=dropout) for _ in range(num_stem_blocks))
        self.branch = nn.ModuleList(_Block(channels, stride=2, dropout=dropout) for _ in range(num_levels - 1))
        self.classify = _Head(channels, num_classes)
        self.regress = _Head(channels, 2)
        self.scales = nn.Parameter(torch.ones(num_levels))
        # Focal loss starts from a rare positive, as RetinaNet and ActionFormer do.
        assert self.classify.out.bias is not None
        nn.init.constant_(self.classify.out.bias, -math.log((1 - _PRIOR_PROBABILITY) / _PRIOR_PROBABILITY))

    @property
    def max_stride(self) -> int:
        return 2 ** (self.num_levels - 1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> PyramidOutput:
        """The pyramid's outputs for features (B, C_in, L) and their valid steps (B, L)."""
        length = features.shape[-1]
        padded = -(-length // self.max_stride) * self.max_stride
        x = F.pad(features, (0, padded - length))
        weights = F.pad(mask, (0, padded - length))[:, None].to(features.dtype)
        for conv, norm in zip(self.embed, self.embed_norms, strict=True):
            x = F.relu(norm(conv(x))) * weights
        for block in self.stem:
            x, weights = block(x, weights)
        levels = [(x, weights)]
        for block in self.branch:
            levels.append(block(*levels[-1]))
        logits, offsets = [], []
        for level, (x, weights) in enumerate(levels):
            logits.append(self.classify(x, weights).transpose(1, 2))
            offsets.append(F.relu(self.scales[level] * self.regress(x, weights)).transpose(1, 2))
        geometry = pyramid_geometry(mask, num_levels=self.num_levels)
        return PyramidOutput(torch.cat(logits, 1), torch.cat(offsets, 1), geometry)

    def regression_ranges(self, strides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) distance in level-0 steps each step of a level of `strides` regresses."""
        low = torch.where(strides > 1, _RANGE_STEPS * strides / 2, torch.zeros_like(strides))
        high = torch.where(strides >= self.max_stride, torch.full_like(strides, float("inf")), _RANGE_STEPS * strides)
        return low, high
