"""Callbacks: memory and throughput monitors, and a resumable checkpoint on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.data import extract_batch_size

from vidfit.data._batch import TensorBatch
from vidfit.memory import PeakMemory, memory_report, track_peak


class MemoryMonitor(L.Callback):
    """Prints the boxed memory report when training starts and logs memory every `every_n_steps` optimizer steps.

    Each log holds the current figures of `memory_report` and ``memory/peak_gib``, the peak of the interval
    since the previous log, tracked by `track_peak`: allocated CUDA bytes on a GPU, sampled process RSS on
    the CPU. With gradient accumulation a step spans several batches and is logged once, after its
    optimizer step.

    Args:
        every_n_steps: Optimizer steps between logged reports.
    """

    def __init__(self, *, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps!r} must be >= 1")
        self.every_n_steps = every_n_steps
        self._interval = contextlib.ExitStack()
        self._peak: PeakMemory | None = None
        self._last_step = 0

    def report(self, module: L.LightningModule) -> str:
        """The boxed report for the module's device, as text (also printed at the first epoch)."""
        return memory_report(module.device).box()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step
        self._peak = self._interval.enter_context(track_peak(module.device))

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            rank_zero_info(self.report(module))

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int
    ) -> None:
        stepped, self._last_step = trainer.global_step != self._last_step, trainer.global_step
        if not stepped or trainer.global_step % self.every_n_steps or self._peak is None:
            return
        self._interval.close()  # fills the interval's peak
        peak_bytes = self._peak.peak_bytes
        self._peak = self._interval.enter_context(track_peak(module.device))
        # The report's own CUDA peak would repeat the interval's: `track_peak` resets the same statistic.
        report = {k: v for k, v in memory_report(module.device).as_dict().items() if k != "peak_allocated_bytes"}
        figures = {f"memory/{k.removesuffix('_bytes')}_gib": v / 2**30 for k, v in report.items() if isinstance(v, int)}
        module.log_dict({**figures, "memory/peak_gib": peak_bytes / 2**30}, on_step=True, on_epoch=False)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._interval.close()
        self._peak = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)


class ThroughputReport(L.Callback):
    """Logs clips/s, seconds a step (``perf/batch_time``) and waiting for data (``perf/data_time``, and its
    share ``perf/data_fraction``); says once when data is the bottleneck.

    Figures are taken over windows of `every_n_steps` steps. The wait for the loader is measured on
    the CPU; CUDA is synchronized only at the end of a window, so the window's time includes the GPU's
    work without stalling every step. Validation in the middle of an epoch starts a new window.

    Args:
        num_workers: The run's ``data.num_workers``: more workers is named as a fix below the CPU count.
        decode_backend: The run's ``data.decode_backend``: nvdec is named as a fix on CUDA unless in use.
        every_n_steps: Steps per window.
        warn_data_fraction: Share of the time spent waiting for data above which it warns.
        warmup_steps: First steps of the run left out (workers starting, cuDNN autotuning).
    """

    def __init__(
        self,
        *,
        num_workers: int,
        decode_backend: str,
        every_n_steps: int = 10,
        warn_data_fraction: float = 0.2,
        warmup_steps: int = 5,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps!r} must be >= 1")
        self.num_workers, self.decode_backend = num_workers, decode_backend
        self.every_n_steps, self.warn_data_fraction, self.warmup_steps = every_n_steps, warn_data_fraction, warmup_steps
        self._steps_seen = 0
        self._warned = False
        self._restart()

    def _restart(self) -> None:
        self._window_start = self._last_end = time.perf_counter()
        self._data_seconds, self._clips, self._steps = 0.0, 0, 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restart()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restart()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_index: int) -> None:
        self._data_seconds += time.perf_counter() - self._last_end

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_index: int
    ) -> None:
        self._steps_seen += 1
        if self._steps_seen <= self.warmup_steps:
            self._restart()
            return
        self._clips += len(batch) if isinstance(batch, TensorBatch) else extract_batch_size(batch)
        self._steps += 1
        if self._steps < self.every_n_steps:
            self._last_end = time.perf_counter()
            return
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)
        elapsed = time.perf_counter() - self._window_start
        fraction = min(1.0, self._data_seconds / elapsed) if elapsed > 0 else 0.0
        figures = {
            "perf/clips_per_second": self._clips / elapsed,
            "perf/data_fraction": fraction,
            # Seconds a step, as training scripts print them: waiting for the loader, and the whole step.
            "perf/data_time": self._data_seconds / self._steps,
            "perf/batch_time": elapsed / self._steps,
        }
        module.log_dict(figures, on_step=True)
        if fraction > self.warn_data_fraction and not self._warned:
            self._warned = True
            rank_zero_warn(
                f"waiting for data takes {fraction:.0%} of the training time: " + "; ".join(self._fixes(module))
            )
        self._restart()

    def _fixes(self, module: L.LightningModule) -> list[str]:
        """The fixes that apply to this run."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        fixes = []
        if self.num_workers < cpus:
            fixes.append(f"raise data.num_workers={self.num_workers} (there are {cpus} CPUs)")
        # Whether the videos are larger than the training size or have long GOPs is not known without probing them.
        fixes.append("transcode the videos to the training size with short GOPs (`vidfit prepare`)")
        if module.device.type == "cuda" and self.decode_backend != "nvdec":
            fixes.append("decode on the GPU (data.decode_backend: nvdec)")
        return fixes


class InterruptCheckpoint(L.Callback):
    """A resumable checkpoint on Ctrl-C (or SIGTERM), so that no work is lost, announced.

    Not Lightning's `OnExceptionCheckpoint`: a trainer holding one resumes every ``fit`` from ``ckpt_path="last"``
    unless told otherwise, warning twice about it at each new run.

    Args:
        path: The checkpoint file to write.
    """

    def __init__(self, *, path: Path) -> None:
        self.ckpt_path = str(path)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            trainer.save_checkpoint(self.ckpt_path)
            rank_zero_info(f"interrupted: resumable checkpoint saved to {self.ckpt_path}")


class ReportedEarlyStopping(EarlyStopping):
    """Lightning's early stopping, saying when it stops training: the metric, its best value and epoch, the patience.

    Lightning stops silently (its reason is logged at the debug level only), which reads as a run that ended
    before ``trainer.max_epochs`` for no reason.
    """

    def __init__(self, *, monitor: str, mode: str, patience: int) -> None:
        super().__init__(monitor=monitor, mode=mode, patience=patience)
        self.best_epoch: int | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        before = (self.best_score.clone(), self.stopping_reason_message)
        super().on_validation_end(trainer, module)  # checks here, or at the epoch's end (Lightning decides)
        self._after_check(trainer, *before)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        before = (self.best_score.clone(), self.stopping_reason_message)
        super().on_train_epoch_end(trainer, module)
        self._after_check(trainer, *before)

    def _after_check(self, trainer: L.Trainer, best_before: torch.Tensor, reason_before: str | None) -> None:
        if not torch.equal(self.best_score.cpu(), best_before.cpu()):
            self.best_epoch = trainer.current_epoch
        if self.stopping_reason_message is None or self.stopping_reason_message == reason_before:
            return  # no stop decided by this check
        if self.wait_count < self.patience:  # another reason (a metric gone NaN): Lightning's own words
            rank_zero_info(f"early stopping: {self.stopping_reason_message}")
            return
        rank_zero_info(
            f"early stopping after epoch {trainer.current_epoch}: {self.monitor} has not improved in "
            f"{self.wait_count} validation{'s' if self.wait_count != 1 else ''} "
            f"(train.early_stopping_patience={self.patience}); best {self.monitor} {float(self.best_score):.4f} "
            f"at epoch {self.best_epoch}"
        )

    @property
    def state_key(self) -> str:
        # Lightning's EarlyStopping's key: checkpoints saved with it resume with their count of epochs waited.
        return "EarlyStopping" + repr({"monitor": self.monitor, "mode": self.mode})

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")
