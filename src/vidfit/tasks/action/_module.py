"""The LightningModule of action recognition: clip and per-frame losses, metrics, chunked evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from vidfit.config import config_from_dict
from vidfit.data import IGNORE_LABEL, VideoBatch, augment_clips
from vidfit.infer import ChunkedPredictor
from vidfit.memory._advice import memory_advice
from vidfit.memory._step import Precision
from vidfit.models._backbone_recipes import backbone_constraints
from vidfit.tasks.action._config import ActionConfig, ActionDataConfig
from vidfit.tasks.action._evaluation import ChunkResult, evaluation_metrics, gather_chunk_results
from vidfit.tasks.action._model import build_model, chunked_predictor
from vidfit.train import GuardedModule
from vidfit.train._distributed import broadcast_buffers
from vidfit.train._guard import OomGuard


class VideoClassificationModule(GuardedModule):
    """Trains a `vidfit.models` classifier on clips and evaluates whole chunks.

    Args:
        config: The run's configuration as plain data (saved in checkpoints).
        label_names: Class names, in label-index order.
        views: Camera views, in the order the data module stacks them.
        load_pretrained: Read `model.pretrained_path`; off when a checkpoint's weights will replace them.
    """

    def __init__(
        self, *, config: dict[str, Any], label_names: list[str], views: list[str], load_pretrained: bool = True
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["load_pretrained"])
        self.config: ActionConfig = config_from_dict(config, source="checkpoint hyper-parameters")
        self.model = build_model(self.config, label_names=label_names, views=views, load_pretrained=load_pretrained)
        # Loss modules are built once here, not per step. Summed, then divided by the
        # labelled count in `_loss`: a mean over a batch with no labels at all would be NaN.
        smoothing = self.config.train.label_smoothing
        self.clip_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_LABEL, label_smoothing=smoothing, reduction="sum")
        self.frame_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_LABEL, reduction="sum")
        num_classes = len(label_names)
        self.metrics = nn.ModuleDict(
            {
                f"train_{kind}": MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_LABEL)
                for kind in ("acc", "frame_acc")
            }
        )
        # Evaluation keeps a result per chunk instead of running metrics: under DDP the results of every rank are
        # gathered and the chunks DistributedSampler repeats to even out the shards are counted once.
        self._chunk_results: list[ChunkResult] = []
        self._augment_generator: torch.Generator | None = None
        self.guard = OomGuard([p for p in self.model.parameters() if p.requires_grad], advice=self._memory_advice())

    def _memory_advice(self) -> str:
        model, data = self.config.model, self.config.data
        resizable = model.input_type == "kpt" or backbone_constraints(model.backbone).exact_shape is None
        return memory_advice(
            num_frames=data.num_frames if resizable else None,
            image_size=data.image_size if resizable and isinstance(data.image_size, tuple) else None,
            precision=self.config.trainer.precision,
            activation_checkpointing=model.activation_checkpointing,
        )

    def on_after_batch_transfer(self, batch: VideoBatch, dataloader_idx: int) -> VideoBatch:
        """Augments training clips where they arrived (the GPU), as uint8; evaluation is never augmented."""
        data = cast(ActionDataConfig, self.config.data)
        augment = data.augment
        if not augment.enabled or batch.video is None or self._trainer is None or not self.trainer.training:
            return batch
        if self._augment_generator is None:
            # Drawn on the CPU (no device sync), differently on each rank, repeatably from the run's seed.
            seed = self.config.experiment.seed * 1000 + self.global_rank
            self._augment_generator = torch.Generator().manual_seed(seed)
        result = augment_clips(
            batch.video, batch.keypoints, config=augment,
            keypoint_units=data.keypoint_units, generator=self._augment_generator,
        )  # fmt: skip
        keypoints = batch.keypoints if result.keypoints is None else result.keypoints
        return dataclasses.replace(batch, video=result.video, keypoints=keypoints)

    def forward(self, batch: VideoBatch) -> Any:
        return self.model(batch.video, keypoints=batch.keypoints, keypoint_mask=batch.keypoint_mask)

    def training_step(self, batch: VideoBatch, batch_index: int) -> torch.Tensor:
        size, counts = len(batch), _label_counts(batch)
        accumulate = self.config.train.accumulate_grad_batches

        def compute(part: VideoBatch) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            output = self(part)
            loss = self._loss(output.logits, output.frame_logits, part, counts=counts) / accumulate
            return loss, (output.logits.detach(), output.frame_logits.detach())

        result = self.guarded_step(batch, batch_index, batch_size=size, compute=compute)
        logits = torch.cat([logits for logits, _ in result.outputs])
        frame_logits = torch.cat([frames for _, frames in result.outputs]).flatten(0, 1)
        cast(Metric, self.metrics["train_acc"]).update(logits, batch.label)
        cast(Metric, self.metrics["train_frame_acc"]).update(frame_logits, batch.frame_labels.flatten())
        self.log("train/loss", result.loss * accumulate, prog_bar=True, batch_size=size)
        return result.loss

    def validation_step(self, batch: VideoBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: VideoBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def _evaluate(self, batch: VideoBatch) -> None:
        logits, frame_logits = self._chunked_forward(batch)
        for index, meta in enumerate(batch.meta):
            one = slice(index, index + 1)
            chunk = VideoBatch(label=batch.label[one], frame_labels=batch.frame_labels[one])
            self._chunk_results.append(
                ChunkResult(
                    video_id=meta["video_id"], chunk_index=int(meta["chunk_index"]),
                    loss=float(self._loss(logits[one], frame_logits[one], chunk)),
                    label=int(batch.label[index]), predicted_label=int(logits[index].argmax()),
                    frame_labels=batch.frame_labels[index].cpu(),
                    predicted_frame_labels=frame_logits[index].argmax(dim=-1).cpu(),
                )
            )  # fmt: skip

    def on_validation_epoch_start(self) -> None:
        self._chunk_results = []
        # Every rank evaluates the model that the checkpoint saves (rank 0's BatchNorm statistics).
        broadcast_buffers(self)

    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> None:
        """Logs `stage`/loss, /acc and /frame_acc of the chunks evaluated by all ranks, each chunk once."""
        results, self._chunk_results = gather_chunk_results(self._chunk_results), []
        if not results:
            return
        metrics = evaluation_metrics(results, num_classes=len(self.hparams["label_names"]))
        # Every rank computed the same values from the same gathered chunks; "max" over the ranks keeps them
        # bit-exact (a mean could round) while telling Lightning they are synchronized.
        options: dict[str, Any] = {"on_step": False, "on_epoch": True, "sync_dist": True, "reduce_fx": "max"}
        self.log(f"{stage}/loss", metrics.loss, prog_bar=True, **options)
        self.log(f"{stage}/acc", metrics.accuracy, prog_bar=True, **options)
        self.log(f"{stage}/frame_acc", metrics.frame_accuracy, **options)

    def chunked_predictor(self, *, device: torch.device, precision: Precision = "32") -> ChunkedPredictor:
        """The model behind a `ChunkedPredictor` with the config's `train.chunk_*` and `video_batch_size`."""
        return chunked_predictor(self.model, self.config, device=device, precision=precision)

    def _chunked_forward(self, batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples longer than `train.chunk_infer_size` go through `ChunkedPredictor`; others in one pass."""
        settings = self.config.train
        num_frames, video = batch.num_frames, batch.video
        if settings.chunk_infer_size == -1 or num_frames <= settings.chunk_infer_size or video is None:
            output = self(batch)
            return output.logits, output.frame_logits
        predictor = self.chunked_predictor(device=self.device)
        logits, frames = [], []
        keypoints, mask = batch.keypoints, batch.keypoint_mask
        for index in range(len(batch)):
            prediction = predictor.predict_tensor(
                video[index],
                keypoints=None if keypoints is None else keypoints[index],
                keypoint_mask=None if mask is None else mask[index],
            )
            # `prob` aggregates probabilities; the loss takes their log so every aggregation gives logits.
            scores = prediction.scores.log() if settings.chunk_aggregation == "prob" else prediction.scores
            logits.append(scores)
            frames.append(prediction.frame_logits)
        return torch.stack(logits).to(self.device), torch.stack(frames).to(self.device)

    def _loss(
        self,
        logits: torch.Tensor,
        frame_logits: torch.Tensor,
        batch: VideoBatch,
        *,
        counts: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Clip plus weighted per-frame cross-entropy, each summed over `batch` and divided by a labelled count.

        `counts` are the whole batch's (clips, frames) labelled counts when `batch` is one of its
        micro-batches, so that the micro-batch losses add up to the batch's loss exactly.
        """
        labels, frame_labels = batch.label, batch.frame_labels.flatten()
        clip_count, frame_count = counts if counts is not None else _label_counts(batch)
        clip = self.clip_loss(logits.float(), labels) / clip_count
        frames = self.frame_loss(frame_logits.flatten(0, 1).float(), frame_labels) / frame_count
        return clip + self.config.train.frame_loss_weight * frames

    def on_train_epoch_end(self) -> None:
        # Logged once an epoch rather than handed to `self.log` every step, where Lightning moves the
        # metric objects to the device each call: a third of a small model's step on the CPU.
        for kind in ("acc", "frame_acc"):
            metric = cast(Metric, self.metrics[f"train_{kind}"])
            self.log(f"train/{kind}", metric.compute())
            metric.reset()
        super().on_train_epoch_end()

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")
        super().on_validation_epoch_end()


def _label_counts(batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled clips and frames of a batch, at least 1 each (a batch without labels has a zero loss, not NaN)."""
    return (batch.label != IGNORE_LABEL).sum().clamp(min=1), (batch.frame_labels != IGNORE_LABEL).sum().clamp(min=1)
