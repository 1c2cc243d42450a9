"""The task registry: what `experiment.task` names, and everything the layers above ask a task for.

A task is a folder under `vidfit.tasks` (or any installed package naming its module under the
``vidfit.tasks`` entry-point group) that calls `register_task` when imported. The config loader takes the
task's sections from here; `vidfit.train` its Lightning module and data; the front-ends its predictor.
Nothing else in vidfit branches on a task's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from vidfit.config._parse import ConfigError

# The tasks vidfit ships; installed packages add theirs through the entry-point group.
_BUILTIN_MODULES = ("vidfit.tasks.action", "vidfit.tasks.super_resolution")
_ENTRY_POINT_GROUP = "vidfit.tasks"


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What one task brings.

    Attributes:
        name: The value of ``experiment.task``.
        model_section: The dataclass of the config's `model` section.
        data_section: The dataclass of the `data` section (a `DataConfig`, or a subclass adding keys).
        train_section: The dataclass of the `train` section (a `TrainConfig`, or a subclass adding keys).
        monitors: Metrics ``train.monitor`` may name; the first is the default.
        defaults: ``{(section, key): value}`` used when the config leaves the key out.
        path_keys: ``(section, key)`` of the task's own keys that hold paths (made absolute on loading).
        problems: The task's rules between keys: ``problems(config) -> [message, ...]``.
        data_and_module: ``(config, checkpoint=..., load=...) -> (LightningDataModule, LightningModule)``:
            a new module, one checked against `checkpoint` (resuming), or one loaded from it (`load`). The data
            module's ``check(stage)`` builds the datasets of the stage, raising once with every problem.
        predict: ``(checkpoint_state, inputs, *, out, overrides, split, progress, **options) -> result`` with
            ``result.report_lines()`` and ``result.failures``.
        predict_options: The names of the task's own keyword options of `predict`.
        plan_step: ``(config, *, views, num_classes) -> step`` with ``estimate``/``measure``/``advice``, for
            `vidfit plan` and ``data.batch_size: auto``; None when the task cannot be planned.
    """

    name: str
    model_section: type
    data_section: type
    train_section: type
    monitors: tuple[str, ...]
    defaults: dict[tuple[str, str], Any] = field(default_factory=dict)
    path_keys: tuple[tuple[str, str], ...] = ()
    problems: Callable[[Any], list[str]] = lambda config: []
    data_and_module: Callable[..., tuple[Any, Any]]
    predict: Callable[..., Any]
    predict_options: tuple[str, ...] = ()
    plan_step: Callable[..., Any] | None = None


_TASKS: dict[str, TaskSpec] = {}
_discovered = False


def register_task(spec: TaskSpec) -> TaskSpec:
    """Adds a task under `spec.name`; registering one name twice is refused."""
    if spec.name in _TASKS and _TASKS[spec.name] is not spec:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def _discover() -> None:
    """Imports the built-in tasks and the installed ones (once); each registers itself."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=_ENTRY_POINT_GROUP):
        entry.load()


def task_names() -> tuple[str, ...]:
    """The registered tasks' names."""
    _discover()
    return tuple(_TASKS)


def get_task(name: str, *, key: str = "experiment.task") -> TaskSpec:
    """The registered task `name`; `ConfigError` names `key` and the tasks there are."""
    _discover()
    if name not in _TASKS:
        raise ConfigError(f"{key}={name!r} is not one of {', '.join(map(repr, _TASKS))}")
    return _TASKS[name]
