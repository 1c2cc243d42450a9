"""What one training step is made of, shared by the meta-device estimate and the measured step.

A step is: call the model on the inputs under the precision's autocast, reduce the output to a scalar
loss, backward, optimizer step. Both `estimate_step_memory` and `measure_step` take the same
`input_factory` and `optimizer`/`precision` names, so their numbers describe the same step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, get_args

import torch
from torch import nn

Precision = Literal["32", "16-mixed", "bf16-mixed"]
OptimizerName = Literal["adamw", "adam", "sgd"]
LossFn = Callable[[Any], torch.Tensor]

_AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "32": None,
    "16-mixed": torch.float16,
    "bf16-mixed": torch.bfloat16,
}
# Adam and AdamW keep exp_avg and exp_avg_sq per parameter; SGD with momentum keeps one buffer.
_OPTIMIZER_STATE_COPIES = {"adamw": 2, "adam": 2, "sgd": 1}


def check_choice(name: str, value: object, allowed: Sequence[object]) -> None:
    """Raises ValueError naming the argument, its value and the allowed values.

    Args:
        name: Argument name shown in the message.
        value: The value given.
        allowed: Accepted values.
    """
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not one of {choices}")


def check_step_choices(*, precision: str, optimizer: str) -> None:
    """Validates the precision and optimizer names shared by the estimate and the measured step."""
    check_choice("precision", precision, get_args(Precision))
    check_choice("optimizer", optimizer, get_args(OptimizerName))


def autocast_dtype(precision: Precision) -> torch.dtype | None:
    """The autocast dtype of a precision name, None for full fp32."""
    return _AUTOCAST_DTYPES[precision]


def cuda_mixed_precision() -> Precision:
    """The mixed precision to train in on a CUDA GPU: bf16-mixed where it supports bf16, else 16-mixed.

    Without a GPU, bf16-mixed: the precision of current GPUs, for estimates made on a machine without one.
    """
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "16-mixed"
    return "bf16-mixed"


def optimizer_state_copies(optimizer: OptimizerName) -> int:
    """How many fp32 tensors of each trainable parameter's size the optimizer keeps."""
    return _OPTIMIZER_STATE_COPIES[optimizer]


def build_optimizer(optimizer: OptimizerName, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer a measured step runs; SGD uses momentum so that its state matches the estimate."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    return torch.optim.AdamW(params, lr=1e-3)


@contextmanager
def autocast_state(device_type: str, dtype: torch.dtype | None) -> Iterator[None]:
    """Turns autocast on for `device_type`, the way `torch.autocast.__enter__` does, minus its device check.

    `torch.autocast("cuda")` disables itself when CUDA is not available, even for fake CUDA tensors that
    never touch the device. Setting the autocast state directly applies the real CUDA autocast policy
    (which ops run in half precision, which in fp32) to fake CUDA tensors on a machine without a GPU.

    Args:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: Autocast dtype; None leaves autocast off.
    """
    if dtype is None:
        yield
        return
    prev_enabled = torch.is_autocast_enabled(device_type)
    prev_dtype = torch.get_autocast_dtype(device_type)
    torch.set_autocast_enabled(device_type, True)
    torch.set_autocast_dtype(device_type, dtype)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled(device_type, prev_enabled)
        torch.set_autocast_dtype(device_type, prev_dtype)


def call_model(model: nn.Module, inputs: Any) -> Any:
    """Calls the model: a tuple or list as positional arguments, a dict as keyword arguments, else one argument."""
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


def sum_loss(output: Any) -> torch.Tensor:
    """Default loss: the fp32 sum of every floating-point tensor in the output.

    Walks tensors, dataclasses (such as a classifier output), dicts, lists and tuples, so that the
    backward pass reaches every output head.

    Raises:
        ValueError: The output holds no floating-point tensor.
    """
    terms = [t.float().sum() for t in _floating_tensors(output)]
    if not terms:
        raise ValueError(f"the model output {type(output).__name__} holds no floating-point tensor to backpropagate")
    return torch.stack(terms).sum()


def _floating_tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point():
            yield obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from _floating_tensors(getattr(obj, field.name))
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _floating_tensors(value)
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _floating_tensors(item)
