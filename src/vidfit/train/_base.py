"""What the modules of every task share: guarded manual optimization, the optimizer and schedule, CUDA settings."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar, cast

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import nn

from vidfit.config import Config
from vidfit.data import TensorBatch
from vidfit.train._guard import GuardedStep, OomGuard

_Batch = TypeVar("_Batch", bound=TensorBatch)
_Output = TypeVar("_Output")
_Module = TypeVar("_Module", bound=nn.Module)

# The layout of each weight by its number of dims: 3-D convolutions' (O, I, T, H, W), 2-D ones' (O, I, H, W).
_CHANNELS_LAST = {5: torch.channels_last_3d, 4: torch.channels_last}


def channels_last(module: _Module) -> _Module:
    """`module` with each 5-D weight and buffer in ``channels_last_3d`` and each 4-D one in ``channels_last``.

    Per tensor, where ``module.to(memory_format=torch.channels_last_3d)`` refuses a model with any 2-D
    convolution: a task may mix both (frame features, then a temporal model). Others are left as they are.
    """
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        layout = _CHANNELS_LAST.get(tensor.ndim)
        if layout is not None and not tensor.is_contiguous(memory_format=layout):
            tensor.data = tensor.data.contiguous(memory_format=layout)
    return module


class GuardedModule(L.LightningModule):
    """A LightningModule that trains through the OOM guard, with accumulation, clipping and the LR schedule.

    Optimization is manual because the guard redoes a batch as micro-batches, which needs control of
    backward; what Lightning would do automatically (accumulation, gradient clipping, stepping the
    schedule, skipping the gradient all-reduce between optimizer steps) is done here the same way.

    A task's module keeps its model under ``self.model`` (checkpoints hold its weights as ``model.*``, which
    `vidfit.infer.read_checkpoint` reads), saves the run's config as plain data in the hyper-parameter
    ``config`` (``self.save_hyperparameters()`` with a ``config: dict`` argument), and calls `guarded_step`
    from ``training_step``; a module breaking either rule is refused when a run starts.

    Args:
        config: The run: ``train`` (optimizer, schedule, accumulation, CUDA settings) and ``trainer`` sections.
        memory_advice: What to change when one sample does not fit even alone (`vidfit.memory.memory_advice`).
    """

    config: Config

    def __init__(self, config: Config, *, memory_advice: str) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.config, self.memory_advice = config, memory_advice
        self._guard: OomGuard | None = None

    @property
    def guard(self) -> OomGuard:
        """The OOM guard over the trained parameters (those `configure_optimizers` trains), made on first use."""
        if self._guard is None:
            trained = [p for p in self.parameters() if p.requires_grad]
            self._guard = OomGuard(trained, advice=self.memory_advice)
        return self._guard

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
        self._check_contract()
        # Before the strategy moves the model to its device and wraps it in DDP, so that DDP's gradient
        # buckets get the channels-last layouts; for evaluation too, which runs at the same settings.
        settings = self.config.train
        if self.trainer.strategy.root_device.type != "cuda":
            return
        torch.backends.cuda.matmul.allow_tf32 = settings.tf32
        torch.backends.cudnn.allow_tf32 = settings.tf32
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        if settings.channels_last:
            channels_last(self)

    def _check_contract(self) -> None:
        """Refuses a module whose checkpoints `vidfit predict` could not read (no ``model``, no ``config``)."""
        name = type(self).__name__
        if not isinstance(getattr(self, "model", None), nn.Module):
            raise TypeError(f"{name} keeps no model under self.model, where checkpoints and predict find its weights")
        if not isinstance(self.hparams.get("config"), dict):
            raise TypeError(
                f"{name} saves no hyper-parameter 'config' (the run's config as plain data, which predict reads): "
                "call self.save_hyperparameters() in __init__, with a config: dict argument"
            )

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

    def on_train_start(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # a resumed run has the schedule it saved: this run's config sets its length
            _follow_schedule_settings(
                cast(torch.optim.lr_scheduler.LRScheduler, scheduler),
                cosine_epochs=_cosine_epochs(self.config),
                milestones=self.config.train.milestones,
            )

    def configure_optimizers(self) -> Any:
        settings = self.config.train
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
        if settings.scheduler == "cosine":
            schedules.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=_cosine_epochs(self.config)))
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


def _cosine_epochs(config: Config[Any, Any, Any]) -> int:
    """The epochs of the cosine decay: those after the warm-up."""
    return max(1, max(1, config.trainer.max_epochs) - config.train.warmup_epochs)


def _follow_schedule_settings(
    scheduler: torch.optim.lr_scheduler.LRScheduler, *, cosine_epochs: int, milestones: list[int]
) -> None:
    """Sets a restored schedule's cosine length and step milestones to this run's, at its current epoch.

    Resuming restores the schedule with the length of the run that saved it: a run resumed with a larger
    ``trainer.max_epochs`` would otherwise train its added epochs at the learning rate the old end reached
    (zero for a cosine). The cosine's rate becomes the one this run's schedule has at this epoch.
    """
    parts = list(getattr(scheduler, "_schedulers", [scheduler]))  # a SequentialLR: warm-up, then the decay
    milestones_of_parts = list(getattr(scheduler, "_milestones", []))
    active = parts[bisect.bisect_right(milestones_of_parts, scheduler.last_epoch)] if len(parts) > 1 else scheduler
    for part in parts:
        if isinstance(part, torch.optim.lr_scheduler.MultiStepLR):
            part.milestones = Counter(milestones)
        elif isinstance(part, torch.optim.lr_scheduler.CosineAnnealingLR) and part.T_max != cosine_epochs:
            part.T_max = cosine_epochs
            if part is active:
                rates = [
                    part.eta_min + (base - part.eta_min) * (1 + math.cos(math.pi * part.last_epoch / cosine_epochs)) / 2
                    for base in part.base_lrs
                ]
                for group, rate in zip(part.optimizer.param_groups, rates, strict=True):
                    group["lr"] = rate
                part._last_lr = rates  # what get_last_lr() and the learning-rate monitor report
