"""Agreement between DDP ranks: the smallest fit, evaluation gathered once per chunk, torchrun's process group."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

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
class ChunkResult:
    """What evaluation found in one chunk of the index, small enough to send between ranks.

    Attributes:
        video_id: The chunk's video.
        chunk_index: The chunk's place in its video, from 0.
        loss: The loss of the chunk alone.
        label: The video's class index, -1 when unlabelled.
        predicted_label: The class with the highest clip score.
        frame_labels: Class index of each of the chunk's frames (T,), -1 where unlabelled.
        predicted_frame_labels: The class with the highest score at each frame (T,).
    """

    video_id: str
    chunk_index: int
    loss: float
    label: int
    predicted_label: int
    frame_labels: torch.Tensor
    predicted_frame_labels: torch.Tensor

    @property
    def key(self) -> tuple[str, int]:
        """(video_id, chunk_index): unique in a chunk index."""
        return self.video_id, self.chunk_index


def gather_chunk_results(results: Sequence[ChunkResult]) -> list[ChunkResult]:
    """Every rank's results with each chunk once, video by video and each video's chunks in order.

    `DistributedSampler` evens out the ranks' shards by repeating chunks of the index; a repeat
    carries the key of a chunk already gathered and is dropped, so what remains is exactly what a
    single process evaluates. A collective under DDP; the sorted `results` otherwise.
    """
    unique: dict[tuple[str, int], ChunkResult] = {}
    for result in gather_objects(results):
        unique.setdefault(result.key, result)
    return [unique[key] for key in sorted(unique)]


@dataclass(frozen=True)
class EvaluationMetrics:
    """Evaluation over chunks, each counted once.

    Attributes:
        loss: Mean loss per chunk.
        accuracy: Share of the labelled chunks whose clip prediction is right.
        frame_accuracy: Share of the labelled frames (of every chunk) predicted right.
        num_chunks: Chunks evaluated.
    """

    loss: float
    accuracy: float
    frame_accuracy: float
    num_chunks: int


def evaluation_metrics(results: Sequence[ChunkResult], *, num_classes: int) -> EvaluationMetrics:
    """Loss and micro accuracies (torchmetrics', unlabelled -1 ignored) of gathered chunk results.

    Args:
        results: From `gather_chunk_results`: the same list, in the same order, on every rank.
        num_classes: Classes of the model.
    """
    if not results:
        raise ValueError("evaluation_metrics needs at least one chunk result, got none")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be >= 2")
    labels = torch.tensor([r.label for r in results])
    predicted = torch.tensor([r.predicted_label for r in results])
    frame_labels = torch.cat([r.frame_labels.flatten() for r in results])
    predicted_frames = torch.cat([r.predicted_frame_labels.flatten() for r in results])
    return EvaluationMetrics(
        loss=float(torch.tensor([r.loss for r in results], dtype=torch.float64).mean()),
        accuracy=float(multiclass_accuracy(predicted, labels, num_classes, average="micro", ignore_index=-1)),
        frame_accuracy=float(
            multiclass_accuracy(predicted_frames, frame_labels, num_classes, average="micro", ignore_index=-1)
        ),
        num_chunks=len(results),
    )


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
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer (set by torchrun)") from None
    if value < 0:
        raise ValueError(f"environment variable {name}={text!r} must be >= 0")
    return value
