"""The task's LightningModule, and the data and module of a run (``TaskSpec.data_and_module``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vidfit.config import config_from_dict
from vidfit.data import IGNORE_LABEL, VideoBatch
from vidfit.infer import read_checkpoint
from vidfit.memory import memory_advice
from vidfit.train import GuardedModule
from vidfit_motion._data import MotionData
from vidfit_motion._model import MotionConfig, MotionNet


def motion_targets(frame_labels: torch.Tensor, *, idle: int) -> torch.Tensor:
    """1 for a frame of any label but `idle`, 0 for an idle one, `IGNORE_LABEL` for an unlabelled one."""
    moving = (frame_labels != idle).long()
    return torch.where(frame_labels == IGNORE_LABEL, IGNORE_LABEL, moving)


class MotionModule(GuardedModule):
    """Trains `MotionNet` on per-frame cross-entropy through vidfit's OOM guard; evaluates whole chunks.

    Args:
        config: The run's config as plain data (saved in checkpoints, where `vidfit predict` reads it).
        label_names: The manifest's labels, to find the idle one.
        view: The camera the model sees.
    """

    def __init__(self, *, config: dict[str, Any], label_names: list[str], view: str) -> None:
        run: MotionConfig = config_from_dict(config, source="checkpoint hyper-parameters")
        advice = memory_advice(
            num_frames=run.data.num_frames, precision=run.trainer.precision, activation_checkpointing=True
        )
        super().__init__(run, memory_advice=advice)
        self.save_hyperparameters()
        self.config: MotionConfig = run
        self.model = MotionNet(channels=run.model.channels)
        self.idle = label_names.index(run.model.idle_label)

    def training_step(self, batch: VideoBatch, batch_index: int) -> torch.Tensor:
        accumulate = self.config.train.accumulate_grad_batches
        labelled = (batch.frame_labels != IGNORE_LABEL).sum().clamp(min=1)

        def compute(part: VideoBatch) -> tuple[torch.Tensor, None]:
            assert part.video is not None
            logits = self.model(part.video).frame_logits.flatten(0, 1).float()
            targets = motion_targets(part.frame_labels, idle=self.idle).flatten()
            # Summed over the micro-batch, divided by the whole batch's count: the parts add up to the batch.
            loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_LABEL, reduction="sum")
            return loss / labelled / accumulate, None

        result = self.guarded_step(batch, batch_index, batch_size=len(batch), compute=compute)
        self.log("train/loss", result.loss * accumulate, prog_bar=True, batch_size=len(batch))
        return result.loss

    def validation_step(self, batch: VideoBatch, batch_index: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: VideoBatch, batch_index: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, stage: str, batch: VideoBatch) -> None:
        assert batch.video is not None
        logits = self.model(batch.video).frame_logits.flatten(0, 1).float()
        targets = motion_targets(batch.frame_labels, idle=self.idle).flatten()
        known = targets != IGNORE_LABEL
        count = int(known.sum())
        if count:
            loss = F.cross_entropy(logits[known], targets[known])
            accuracy = (logits[known].argmax(dim=-1) == targets[known]).float().mean()
            self.log(f"{stage}/loss", loss, batch_size=count, sync_dist=True)
            self.log(f"{stage}/frame_acc", accuracy, batch_size=count, sync_dist=True, prog_bar=True)


def data_and_module(
    config: MotionConfig, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[MotionData, MotionModule]:
    """The run's data and a new module, or (validate, test) the module of `checkpoint`."""
    data = MotionData(config)
    if checkpoint is not None:
        read_checkpoint(checkpoint, weights=False).require_task("motion")
        if load:
            module = MotionModule.load_from_checkpoint(Path(checkpoint), map_location="cpu", weights_only=True)
            return data, module
    return data, MotionModule(config=config.to_dict(), label_names=data.label_names, view=data.views[0])
