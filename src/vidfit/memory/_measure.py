"""Measured training steps on a real device, budgets checked against it, and the largest batch that fits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidfit.memory._oom import free_memory, retry_on_oom
from vidfit.memory._report import format_bytes, track_peak
from vidfit.memory._step import (
    LossFn,
    OptimizerName,
    Precision,
    autocast_dtype,
    build_optimizer,
    call_model,
    check_step_choices,
    sum_loss,
)


@dataclass(frozen=True)
class MeasuredStep:
    """What training steps took on a device.

    Attributes:
        device: Where they ran.
        peak_bytes: On CUDA the allocator's peak of tensor bytes (model, optimizer state and step together);
            on the CPU the sampled peak RSS of the whole process, an approximate figure of host memory.
            When the step ran out of memory, the peak reached before it failed.
        seconds_per_step: Mean wall time of the steps after the first (the first pays for allocator growth
            and kernel autotuning), or of the only step; None after an out-of-memory error.
        oom: Whether a step ran out of memory.
    """

    device: str
    peak_bytes: int
    seconds_per_step: float | None
    oom: bool


def measure_step(
    model: nn.Module,
    input_factory: Callable[[], Any],
    *,
    device: torch.device | str,
    precision: Precision,
    optimizer: OptimizerName,
    steps: int = 3,
    memory_cap_bytes: int | None = None,
    loss_fn: LossFn | None = None,
) -> MeasuredStep:
    """Runs forward, backward and optimizer steps and measures their peak memory and time.

    An out-of-memory error is caught, the memory it left behind is freed and the result says ``oom``;
    any other error propagates. The model stays on `device` afterwards; the optimizer is dropped.

    Args:
        model: The model, moved to `device` and put in training mode.
        input_factory: Builds one step's inputs, with `device` as the default device (a tuple or list of
            positional arguments, a dict of keyword arguments, or a single argument).
        device: Where to run.
        precision: ``"32"``, or autocast to fp16 (with a gradient scaler) or bf16.
        optimizer: Which optimizer steps; SGD uses momentum.
        steps: How many steps, at least 1.
        memory_cap_bytes: On CUDA, caps this process's allocations at this many bytes, so that a budget
            smaller than the card is honoured; the cap is lifted afterwards.
        loss_fn: Maps the model output to a scalar loss; by default the sum of its floating-point tensors.

    Raises:
        ValueError: A bad precision, optimizer or step count, or a memory cap on a non-CUDA device or above
            the device's total memory.
    """
    check_step_choices(precision=precision, optimizer=optimizer)
    if steps < 1:
        raise ValueError(f"steps={steps} is not at least 1")
    dev = torch.device(device)
    if memory_cap_bytes is not None:
        if dev.type != "cuda":
            raise ValueError(f"memory_cap_bytes needs a CUDA device, not {str(dev)!r}")
        check_budget(memory_cap_bytes, device=dev, label=f"memory_cap_bytes={memory_cap_bytes}")
    model.to(dev).train()
    opt = build_optimizer(optimizer, (p for p in model.parameters() if p.requires_grad))
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "16-mixed")
    step = _StepRunner(
        model=model, input_factory=input_factory, device=dev, precision=precision, optimizer=opt, scaler=scaler,
        loss_fn=loss_fn or sum_loss,
    )  # fmt: skip
    durations: list[float] = []
    oom = False
    free_memory()
    with _memory_cap(dev, memory_cap_bytes), track_peak(dev) as peak:
        try:
            # A measurement is never retried smaller: running out of memory is its answer.
            durations = retry_on_oom(step.run, steps, shrink=_no_retry, advice=_step_advice).result
        except torch.OutOfMemoryError:
            oom = True
    opt.zero_grad(set_to_none=True)
    del opt, step
    free_memory()
    timed = durations[1:] or durations
    seconds = None if oom else sum(timed) / len(timed)
    return MeasuredStep(device=str(dev), peak_bytes=peak.peak_bytes, seconds_per_step=seconds, oom=oom)


class _StepRunner:
    """One timed training step."""

    def __init__(
        self,
        *,
        model: nn.Module,
        input_factory: Callable[[], Any],
        device: torch.device,
        precision: Precision,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        loss_fn: LossFn,
    ) -> None:
        self.model, self.input_factory, self.device = model, input_factory, device
        self.dtype = autocast_dtype(precision)
        self.optimizer, self.scaler, self.loss_fn = optimizer, scaler, loss_fn

    def run(self, steps: int) -> list[float]:
        """Seconds of each of `steps` steps."""
        return [self() for _ in range(steps)]

    def __call__(self) -> float:
        _synchronize(self.device)
        begin = time.perf_counter()
        with torch.device(self.device):
            inputs = self.input_factory()
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            loss = self.loss_fn(call_model(self.model, inputs))
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        _synchronize(self.device)
        return time.perf_counter() - begin


def _no_retry(steps: int) -> None:
    return None


def _step_advice(steps: int) -> str:
    return f"out of memory in a measured training step ({steps} steps)"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _memory_cap(device: torch.device, cap_bytes: int | None) -> Iterator[None]:
    if cap_bytes is None:
        yield
        return
    previous = torch.cuda.get_per_process_memory_fraction(device)
    torch.cuda.set_per_process_memory_fraction(cap_bytes / _device_total_bytes(device), device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(previous, device)


def _device_total_bytes(device: torch.device | str) -> int:
    """Total memory of a CUDA device, as the driver reports it."""
    return torch.cuda.mem_get_info(device)[1]


def check_budget(budget_bytes: int, *, device: torch.device | str, label: str) -> None:
    """Refuses a memory budget above a CUDA device's total memory, which no cap can honour.

    Args:
        budget_bytes: The budget.
        device: The CUDA device it is meant for.
        label: The budget as its user wrote it, for the message, e.g. ``"train.memory_budget='96GiB'"``.

    Raises:
        ValueError: The budget is above the device's total memory; the message names both.
    """
    total = _device_total_bytes(device)
    if budget_bytes > total:
        raise ValueError(
            f"{label} ({format_bytes(budget_bytes)}) is above the total memory of {torch.device(device)}, "
            f"{format_bytes(total)}: give a budget of at most {format_bytes(total)}"
        )


@dataclass(frozen=True)
class BatchFit:
    """Result of `largest_fitting_batch`.

    Attributes:
        batch_size: The largest batch size that fits, None when not even 1 does.
        peak_bytes: Its measured peak, None when none fits.
        limit_bytes: The budget less the margin, which the peak had to stay under.
        measured: Each batch size tried and its peak (None for out of memory), in the order tried.
    """

    batch_size: int | None
    peak_bytes: int | None
    limit_bytes: int
    measured: tuple[tuple[int, int | None], ...]


def largest_fitting_batch(
    measure: Callable[[int], int | None],
    *,
    budget_bytes: int,
    margin_fraction: float = 0.1,
    max_batch: int = 1024,
) -> BatchFit:
    """Finds the largest batch size whose peak stays within the budget less a margin.

    Doubles the batch size from 1 until one does not fit or `max_batch` is reached, then bisects between
    the last fit and the first miss. Peak memory is assumed to grow with the batch size.

    Args:
        measure: Peak bytes of a step at a batch size, None when it ran out of memory.
        budget_bytes: Memory available.
        margin_fraction: Share of the budget kept free, in [0, 1).
        max_batch: Largest batch size tried.

    Raises:
        ValueError: A non-positive budget or `max_batch`, or a margin outside [0, 1).
    """
    if budget_bytes <= 0 or max_batch < 1:
        raise ValueError(f"budget_bytes={budget_bytes} and max_batch={max_batch} must be positive")
    if not 0 <= margin_fraction < 1:
        raise ValueError(f"margin_fraction={margin_fraction} is not in [0, 1)")
    limit = int(budget_bytes * (1 - margin_fraction))
    measured: dict[int, int | None] = {}

    def fits(batch_size: int) -> bool:
        peak = measured[batch_size] = measure(batch_size)
        return peak is not None and peak <= limit

    if not fits(1):
        return BatchFit(batch_size=None, peak_bytes=None, limit_bytes=limit, measured=tuple(measured.items()))
    low, high = 1, max_batch + 1  # low fits; high is the smallest size known not to fit (or out of range)
    while low < max_batch:
        candidate = min(low * 2, max_batch)
        if not fits(candidate):
            high = candidate
            break
        low = candidate
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return BatchFit(batch_size=low, peak_bytes=measured[low], limit_bytes=limit, measured=tuple(measured.items()))
