"""What `vidfit plan` and auto-fit ask of a task's training step (`TaskSpec.plan_step`, `vidfit.config.PlanStep`)."""

from __future__ import annotations

from vidfit.config import Config, ConfigError, PlanStep


def task_plan_step(config: Config, *, views: tuple[str, ...] | None, num_classes: int | None) -> PlanStep:
    """The config's task's planned step; `ConfigError` when the task cannot be planned."""
    spec = config.task
    if spec.plan_step is None:
        raise ConfigError(f"experiment.task: {spec.name} cannot be planned: it has no memory plan")
    return spec.plan_step(config, views=views, num_classes=num_classes)
