"""The axes of a memory plan: comma-separated command-line lists, parsed and checked against the config.

Messages name each axis by its command-line option (``--frames``, ``--batch``, ``--precision``,
``--checkpointing``, ``--vary``), which is also its keyword in `plan_memory` (``variants`` for ``--vary``).
A variant is a set of config changes planned beside the config as it is: ``--vary 'model.freeze=first:8'``,
``--vary 'model.lora={rank: 16} + train.token_drop=0.5'`` (changes of one variant joined by `` + ``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from vidfit.memory._step import Precision, cuda_mixed_precision

PRECISIONS: tuple[str, ...] = get_args(Precision)
_PRECISION_ALIASES = {"16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed", "fp32": "32"}
_T = TypeVar("_T")
_SWITCHES = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class PlanGrid:
    """The grid axes parsed from command-line text; None keeps the config's value.

    The fields are `plan_memory`'s keyword arguments: ``plan_memory(config, **dataclasses.asdict(grid), ...)``.
    """

    frames: list[int] | None = None
    batch: list[int] | None = None
    precision: list[str] | None = None
    checkpointing: list[bool] | None = None
    variants: list[tuple[str, ...]] | None = None


def parse_grid(
    *,
    frames: str | None = None,
    batch: str | None = None,
    precision: str | None = None,
    checkpointing: str | None = None,
    vary: Sequence[str] | None = None,
) -> PlanGrid:
    """Parses comma-separated axes: ``"30,40,60"``, ``"8,12,16"``, ``"32,16-mixed"``, ``"off,on"``.

    Raises:
        ValueError: An empty list or a value that is not allowed, named with the allowed values.
    """
    return PlanGrid(
        frames=_parse_list("frames", frames, lambda item: _parse_count("frames", item)),
        batch=_parse_list("batch", batch, lambda item: _parse_count("batch", item)),
        precision=_parse_list("precision", precision, _parse_precision),
        checkpointing=_parse_list("checkpointing", checkpointing, _parse_switch),
        variants=None if not vary else [parse_variant(text) for text in vary],
    )


def parse_variant(text: str) -> tuple[str, ...]:
    """The ``section.key=value`` changes of one ``--vary`` text, joined by `` + ``."""
    changes = tuple(change.strip() for change in text.split(" + "))
    for change in changes:
        key, equals, value = change.partition("=")
        if not equals or "." not in key or not value.strip():
            raise ValueError(
                f"--vary {text!r}: {change!r} is not section.key=value; e.g. --vary 'model.lora={{rank: 16}} + "
                "train.token_drop=0.5'"
            )
    return changes


def variant_name(changes: Sequence[str]) -> str:
    """How a plan row names its variant: its changes joined by `` + ``."""
    return " + ".join(changes)


def _parse_list(name: str, text: str | None, parse: Callable[[str], _T]) -> list[_T] | None:
    return None if text is None else [parse(item) for item in _split(name, text)]


def _split(name: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValueError(f"--{name} {text!r} must be a comma-separated list of values, e.g. {_EXAMPLES[name]!r}")
    return items


_EXAMPLES = {"frames": "16,32", "batch": "4,8", "precision": "32,bf16-mixed", "checkpointing": "off,on"}


def _parse_count(name: str, item: str) -> int:
    try:
        value = int(item)
    except ValueError:
        raise ValueError(f"--{name}: {item!r} is not a whole number >= 1") from None
    if value < 1:
        raise ValueError(f"--{name}: {value} is not >= 1")
    return value


def _parse_precision(item: str) -> str:
    value = _PRECISION_ALIASES.get(item.lower(), item.lower())
    if value not in (*PRECISIONS, "auto"):
        raise ValueError(f"--precision: {item!r} is not one of {', '.join(map(repr, (*PRECISIONS, 'auto')))}")
    return value


def _parse_switch(item: str) -> bool:
    if item.lower() not in _SWITCHES:
        raise ValueError(f"--checkpointing: {item!r} is not one of 'off', 'on'")
    return _SWITCHES[item.lower()]


def unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def check_counts(name: str, values: Sequence[int] | None, default: int) -> list[int]:
    chosen = [default] if values is None else unique(values)
    if not chosen:
        raise ValueError(f"--{name} is empty; give at least one value >= 1")
    for value in chosen:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name}: {value!r} is not a whole number >= 1")
    return chosen


def check_precisions(values: Sequence[str] | None, default: str) -> list[Precision]:
    """The precisions to plan; ``"auto"`` is the mixed precision a CUDA GPU trains in (`cuda_mixed_precision`)."""
    chosen = [default] if values is None else list(values)
    if not chosen:
        raise ValueError(f"--precision is empty; give at least one of {', '.join(map(repr, PRECISIONS))}")
    resolved = []
    for value in chosen:
        # The plan targets a GPU, where `auto` trains in mixed precision, also when it is estimated without one.
        value = cuda_mixed_precision() if value == "auto" else value
        if value not in PRECISIONS:
            raise ValueError(f"--precision: {value!r} is not one of {', '.join(map(repr, (*PRECISIONS, 'auto')))}")
        resolved.append(value)
    return unique(resolved)


def check_switches(values: Sequence[bool] | None, default: bool) -> list[bool]:
    chosen = [default] if values is None else unique(values)
    if not chosen or any(not isinstance(value, bool) for value in chosen):
        raise ValueError(f"--checkpointing {values!r} must be a non-empty list of True (on) and False (off)")
    return chosen
