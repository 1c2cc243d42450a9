"""The temporal task's LightningModule: the head trained on padded whole videos, evaluated video by video."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidfit.config import config_from_dict
from vidfit.infer import gather_objects
from vidfit.tasks.temporal._config import TemporalConfig
from vidfit.tasks.temporal._data import FeatureBatch
from vidfit.tasks.temporal._evaluation import TemporalScore, score_temporal, temporal_metrics
from vidfit.tasks.temporal._frames import StepTimes
from vidfit.tasks.temporal._model import TemporalNet
from vidfit.train import GuardedModule, broadcast_buffers

# A temporal model's memory grows with the videos' length and the batch: what to lower when even one does not fit.
_MEMORY_ADVICE = "lower data.batch_size, or cut long videos with data.max_video_frames (and data.chunk_overlap_frames)"


def step_times(meta: dict[str, Any]) -> StepTimes:
    """Where an evaluation sample's steps and frames lie (`FeatureSequences` puts it in ``meta``)."""
    return StepTimes(
        meta["centre_frames"], meta["pts_seconds"], int(meta["first_frame"]), float(meta["frames_per_step"])
    )


class TemporalModule(GuardedModule):
    """Trains a `TemporalNet` through the OOM guard and scores whole videos as `predict` scores them.

    Args:
        config: The run's configuration as plain data (saved in checkpoints).
        label_names: Classes, in label-index order.
        feature_dim: Channels of the features.
        features: The settings of the feature folder it is trained on (its index's): predict refuses others.
    """

    def __init__(self, *, config: dict[str, Any], label_names: list[str], feature_dim: int,
                 features: dict[str, Any]) -> None:  # fmt: skip
        typed: TemporalConfig = config_from_dict(config, source="checkpoint hyper-parameters")
        super().__init__(typed, memory_advice=_MEMORY_ADVICE)
        self.save_hyperparameters()
        self.config: TemporalConfig = typed
        self.model = TemporalNet(typed.model, in_channels=feature_dim, label_names=label_names)
        # Records per video, gathered from every rank at the epoch's end (each video once).
        self._scores: list[TemporalScore] = []

    def forward(self, batch: FeatureBatch) -> Any:
        return self.model(batch.features, batch.mask)

    def _loss(self, output: Any, batch: FeatureBatch, counts: tuple[torch.Tensor, ...]) -> torch.Tensor:
        train = self.config.train
        return self.model.loss(output, batch, counts=counts, smoothing_weight=train.smoothing_weight,
                               regression_weight=train.regression_weight)  # fmt: skip

    def training_step(self, batch: FeatureBatch, batch_index: int) -> torch.Tensor:
        counts, accumulate = self.model.counts(batch), self.config.train.accumulate_grad_batches

        def compute(part: FeatureBatch) -> tuple[torch.Tensor, None]:
            return self._loss(self(part), part, counts) / accumulate, None

        result = self.guarded_step(batch, batch_index, batch_size=len(batch), compute=compute)
        self.log("train/loss", result.loss * accumulate, prog_bar=True, batch_size=len(batch))
        return result.loss

    def validation_step(self, batch: FeatureBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: FeatureBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def _evaluate(self, batch: FeatureBatch) -> None:
        """Each video of the batch (one, from the evaluation loader) read at its frames and scored."""
        output = self(batch)
        loss = float(self._loss(output, batch, self.model.counts(batch)))
        for row, meta in enumerate(batch.meta):
            times = step_times(meta)
            result = self.model.frame_result(output, row, num_steps=int(batch.mask[row].sum()), times=times)
            score = score_temporal(
                result, meta["truth"], times, video_id=meta["video_id"], position=int(meta["position"]),
                background=self.model.background, loss=loss,
            )  # fmt: skip
            self._scores.append(score)

    def on_validation_epoch_start(self) -> None:
        self._scores = []
        broadcast_buffers(self)

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")
        super().on_validation_epoch_end()

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> None:
        unique: dict[int, TemporalScore] = {}
        for score in gather_objects(self._scores):  # DistributedSampler repeats videos to even out the ranks
            unique.setdefault(score.position, score)
        self._scores = []
        if not unique:
            return
        values = temporal_metrics([unique[p] for p in sorted(unique)]).logged(stage)
        # Every rank computed the same values from the same videos: "max" keeps them exact while synchronized.
        for name, value in values.items():
            if np.isfinite(value):
                self.log(name, value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max",
                         prog_bar=name in (f"{stage}/loss", f"{stage}/f1@50"))  # fmt: skip
