"""The task registry: what `experiment.task` names, and everything the layers above ask a task for.

A task is a folder under `vidfit.tasks` (or any installed package naming its module under the
``vidfit.tasks`` entry-point group) that calls `register_task` when imported. The config loader takes the
task's sections from here; `vidfit.train` its Lightning module and data; the front-ends its predictor.
Nothing else in vidfit branches on a task's name. An installed task that fails to load is named in one
`TaskPluginWarning` and left out: the other tasks work (docs/PLUGINS.md).
"""

from __future__ import annotations

import importlib
import inspect
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal

from vidfit.config._contract import DataAndModule, PlanStepFunction, PredictFunction
from vidfit.config._parse import ConfigError

if TYPE_CHECKING:
    from vidfit.config._load import Config

# The tasks vidfit ships; installed packages add theirs through the entry-point group.
_BUILTIN_MODULES = ("vidfit.tasks.action", "vidfit.tasks.super_resolution", "vidfit.tasks.temporal")
ENTRY_POINT_GROUP = "vidfit.tasks"


class TaskPluginWarning(UserWarning):
    """An installed task could not be loaded (its import failed, or it registers another name): it is left out."""


def _no_problems(config: Config[Any, Any, Any]) -> list[str]:
    return []


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """What one task brings.

    Attributes:
        name: The value of ``experiment.task``.
        model_section: The dataclass of the config's `model` section.
        data_section: The dataclass of the `data` section (a `DataConfig`, or a subclass adding keys).
        train_section: The dataclass of the `train` section (a `TrainConfig`, or a subclass adding keys).
        monitors: Metrics ``train.monitor`` may name; the first is the default.
        defaults: ``{(section, key): value}`` used when the config leaves the key out; a callable value is a
            function of the config's plain data giving it (a default that follows another key).
        path_keys: ``(section, key)`` of the task's own keys that hold paths (made absolute on loading).
        value_aliases: Other spellings of the values of the task's keys, read as the task's with a notice:
            ``{("model", "backbone"): {"resnet34": "r3d_34"}}``.
        problems: The task's rules between keys: ``problems(config) -> [message, ...]``.
        data_and_module: ``(config, *, checkpoint, load) -> (TaskData, LightningModule)`` (`DataAndModule`):
            a new module, one checked against `checkpoint` (resuming), or one loaded from it (`load`). The data
            module's ``check(stage)`` builds the datasets of the stage, raising once with every problem.
        predict: ``(checkpoint_state, inputs, *, out, overrides, split, progress, engine, shard, **options)
            -> PredictOutcome`` (`PredictFunction`), with ``report_lines()`` and ``failures``.
        predict_options: The names of the task's own keyword options of `predict` (``vidfit predict --option``).
        plan_step: ``(config, *, views, num_classes) -> PlanStep`` (`PlanStepFunction`), for `vidfit plan`,
            ``data.batch_size: auto`` and the pre-flight check; None when the task cannot be planned.
    """

    name: str
    model_section: type
    data_section: type
    train_section: type
    monitors: tuple[str, ...]
    defaults: dict[tuple[str, str], Any] = field(default_factory=dict)
    path_keys: tuple[tuple[str, str], ...] = ()
    value_aliases: dict[tuple[str, str], dict[Any, Any]] = field(default_factory=dict)
    problems: Callable[[Config[Any, Any, Any]], list[str]] = _no_problems
    data_and_module: DataAndModule
    predict: PredictFunction
    predict_options: tuple[str, ...] = ()
    plan_step: PlanStepFunction | None = None

    def __post_init__(self) -> None:
        parameters = inspect.signature(self.predict).parameters.values()
        keyword = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        absent = [name for name in self.predict_options if name not in keyword]
        if absent and not any(p.kind == p.VAR_KEYWORD for p in parameters):
            raise ValueError(f"task {self.name!r}: predict_options {absent} are not keyword parameters of its predict")


@dataclass(frozen=True)
class TaskOrigin:
    """Where an installed task comes from: named in warnings, and blamed for the errors its code raises.

    Attributes:
        task: The task's name (the entry point's).
        entry_point: ``name = value`` as the package declares it.
        distribution: The installed package, e.g. ``vidfit-motion``.
        version: Its version.
        module: The top-level module whose code is the task's.
    """

    task: str
    entry_point: str
    distribution: str
    version: str
    module: str

    def __str__(self) -> str:
        return (
            f"task {self.task!r} of the package {self.distribution} {self.version} (entry point '{self.entry_point}')"
        )

    def owns(self, module: str) -> bool:
        """Whether code of `module` (a ``__name__``) is this task's."""
        return module == self.module or module.startswith(f"{self.module}.")


_TASKS: dict[str, TaskSpec] = {}
_ORIGINS: dict[str, TaskOrigin] = {}
# Installed tasks left out, by entry-point name: why, for the error of a config that names one.
_BROKEN: dict[str, str] = {}
_state: Literal["new", "running", "done"] = "new"


def register_task(spec: TaskSpec) -> TaskSpec:
    """Adds a task under `spec.name`; registering one name twice is refused."""
    if spec.name in _TASKS and _TASKS[spec.name] is not spec:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def _discover() -> None:
    """Imports the built-in tasks and the installed ones, once; each registers itself.

    A built-in task that fails to import is vidfit's bug and raises (again on the next call: the registry
    is never left half-built); an installed one that fails is warned about and left out. A task asking for
    the registry while it loads sees the tasks loaded before it.
    """
    global _state
    if _state != "new":
        return
    _state = "running"
    try:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            _load_plugin(entry)
    except BaseException:
        _state = "new"
        raise
    _state = "done"


def _load_plugin(entry: EntryPoint) -> None:
    """Loads one installed task; its failure is one `TaskPluginWarning` naming it, and it is left out."""
    origin = _origin(entry)
    before = set(_TASKS)
    try:
        loaded = entry.load()
        if isinstance(loaded, TaskSpec) and loaded.name not in before:
            register_task(loaded)  # the entry point names the spec itself rather than a module registering it
        added = sorted(set(_TASKS) - before)
        if added != [entry.name]:
            found = f"registers {', '.join(map(repr, added))}" if added else "registers no task"
            raise ValueError(
                f"its module {found}, where the entry point's name {entry.name!r} must be its TaskSpec's name "
                f"(register_task(TaskSpec(name={entry.name!r}, ...)) when imported)"
            )
    except Exception as error:
        for name in set(_TASKS) - before:  # nothing of a refused task stays registered
            del _TASKS[name]
        _BROKEN[entry.name] = f"{type(error).__name__}: {error}"
        warnings.warn(
            f"{origin} is not loaded: {_BROKEN[entry.name]}; the other tasks work (fix or uninstall "
            f"{origin.distribution})",
            TaskPluginWarning,
            stacklevel=2,
        )
        return
    _ORIGINS[entry.name] = origin


def _origin(entry: EntryPoint) -> TaskOrigin:
    dist = entry.dist
    name, version = (dist.name, dist.version) if dist is not None else (f"of the module {entry.module}", "")
    top = entry.module.partition(".")[0]
    # A plugin module inside the vidfit namespace is blamed by its own module, not vidfit's whole tree.
    module = entry.module if top == "vidfit" else top
    return TaskOrigin(entry.name, f"{entry.name} = {entry.value}", name, version, module)


def task_names() -> tuple[str, ...]:
    """The registered tasks' names."""
    _discover()
    return tuple(_TASKS)


def get_task(name: str, *, key: str = "experiment.task") -> TaskSpec:
    """The registered task `name`.

    Raises:
        ConfigError: Naming `key` (e.g. ``"config.yaml: experiment.task"``), the tasks there are, and why an
            installed task of that name is missing: its package failed to load, or is not installed here.
    """
    _discover()
    if name in _TASKS:
        return _TASKS[name]
    if name in _BROKEN:
        raise ConfigError(f"{key}={name!r}: its package is installed but did not load: {_BROKEN[name]}")
    raise ConfigError(
        f"{key}={name!r} is not one of {', '.join(map(repr, sorted(_TASKS)))}: a task of another package is found once "
        f"that package is installed in this Python environment (pip install it; it registers the task under the "
        f"{ENTRY_POINT_GROUP!r} entry points), else check the spelling"
    )


def blame_task(error: BaseException) -> TaskOrigin | None:
    """The installed task whose code raised `error` (or an error it led to), None when none of them did.

    The deepest frame of the traceback in a task's module decides, so that an error inside a library the
    task called is still the task's.
    """
    found = None
    for frame in _frames(error):
        module = str(frame.f_globals.get("__name__", ""))
        found = next((origin for origin in _ORIGINS.values() if origin.owns(module)), found)
    return found


def _frames(error: BaseException) -> Iterator[Any]:
    """The frames of `error`'s traceback and of the errors it was raised from or during, outermost first."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for link in reversed(chain):
        for frame, _ in traceback.walk_tb(link.__traceback__):
            yield frame
