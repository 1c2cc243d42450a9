"""Auto-fit: ``data.batch_size: auto`` becomes the largest micro-batch that fits the memory budget.

The configured effective batch (``train.effective_batch_size``) is kept exactly: the micro-batch is the
largest divisor of it that fits, and accumulation makes up the rest. Both are per rank: every rank of a
distributed run takes the smallest fit of all ranks, and an optimizer step then averages
``world_size x effective_batch_size`` clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from vidfit.config import Config, ConfigError, TaskData
from vidfit.memory._measure import check_budget, largest_fitting_batch
from vidfit.memory._report import format_bytes, parse_bytes
from vidfit.memory._step import Precision
from vidfit.train._distributed import agree_on_min
from vidfit.train._plan_step import task_plan_step


@dataclass(frozen=True, kw_only=True)
class AutoFitResult:
    """The batch auto-fit chose, per rank.

    Attributes:
        batch_size: Clips per forward and backward pass (the micro-batch) on each rank.
        accumulate_grad_batches: Micro-batches per optimizer step.
        effective_batch_size: Clips per optimizer step on each rank, as configured.
        largest_fitting: The largest batch that fits (agreed across ranks), before dividing the effective batch.
        peak_bytes: The peak of `largest_fitting` on this rank, measured or estimated.
        limit_bytes: The budget less the margin.
        measured: Whether the peaks were measured on the GPU rather than estimated.
    """

    batch_size: int
    accumulate_grad_batches: int
    effective_batch_size: int
    largest_fitting: int
    peak_bytes: int | None
    limit_bytes: int
    measured: bool


def choose_batch_size(
    config: Config,
    *,
    views: tuple[str, ...],
    num_classes: int,
    precision: Precision,
    measure: bool,
    agree: Callable[[int], int] = lambda value: value,
) -> AutoFitResult:
    """Finds the micro-batch and accumulation for the config's budget and effective batch.

    ``train.effective_batch_size`` is per rank: under DDP with W ranks an optimizer step sees W times as
    many clips. Frames are planned at ``data.image_size``, else at the native size of the first training
    video, as training loads them.

    Args:
        config: A run with ``train.memory_budget`` and ``train.effective_batch_size``.
        views: The camera views the model takes.
        num_classes: The classes it predicts.
        precision: The precision training runs in.
        measure: Measure steps on the current CUDA GPU, capped at the budget; else estimate them on fake tensors.
        agree: Combines this rank's largest fit with the other ranks' (the minimum); identity alone.

    Raises:
        ConfigError: Not even one clip fits (the message names what to change), or a measured budget is
            above the GPU's total memory.
    """
    settings = config.train
    if settings.memory_budget is None or settings.effective_batch_size is None:
        raise ConfigError("auto-fit needs train.memory_budget and train.effective_batch_size")
    budget, effective = parse_bytes(settings.memory_budget), settings.effective_batch_size
    if measure:
        try:
            check_budget(budget, device="cuda", label=f"train.memory_budget={settings.memory_budget!r}")
        except ValueError as error:
            raise ConfigError(str(error)) from error
    step = task_plan_step(config, views=views, num_classes=num_classes)
    frames, ckpt = config.data.num_frames, step.checkpointing

    def peak(batch_size: int) -> int | None:
        if not measure:
            return step.estimate(num_frames=frames, batch_size=batch_size, precision=precision, checkpointing=ckpt)
        return step.measure(
            num_frames=frames, batch_size=batch_size, precision=precision, checkpointing=ckpt, budget_bytes=budget
        )[0]

    fit = largest_fitting_batch(peak, budget_bytes=budget, margin_fraction=settings.memory_margin, max_batch=effective)
    largest = agree(fit.batch_size or 0)
    if largest < 1:
        needed = dict(fit.measured).get(1)
        advice = step.advice(num_frames=frames, batch_size=None, precision=precision, checkpointing=ckpt)
        raise ConfigError(
            f"train.memory_budget={settings.memory_budget!r}: not even one clip of {frames} frames fits in "
            f"{format_bytes(fit.limit_bytes)} (the budget less train.memory_margin={settings.memory_margin})"
            + (f", it needs {format_bytes(needed)}" if needed else "")
            + f"; {advice}, or raise train.memory_budget"
        )
    micro = max(d for d in range(1, largest + 1) if effective % d == 0)
    return AutoFitResult(
        batch_size=micro,
        accumulate_grad_batches=effective // micro,
        effective_batch_size=effective,
        largest_fitting=largest,
        peak_bytes=fit.peak_bytes,
        limit_bytes=fit.limit_bytes,
        measured=measure,
    )


class AutoFit(L.Callback):
    """Resolves ``data.batch_size: auto`` when training starts, on every rank alike.

    Args:
        precision: The precision training runs in (as `resolve_precision` gives it).
    """

    def __init__(self, *, precision: Precision) -> None:
        self.precision = precision
        self.result: AutoFitResult | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = cast(TaskData, trainer.datamodule)  # type: ignore[attr-defined]
        config = cast(Config, pl_module.config)
        if stage != "fit" or config.data.batch_size != "auto":
            return
        measure = trainer.strategy.root_device.type == "cuda"
        self.result = choose_batch_size(
            config,
            views=tuple(datamodule.views),
            num_classes=len(datamodule.label_names),
            precision=self.precision,
            measure=measure,
            agree=agree_on_min,
        )
        datamodule.batch_size = self.result.batch_size
        config.train.accumulate_grad_batches = self.result.accumulate_grad_batches
        rank_zero_info(describe_fit(self.result, world_size=trainer.world_size))
        if self.result.batch_size == 1 and self.result.largest_fitting > 1:
            rank_zero_warn(indivisible_note(self.result))


def describe_fit(result: AutoFitResult, *, world_size: int) -> str:
    """The log line of an auto-fit: micro-batch, accumulation, clips per optimizer step per rank and in all."""
    how = "measured" if result.measured else "estimated"
    per_step = f"{result.effective_batch_size} clips per optimizer step"
    if world_size > 1:
        per_step += (
            f" per rank; {result.effective_batch_size * world_size} clips per optimizer step across {world_size} ranks"
        )
    return (
        f"auto-fit: batch {result.batch_size} x {result.accumulate_grad_batches} accumulated = {per_step}; the "
        f"largest batch that fits is {result.largest_fitting} ({how}, within {format_bytes(result.limit_bytes)})"
    )


def indivisible_note(result: AutoFitResult) -> str:
    """Why the micro-batch is 1 although more fits, and effective batches that would divide better."""
    effective, largest = result.effective_batch_size, result.largest_fitting
    below = max(largest, effective // largest * largest)
    return (
        f"auto-fit: train.effective_batch_size={effective} has no divisor from 2 to {largest} (the largest batch "
        f"that fits), so each optimizer step accumulates {effective} x 1 clip; a multiple of {largest}, e.g. "
        f"{below} or {below + largest}, would train in micro-batches of {largest}"
    )
