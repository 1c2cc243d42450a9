"""What a classifier's hyper-parameters must satisfy: the choices, the keypoint sizes, the weights, an hf: encoder."""

from __future__ import annotations

from typing import Literal, get_args

from vidfit.models._backbones import BACKBONES, canonical_backbone
from vidfit.models._branches import ViewFusion
from vidfit.models._hf import hf_model, hf_problems, is_hf_backbone
from vidfit.models._hf_backbone import freeze_problems
from vidfit.models._lora import LoraSettings
from vidfit.models._pretrained import pretrained_problems

InputType = Literal["rgb", "kpt", "rgb_kpt"]
VIEW_FUSIONS: tuple[str, ...] = get_args(ViewFusion)
INPUT_TYPES: tuple[str, ...] = get_args(InputType)


def classifier_problems(
    *,
    backbone: str,
    view_fusion: str,
    input_type: str,
    num_keypoints: int,
    keypoint_dims: int,
    dropout: float,
    pretrained: str | None = None,
    pretrained_path: str | None = None,
    prefix: str = "",
    freeze: str = "none",
    lora: LoraSettings | None = None,
) -> list[str]:
    """What is wrong with a classifier's hyper-parameters (those a run config holds); empty when they are fine.

    Backbone aliases (`BACKBONE_ALIASES`) are accepted, and ``hf:<model id or folder>`` (a Hugging Face
    encoder, which must be on disk: its config is read).

    Args:
        prefix: Put before each argument's name, e.g. ``"model."`` for the config's keys.
    """
    problems = [
        f"{prefix}{name}={value!r} is not one of {', '.join(map(repr, allowed))}"
        for name, value, allowed in (
            ("backbone", canonical_backbone(backbone), BACKBONES),
            ("view_fusion", view_fusion, VIEW_FUSIONS),
            ("input_type", input_type, INPUT_TYPES),
        )
        if value not in allowed and not (name == "backbone" and is_hf_backbone(value))
    ]
    if is_hf_backbone(backbone) and input_type != "kpt":
        weights = pretrained or pretrained_path
        problems += _hf_problems(backbone, freeze=freeze, lora=lora, pretrained=weights, prefix=prefix)
    elif used := [f"{prefix}{key}" for key, value in (("freeze", freeze != "none"), ("lora", lora)) if value]:
        problems.append(
            f"{' and '.join(used)} appl{'y' if len(used) > 1 else 'ies'} to hf: backbones (Hugging Face video "
            f"encoders), not to {prefix}backbone={backbone!r}"
        )
    if input_type != "rgb" and (num_keypoints < 1 or keypoint_dims < 1):
        problems.append(
            f"{prefix}input_type={input_type!r} needs {prefix}num_keypoints >= 1 and {prefix}keypoint_dims >= 1, "
            f"got num_keypoints={num_keypoints!r}, keypoint_dims={keypoint_dims!r}"
        )
    if not 0.0 <= dropout < 1.0:
        problems.append(f"{prefix}dropout={dropout!r} must be in [0, 1)")
    problems += pretrained_problems(backbone=backbone, pretrained=pretrained, prefix=prefix)
    if pretrained is not None and pretrained_path is not None:
        problems.append(f"{prefix}pretrained and {prefix}pretrained_path are both set: give one of them")
    return problems


def _hf_problems(
    backbone: str, *, freeze: str, lora: LoraSettings | None, pretrained: str | None, prefix: str
) -> list[str]:
    """The checks of an ``hf:`` backbone: on disk and runnable, its freeze and LoRA settings."""
    if problems := hf_problems(backbone, prefix=prefix):
        return problems
    problems = freeze_problems(freeze, num_blocks=hf_model(backbone).config.num_hidden_layers, prefix=prefix)
    if lora is not None and freeze == "all":
        problems.append(f"{prefix}lora trains adapters in the blocks not frozen, and {prefix}freeze: all leaves none")
    if pretrained:
        problems.append(f"{prefix}backbone={backbone!r} brings its own weights: drop {prefix}pretrained(_path)")
    return problems
