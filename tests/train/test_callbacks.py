"""The memory monitor: one log per optimizer step, each with the peak of its own interval."""

from __future__ import annotations

import csv
import logging
import mmap
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ReportedEarlyStopping

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


class _Scored(L.LightningModule):
    """A linear model whose ``val/acc`` at each epoch is given: early stopping's input, made to order."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.scores = scores

    def training_step(self, batch: list[torch.Tensor], batch_index: int) -> torch.Tensor:
        return self.linear(batch[0]).sum()

    def validation_step(self, batch: list[torch.Tensor], batch_index: int) -> None:
        self.log("val/acc", self.scores[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _quiet_trainer(tmp_path: Path, callbacks: list[L.Callback], **settings: object) -> L.Trainer:
    defaults: dict[str, object] = {"max_epochs": 10, "logger": False}
    return L.Trainer(
        accelerator="cpu", limit_train_batches=1, limit_val_batches=1, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=callbacks, **{**defaults, **settings},
    )  # fmt: skip


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(4, 4)), batch_size=2)


def test_early_stopping_says_the_metric_its_best_value_and_epoch_and_the_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    monkeypatch.setattr("vidfit.train._callbacks.rank_zero_info", said.append)
    stopping = ReportedEarlyStopping(monitor="val/acc", mode="max", patience=2)
    trainer = _quiet_trainer(tmp_path, [stopping], enable_checkpointing=False)
    trainer.fit(_Scored([0.5, 0.75, 0.6, 0.7, 0.9, 0.9]), train_dataloaders=_loader(), val_dataloaders=_loader())
    assert trainer.current_epoch == 4  # stopped after epoch 3, epochs counted from 0
    assert said == [
        "early stopping after epoch 3: val/acc has not improved in 2 validations (train.early_stopping_patience=2); "
        "best val/acc 0.7500 at epoch 1"
    ]
    assert stopping.state_key == "EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}"  # older checkpoints resume


def test_a_run_says_no_lightning_service_tips_and_no_ckpt_path_warnings(tmp_path: Path) -> None:
    import vidfit.train._run  # noqa: F401 (installs the filter of the tips)

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            interrupt = InterruptCheckpoint(path=tmp_path / "checkpoints" / "interrupted.ckpt")
            trainer = _quiet_trainer(tmp_path, [interrupt], max_epochs=1, logger=CSVLogger(tmp_path))
            trainer.fit(_Scored([0.5]), train_dataloaders=_loader(), val_dataloaders=_loader())
            trainer.validate(_Scored([0.5, 0.5]), dataloaders=_loader(), verbose=False)
    finally:
        logger.removeHandler(handler)
    tips = [r.getMessage() for r in records if "Tip" in r.getMessage()]
    assert not tips, tips
    about_ckpt_path = [str(w.message) for w in warned if "ckpt_path" in str(w.message)]
    assert not about_ckpt_path, about_ckpt_path
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()  # saved on Ctrl-C only
