"""Activation checkpointing of backbone stages that leaves batch-norm statistics as without it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn


@contextlib.contextmanager
def _restoring_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Undoes the running-statistics update that the backward pass's recomputation makes.

    Checkpointing runs a stage's forward twice in training mode, and batch norm would fold the same
    batch into its running mean, variance and batch count twice, so the checkpointed model would
    drift from the plain one.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [{name: buf.clone() for name, buf in m.named_buffers(recurse=False)} for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, buffers in zip(norms, saved, strict=True):
                for name, value in buffers.items():
                    getattr(norm, name).copy_(value)


def _contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager[None], Any]:
    return contextlib.nullcontext(), _restoring_batchnorm_stats(module)


def run_stage(stage: nn.Module, *args: Any, checkpointing: bool) -> Any:
    """Runs one backbone stage, under non-reentrant checkpointing when asked and gradients are on.

    Args:
        stage: A stage of the backbone.
        *args: Its inputs; non-tensor arguments are allowed.
        checkpointing: Store only the stage's inputs and recompute the rest in backward.

    Returns:
        What the stage returns.
    """
    if not (checkpointing and torch.is_grad_enabled()):
        return stage(*args)
    # Looked up at each call: a memory estimate replaces it to see what the recomputation keeps.
    return torch.utils.checkpoint.checkpoint(stage, *args, use_reentrant=False, context_fn=partial(_contexts, stage))
