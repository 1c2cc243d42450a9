"""The LightningModule of action recognition: clip and per-frame losses, metrics, chunked evaluation."""

from __future__ import annotations

from typing import Any, cast

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from vidfit.infer import ChunkedPredictor
from vidfit.models import build_classifier
from vidfit.train._config import Config, config_from_dict

Batch = dict[str, Any]


class VideoClassificationModule(L.LightningModule):
    """Trains a `vidfit.models` classifier on clips and evaluates whole chunks.

    Args:
        config: The run's configuration as plain data (saved in checkpoints).
        label_names: Class names, in label-index order.
        views: Camera views, in the order the data module stacks them.
    """

    def __init__(self, *, config: dict[str, Any], label_names: list[str], views: list[str]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config: Config = config_from_dict(config, source="checkpoint hyper-parameters")
        model = self.config.model
        self.model = build_classifier(
            backbone=model.backbone, num_classes=len(label_names), views=tuple(views), view_fusion=model.view_fusion,
            input_type=model.input_type, num_keypoints=model.num_keypoints, keypoint_dims=model.keypoint_dims,
            activation_checkpointing=model.activation_checkpointing, pretrained_path=model.pretrained_path,
            dropout=model.dropout,
        )  # fmt: skip
        # Loss modules are built once here, not per step (seed 002's hygiene). Summed, then divided by the
        # labelled count in `_loss`: a mean over a batch with no labels at all would be NaN.
        smoothing = self.config.train.label_smoothing
        self.clip_loss = nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=smoothing, reduction="sum")
        self.frame_loss = nn.CrossEntropyLoss(ignore_index=-1, reduction="sum")
        num_classes = len(label_names)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{kind}": MulticlassAccuracy(num_classes, average="micro", ignore_index=-1)
                for stage in ("train", "val", "test")
                for kind in ("acc", "frame_acc")
            }
        )

    def forward(self, batch: Batch) -> Any:
        return self.model(
            batch.get("video"), keypoints=batch.get("keypoints"), keypoint_mask=batch.get("keypoint_mask")
        )

    def on_fit_start(self) -> None:
        settings = self.config.train
        if self.device.type != "cuda":
            return
        torch.backends.cuda.matmul.allow_tf32 = settings.tf32
        torch.backends.cudnn.allow_tf32 = settings.tf32
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        if settings.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        output = self(batch)
        loss = self._loss(output.logits, output.frame_logits, batch)
        self._update_metrics("train", output.logits, output.frame_logits, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: Batch, batch_index: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, stage: str, batch: Batch) -> None:
        logits, frame_logits = self._chunked_forward(batch)
        loss = self._loss(logits, frame_logits, batch)
        self._update_metrics(stage, logits, frame_logits, batch)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(batch["label"]))

    def _chunked_forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples longer than `train.chunk_infer_size` go through `ChunkedPredictor`; others in one pass."""
        settings = self.config.train
        num_frames = int(batch["frame_labels"].shape[1])
        if settings.chunk_infer_size == -1 or num_frames <= settings.chunk_infer_size or "video" not in batch:
            output = self(batch)
            return output.logits, output.frame_logits
        predictor = ChunkedPredictor(
            self.model,
            chunk_infer_size=settings.chunk_infer_size,
            chunk_overlap=settings.chunk_overlap,
            chunk_aggregation=settings.chunk_aggregation,
            video_batch_size=settings.video_batch_size,
            device=self.device,
        )
        logits, frames = [], []
        for index in range(len(batch["label"])):
            keypoints, mask = batch.get("keypoints"), batch.get("keypoint_mask")
            prediction = predictor.predict_tensor(
                batch["video"][index],
                keypoints=None if keypoints is None else keypoints[index],
                keypoint_mask=None if mask is None else mask[index],
            )
            # `prob` aggregates probabilities; the loss takes their log so every aggregation gives logits.
            scores = prediction.scores.log() if settings.chunk_aggregation == "prob" else prediction.scores
            logits.append(scores)
            frames.append(prediction.frame_logits)
        return torch.stack(logits).to(self.device), torch.stack(frames).to(self.device)

    def _loss(self, logits: torch.Tensor, frame_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        labels, frame_labels = batch["label"], batch["frame_labels"].flatten()
        clip = self.clip_loss(logits.float(), labels) / (labels != -1).sum().clamp(min=1)
        frames = self.frame_loss(frame_logits.flatten(0, 1).float(), frame_labels) / (frame_labels != -1).sum().clamp(
            min=1
        )
        return clip + self.config.train.frame_loss_weight * frames

    def _update_metrics(self, stage: str, logits: torch.Tensor, frame_logits: torch.Tensor, batch: Batch) -> None:
        clip, frame = cast(Metric, self.metrics[f"{stage}_acc"]), cast(Metric, self.metrics[f"{stage}_frame_acc"])
        clip.update(logits.detach(), batch["label"])
        frame.update(frame_logits.detach().flatten(0, 1), batch["frame_labels"].flatten())
        size = len(batch["label"])
        self.log(f"{stage}/acc", clip, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=size)
        self.log(f"{stage}/frame_acc", frame, on_step=False, on_epoch=True, batch_size=size)

    def on_validation_epoch_end(self) -> None:
        # Evaluation leaves its activations' blocks cached; hand them back before training resumes.
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def configure_optimizers(self) -> Any:
        settings, max_epochs = self.config.train, max(1, self.config.trainer.max_epochs)
        parameters = [p for p in self.parameters() if p.requires_grad]
        if settings.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                parameters, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        schedules: list[torch.optim.lr_scheduler.LRScheduler] = []
        if settings.warmup_epochs > 0:
            schedules.append(torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, settings.warmup_epochs))
        remaining = max(1, max_epochs - settings.warmup_epochs)
        if settings.scheduler == "cosine":
            schedules.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=remaining))
        elif settings.scheduler == "multistep":
            schedules.append(torch.optim.lr_scheduler.MultiStepLR(optimizer, settings.milestones, settings.gamma))
        if not schedules:
            return optimizer
        scheduler = (
            schedules[0]
            if len(schedules) == 1
            else torch.optim.lr_scheduler.SequentialLR(optimizer, schedules, milestones=[settings.warmup_epochs])
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
