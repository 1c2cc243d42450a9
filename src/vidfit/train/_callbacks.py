"""Callbacks: memory and throughput monitors, and a resumable checkpoint on Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from vidfit.memory import memory_report


class MemoryMonitor(L.Callback):
    """Prints the boxed memory report when training starts and logs memory every `every_n_steps`.

    Args:
        every_n_steps: Steps between logged reports.
    """

    def __init__(self, *, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps!r} must be >= 1")
        self.every_n_steps = every_n_steps

    def report(self, module: L.LightningModule) -> str:
        """The boxed report for the module's device, as text (also printed at the first epoch)."""
        return memory_report(module.device).box()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            rank_zero_info(self.report(module))

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int
    ) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        report = memory_report(module.device).as_dict()
        figures = {f"memory/{k.removesuffix('_bytes')}_gib": v / 2**30 for k, v in report.items() if isinstance(v, int)}
        module.log_dict(figures, on_step=True, on_epoch=False)


class ThroughputMonitor(L.Callback):
    """Logs clips/s and how much of each step waits for data; says so once when data is the bottleneck.

    Args:
        warn_data_fraction: Share of the step spent waiting for data above which it warns.
        warmup_steps: First steps of the run left out (workers starting, cuDNN autotuning).
    """

    def __init__(self, *, warn_data_fraction: float = 0.2, warmup_steps: int = 5) -> None:
        self.warn_data_fraction, self.warmup_steps = warn_data_fraction, warmup_steps
        self._batch_start = self._last_end = 0.0
        self._steps_seen = 0
        self._warned = False

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_index: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int
    ) -> None:
        now = time.perf_counter()
        data_seconds, step_seconds = self._batch_start - self._last_end, now - self._batch_start
        self._last_end = now
        self._steps_seen += 1
        if self._steps_seen <= self.warmup_steps:
            return
        total = data_seconds + step_seconds
        fraction = data_seconds / total if total > 0 else 0.0
        clips = next(len(value) for value in batch.values() if isinstance(value, torch.Tensor))
        module.log_dict({"perf/clips_per_second": clips / total, "perf/data_fraction": fraction}, on_step=True)
        if fraction > self.warn_data_fraction and not self._warned:
            self._warned = True
            rank_zero_warn(
                f"waiting for data takes {fraction:.0%} of each training step: raise data.num_workers, "
                "transcode the videos to the training size with `vidfit prepare`, or decode on the GPU (nvdec)"
            )


class InterruptCheckpoint(L.Callback):
    """Saves a resumable checkpoint when training is interrupted (Ctrl-C), so no work is lost."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.path)
            rank_zero_info(f"interrupted: resumable checkpoint saved to {self.path}")
