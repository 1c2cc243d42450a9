"""The one out-of-memory policy: recognise the error, free what it left, retry smaller or give up with advice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from lightning.pytorch.utilities.memory import garbage_collection_cuda, is_oom_error

# Allocation failures that PyTorch raises as a plain RuntimeError and Lightning's `is_oom_error` misses:
# cuBLAS and cuDNN failing to get workspace, the CPU allocator on Windows, and messages of several args.
_OOM_MESSAGES = (
    "out of memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "defaultcpuallocator: can't allocate memory",
    "defaultcpuallocator: not enough memory",
)
_LEAF_TYPES = (str, bytes, int, float, bool, type(None))
_Setting = TypeVar("_Setting")
_Result = TypeVar("_Result")


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure on the GPU or the host.

    Args:
        exc: Any exception.

    Returns:
        True for ``torch.OutOfMemoryError``, for what Lightning's ``is_oom_error`` recognises (which counts
        cuDNN's ``CUDNN_STATUS_NOT_SUPPORTED`` of oversized batches), and for a RuntimeError whose message
        reports an allocation failure of the CUDA caching allocator, cuBLAS, cuDNN or the CPU allocator.
    """
    if isinstance(exc, torch.OutOfMemoryError) or is_oom_error(exc):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc).lower()
    return any(text in message for text in _OOM_MESSAGES)


def free_memory() -> None:
    """Collects garbage and returns the CUDA caching allocator's free blocks to the driver, when CUDA is in use.

    Lightning's ``garbage_collection_cuda``. Call it after dropping every reference to the failed step's
    tensors (the exception's traceback holds frames that hold them, so leave the ``except`` block first).
    """
    garbage_collection_cuda()


@dataclass(frozen=True)
class OomRetry(Generic[_Result, _Setting]):
    """What `retry_on_oom` ran.

    Attributes:
        result: What the successful attempt returned.
        setting: The setting it ran at.
        oom_retries: Out-of-memory errors survived before it.
    """

    result: _Result
    setting: _Setting
    oom_retries: int


def retry_on_oom(
    run: Callable[[_Setting], _Result],
    setting: _Setting,
    *,
    shrink: Callable[[_Setting], _Setting | None],
    advice: Callable[[_Setting], str],
) -> OomRetry[_Result, _Setting]:
    """Runs `run` at `setting`; after each out-of-memory error frees memory and retries at a smaller setting.

    Other errors propagate at once. The failed attempt's traceback is dropped before memory is freed, so
    the activations its frames held are released.

    Args:
        run: One attempt at a setting (a batch size, a split, a window length...).
        setting: The setting to try first.
        shrink: The next smaller setting after an out-of-memory error at the given one, or None to give up.
            It may record or announce the change.
        advice: The message when giving up at a setting: what ran out of memory and what to change.

    Raises:
        torch.OutOfMemoryError: `shrink` gave up; the message is `advice`'s, the cause the last error
            (without its traceback). Every flavour of allocation failure (`is_oom`) ends as this one type.
    """
    retries = 0
    while True:
        try:
            return OomRetry(run(setting), setting, retries)
        except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
            if not is_oom(error):
                raise
            cause = error.with_traceback(None)
        # Past the except block, the traceback's frames and the activations they hold are gone.
        free_memory()
        smaller = shrink(setting)
        if smaller is None:
            raise torch.OutOfMemoryError(advice(setting)) from cause
        setting, retries = smaller, retries + 1


def split_batch(batch: Any, num_micro_batches: int) -> list[Any]:
    """Splits a batch into consecutive micro-batches along the sample dimension.

    The batch size is dim 0 of the first tensor with at least one dim; such tensors are sliced along
    dim 0 (views, no copy). Dicts, lists and tuples are walked. A list or tuple of plain values (str, int,
    float, bool, None, bytes) must hold one value per sample, such as collated clip ids, and is sliced too.
    A dataclass (a typed batch such as `vidfit.data.VideoBatch`) holds samples in every field: its tensors
    and non-empty lists are sliced along their first dim, and it is rebuilt with ``dataclasses.replace``
    (so its own checks run). Any other value, 0-dim tensors included, is repeated in every micro-batch.
    Micro-batch sizes differ by at most one, larger first, so every sample lands in exactly one
    micro-batch, in order.

    Args:
        batch: A tensor, a typed batch, or a nest of dicts, lists and tuples holding them.
        num_micro_batches: How many micro-batches, from 1 to the batch size.

    Returns:
        The micro-batches, each with the batch's structure.

    Raises:
        ValueError: The batch holds no tensor, `num_micro_batches` is out of range, a tensor's dim 0 differs
            from the batch size, or a list of plain values has neither one value per sample nor is it a nest.
    """
    batch_size = _batch_size(batch)
    if batch_size is None:
        raise ValueError(f"the batch holds no tensor to split: {type(batch).__name__}")
    if not 1 <= num_micro_batches <= batch_size:
        raise ValueError(f"num_micro_batches={num_micro_batches} is not between 1 and the batch size {batch_size}")
    base, extra = divmod(batch_size, num_micro_batches)
    bounds: list[tuple[int, int]] = []
    start = 0
    for index in range(num_micro_batches):
        stop = start + base + (1 if index < extra else 0)
        bounds.append((start, stop))
        start = stop
    return [_slice(batch, start, stop, batch_size, "batch") for start, stop in bounds]


def _batch_size(obj: Any) -> int | None:
    """Dim 0 of the first tensor in the nest, None when it holds none."""
    if isinstance(obj, torch.Tensor):
        return int(obj.shape[0]) if obj.dim() > 0 else None
    if _is_dataclass(obj):
        children: Any = [getattr(obj, field.name) for field in dataclasses.fields(obj)]
    else:
        children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list | tuple) else ()
    for child in children:
        size = _batch_size(child)
        if size is not None:
            return size
    return None


def _slice(obj: Any, start: int, stop: int, batch_size: int, path: str) -> Any:
    if isinstance(obj, torch.Tensor) and obj.dim() > 0:
        if obj.shape[0] != batch_size:
            raise ValueError(f"{path} has shape {tuple(obj.shape)}, not {batch_size} samples along dim 0")
        return obj[start:stop]
    if _is_dataclass(obj):
        return _slice_fields(obj, start, stop, batch_size, path)
    if isinstance(obj, dict):
        return type(obj)(
            {key: _slice(value, start, stop, batch_size, f"{path}[{key!r}]") for key, value in obj.items()}
        )
    if not isinstance(obj, list | tuple):  # 0-dim tensors and plain values belong to the whole batch
        return obj
    if obj and all(isinstance(item, _LEAF_TYPES) for item in obj):
        if len(obj) != batch_size:
            raise ValueError(f"{path} is a list of {len(obj)} values but the batch has {batch_size} samples")
        return obj[start:stop]
    items = [_slice(item, start, stop, batch_size, f"{path}[{index}]") for index, item in enumerate(obj)]
    if isinstance(obj, list):
        return items
    return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)


def _is_dataclass(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _slice_fields(obj: Any, start: int, stop: int, batch_size: int, path: str) -> Any:
    """A typed batch's samples `[start, stop)`: every field holds one entry per sample."""
    changes = {}
    for field in dataclasses.fields(obj):
        value, where = getattr(obj, field.name), f"{path}.{field.name}"
        if isinstance(value, list | tuple) and value:
            if len(value) != batch_size:
                raise ValueError(f"{where} holds {len(value)} entries but the batch has {batch_size} samples")
            changes[field.name] = value[start:stop]
        else:
            changes[field.name] = _slice(value, start, stop, batch_size, where)
    return dataclasses.replace(obj, **changes)
