"""What `vidfit plan` and auto-fit ask of a task's training step (`TaskSpec.plan_step`)."""

from __future__ import annotations

from typing import Any, Protocol

from vidfit.config import Config, ConfigError
from vidfit.memory._step import Precision


class PlanStep(Protocol):
    """A task's training step at one configuration, measured or estimated.

    Attributes:
        checkpointing: Whether the config turns activation checkpointing on (the default of the grid).
        inputs: The planned clips: ``image_size`` (height, width) and ``image_size_source`` (in words).
    """

    checkpointing: bool
    inputs: Any

    def estimate(self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool) -> int: ...

    def measure(
        self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool, budget_bytes: int
    ) -> tuple[int | None, float | None]: ...

    def advice(self, *, num_frames: int, batch_size: int | None, precision: Precision, checkpointing: bool) -> str: ...


def task_plan_step(config: Config, *, views: tuple[str, ...] | None, num_classes: int | None) -> PlanStep:
    """The config's task's planned step; `ConfigError` when the task cannot be planned."""
    spec = config.task
    if spec.plan_step is None:
        raise ConfigError(f"experiment.task: {spec.name} cannot be planned: it has no memory plan")
    step: PlanStep = spec.plan_step(config, views=views, num_classes=num_classes)
    return step
