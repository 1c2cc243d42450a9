"""Recognising out-of-memory errors, freeing memory after one, and splitting a batch to retry it smaller."""

from __future__ import annotations

import gc
from typing import Any

import torch

# Messages of allocation failures that PyTorch raises as a plain RuntimeError rather than OutOfMemoryError:
# cuBLAS and cuDNN failing to get workspace, and the CPU allocator.
_OOM_MESSAGES = (
    "out of memory",
    "cublas_status_alloc_failed",
    "cudnn_status_alloc_failed",
    "defaultcpuallocator: can't allocate memory",
    "defaultcpuallocator: not enough memory",
)
_LEAF_TYPES = (str, bytes, int, float, bool, type(None))


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure on the GPU or the host.

    Args:
        exc: Any exception.

    Returns:
        True for ``torch.OutOfMemoryError`` and for a RuntimeError whose message reports an allocation
        failure of the CUDA caching allocator, cuBLAS, cuDNN or the CPU allocator.
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    message = str(exc).lower()
    return any(text in message for text in _OOM_MESSAGES)


def free_memory() -> None:
    """Collects garbage and, when CUDA is initialised, returns the caching allocator's free blocks to the driver.

    Call it after dropping every reference to the failed step's tensors (the exception's traceback holds
    frames that hold them, so leave the ``except`` block first).
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def split_batch(batch: Any, num_micro_batches: int) -> list[Any]:
    """Splits a batch into consecutive micro-batches along the sample dimension.

    The batch size is dim 0 of the first tensor with at least one dim; such tensors are sliced along
    dim 0 (views, no copy). Dicts, lists and tuples are walked. A list or tuple of plain values (str, int,
    float, bool, None, bytes) must hold one value per sample, such as collated clip ids, and is sliced too.
    Any other value, 0-dim tensors included, is repeated in every micro-batch. Micro-batch sizes differ
    by at most one, larger first, so every sample lands in exactly one micro-batch, in order.

    Args:
        batch: A tensor or a nest of dicts, lists and tuples holding tensors.
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
