"""Clip augmentation on the device, after the uint8 batch has arrived (the loader workers only decode).

Random resized crop (resized back to the input size), horizontal flip and colour jitter, through
``torchvision.transforms.v2.functional``. Each clip draws one set of parameters that all its frames share,
so motion stays intact; its camera views share it too (``views="shared"``, the same crop of a scene seen
from each camera) or draw their own (``"independent"``). Keypoints follow the crop and the flip. The
parameters are drawn as torchvision's ``RandomResizedCrop`` and ``ColorJitter`` draw them, from an
optional CPU generator so that a run can be repeated; drawing on the CPU also keeps the device from
having to synchronize.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

AugmentViews = Literal["shared", "independent"]
AUGMENT_VIEWS: dict[str, str] = {
    "shared": "the views of a clip get the same crop, flip and colours",
    "independent": "each view of a clip draws its own",
}
KeypointUnits = Literal["pixels", "normalized"]
KEYPOINT_UNITS: dict[str, str] = {
    "pixels": "x, y are pixel indices of the frames given (the centre of pixel column x is at x)",
    "normalized": "x, y are fractions of the width and height, 0 at the left/top edge and 1 at the right/bottom",
}
_COLOUR_OPS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "brightness": tvf.adjust_brightness,
    "contrast": tvf.adjust_contrast,
    "saturation": tvf.adjust_saturation,
    "hue": tvf.adjust_hue,
}


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations a training batch gets; the defaults are a standard fine-tuning recipe.

    Attributes:
        enabled: Augment at all (off by default: a run config turns it on; evaluation never augments).
        scale: Range of the crop's area, as a fraction of the frame's.
        ratio: Range of the crop's aspect ratio (width / height), drawn log-uniformly.
        flip_probability: Chance of a horizontal flip.
        brightness: Brightness factor drawn from [1 - brightness, 1 + brightness].
        contrast: Contrast factor drawn from [1 - contrast, 1 + contrast].
        saturation: Saturation factor drawn from [1 - saturation, 1 + saturation].
        hue: Hue shift drawn from [-hue, hue] (at most 0.5, a half turn).
        jitter_probability: Chance that a clip's colours are jittered at all.
        views: ``"shared"`` or ``"independent"`` parameters for the views of a clip.
    """

    enabled: bool = False
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05
    jitter_probability: float = 0.8
    views: AugmentViews = "shared"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(self.scale))  # a list from YAML is fine
        object.__setattr__(self, "ratio", tuple(self.ratio))
        if problems := augment_problems(self):
            raise ValueError("; ".join(problems))


def augment_problems(config: AugmentConfig, *, prefix: str = "") -> list[str]:
    """What is wrong with `config`; empty when it is fine.

    Args:
        prefix: Put before each field's name, e.g. ``"data.augment."`` for a run config's keys.
    """
    problems = []
    if config.views not in AUGMENT_VIEWS:
        problems.append(f"{prefix}views={config.views!r} is not one of {', '.join(map(repr, AUGMENT_VIEWS))}")
    for name, pair, low in (("scale", config.scale, 0.0), ("ratio", config.ratio, 0.0)):
        if len(pair) != 2 or not low < pair[0] <= pair[1] or (name == "scale" and pair[1] > 1.0):
            bound = "0 < low <= high <= 1" if name == "scale" else "0 < low <= high"
            problems.append(f"{prefix}{name}={list(pair)!r} must be [low, high] with {bound}")
    for name in ("flip_probability", "jitter_probability"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            problems.append(f"{prefix}{name}={getattr(config, name)!r} must be in [0, 1]")
    for name in ("brightness", "contrast", "saturation"):
        if getattr(config, name) < 0.0:
            problems.append(f"{prefix}{name}={getattr(config, name)!r} must be >= 0")
    if not 0.0 <= config.hue <= 0.5:
        problems.append(f"{prefix}hue={config.hue!r} must be in [0, 0.5]")
    return problems


@dataclass
class AugmentedClips:
    """What `augment_clips` returns.

    Attributes:
        video: uint8 video (B, V, 3, T, H, W), the shape of the input.
        keypoints: Keypoints (B, V, T, K, D) moved with the crop and flip, or None when none were given.
    """

    video: torch.Tensor
    keypoints: torch.Tensor | None


@dataclass(frozen=True)
class _ClipParams:
    """One clip's draw: the crop box (in pixels of the input), the flip and the colour ops in order."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    colour: tuple[tuple[str, float], ...] = field(default=())


def augment_clips(
    video: torch.Tensor,
    keypoints: torch.Tensor | None = None,
    *,
    config: AugmentConfig,
    keypoint_units: KeypointUnits = "pixels",
    generator: torch.Generator | None = None,
) -> AugmentedClips:
    """Augments a batch of clips on its device; returns new tensors (the inputs are left as they were).

    Args:
        video: uint8 video (B, V, 3, T, H, W) on any device.
        keypoints: Float keypoints (B, V, T, K, D), x and y first (further coordinates are kept as they
            are), on any device. Points the crop leaves out get coordinates outside the frame.
        config: What to apply; nothing when ``config.enabled`` is off.
        keypoint_units: ``"pixels"`` or ``"normalized"`` (see `KEYPOINT_UNITS`).
        generator: CPU generator the parameters are drawn from; torch's default one when None.

    Raises:
        ValueError: An unknown `keypoint_units`, or a video or keypoints of the wrong dtype or shape.
    """
    if keypoint_units not in KEYPOINT_UNITS:
        raise ValueError(f"keypoint_units={keypoint_units!r} is not one of {', '.join(map(repr, KEYPOINT_UNITS))}")
    _check_inputs(video, keypoints)
    if not config.enabled:
        return AugmentedClips(video=video, keypoints=keypoints)
    batch, views, _, _, height, width = video.shape
    draws = views if config.views == "independent" else 1
    params = [[_draw(config, height, width, generator) for _ in range(draws)] for _ in range(batch)]
    out = torch.empty_like(video)
    for b, clip_params in enumerate(params):
        for v, p in enumerate(clip_params):
            picked = slice(v, v + 1) if draws > 1 else slice(None)
            out[b, picked] = _apply(video[b, picked], p, size=[height, width])
    grid = [[row[v if draws > 1 else 0] for v in range(views)] for row in params]
    moved = None if keypoints is None else _move_keypoints(keypoints, grid, (height, width), keypoint_units)
    return AugmentedClips(video=out, keypoints=moved)


def _check_inputs(video: torch.Tensor, keypoints: torch.Tensor | None) -> None:
    if video.dtype != torch.uint8 or video.ndim != 6 or video.shape[2] != 3:
        raise ValueError(f"video must be uint8 (B, V, 3, T, H, W), got {video.dtype} {tuple(video.shape)}")
    if keypoints is None:
        return
    expected = (*video.shape[:2], video.shape[3])
    if not keypoints.is_floating_point() or keypoints.ndim != 5 or tuple(keypoints.shape[:3]) != expected:
        raise ValueError(
            f"keypoints must be float (B, V, T, K, D) with (B, V, T)={expected}, "
            f"got {keypoints.dtype} {tuple(keypoints.shape)}"
        )
    if keypoints.shape[-1] < 2:
        raise ValueError(f"keypoints need x and y (D >= 2) to follow a crop, got D={keypoints.shape[-1]}")


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _draw(config: AugmentConfig, height: int, width: int, generator: torch.Generator | None) -> _ClipParams:
    top, left, crop_height, crop_width = _draw_crop(config, height, width, generator)
    flip = float(torch.rand((), generator=generator)) < config.flip_probability
    colour: list[tuple[str, float]] = []
    if float(torch.rand((), generator=generator)) < config.jitter_probability:
        # A random order of the four, as torchvision's ColorJitter applies them.
        for index in torch.randperm(4, generator=generator).tolist():
            name = tuple(_COLOUR_OPS)[index]
            amount = getattr(config, name)
            if amount > 0:
                low, high = (-amount, amount) if name == "hue" else (max(0.0, 1 - amount), 1 + amount)
                colour.append((name, _uniform(low, high, generator)))
    return _ClipParams(top, left, crop_height, crop_width, flip, tuple(colour))


def _draw_crop(
    config: AugmentConfig, height: int, width: int, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """(top, left, height, width) as torchvision's ``RandomResizedCrop`` draws them, from `generator`."""
    area = height * width
    log_ratio = (math.log(config.ratio[0]), math.log(config.ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(*config.scale, generator)
        aspect = math.exp(_uniform(*log_ratio, generator))
        crop_width = round(math.sqrt(target_area * aspect))
        crop_height = round(math.sqrt(target_area / aspect))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(torch.randint(0, height - crop_height + 1, (), generator=generator))
            left = int(torch.randint(0, width - crop_width + 1, (), generator=generator))
            return top, left, crop_height, crop_width
    # Fallback of torchvision's: the largest centred crop within the ratio range.
    crop_height, crop_width = height, width
    if width / height < config.ratio[0]:
        crop_height = round(width / config.ratio[0])
    elif width / height > config.ratio[1]:
        crop_width = round(height * config.ratio[1])
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def _apply(clips: torch.Tensor, params: _ClipParams, *, size: list[int]) -> torch.Tensor:
    """Applies one draw to uint8 clips (V, 3, T, H, W) of one or more views."""
    frames = clips.transpose(1, 2)  # (V, T, 3, H, W): the layout the v2 functional ops take
    frames = tvf.resized_crop(
        frames, params.top, params.left, params.height, params.width, size=size,
        interpolation=InterpolationMode.BILINEAR, antialias=True,
    )  # fmt: skip
    if params.flip:
        frames = tvf.horizontal_flip(frames)
    for name, factor in params.colour:
        frames = _COLOUR_OPS[name](frames, factor)
    return frames.transpose(1, 2)


def _move_keypoints(
    keypoints: torch.Tensor, grid: list[list[_ClipParams]], size: tuple[int, int], units: KeypointUnits
) -> torch.Tensor:
    """Maps x, y of (B, V, T, K, D) keypoints through each clip's crop, resize and flip."""
    height, width = size

    def per_clip(value: Callable[[_ClipParams], float]) -> torch.Tensor:
        table = [[value(p) for p in row] for row in grid]
        return torch.tensor(table, dtype=keypoints.dtype, device=keypoints.device)[:, :, None, None]

    left, top = per_clip(lambda p: p.left), per_clip(lambda p: p.top)
    scale_x, scale_y = per_clip(lambda p: width / p.width), per_clip(lambda p: height / p.height)
    flip = per_clip(lambda p: float(p.flip)).bool()
    x, y = keypoints[..., 0], keypoints[..., 1]
    if units == "pixels":
        # Pixel centres at integers: the resize maps the crop's edges, half a pixel out, to the frame's.
        x, y = (x + 0.5 - left) * scale_x - 0.5, (y + 0.5 - top) * scale_y - 0.5
        x = torch.where(flip, width - 1 - x, x)
    else:
        x, y = (x * width - left) * scale_x / width, (y * height - top) * scale_y / height
        x = torch.where(flip, 1 - x, x)
    return torch.cat([x[..., None], y[..., None], keypoints[..., 2:]], dim=-1)
