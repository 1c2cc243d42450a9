"""The run configuration (experiment, model, data, train, trainer sections), checked strictly before any work."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
import yaml

from vidfit.config._aliases import alias_of, apply_aliases, apply_value_spellings, select_scheduler
from vidfit.config._parse import ConfigError, section_keys, section_problems
from vidfit.config._rules import config_problems
from vidfit.config._sections import DataConfig, ExperimentConfig, TrainConfig, TrainerConfig
from vidfit.config._tasks import TaskSpec, get_task, task_names
from vidfit.io._atomic import write_text_atomic
from vidfit.io._documents import DocumentError, DocumentForm, DocumentLimits, load_document, read_document, shorten
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
# A config is a few hundred lines: anything much larger, deeper or expanding further is a mistake or an attack.
CONFIG_LIMITS = DocumentLimits(max_bytes=1 << 20, max_depth=32, max_nodes=100_000)


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
    """`config_from_dict`, with the document's relative paths taken from `folder` (overrides' from the cwd).

    Every problem is found in one pass: each section's keys and values, then the rules between keys, run
    with the bad keys left at their defaults (a rule about a key already reported is left out).
    """
    document = copy.deepcopy(document)
    # A file's other spellings first, so that an override of either spelling wins over the file.
    known = {name: section_keys(cls) for name, cls in _classes(_task_of(document, source=source)).items()}
    problems = apply_aliases(document, source=source, sections=SECTIONS, known=known)
    _resolve_paths(document, folder)
    for override in overrides:
        _apply_override(document, override, source)
    spec = _task_of(document, source=source)  # an override may name another task
    _resolve_paths(document, Path.cwd())
    apply_value_spellings(document, source=source, spellings=spec.value_aliases)
    problems += select_scheduler(document, source=source, train_section=spec.train_section)
    problems += [
        f"unknown section {shorten(name)} (allowed: {', '.join(SECTIONS)})" for name in document if name not in SECTIONS
    ]
    sections = _sections(document, spec, problems)
    values, stand_ins, bad = {}, {}, set()
    for name, cls in _classes(spec).items():
        check = section_problems(cls, sections[name], f"{source}: {name}", other_tasks=_other_tasks(name, spec))
        values[name], stand_ins[name] = check.instance, check.stand_in
        problems += [problem.removeprefix(f"{source}: ") for problem in check.problems]
        bad |= {f"{name}.{key}" for key in check.bad_keys}
    if all(section is not None for section in stand_ins.values()):
        problems += [rule for rule in config_problems(Config(**stand_ins)) if not _names_any(rule, bad)]
    if problems:
        raise ConfigError(_one_line(source, problems))
    return Config(**values)


# Problems listed in one error line, at most: the rest are counted.
MAX_LISTED_PROBLEMS = 20


def _classes(spec: TaskSpec) -> dict[str, type]:
    """The dataclass of each section under the task `spec`."""
    return {
        "experiment": ExperimentConfig, "model": spec.model_section, "data": spec.data_section,
        "train": spec.train_section, "trainer": TrainerConfig,
    }  # fmt: skip


def _sections(document: dict[str, Any], spec: TaskSpec, problems: list[str]) -> dict[str, dict[str, Any]]:
    """Each section's keys, with the task's defaults filled in; a section that is no mapping is a problem."""
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = document.get(name)
        if section is not None and not isinstance(section, dict):
            problems.append(f"section {name!r} must be a mapping of keys, got {shorten(section)}")
        sections[name] = section if isinstance(section, dict) else {}
    for (name, key), value in {("train", "monitor"): spec.monitors[0], **spec.defaults}.items():
        sections[name].setdefault(key, value(document) if callable(value) else value)
    return sections


def _names_any(message: str, keys: set[str]) -> bool:
    """Whether `message` names any of ``section.key`` `keys`."""
    return any(re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message) for key in keys)


def _one_line(source: str, problems: list[str]) -> str:
    """The problems as one line, the first `MAX_LISTED_PROBLEMS` of them listed and the rest counted."""
    listed = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    return f"{source}: " + "; ".join(listed) + (f"; and {more:,} more problems" if more else "")


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
    """The plain data of a YAML or JSON file (JSON with comments and trailing commas too), within `CONFIG_LIMITS`."""
    form: DocumentForm = "json5" if path.suffix.lower() in _JSON_SUFFIXES else "yaml"
    try:
        return read_document(path, form=form, source=source, limits=CONFIG_LIMITS)
    except DocumentError as error:
        reason = str(error).removeprefix(f"{source}: ")
        raise ConfigError(f"{source}: cannot read the config: {reason}") from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the config: {error.strerror or error}") from error


_PATH_KEYS = (("data", "manifest"), ("data", "cache_dir"), ("data", "report_path"))


def _task_of(document: dict[str, Any], *, source: str = "") -> TaskSpec:
    """The task ``experiment.task`` names; a missing one's error names `source` (the config file)."""
    experiment = document.get("experiment")
    task = experiment.get("task", "action") if isinstance(experiment, dict) else "action"
    return get_task(str(task), key=f"{source}: experiment.task" if source else "experiment.task")


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
        raise ConfigError(f"--set {shorten(override)}: expected section.key=value, e.g. train.lr=0.01")
    section, name = alias_of(section, name)
    try:
        value = load_document(text, form="yaml", source="the value", limits=CONFIG_LIMITS)
    except DocumentError as error:
        raise ConfigError(f"--set {shorten(override)}: {error}") from None
    target = document.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping")
    target[name] = value


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Writes the resolved config as YAML, atomically."""
    return write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
