"""Where a model runs and in which precision: shared by the chunked predictor and super-resolution."""

from __future__ import annotations

import contextlib
from typing import get_args

import torch

from vidfit.memory._step import Precision

PRECISIONS: tuple[str, ...] = get_args(Precision)
_AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def check_precision(precision: str) -> None:
    """Raises ValueError naming the value when it is not one of `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(map(repr, PRECISIONS))}")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Autocast to the precision's dtype on `device`, or no change for ``"32"``."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def resolve_device(model: object, device: torch.device | str | None) -> torch.device:
    """`device`, or when None the device of the model's first parameter (the CPU for a model without any)."""
    if device is not None:
        return torch.device(device)
    parameters = getattr(model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
