"""Ranks of a torchrun launch for inference: the process group joined for a block, objects gathered to rank 0."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch.distributed as dist
from lightning.fabric.utilities.rank_zero import rank_zero_only

T = TypeVar("T")

# Ranks that finish their share early wait at the gather for the slowest one, which on long videos can take
# hours; a rank that fails does not leave the others waiting this long, because torchrun stops them all.
GATHER_TIMEOUT_SECONDS = 6 * 3600.0


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of its launch (or runs alone): the one that reports."""
    return getattr(rank_zero_only, "rank", 0) == 0


def is_distributed() -> bool:
    """True inside a torch.distributed process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_objects(items: Sequence[T]) -> list[T]:
    """Every rank's `items` (picklable), rank 0's first; a copy of `items` without a process group.

    A collective: every rank calls it, each with its own items.
    """
    if not is_distributed():
        return list(items)
    parts: list[list[T] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part or ()]


def gather_to_rank_zero(item: T) -> list[T] | None:
    """Every rank's `item` (picklable), by rank, on rank 0 and None elsewhere; ``[item]`` without a process group.

    A collective. Only rank 0 holds them all, so the other ranks' memory stays that of their share.
    """
    if not is_distributed():
        return [item]
    parts: list[T] | None = [item] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(item, parts, dst=0)
    return parts


def broadcast_from_rank_zero(item: T) -> T:
    """Rank 0's `item` on every rank (the others' are placeholders); `item` without a process group."""
    if not is_distributed():
        return item
    box = [item]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the ranks of a launch.

    Attributes:
        rank: This process's rank, in ``[0, world_size)``.
        world_size: Processes in the launch; 1 without one.
        local_rank: This process's rank on its machine (its GPU index).
    """

    rank: int
    world_size: int
    local_rank: int


@contextmanager
def join_launch(*, timeout_seconds: float = GATHER_TIMEOUT_SECONDS) -> Iterator[Ranks]:
    """Joins the process group that torchrun describes in the environment, for the block.

    With ``WORLD_SIZE`` unset or 1 this is a single process and nothing is initialized. A process
    group initialized by someone else (Lightning) is used as is and left open.

    Args:
        timeout_seconds: How long a collective waits for the other ranks.
    """
    if timeout_seconds <= 0:
        raise ValueError(f"timeout_seconds={timeout_seconds!r} must be > 0")
    world_size, local_rank = _environment_int("WORLD_SIZE", default=1), _environment_int("LOCAL_RANK", default=0)
    if world_size <= 1:
        yield Ranks(rank=0, world_size=1, local_rank=0)
        return
    started = not dist.is_initialized()
    if started:
        # gloo even beside GPUs: only pickled Python objects are gathered, which NCCL would stage through the GPU.
        dist.init_process_group(backend="gloo", timeout=timedelta(seconds=timeout_seconds))
    try:
        yield Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)
    finally:
        if started:
            dist.destroy_process_group()


def _environment_int(name: str, *, default: int) -> int:
    text = os.environ.get(name, str(default))
    if not text.strip().isdigit():
        raise ValueError(f"environment variable {name}={text!r} is not an integer >= 0 (torchrun sets it)")
    return int(text)
