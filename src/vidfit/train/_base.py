"""What the modules of every task share: guarded manual optimization, the optimizer and schedule, CUDA settings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer

from vidfit.config import Config
from vidfit.data._batch import TensorBatch
from vidfit.train._guard import GuardedStep, OomGuard

_Batch = TypeVar("_Batch", bound=TensorBatch)
_Output = TypeVar("_Output")


class GuardedModule(L.LightningModule):
    """A LightningModule that trains through the OOM guard, with accumulation, clipping and the LR schedule.

    Optimization is manual because the guard redoes a batch as micro-batches, which needs control of
    backward; what Lightning would do automatically (accumulation, gradient clipping, stepping the
    schedule, skipping the gradient all-reduce between optimizer steps) is done here the same way.
    Subclasses set `config`, `guard` and `memory_format` and call `guarded_step` from `training_step`.
    """

    config: Config
    guard: OomGuard
    memory_format: torch.memory_format = torch.channels_last_3d

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def guarded_step(
        self,
        batch: _Batch,
        batch_index: int,
        *,
        batch_size: int,
        compute: Callable[[_Batch], tuple[torch.Tensor, _Output]],
    ) -> GuardedStep[_Output]:
        """Runs `compute` and backward over `batch` (in micro-batches after an OOM); steps the optimizer when due.

        Args:
            batch: The batch, split into micro-batches of its own type (``meta`` included) after an OOM.
            batch_index: The batch's index in the epoch, for accumulation.
            batch_size: Samples in the batch.
            compute: A micro-batch's loss, already divided by ``train.accumulate_grad_batches`` and weighted
                so that the micro-batch losses add up to the batch's, and whatever else to keep.
        """
        accumulate = self.config.train.accumulate_grad_batches
        step_now = (batch_index + 1) % accumulate == 0 or self.trainer.is_last_batch
        no_sync = getattr(self.trainer.strategy, "block_backward_sync", contextlib.nullcontext)
        # Gradients are all-reduced once per optimizer step: on the last micro-batch of the last batch.
        with contextlib.nullcontext() if step_now else no_sync():
            result = self.guard.run(
                batch,
                batch_size=batch_size,
                compute=compute,
                backward=self.manual_backward,
                no_sync=no_sync,
                synchronized=step_now and self.trainer.world_size > 1,
            )
        if step_now:
            optimizer = cast(LightningOptimizer, self.optimizers())
            clip = self.config.trainer.gradient_clip_val
            if clip is not None:
                self.clip_gradients(optimizer.optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return result

    def setup(self, stage: str) -> None:
        # Before the strategy moves the model to its device and wraps it in DDP, so that DDP's gradient
        # buckets get the channels_last_3d layout; for evaluation too, which runs at the same settings.
        settings = self.config.train
        if self.trainer.strategy.root_device.type != "cuda":
            return
        torch.backends.cuda.matmul.allow_tf32 = settings.tf32
        torch.backends.cudnn.allow_tf32 = settings.tf32
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        if settings.channels_last:
            self.to(memory_format=self.memory_format)

    def on_train_epoch_end(self) -> None:
        self.log("memory/micro_batches", float(self.guard.num_micro_batches))
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            cast(torch.optim.lr_scheduler.LRScheduler, scheduler).step()

    def on_validation_epoch_end(self) -> None:
        # Evaluation leaves its activations' blocks cached; hand them back before training resumes.
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vidfit_micro_batches"] = self.guard.num_micro_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.guard.num_micro_batches = int(checkpoint.get("vidfit_micro_batches", 1))

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
