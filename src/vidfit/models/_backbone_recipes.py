"""Building the backbones: torchvision networks built with ``weights=None``, cut and wrapped.

Pretrained weights come from torchvision's weights API (``pretrained="kinetics400"``, through the torch hub
cache) or from a local ``state_dict`` of the torchvision model (`pretrained_path`, e.g. saved from
``r3d_18(weights=...).state_dict()``). r3d_34 and r3d_50 are 3D ResNets assembled from torchvision's
`VideoResNet` parts the way it builds r3d_18 (basic or bottleneck blocks, [3, 4, 6, 3] of them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import video as tv_video
from torchvision.models.video.resnet import BasicBlock, BasicStem, Bottleneck, Conv3DSimple

from vidfit.io import CheckpointError, read_checkpoint
from vidfit.models._backbones import (
    _S3D,
    BACKBONES,
    InputConstraints,
    VideoBackbone,
    _MViT,
    _Swin3D,
    _Tiny,
    _VideoResNet,
    canonical_backbone,
)
from vidfit.models._hf import hf_constraints, is_hf_backbone
from vidfit.models._hf_backbone import build_hf_backbone
from vidfit.models._lora import LoraSettings
from vidfit.models._pretrained import load_pretrained_state, load_state_checked, pretrained_weights


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


def _load_state_dict_file(net: nn.Module, path: Path, *, name: str) -> None:
    """Loads a local state_dict into `net`, or says which keys or shapes in the file do not fit."""
    source = f"pretrained_path={str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    try:  # the checkpoint reader: weights_only, zip bombs refused, every bad file one error
        state = read_checkpoint(path)
    except CheckpointError as error:
        # A whole pickled model or a list is refused as "holds ...": say what the file should hold.
        advice = "; save the network's state_dict() there instead" if error.reason.startswith("holds") else ""
        raise CheckpointError(path, error.reason + advice, key="pretrained_path") from error
    load_state_checked(net, state, source=source, name=name)


def _load_weights(net: nn.Module, weights: WeightsEnum, *, pretrained: str, name: str, progress: bool) -> None:
    state = load_pretrained_state(weights, progress=progress)
    load_state_checked(net, state, source=f"pretrained={pretrained!r} ({weights.url})", name=name)


def _video_resnet(block: type[BasicBlock | Bottleneck], layers: list[int]) -> tv_video.VideoResNet:
    """A 3D ResNet as torchvision builds r3d_18: full 3x3x3 convolutions in every block, after its basic stem."""
    return tv_video.VideoResNet(block, [Conv3DSimple] * 4, layers, BasicStem)


@dataclass(frozen=True)
class _Recipe:
    factory: Callable[[], nn.Module]
    kind: type[VideoBackbone]
    feature_dim: int
    stem_conv: str
    head: str | None
    constraints: InputConstraints = field(default_factory=InputConstraints)


_RECIPES: dict[str, _Recipe] = {
    "tiny": _Recipe(_tiny_net, _Tiny, 64, "0.0", None),
    "r3d_18": _Recipe(lambda: tv_video.r3d_18(weights=None), _VideoResNet, 512, "stem.0", "fc"),
    "r3d_34": _Recipe(lambda: _video_resnet(BasicBlock, [3, 4, 6, 3]), _VideoResNet, 512, "stem.0", "fc"),
    "r3d_50": _Recipe(lambda: _video_resnet(Bottleneck, [3, 4, 6, 3]), _VideoResNet, 2048, "stem.0", "fc"),
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


def backbone_constraints(name: str) -> InputConstraints:
    """The clip sizes backbone `name` (or an alias) accepts, without building it (for checking a config first).

    An ``hf:`` backbone's come from its config file (see `vidfit.models._hf`).
    """
    if is_hf_backbone(name):
        return hf_constraints(name)
    canonical = canonical_backbone(name)
    if canonical not in _RECIPES:
        raise ValueError(f"backbone={name!r} is not one of {', '.join(map(repr, BACKBONES))}")
    return _RECIPES[canonical].constraints


def build_backbone(
    *,
    name: str,
    pretrained: str | None = None,
    pretrained_path: str | Path | None = None,
    activation_checkpointing: bool = False,
    progress: bool = False,
    load_weights: bool = True,
    freeze: str = "none",
    lora: LoraSettings | None = None,
    token_drop: float = 0.0,
) -> VideoBackbone:
    """Builds a backbone, loading pretrained weights when asked.

    Input sizes: ``mvit_v2_s`` needs exactly 16 frames of 224x224 (fixed positional embeddings);
    ``s3d`` needs at least 8 frames of at least 17x17 (its pools need them; and torch 2.14 crashes in
    the CPU backward of 5-frame clips); ``swin3d_t`` pads to its patch and window sizes and, like
    ``tiny`` and the 3D ResNets, takes any size. Other sizes raise ValueError at forward time.

    Args:
        name: One of `BACKBONES`, or an alias of one (`BACKBONE_ALIASES`, e.g. ``"resnet34"``).
        pretrained: ``"kinetics400"``: torchvision's weights, from the torch hub cache (downloaded into it
            when missing); see `vidfit.models._pretrained`.
        pretrained_path: A local ``state_dict`` file of the whole network (for ``tiny``, of
            ``VideoBackbone.net``), loaded with ``weights_only=True``; its classifier is then dropped.
        activation_checkpointing: Recompute each stage in backward to save activation memory.
        progress: Show a progress bar while downloading `pretrained` weights.
        load_weights: For an ``hf:<model id or folder>`` backbone (the encoder of a Hugging Face video model,
            see `vidfit.models._hf_backbone.build_hf_backbone`): read its weights, else build it from its config.
        freeze: ``hf:`` backbones: ``none``, ``all`` or ``first:N`` blocks frozen.
        lora: ``hf:`` backbones: LoRA adapters on the blocks not frozen, or None.
        token_drop: ``hf:`` backbones: share of patch tokens dropped in training.

    Raises:
        ValueError: Unknown name, both `pretrained` and `pretrained_path`, weights torchvision does not
            have, or a state_dict whose keys or shapes do not fit (naming the file).
        FileNotFoundError: `pretrained_path` does not exist, or `pretrained` weights are neither cached nor
            downloadable (`PretrainedWeightsUnavailableError`, naming the file and the folder to put it in).
    """
    if is_hf_backbone(name):
        if pretrained is not None or pretrained_path is not None:
            raise ValueError(f"backbone={name!r} brings its own weights: drop pretrained and pretrained_path")
        return build_hf_backbone(
            name=name, load_weights=load_weights, activation_checkpointing=activation_checkpointing, freeze=freeze,
            lora=lora, token_drop=token_drop,
        )  # fmt: skip
    if freeze != "none" or lora is not None or token_drop:
        raise ValueError(f"freeze, lora and token_drop apply to hf: backbones, not to backbone={name!r}")
    constraints = backbone_constraints(name)  # checks the name
    name = canonical_backbone(name)
    if pretrained is not None and pretrained_path is not None:
        raise ValueError(f"pretrained={pretrained!r} and pretrained_path={str(pretrained_path)!r}: give one of them")
    weights = None if pretrained is None else pretrained_weights(backbone=name, pretrained=pretrained)
    recipe = _RECIPES[name]
    net = recipe.factory()
    if weights is not None and pretrained is not None:
        _load_weights(net, weights, pretrained=pretrained, name=name, progress=progress)
    elif pretrained_path is not None:
        _load_state_dict_file(net, Path(pretrained_path), name=name)
    if recipe.head is not None:
        setattr(net, recipe.head, nn.Identity())  # the classifier heads are replaced by ours
    backbone = recipe.kind(
        name=name, net=net, feature_dim=recipe.feature_dim, stem_conv=recipe.stem_conv, constraints=constraints
    )
    backbone.activation_checkpointing = activation_checkpointing
    return backbone
