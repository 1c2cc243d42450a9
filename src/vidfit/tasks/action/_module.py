"""The LightningModule of action recognition: clip and per-frame losses, metrics, whole-video evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from vidfit.config import config_from_dict
from vidfit.data import IGNORE_LABEL, VideoBatch, augment_clips
from vidfit.infer import ChunkedPredictor, VideoPrediction, evaluation_metrics
from vidfit.memory import Precision, memory_advice
from vidfit.models import backbone_constraints
from vidfit.tasks.action._config import ActionConfig, ActionDataConfig
from vidfit.tasks.action._datamodule import EvaluationBatch
from vidfit.tasks.action._evaluation import EvaluatedVideo, frame_truth, gather_videos, video_score
from vidfit.tasks.action._model import build_model, chunked_predictor
from vidfit.tasks.action._multilabel import (
    multi_label_counts,
    multi_label_loss,
    training_metrics,
    update_training_metrics,
)
from vidfit.tasks.action._multilabel_scores import EvaluatedMultiLabelVideo, evaluate_multi_label, multi_label_values
from vidfit.tasks.action._predict import _predict_job
from vidfit.train import GuardedModule, broadcast_buffers


class VideoClassificationModule(GuardedModule):
    """Trains a `vidfit.models` classifier on clips and evaluates whole videos as `predict` predicts them.

    Args:
        config: The run's configuration as plain data (saved in checkpoints).
        label_names: Class names, in label-index order.
        views: Camera views, in the order the data module stacks them.
        load_pretrained: Read `model.pretrained_path`; off when a checkpoint's weights will replace them.
        frame_head_trained: The training split has timelines, so the frame head learns (saved in checkpoints:
            without, evaluation and `predict` neither score nor write per-frame labels).
    """

    def __init__(
        self,
        *,
        config: dict[str, Any],
        label_names: list[str],
        views: list[str],
        load_pretrained: bool = True,
        frame_head_trained: bool = True,
    ) -> None:
        run: ActionConfig = config_from_dict(config, source="checkpoint hyper-parameters")
        super().__init__(run, memory_advice=_memory_advice(run))
        self.save_hyperparameters(ignore=["load_pretrained"])
        self.config: ActionConfig = run
        self.model = build_model(self.config, label_names=label_names, views=views, load_pretrained=load_pretrained)
        # Loss modules are built once here, not per step. Summed, then divided by the
        # labelled count in `_loss`: a mean over a batch with no labels at all would be NaN.
        smoothing = self.config.train.label_smoothing
        self.clip_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_LABEL, label_smoothing=smoothing, reduction="sum")
        self.frame_loss = nn.CrossEntropyLoss(ignore_index=IGNORE_LABEL, reduction="sum")
        num_classes = len(label_names)
        # Multi-label models read their heads through sigmoids (tasks/action/_multilabel.py).
        self.multi_label = self.config.model.multi_label
        self.metrics = training_metrics(num_classes) if self.multi_label else nn.ModuleDict(
            {
                f"train_{kind}": MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE_LABEL)
                for kind in ("acc", "frame_acc")
            }
        )  # fmt: skip
        self._multi_label_videos: list[EvaluatedMultiLabelVideo] = []
        # Evaluation keeps a record per video instead of running metrics: under DDP the records of every rank are
        # gathered and the videos DistributedSampler repeats to even out the shares are counted once.
        self._videos: list[EvaluatedVideo] = []
        self._augment_generator: torch.Generator | None = None

    def on_after_batch_transfer(self, batch: VideoBatch, dataloader_idx: int) -> VideoBatch:
        """Augments training clips where they arrived (the GPU), as uint8; evaluation is never augmented."""
        data = cast(ActionDataConfig, self.config.data)
        augment = data.augment
        if self._trainer is None or not self.trainer.training or not augment.enabled or batch.video is None:
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
        size, counts = len(batch), (multi_label_counts if self.multi_label else _label_counts)(batch)
        accumulate = self.config.train.accumulate_grad_batches

        def compute(part: VideoBatch) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
            output = self(part)
            loss = self._loss(output.logits, output.frame_logits, part, counts=counts) / accumulate
            return loss, (output.logits.detach(), output.frame_logits.detach())

        result = self.guarded_step(batch, batch_index, batch_size=size, compute=compute)
        logits = torch.cat([logits for logits, _ in result.outputs])
        frame_logits = torch.cat([frames for _, frames in result.outputs]).flatten(0, 1)
        if self.multi_label:
            update_training_metrics(self.metrics, logits, frame_logits, batch)
        else:
            cast(Metric, self.metrics["train_acc"]).update(logits, batch.label)
            cast(Metric, self.metrics["train_frame_acc"]).update(frame_logits, batch.frame_labels.flatten())
        self.log("train/loss", result.loss * accumulate, prog_bar=True, batch_size=size)
        return result.loss

    def validation_step(self, batch: EvaluationBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: EvaluationBatch, batch_index: int) -> None:
        self._evaluate(batch)

    def _evaluate(self, batch: EvaluationBatch) -> None:
        """Each whole video through the predictor `predict` uses (its windows, views and sampling), scored alike."""
        predictor = self.chunked_predictor(device=self.device)
        labels, views = list(self.hparams["label_names"]), list(self.hparams["views"])
        trained = bool(self.hparams.get("frame_head_trained", True))
        for position, job in batch.items:
            prediction = _predict_job(predictor, job=job, views=views, config=self.config)
            if self.multi_label:
                self._multi_label_videos.append(
                    evaluate_multi_label(
                        prediction, position=position, video_id=job.video_id, timeline=job.timeline,
                        label=job.label, label_names=labels, config=self.config, frame_head_trained=trained,
                    )
                )  # fmt: skip
                continue
            truth = frame_truth(prediction, timeline=job.timeline, label_names=labels) if trained else None
            score = video_score(
                prediction, video_id=job.video_id, label=job.label, truth=truth, label_names=labels,
                frame_head_trained=trained,
            )  # fmt: skip
            self._videos.append(EvaluatedVideo(position, score, self._video_loss(prediction, score.label, truth)))

    def _video_loss(self, prediction: VideoPrediction, label: int, truth: torch.Tensor | None) -> float:
        """The training loss of a whole video: its aggregated scores and every frame's logits."""
        # `prob` aggregates probabilities; the loss takes their log so every aggregation gives logits.
        scores = prediction.scores.log() if prediction.chunk_aggregation == "prob" else prediction.scores
        frames = prediction.frame_logits
        labels = truth if truth is not None else torch.full((len(frames),), IGNORE_LABEL, dtype=torch.int64)
        video = VideoBatch(label=torch.tensor([label]), frame_labels=labels[None])
        return float(self._loss(scores[None], frames[None], video))

    def on_validation_epoch_start(self) -> None:
        self._videos, self._multi_label_videos = [], []
        # Every rank evaluates the model that the checkpoint saves (rank 0's BatchNorm statistics).
        broadcast_buffers(self)

    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> None:
        """Logs `stage`/loss and the figures of the videos evaluated by all ranks, each video once.

        Figures the data cannot give are not logged: video accuracies without video labels, frame figures
        without timelines (or a trained frame head), top-5 with fewer than 5 classes. ``acc`` repeats ``top1``
        under the name earlier versions logged it by, which configs monitor.
        """
        if self.multi_label:
            found, self._multi_label_videos = gather_videos(self._multi_label_videos), []
            labels = self.hparams["label_names"]
            self._log_figures(stage, multi_label_values(found, stage=stage, label_names=labels, config=self.config))
            return
        videos, self._videos = gather_videos(self._videos), []
        if not videos:
            return
        metrics = evaluation_metrics([video.score for video in videos], num_classes=len(self.hparams["label_names"]))
        values = {f"{stage}/loss": sum(video.loss for video in videos) / len(videos), **metrics.logged(stage)}
        if f"{stage}/top1" in values:
            values[f"{stage}/acc"] = values[f"{stage}/top1"]
        self._log_figures(stage, values)

    def _log_figures(self, stage: str, values: dict[str, float]) -> None:
        # Every rank computed the same values from the same gathered videos; "max" over the ranks keeps them
        # bit-exact (a mean could round) while telling Lightning they are synchronized.
        options: dict[str, Any] = {"on_step": False, "on_epoch": True, "sync_dist": True, "reduce_fx": "max"}
        for name, value in values.items():
            self.log(name, value, prog_bar=name in (f"{stage}/loss", f"{stage}/top1"), **options)

    def chunked_predictor(self, *, device: torch.device, precision: Precision = "32") -> ChunkedPredictor:
        """The model behind a `ChunkedPredictor` with the config's `train.chunk_*` and `video_batch_size`."""
        return chunked_predictor(self.model, self.config, device=device, precision=precision)

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
        micro-batches, so that the micro-batch losses add up to the batch's loss exactly. A multi-label model's
        is binary cross-entropy over the known entries (`multi_label_loss`).
        """
        if self.multi_label:
            train = self.config.train
            return multi_label_loss(
                logits, frame_logits, batch, counts=counts or multi_label_counts(batch),
                frame_loss_weight=train.frame_loss_weight, label_smoothing=train.label_smoothing,
            )  # fmt: skip
        labels, frame_labels = batch.label, batch.frame_labels.flatten()
        clip_count, frame_count = counts if counts is not None else _label_counts(batch)
        clip = self.clip_loss(logits.float(), labels) / clip_count
        frames = self.frame_loss(frame_logits.flatten(0, 1).float(), frame_labels) / frame_count
        return clip + self.config.train.frame_loss_weight * frames

    def on_train_epoch_end(self) -> None:
        # Logged once an epoch rather than handed to `self.log` every step, where Lightning moves the
        # metric objects to the device each call: a third of a small model's step on the CPU.
        # Frame accuracy only where the training data has timelines to learn the frame head from.
        kinds: tuple[str, ...] = ("f1", "frame_f1") if self.multi_label else ("acc", "frame_acc")
        kinds = kinds if self.hparams.get("frame_head_trained", True) else kinds[:1]
        for kind in kinds:
            metric = cast(Metric, self.metrics[f"train_{kind}"])
            self.log(f"train/{kind}", metric.compute())
        for module in self.metrics.values():
            cast(Metric, module).reset()
        super().on_train_epoch_end()

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")
        super().on_validation_epoch_end()


def _label_counts(batch: VideoBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled clips and frames of a batch, at least 1 each (a batch without labels has a zero loss, not NaN)."""
    return (batch.label != IGNORE_LABEL).sum().clamp(min=1), (batch.frame_labels != IGNORE_LABEL).sum().clamp(min=1)


def _memory_advice(config: ActionConfig) -> str:
    """What to change when one clip does not fit: a backbone of fixed clip shape is not offered other sizes."""
    model, data = config.model, config.data
    resizable = model.input_type == "kpt" or backbone_constraints(model.backbone).exact_shape is None
    return memory_advice(
        num_frames=data.num_frames if resizable else None,
        image_size=data.image_size if resizable and isinstance(data.image_size, tuple) else None,
        precision=config.trainer.precision,
        activation_checkpointing=model.activation_checkpointing,
    )
