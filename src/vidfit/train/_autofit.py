"""Auto-fit: ``data.batch_size: auto`` becomes the largest micro-batch that fits the memory budget.

The configured effective batch (``train.effective_batch_size``) is kept exactly: the micro-batch is the
largest divisor of it that fits, and accumulation makes up the rest. Every rank of a distributed run
takes the smallest fit of all ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from vidfit.memory import Precision, format_bytes, largest_fitting_batch, parse_bytes
from vidfit.train._config import Config, ConfigError
from vidfit.train._datamodule import VideoDataModule
from vidfit.train._distributed import agree_on_min
from vidfit.train._module import VideoClassificationModule
from vidfit.train._plan_step import PlanStep


@dataclass(frozen=True)
class AutoFitResult:
    """The batch auto-fit chose.

    Attributes:
        batch_size: Clips per forward and backward pass (the micro-batch).
        accumulate_grad_batches: Micro-batches per optimizer step.
        effective_batch_size: Clips per optimizer step, as configured.
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

    Args:
        config: A run with ``train.memory_budget`` and ``train.effective_batch_size``.
        views: The camera views the model takes.
        num_classes: The classes it predicts.
        precision: The precision training runs in.
        measure: Measure steps on the CUDA GPU, capped at the budget; else estimate them on fake tensors.
        agree: Combines this rank's largest fit with the other ranks' (the minimum); identity alone.

    Raises:
        ConfigError: Not even one clip fits; the message names what to change.
    """
    settings = config.train
    if settings.memory_budget is None or settings.effective_batch_size is None:
        raise ConfigError("auto-fit needs train.memory_budget and train.effective_batch_size")
    budget, effective = parse_bytes(settings.memory_budget), settings.effective_batch_size
    step = PlanStep(config, views, num_classes)
    run = step.measure if measure else step.estimate
    frames, ckpt = config.data.num_frames, config.model.activation_checkpointing

    def peak(batch_size: int) -> int | None:
        return run(frames, batch_size, precision, ckpt, budget)[0]

    fit = largest_fitting_batch(peak, budget_bytes=budget, margin_fraction=settings.memory_margin, max_batch=effective)
    largest = agree(fit.batch_size or 0)
    if largest < 1:
        needed = dict(fit.measured).get(1)
        raise ConfigError(
            f"train.memory_budget={settings.memory_budget!r}: not even one clip of {frames} frames fits in "
            f"{format_bytes(fit.limit_bytes)} (the budget less train.memory_margin={settings.memory_margin})"
            + (f", it needs {format_bytes(needed)}" if needed else "")
            + "; lower data.num_frames or data.image_size, set model.activation_checkpointing: true, train in "
            "trainer.precision: bf16-mixed, or raise the budget"
        )
    micro = max(d for d in range(1, largest + 1) if effective % d == 0)
    return AutoFitResult(micro, effective // micro, effective, largest, fit.peak_bytes, fit.limit_bytes, measure)


class AutoFit(L.Callback):
    """Resolves ``data.batch_size: auto`` when training starts, on every rank alike.

    Args:
        precision: The precision training runs in (as `resolve_precision` gives it).
    """

    def __init__(self, *, precision: Precision) -> None:
        self.precision = precision
        self.result: AutoFitResult | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = cast(VideoDataModule, trainer.datamodule)  # type: ignore[attr-defined]
        config = cast(VideoClassificationModule, pl_module).config
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
        how = "measured" if measure else "estimated"
        rank_zero_info(
            f"auto-fit: batch {self.result.batch_size} x {self.result.accumulate_grad_batches} accumulated = "
            f"{self.result.effective_batch_size} clips per step; the largest batch that fits is "
            f"{self.result.largest_fitting} ({how}, within {format_bytes(self.result.limit_bytes)})"
        )
