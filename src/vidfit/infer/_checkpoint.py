"""A trained model from a checkpoint without the trainer: its config (plain data) and its weights.

A vidfit checkpoint is a Lightning checkpoint whose ``hyper_parameters`` hold the run's ``config`` and
whose ``state_dict`` holds the model's weights under ``model.``; a file with just those two entries (a
model spec and a state dict) is enough to predict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidfit.config import ConfigError
from vidfit.io._checkpoint import CheckpointError, read_checkpoint_header
from vidfit.io._checkpoint import read_checkpoint as read_whole
from vidfit.models import state_dict_problems


@dataclass(frozen=True)
class CheckpointState:
    """What inference needs of a checkpoint.

    Attributes:
        path: The file.
        hyper_parameters: The run's ``config`` (plain data) and the task's own entries (labels, views, ...).
        weights: The model's state dict (the module's ``model.`` entries, prefix removed); empty when only
            the header was read.
        global_step: Optimizer steps taken when it was saved (0 for a file without Lightning's loop state).
    """

    path: Path
    hyper_parameters: dict[str, Any]
    weights: dict[str, torch.Tensor]
    global_step: int = 0

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as plain data."""
        return dict(self.hyper_parameters["config"])

    @property
    def task(self) -> str:
        """The task the model was trained for (checkpoints older than tasks are ``"action"``)."""
        return str(self.config.get("experiment", {}).get("task", "action"))

    def require_task(self, task: str, *, key: str = "checkpoint") -> None:
        """Refuses a checkpoint of another task than `task`: `ConfigError` naming `key`, the file and both tasks."""
        if self.task != task:
            raise ConfigError(
                f"{key}={str(self.path)!r} is a checkpoint of experiment.task {self.task!r}, not {task!r}"
            )


def read_checkpoint(path: str | os.PathLike[str], *, weights: bool = True, key: str = "checkpoint") -> CheckpointState:
    """Reads a vidfit checkpoint on the CPU, unpickling tensors and plain data only.

    Args:
        path: The ``.ckpt`` file.
        weights: Read the model's weights; False reads the header only (memory-mapped: cheap on large files).
        key: The option or config key that named the file, for error messages.

    Raises:
        ConfigError: No such file, or not a vidfit checkpoint; the message names `key` and the file.
    """
    file = Path(path)
    try:
        state = read_whole(file) if weights else {"hyper_parameters": read_checkpoint_header(file)}
    except CheckpointError as error:
        raise ConfigError(f"{key}={str(path)!r}: {error.reason}") from error
    hyper = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not isinstance(hyper, dict) or not isinstance(hyper.get("config"), dict):
        raise ConfigError(f"{key}={str(path)!r}: not a vidfit checkpoint (no hyper_parameters.config)")
    found = {k.removeprefix("model."): v for k, v in state.get("state_dict", {}).items() if k.startswith("model.")}
    step = state.get("global_step") or 0
    return CheckpointState(file, dict(hyper), found if weights else {}, int(step))  # type: ignore[arg-type]


def check_weights(model: nn.Module, checkpoint: CheckpointState, *, key: str = "checkpoint") -> None:
    """Refuses a checkpoint whose weights do not load into `model`, the model its config describes.

    Build `model` under ``torch.device("meta")`` to check before any memory is spent or work done: a file
    whose weights are another model's (another backbone, heads of another label count) is one error.

    Raises:
        CheckpointError: Naming `key`, the file, and the keys or shapes that do not fit.
    """
    if problems := state_dict_problems(model.state_dict(), checkpoint.weights):
        raise CheckpointError(
            checkpoint.path, "its weights do not fit the model its config describes: " + "; ".join(problems), key=key
        )
