"""Video backbones behind one interface: float video in, temporal feature map out.

Every backbone maps a normalized float video (B, C_in, T, H, W) to features (B, feature_dim, T', H', W'),
keeping a time axis so that both clip logits and per-frame logits can be made from it. They are built by
`vidfit.models._backbone_recipes.build_backbone`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, get_args

import torch
from torch import nn
from torchvision.models import video as tv_video

from vidfit.models._checkpointing import run_stage

BackboneName = Literal["tiny", "r3d_18", "r3d_34", "r3d_50", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t"]
BACKBONES: tuple[str, ...] = get_args(BackboneName)
# Other names users know a backbone by (from their notes), each mapped to the name vidfit uses.
BACKBONE_ALIASES: dict[str, str] = {"resnet34": "r3d_34"}


def canonical_backbone(name: str) -> str:
    """The name vidfit uses for backbone `name`: aliases are resolved, other names are returned as given."""
    return BACKBONE_ALIASES.get(name, name)


@dataclass(frozen=True)
class InputConstraints:
    """Which clip sizes a backbone accepts.

    Attributes:
        min_frames: Fewest frames T.
        min_size: Smallest height and width.
        exact_shape: (T, H, W) the backbone needs exactly (its positional embeddings are fixed), or None.
        exact_size: (H, W) the backbone needs exactly, at any number of frames from `min_frames`, or None.
    """

    min_frames: int = 1
    min_size: int = 1
    exact_shape: tuple[int, int, int] | None = None
    exact_size: tuple[int, int] | None = None

    @property
    def min_window_frames(self) -> int:
        """Fewest frames of a clip or an inference window (all of them for a fixed shape)."""
        return self.exact_shape[0] if self.exact_shape is not None else self.min_frames

    def check(self, name: str, shape: tuple[int, int, int]) -> None:
        """Raises ValueError naming the backbone when a clip of (T, H, W) `shape` does not fit."""
        if self.exact_shape is not None and shape != self.exact_shape:
            raise ValueError(f"backbone {name!r} needs clips of exactly (T, H, W)={self.exact_shape}, got {shape}")
        frames, height, width = shape
        if self.exact_size is not None and (height, width) != self.exact_size:
            raise ValueError(
                f"backbone {name!r} needs frames of exactly (H, W)={self.exact_size}, got (T, H, W)={shape}"
            )
        if frames < self.min_frames or min(height, width) < self.min_size:
            raise ValueError(
                f"backbone {name!r} needs at least {self.min_frames} frames of at least "
                f"{self.min_size}x{self.min_size} pixels, got (T, H, W)={shape}"
            )


class VideoBackbone(nn.Module, ABC):
    """A video network cut before its pooling and classifier.

    Subclasses compute the features stage by stage through `_stage`, which runs a stage under
    non-reentrant activation checkpointing when `activation_checkpointing` is on and gradients are needed.

    Attributes:
        name: One of `BACKBONES`.
        feature_dim: Channels C of the feature map.
        constraints: The clip sizes it accepts.
        activation_checkpointing: Recompute each stage's activations in backward instead of storing them.
    """

    def __init__(
        self, *, name: str, net: nn.Module, feature_dim: int, stem_conv: str, constraints: InputConstraints
    ) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.feature_dim = feature_dim
        self.constraints = constraints
        self.activation_checkpointing = False
        self._stem_conv = stem_conv

    @property
    def stem(self) -> nn.Conv3d:
        """The first convolution, which sees the input channels."""
        conv = self.net.get_submodule(self._stem_conv)
        assert isinstance(conv, nn.Conv3d)
        return conv

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Computes the feature map.

        Args:
            video: Normalized float video (B, C_in, T, H, W).

        Returns:
            Features (B, feature_dim, T', H', W').
        """
        frames, height, width = video.shape[2:]
        self.constraints.check(self.name, (frames, height, width))
        # Follow the weights' layout, so `model.to(memory_format=torch.channels_last_3d)` is all it takes.
        if self.stem.weight.is_contiguous(memory_format=torch.channels_last_3d):
            video = video.contiguous(memory_format=torch.channels_last_3d)
        return self._features(video)

    def widen_stem(self, *, num_views: int) -> None:
        """Makes the stem take `num_views` videos stacked on channels (early fusion).

        The weights are tiled over the views and divided by `num_views`, so identical views give the
        activations of the original (possibly pretrained) stem.
        """
        old = self.stem
        new = nn.Conv3d(
            old.in_channels * num_views,
            old.out_channels,
            kernel_size=old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride,  # type: ignore[arg-type]
            padding=old.padding,  # type: ignore[arg-type]
            bias=old.bias is not None,
        )
        with torch.no_grad():
            new.weight.copy_(old.weight.repeat(1, num_views, 1, 1, 1) / num_views)
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
        self.net.set_submodule(self._stem_conv, new)

    def _stage(self, stage: nn.Module, *args: Any) -> Any:
        return run_stage(stage, *args, checkpointing=self.activation_checkpointing)

    @abstractmethod
    def _features(self, video: torch.Tensor) -> torch.Tensor: ...


class _Sequential(VideoBackbone):
    """A backbone that is a plain chain of stages."""

    @abstractmethod
    def _stage_modules(self) -> list[nn.Module]: ...

    def _features(self, video: torch.Tensor) -> torch.Tensor:
        x = video
        for stage in self._stage_modules():
            x = self._stage(stage, x)
        return x


class _Tiny(_Sequential):
    net: nn.Sequential

    def _stage_modules(self) -> list[nn.Module]:
        return list(self.net.children())


class _VideoResNet(_Sequential):
    net: tv_video.VideoResNet

    def _stage_modules(self) -> list[nn.Module]:
        return [self.net.stem, self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]


class _S3D(_Sequential):
    net: tv_video.S3D
    # Stages of `net.features` end at its temporal/spatial max-pools.
    _STAGE_STARTS = (0, 4, 7, 13)

    def _stage_modules(self) -> list[nn.Module]:
        features = self.net.features
        bounds = (*self._STAGE_STARTS, len(features))
        return [features[start:stop] for start, stop in pairwise(bounds)]


class _Swin3D(VideoBackbone):
    net: tv_video.SwinTransformer3d

    def _features(self, video: torch.Tensor) -> torch.Tensor:
        x = self._stage(self.net.patch_embed, video)  # (B, T', H', W', C)
        x = self.net.pos_drop(x)
        for stage in self.net.features:
            x = self._stage(stage, x)
        return self.net.norm(x).permute(0, 4, 1, 2, 3)


class _MViT(VideoBackbone):
    net: tv_video.MViT

    def _features(self, video: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = self._stage(net.conv_proj, video).flatten(2).transpose(1, 2)
        x = net.pos_encoding(x)
        thw = (net.pos_encoding.temporal_size, *net.pos_encoding.spatial_size)
        for block in net.blocks:
            x, thw = self._stage(block, x, thw)
        tokens = net.norm(x)[:, 1:]  # drop the class token; the rest is a (T', H', W') grid
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *thw)
