"""Video backbones behind one interface: float video in, temporal feature map out.

Every backbone maps a normalized float video (B, C_in, T, H, W) to features (B, feature_dim, T', H', W'),
keeping a time axis so that both clip logits and per-frame logits can be made from it. The torchvision
networks are built with ``weights=None`` (nothing is ever downloaded); `pretrained_path` loads a local
``state_dict`` of the torchvision model (e.g. saved from ``r3d_18(weights=...).state_dict()``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import nn
from torchvision.models import video as tv_video

from vidfit.models._checkpointing import run_stage

BackboneName = Literal["tiny", "r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t"]
BACKBONES: tuple[str, ...] = get_args(BackboneName)


@dataclass(frozen=True)
class InputConstraints:
    """Which clip sizes a backbone accepts.

    Attributes:
        min_frames: Fewest frames T.
        min_size: Smallest height and width.
        exact_shape: (T, H, W) the backbone needs exactly (its positional embeddings are fixed), or None.
    """

    min_frames: int = 1
    min_size: int = 1
    exact_shape: tuple[int, int, int] | None = None

    def check(self, name: str, shape: tuple[int, int, int]) -> None:
        """Raises ValueError naming the backbone when a clip of (T, H, W) `shape` does not fit."""
        if self.exact_shape is not None and shape != self.exact_shape:
            raise ValueError(f"backbone {name!r} needs clips of exactly (T, H, W)={self.exact_shape}, got {shape}")
        frames, height, width = shape
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


def _tiny_net() -> nn.Sequential:
    """Three Conv3d-BN-ReLU-pool stages of 16, 32 and 64 channels (about 70k parameters)."""

    def stage(c_in: int, c_out: int, *, stride: tuple[int, int, int], pool: tuple[int, int, int]) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=pool, stride=pool, ceil_mode=True),  # ceil: any size >= 1 works
        )

    return nn.Sequential(
        stage(3, 16, stride=(1, 2, 2), pool=(1, 2, 2)),
        stage(16, 32, stride=(1, 1, 1), pool=(1, 2, 2)),
        stage(32, 64, stride=(1, 1, 1), pool=(2, 2, 2)),
    )


def _preview(keys: list[str]) -> str:
    shown = ", ".join(keys[:5])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > 5 else shown


def _load_state_dict_file(net: nn.Module, path: Path, *, name: str) -> None:
    """Loads a local state_dict into `net`, or says which keys or shapes in the file do not fit."""
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_path={str(path)!r}: no such file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"pretrained_path={str(path)!r} holds a {type(state).__name__}, not a state_dict")
    expected = net.state_dict()
    problems = []
    if missing := sorted(expected.keys() - state.keys()):
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected := sorted(state.keys() - expected.keys()):
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    shared = sorted(expected.keys() & state.keys())
    if mismatched := [
        f"{k} {tuple(state[k].shape)}!={tuple(expected[k].shape)}"
        for k in shared
        if state[k].shape != expected[k].shape
    ]:
        problems.append(f"shape mismatches: {_preview(mismatched)}")
    if problems:
        raise ValueError(f"pretrained_path={str(path)!r} does not fit backbone {name!r}: " + "; ".join(problems))
    net.load_state_dict(state)


@dataclass(frozen=True)
class _Recipe:
    factory: Callable[[], nn.Module]
    kind: type[VideoBackbone]
    feature_dim: int
    stem_conv: str
    head: str | None
    constraints: InputConstraints = InputConstraints()


_RECIPES: dict[str, _Recipe] = {
    "tiny": _Recipe(_tiny_net, _Tiny, 64, "0.0", None),
    "r3d_18": _Recipe(lambda: tv_video.r3d_18(weights=None), _VideoResNet, 512, "stem.0", "fc"),
    "mc3_18": _Recipe(lambda: tv_video.mc3_18(weights=None), _VideoResNet, 512, "stem.0", "fc"),
    "r2plus1d_18": _Recipe(lambda: tv_video.r2plus1d_18(weights=None), _VideoResNet, 512, "stem.0", "fc"),
    "s3d": _Recipe(
        lambda: tv_video.s3d(weights=None),
        _S3D,
        1024,
        "features.0.0.0",
        "classifier",
        InputConstraints(min_frames=8, min_size=17),
    ),
    "mvit_v2_s": _Recipe(
        lambda: tv_video.mvit_v2_s(weights=None),
        _MViT,
        768,
        "conv_proj",
        "head",
        InputConstraints(exact_shape=(16, 224, 224)),
    ),
    "swin3d_t": _Recipe(lambda: tv_video.swin3d_t(weights=None), _Swin3D, 768, "patch_embed.proj", "head"),
}


def build_backbone(
    *, name: str, pretrained_path: str | Path | None = None, activation_checkpointing: bool = False
) -> VideoBackbone:
    """Builds a backbone without downloading anything.

    Input sizes: ``mvit_v2_s`` needs exactly 16 frames of 224x224 (fixed positional embeddings);
    ``s3d`` needs at least 8 frames of at least 17x17 (its pools need them; and torch 2.14 crashes in
    the CPU backward of 5-frame clips); ``swin3d_t`` pads to its patch and window sizes and, like
    ``tiny`` and the 3D ResNets, takes any size. Other sizes raise ValueError at forward time.

    Args:
        name: One of `BACKBONES`.
        pretrained_path: A local ``state_dict`` file of the whole network (for ``tiny``, of
            ``VideoBackbone.net``), loaded with ``weights_only=True``; its classifier is then dropped.
        activation_checkpointing: Recompute each stage in backward to save activation memory.

    Raises:
        ValueError: Unknown name, or a state_dict whose keys or shapes do not fit (naming the file).
        FileNotFoundError: `pretrained_path` does not exist.
    """
    if name not in _RECIPES:
        raise ValueError(f"backbone={name!r} is not one of {', '.join(map(repr, BACKBONES))}")
    recipe = _RECIPES[name]
    net = recipe.factory()
    if pretrained_path is not None:
        _load_state_dict_file(net, Path(pretrained_path), name=name)
    if recipe.head is not None:
        setattr(net, recipe.head, nn.Identity())  # the classifier heads are replaced by ours
    backbone = recipe.kind(
        name=name, net=net, feature_dim=recipe.feature_dim, stem_conv=recipe.stem_conv, constraints=recipe.constraints
    )
    backbone.activation_checkpointing = activation_checkpointing
    return backbone
