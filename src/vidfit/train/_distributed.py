"""Agreement between DDP ranks while training: the smallest fit, and rank 0's buffers for evaluation."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from vidfit.infer._ranks import is_distributed


def agree_on_min(value: int) -> int:
    """The smallest `value` over all ranks, so that every rank uses a size that fits on each of them.

    Every rank must call it at the same point (it is a collective), e.g. with the batch size its
    memory plan found. Without a process group of more than one rank it returns `value`.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"agree_on_min takes an int, got {value!r} ({type(value).__name__})")
    if not is_distributed():
        return value
    # NCCL reduces CUDA tensors only; gloo (and the CPU half of a mixed backend) takes CPU tensors.
    on_cuda = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_cuda else torch.device("cpu")
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def broadcast_buffers(module: nn.Module) -> None:
    """Copies rank 0's buffers (BatchNorm's running statistics) into every rank's `module`; no-op without DDP.

    DDP does this before a forward pass only after one that will be followed by its own gradient
    sync, which Lightning turns off under manual optimization; without it each rank evaluates
    with the statistics of its own training batches, and not with the checkpoint's (rank 0's).
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)
