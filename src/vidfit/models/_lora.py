"""LoRA adapters on a Hugging Face encoder, through `peft`: only the adapters train.

The adapters go on the attention projections of the blocks that are not frozen (`model.freeze`); `peft`
freezes every weight of the encoder besides them. A checkpoint of such a model holds the adapters (and the
heads) but not the base model's weights, which are read again from the base model's folder or cache (its
name is the checkpoint's ``model.backbone``); `merge_lora` folds the adapters into the weights for
inference, which then runs at the base model's speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import nn

from vidfit.models._hf import import_extra


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters of a Hugging Face backbone (``model.lora``).

    Attributes:
        rank: Rank r of each adapter (A is r x in, B is out x r).
        alpha: Scale of the adapters' output, applied as alpha / rank.
        targets: Names of the linear layers to adapt inside each block (the last part of the module name,
            e.g. ``query``); empty: the encoder's attention projections (query and value, TimeSformer's qkv).
    """

    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))  # a list from YAML is fine
        if problems := lora_problems(self):
            raise ValueError("; ".join(problems))


def lora_problems(settings: LoraSettings, *, prefix: str = "") -> list[str]:
    """What is wrong with `settings`; empty when nothing. `prefix` goes before each key (``"model.lora."``)."""
    problems = []
    if isinstance(settings.rank, bool) or settings.rank < 1:
        problems.append(f"{prefix}rank={settings.rank!r} must be a whole number >= 1")
    if not settings.alpha > 0:
        problems.append(f"{prefix}alpha={settings.alpha!r} must be > 0")
    if any(not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", name) for name in settings.targets):
        problems.append(f"{prefix}targets={list(settings.targets)!r} must be module names such as 'query'")
    return problems


def add_lora(
    net: nn.Module, settings: LoraSettings, *, blocks: str, first_block: int, num_blocks: int, defaults: tuple[str, ...]
) -> Any:
    """Puts LoRA adapters on the target layers of blocks `first_block`.. of `net`, in place; returns the PeftModel.

    Args:
        net: The encoder.
        blocks: Path of its blocks (an ``nn.ModuleList``).
        first_block: The first block that trains (the earlier ones are frozen).
        num_blocks: How many blocks there are.
        defaults: The targets when `settings` names none.

    Raises:
        ValueError: No target layer in those blocks (naming the targets the encoder has by default).
    """
    peft = import_extra("peft", needed_for="model.lora")
    targets = settings.targets or defaults
    indices = "|".join(str(index) for index in range(first_block, num_blocks))
    # A full-match pattern: only the trainable blocks get adapters, frozen ones keep their weights as they are.
    pattern = rf"{re.escape(blocks)}\.({indices})\.(.*\.)?({'|'.join(map(re.escape, targets))})"
    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=pattern, lora_dropout=0.0)
    try:
        return peft.get_peft_model(net, config)
    except ValueError as error:
        raise ValueError(
            f"model.lora.targets={list(targets)!r}: no such linear layer in blocks {first_block} to {num_blocks - 1} "
            f"of the encoder ({error}); its attention projections are {list(defaults)!r}"
        ) from error


def is_lora_weight(key: str) -> bool:
    """Whether a state-dict key is a LoRA adapter's (``...lora_A.default.weight``)."""
    return ".lora_" in key


def merge_lora(peft_model: Any) -> None:
    """Folds the adapters into the weights they adapt and removes them (`peft`'s ``merge_and_unload``)."""
    peft_model.merge_and_unload()
