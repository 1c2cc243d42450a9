"""The memory monitor: one log per optimizer step, each with the peak of its own interval."""

from __future__ import annotations

import csv
import mmap
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vidfit.train._callbacks import MemoryMonitor

SPIKE_BYTES = 256 * 2**20


class _Spiking(L.LightningModule):
    """A linear model whose training step at `spike_batch` briefly holds 256 MiB more."""

    def __init__(self, spike_batch: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.spike_batch = spike_batch

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        if batch_index == self.spike_batch:
            # Fresh pages of its own, written so resident: a malloc'd block could reuse heap memory that
            # earlier tests freed and that is still resident, and then RSS would not move.
            with mmap.mmap(-1, SPIKE_BYTES) as spike:
                torch.frombuffer(spike, dtype=torch.uint8).fill_(1)
                time.sleep(0.3)  # long enough for the 5 ms RSS sampler, even on a loaded machine
        return self.linear(batch[0]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_logs_once_per_optimizer_step_with_the_peak_of_each_interval(tmp_path: Path) -> None:
    loader = DataLoader(TensorDataset(torch.randn(16, 4)), batch_size=2)
    trainer = L.Trainer(
        max_steps=4,
        accumulate_grad_batches=2,
        callbacks=[MemoryMonitor(every_n_steps=1)],
        logger=CSVLogger(tmp_path, name="", version=""),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(_Spiking(spike_batch=3), loader)  # batch 3 is the second half of optimizer step 2
    rows = [row for row in csv.DictReader((tmp_path / "metrics.csv").open()) if row.get("memory/peak_gib")]
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3]  # four optimizer steps, each logged once
    peaks = [float(row["memory/peak_gib"]) for row in rows]
    spike_gib = SPIKE_BYTES / 2**30
    assert peaks[1] > max(peaks[0], peaks[2], peaks[3]) + 0.8 * spike_gib  # later intervals start afresh
    assert all(float(row["memory/process_rss_gib"]) > 0 for row in rows)
