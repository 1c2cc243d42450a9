"""The OOM guard of the training step: a batch that runs out of memory is redone as smaller micro-batches."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from vidfit.memory import retry_on_oom
from vidfit.memory._oom import split_batch

_Output = TypeVar("_Output")


@dataclass(frozen=True)
class GuardedStep(Generic[_Output]):
    """What one guarded batch produced.

    Attributes:
        loss: The batch's loss (the sum over its micro-batches), detached.
        outputs: What `compute` returned for each micro-batch, in order.
        num_micro_batches: How many micro-batches the batch ran as.
        oom_retries: Out-of-memory errors survived on this batch.
    """

    loss: torch.Tensor
    outputs: list[_Output]
    num_micro_batches: int
    oom_retries: int


@dataclass(frozen=True)
class _Step(Generic[_Output]):
    """The arguments of one `OomGuard.run`, as each attempt needs them."""

    batch: Any
    batch_size: int
    compute: Callable[[Any], tuple[torch.Tensor, _Output]]
    backward: Callable[[torch.Tensor], None]
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]]
    synchronized: bool


class OomGuard:
    """Runs forward and backward of a batch as micro-batches, and redoes it in more of them after an OOM.

    The gradients of the batch are gathered apart from those already accumulated by earlier batches, so
    a failed attempt is dropped whole: no sample is lost or counted twice. Once a batch needed `n`
    micro-batches, later batches start at `n` (memory use rarely shrinks during a run). Under DDP this
    holds for the batches that accumulate without an all-reduce; the batch whose backward all-reduces
    the step's gradients cannot be redone (see `run`).

    Args:
        parameters: The trained parameters whose gradients the guard keeps apart.
        advice: What to change when even the smallest split does not fit (`vidfit.memory.memory_advice`).
        num_micro_batches: Micro-batches to start with (restored from a checkpoint on resume).
    """

    def __init__(self, parameters: Sequence[nn.Parameter], *, advice: str, num_micro_batches: int = 1) -> None:
        if num_micro_batches < 1:
            raise ValueError(f"num_micro_batches={num_micro_batches!r} must be >= 1")
        self.parameters = list(parameters)
        self.advice, self.num_micro_batches = advice, num_micro_batches

    def run(
        self,
        batch: Any,
        *,
        batch_size: int,
        compute: Callable[[Any], tuple[torch.Tensor, _Output]],
        backward: Callable[[torch.Tensor], None],
        no_sync: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        synchronized: bool = False,
    ) -> GuardedStep[_Output]:
        """Computes and back-propagates `batch`, splitting it further after each out-of-memory error.

        Args:
            batch: The whole batch, split by `vidfit.memory.split_batch`.
            batch_size: Samples in the batch: the most micro-batches it can be split into.
            compute: A micro-batch's loss, already weighted so that the micro-batch losses sum to the
                batch's loss, and anything else to keep (such as detached logits).
            backward: Back-propagates a loss (``LightningModule.manual_backward``).
            no_sync: A context that skips the gradient all-reduce of data-parallel training, for every
                micro-batch but the last.
            synchronized: The batch's last backward all-reduces the gradients across ranks. That all-reduce
                must carry the gradients accumulated by earlier batches, so they are not kept apart, and an
                out-of-memory error cannot be undone: it is raised (other ranks may already be reducing).

        Raises:
            torch.OutOfMemoryError: A single sample does not fit, or a synchronized batch ran out of memory;
                the message says what to change.
        """
        step = _Step(batch, batch_size, compute, backward, no_sync, synchronized)
        outcome = retry_on_oom(
            functools.partial(self._isolated, step),
            self.num_micro_batches,
            shrink=functools.partial(self._split_further, batch_size=batch_size, synchronized=synchronized),
            advice=lambda _: self._give_up_advice(synchronized),
        )
        loss, outputs = outcome.result
        return GuardedStep(loss, outputs, min(outcome.setting, batch_size), outcome.oom_retries)

    def _isolated(self, step: _Step[_Output], num_micro_batches: int) -> tuple[torch.Tensor, list[_Output]]:
        """One attempt, its gradients gathered apart from the earlier ones unless the step is synchronized."""
        earlier = None if step.synchronized else self._stash_gradients()
        # A batch smaller than the split kept from an earlier OOM (the epoch's last, or after a resume) runs per clip.
        num_parts = min(num_micro_batches, step.batch_size)
        try:
            loss, outputs = self._attempt(step, num_parts)
        except BaseException:
            if earlier is not None:
                self._restore_gradients(earlier, keep_new=False)
            raise
        if earlier is not None:
            self._restore_gradients(earlier, keep_new=True)
        return loss, outputs

    def _attempt(self, step: _Step[_Output], num_parts: int) -> tuple[torch.Tensor, list[_Output]]:
        parts = split_batch(step.batch, num_parts) if num_parts > 1 else [step.batch]
        losses, outputs = [], []
        for index, part in enumerate(parts):
            with step.no_sync() if index < len(parts) - 1 else contextlib.nullcontext():
                loss, output = step.compute(part)
                step.backward(loss)
            losses.append(loss.detach())
            outputs.append(output)
        return torch.stack(losses).sum(), outputs

    def _split_further(self, num_micro_batches: int, *, batch_size: int, synchronized: bool) -> int | None:
        """The next split after an OOM at `num_micro_batches`, kept for later batches; None when there is none."""
        if synchronized or num_micro_batches >= batch_size:
            return None
        self.num_micro_batches = min(2 * num_micro_batches, batch_size)
        # Every rank says so itself: under DDP an OOM is usually one rank's.
        warnings.warn(
            f"out of memory in a training step: redoing the batch of {batch_size} as {self.num_micro_batches} "
            "micro-batches, and keeping that split for the rest of the run",
            stacklevel=2,
        )
        return self.num_micro_batches

    def _give_up_advice(self, synchronized: bool) -> str:
        if synchronized:
            return (
                "out of memory in a step whose gradients are being all-reduced across ranks, which cannot "
                f"be redone in step with the other ranks: {self.advice}"
            )
        return f"one clip does not fit in memory even alone: {self.advice}"

    def _stash_gradients(self) -> list[torch.Tensor | None]:
        earlier = [p.grad for p in self.parameters]
        for p in self.parameters:
            p.grad = None
        return earlier

    def _restore_gradients(self, earlier: list[torch.Tensor | None], *, keep_new: bool) -> None:
        for p, grad in zip(self.parameters, earlier, strict=True):
            if not keep_new or p.grad is None:
                p.grad = grad
            elif grad is not None:
                p.grad = grad.add_(p.grad)
