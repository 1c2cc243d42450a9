"""Pretrained backbone weights from torchvision's weights API, and the input normalization they expect.

``pretrained="kinetics400"`` picks the Kinetics-400 weights torchvision publishes for a video backbone.
They are read from the torch hub cache (``torch.hub.get_dir()/checkpoints``), downloaded into it when
missing and the network is reachable; offline, `PretrainedWeightsUnavailableError` names the file to put
there. The model normalizes its input with the mean and std of the weights' own transforms, so fine-tuning
sees the statistics the weights were trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum, get_model_weights

from vidfit.models._backbones import BACKBONES, canonical_backbone

Pretrained = Literal["kinetics400"]
# Each choice of `pretrained`, and the member of a torchvision weights enum it stands for.
PRETRAINED_WEIGHTS: dict[str, str] = {"kinetics400": "KINETICS400_V1"}
# Backbones built from a torchvision video model of the same name (tiny, r3d_34 and r3d_50 have no weights there).
_TORCHVISION_MODELS = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t")
# Kinetics-400 statistics of the 3D ResNets' weights: the normalization of a backbone without torchvision weights.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


class PretrainedWeightsUnavailableError(FileNotFoundError):
    """Pretrained weights are not in the torch hub cache and could not be downloaded."""


def backbones_with_weights(pretrained: str) -> tuple[str, ...]:
    """The backbones torchvision has `pretrained` weights for, in `BACKBONES` order."""
    member = PRETRAINED_WEIGHTS[pretrained]
    return tuple(
        name for name in BACKBONES if name in _TORCHVISION_MODELS and member in get_model_weights(name).__members__
    )


def pretrained_problems(*, backbone: str, pretrained: str | None, prefix: str = "") -> list[str]:
    """What is wrong with asking for `pretrained` weights of `backbone`; empty when they exist (or none are asked)."""
    if pretrained is None:
        return []
    if pretrained not in PRETRAINED_WEIGHTS:
        allowed = ", ".join(map(repr, PRETRAINED_WEIGHTS))
        return [f"{prefix}pretrained={pretrained!r} is not one of {allowed} (or null for none)"]
    name = canonical_backbone(backbone)
    available = backbones_with_weights(pretrained)
    if name in BACKBONES and name not in available:
        return [
            f"{prefix}pretrained={pretrained!r}: torchvision has no such weights for {prefix}backbone={backbone!r}; "
            f"backbones with them: {', '.join(map(repr, available))}"
        ]
    return []


def pretrained_weights(*, backbone: str, pretrained: str) -> WeightsEnum:
    """The torchvision weights `pretrained` of `backbone` (their metadata only; nothing is downloaded).

    Raises:
        ValueError: An unknown choice, or a backbone torchvision has no such weights for.
    """
    if problems := pretrained_problems(backbone=backbone, pretrained=pretrained):
        raise ValueError(problems[0])
    enum = get_model_weights(canonical_backbone(backbone))
    return enum[PRETRAINED_WEIGHTS[pretrained]]


def normalization(*, backbone: str, pretrained: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (per RGB channel, of [0, 1] values) a backbone's input is normalized with.

    Those of the weights' transforms when `pretrained` is given (swin3d_t's Kinetics weights use ImageNet's),
    else the Kinetics statistics of the 3D ResNets.
    """
    if pretrained is None:
        return KINETICS_MEAN, KINETICS_STD
    transforms = pretrained_weights(backbone=backbone, pretrained=pretrained).transforms()
    return tuple(transforms.mean), tuple(transforms.std)


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torch's hub cache keeps `weights` (``$TORCH_HOME/hub/checkpoints/<file>`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PurePosixPath(urlparse(weights.url).path).name


def load_pretrained_state(weights: WeightsEnum, *, progress: bool = False) -> Mapping[str, torch.Tensor]:
    """Reads the state_dict of `weights` from the torch hub cache, downloading it there first when missing.

    The download is checked against the hash in its file name; the file is read with ``weights_only=True``.

    Raises:
        PretrainedWeightsUnavailableError: Not cached and the download failed (e.g. offline); the message
            names the file and the folder to put it in.
    """
    path = cached_weights_path(weights)
    try:
        return weights.get_state_dict(progress=progress, check_hash=True, weights_only=True, map_location="cpu")
    except OSError as error:  # URLError, timeouts and refused connections are all OSErrors
        if path.is_file():
            raise
        raise PretrainedWeightsUnavailableError(
            f"{weights} are not in the torch hub cache and could not be downloaded ({error}): "
            f"download {weights.url} and put {path.name} in {path.parent}"
        ) from error


def load_state_checked(net: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, name: str) -> None:
    """Loads `state` into `net`, or raises ValueError naming `source` and the keys or shapes that do not fit."""
    if problems := state_dict_problems(net.state_dict(), state):
        raise ValueError(f"{source} does not fit backbone {name!r}: " + "; ".join(problems))
    net.load_state_dict(state)


def state_dict_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> list[str]:
    """Why `found` does not load into a network whose state_dict is `expected`; empty when it loads.

    Keys missing, unexpected, or of another shape (``key (found)!=(expected)``): five of each named, and the count.
    """
    problems = []
    if missing := sorted(expected.keys() - found.keys()):
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected := sorted(found.keys() - expected.keys()):
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    shared = sorted(expected.keys() & found.keys())
    if mismatched := [
        f"{k} {tuple(found[k].shape)}!={tuple(expected[k].shape)}"
        for k in shared
        if found[k].shape != expected[k].shape
    ]:
        problems.append(f"shape mismatches (file!=model): {_preview(mismatched)}")
    return problems


def _preview(keys: list[str]) -> str:
    shown = ", ".join(keys[:5])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > 5 else shown
