"""The run configuration (experiment, model, data, train, trainer sections), checked strictly before any work."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
import yaml

from vidfit.config._aliases import alias_of, apply_aliases
from vidfit.config._parse import ConfigError, section_keys, section_problems
from vidfit.config._rules import config_problems
from vidfit.config._sections import DataConfig, ExperimentConfig, TrainConfig, TrainerConfig
from vidfit.config._tasks import TaskSpec, get_task, task_names
from vidfit.io._atomic import write_text_atomic
from vidfit.memory._step import cuda_mixed_precision

_Model = TypeVar("_Model")
_Data = TypeVar("_Data", bound=DataConfig)
_Train = TypeVar("_Train", bound=TrainConfig)


@dataclass
class Config(Generic[_Model, _Data, _Train]):
    """A whole run, section by section; `model` (and extra keys of `data` and `train`) are the task's.

    A task names its own: ``Config[ActionModelConfig, DataConfig, ActionTrainConfig]``.
    """

    experiment: ExperimentConfig
    model: _Model
    data: _Data
    train: _Train
    trainer: TrainerConfig

    @property
    def task(self) -> TaskSpec:
        """The task ``experiment.task`` names."""
        return get_task(self.experiment.task)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), as saved in YAML and checkpoints."""
        # Through JSON, so every tuple field (image_size, views, ...) comes back a list.
        sections = {name: getattr(self, name) for name in SECTIONS}
        plain = {
            name: {key: _plain(getattr(value, key)) for key in section_keys(type(value))}
            for name, value in sections.items()
        }
        document: dict[str, Any] = json.loads(json.dumps(plain, default=str))
        return document


SECTIONS = ("experiment", "model", "data", "train", "trainer")
# Files read as JSON (comments and trailing commas allowed, as editors' JSON configs have them); others as YAML.
_JSON_SUFFIXES = (".json", ".jsonc", ".json5")
_LOG = logging.getLogger("vidfit")


def _plain(value: Any) -> Any:
    """A nested section (e.g. ``data.augment``) as a mapping; other values as they are."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a YAML or JSON config (or the defaults when `path` is None) and applies ``section.key=value`` overrides.

    Everything is checked before any work starts: `ConfigError` names the file, the key and the
    allowed keys or values. Relative paths in the file are taken from the config file's folder, those
    of overrides from the working directory; the config holds them absolute, so a saved config loads
    from anywhere.
    """
    source = str(path) if path is not None else "<defaults>"
    document: dict[str, Any] = {}
    if path is not None:
        loaded = _read_document(Path(path), source=source)
        document = loaded or {}
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(document).__name__}")
    folder = Path(path).parent if path is not None else Path.cwd()
    return _build(document, source=source, overrides=overrides, folder=folder)


def config_from_dict(
    document: dict[str, Any], *, source: str = "<dict>", overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Builds a `Config` from plain data and ``section.key=value`` overrides, checking every section, key and value.

    Relative paths are taken from the working directory.
    """
    return _build(document, source=source, overrides=overrides, folder=Path.cwd())


def _build(document: dict[str, Any], *, source: str, overrides: Sequence[str], folder: Path) -> Config:
    """`config_from_dict`, with the document's relative paths taken from `folder` (overrides' from the cwd)."""
    document = copy.deepcopy(document)
    # A file's other spellings first, so that an override of either spelling wins over the file.
    problems = apply_aliases(document, source=source, sections=SECTIONS)
    _resolve_paths(document, folder)
    for override in overrides:
        _apply_override(document, override, source)
    _resolve_paths(document, Path.cwd())
    problems += [
        f"unknown section {name!r}; allowed: {', '.join(SECTIONS)}" for name in list(document) if name not in SECTIONS
    ]
    spec = _task_of(document)
    for (name, key), value in {("train", "monitor"): spec.monitors[0], **spec.defaults}.items():
        _section(document, name, source=source).setdefault(key, value)
    classes = {
        "experiment": ExperimentConfig, "model": spec.model_section, "data": spec.data_section,
        "train": spec.train_section, "trainer": TrainerConfig,
    }  # fmt: skip
    values = {}
    for name, cls in classes.items():
        section, where = _section(document, name, source=source), f"{source}: {name}"
        values[name], found = section_problems(cls, section, where, other_tasks=_other_tasks(name, spec))
        problems += [problem.removeprefix(f"{source}: ") for problem in found]
    if not problems:
        problems = config_problems(Config(**values))
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return Config(**values)


def _other_tasks(section: str, spec: TaskSpec) -> dict[str, str]:
    """The keys of `section` that other tasks take and `spec` does not, and which task takes each."""
    attribute = f"{section}_section"
    if not hasattr(spec, attribute):
        return {}
    own = set(section_keys(getattr(spec, attribute)))
    return {
        key: name
        for name in reversed(task_names())
        for key in section_keys(getattr(get_task(name), attribute))
        if key not in own
    }


def _section(document: dict[str, Any], name: str, *, source: str = "") -> dict[str, Any]:
    section = document.setdefault(name, {})
    if section is None:
        section = document[name] = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: section {name!r} must be a mapping, got {section!r}")
    return section


def resolve_precision(config: Config) -> str:
    """`trainer.precision: auto` is bf16-mixed (or 16-mixed) on a CUDA GPU and 32 elsewhere.

    Explicit 16-bit precision without a GPU to run on is 32 too, with a notice: CPU autocast to 16 bits is
    many times slower than 32-bit there (minutes for one r3d_18 step), and saves no GPU memory.
    """
    precision = config.trainer.precision
    on_gpu = config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if precision == "auto":
        return cuda_mixed_precision() if on_gpu else "32"
    if precision != "32" and not on_gpu:
        _LOG.warning("trainer.precision=%r runs in 32-bit precision: there is no GPU to run 16-bit on", precision)
        return "32"
    return precision


def _read_document(path: Path, *, source: str) -> Any:
    """The plain data of a YAML or JSON file (JSON with comments and trailing commas too)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in _JSON_SUFFIXES:
            import json5  # the JSON configs editors write, with comments and trailing commas

            return json5.loads(text)
        return yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:  # json5 raises ValueError on bad JSON
        raise ConfigError(f"{source}: cannot read the config: {error}") from error


_PATH_KEYS = (("data", "manifest"), ("data", "cache_dir"), ("data", "report_path"))


def _task_of(document: dict[str, Any]) -> TaskSpec:
    experiment = document.get("experiment")
    task = experiment.get("task", "action") if isinstance(experiment, dict) else "action"
    return get_task(str(task))


def _resolve_paths(document: dict[str, Any], folder: Path) -> None:
    for section, key in (*_PATH_KEYS, *_task_of(document).path_keys):
        values = document.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            values[key] = str((folder / value).resolve())  # type: ignore[index]


def _apply_override(document: dict[str, Any], override: str, source: str) -> None:
    key, equals, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not equals or not dot or not section or not name:
        raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. train.lr=0.01")
    section, name = alias_of(section, name)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML: {error}") from error
    target = document.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping")
    target[name] = value


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Writes the resolved config as YAML, atomically."""
    return write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
