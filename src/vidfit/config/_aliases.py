"""Other spellings of config keys, as the training scripts vidfit replaces wrote them, read as vidfit's keys.

Each renamed key is accepted with a one-line notice naming vidfit's key, so a config file users already
have loads unchanged and they learn the new name. The renames are data (the tables below), not code.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import fields
from typing import Any

from vidfit.io._documents import shorten

_LOG = logging.getLogger("vidfit")

# Sections under another name: their keys are looked up again under vidfit's section (and in KEY_ALIASES).
SECTION_ALIASES: dict[str, str] = {"dataset": "data", "training": "train"}

# A section given as a single value instead of a mapping: the key that value is for.
SECTION_VALUE_KEYS: dict[str, str] = {"experiment": "name"}

# (section, key) -> (section, key): a key renamed, or one kept in another section. Section "" is the top level
# of a file of flat settings (``batch_size: 32`` beside ``epochs: 500``).
KEY_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("data", "img_size"): ("data", "image_size"),
    ("data", "prefetch_queue_size"): ("data", "prefetch_factor"),
    ("model", "model_class_num"): ("model", "num_classes"),
    ("train", "batch_size"): ("data", "batch_size"),
    ("train", "num_workers"): ("data", "num_workers"),
    ("train", "pin_memory"): ("data", "pin_memory"),
    ("train", "precision"): ("trainer", "precision"),
    ("train", "max_epochs"): ("trainer", "max_epochs"),
    ("train", "epochs"): ("trainer", "max_epochs"),
    ("train", "gradient_accumulation_steps"): ("train", "accumulate_grad_batches"),
    ("train", "accumulation_steps"): ("train", "accumulate_grad_batches"),
    ("train", "nworkers"): ("data", "num_workers"),
    ("train", "patience"): ("train", "early_stopping_patience"),
    ("train", "use_amp"): ("trainer", "precision"),
    ("trainer", "use_amp"): ("trainer", "precision"),
    ("data", "nworkers"): ("data", "num_workers"),
    ("", "batch_size"): ("data", "batch_size"),
    ("", "num_workers"): ("data", "num_workers"),
    ("", "nworkers"): ("data", "num_workers"),
    ("", "patience"): ("train", "early_stopping_patience"),
    ("", "pin_memory"): ("data", "pin_memory"),
    ("", "persistent_workers"): ("data", "persistent_workers"),
    ("", "prefetch_queue_size"): ("data", "prefetch_factor"),
    ("", "epochs"): ("trainer", "max_epochs"),
    ("", "use_amp"): ("trainer", "precision"),
    ("", "validation_interval"): ("trainer", "check_val_every_n_epoch"),
    ("", "gradient_accumulation_steps"): ("train", "accumulate_grad_batches"),
    ("", "model_lr"): ("train", "lr"),
    ("", "lr_scheduler_milestones"): ("train", "milestones"),
    ("", "lr_scheduler_gamma"): ("train", "gamma"),
}

# Keys of ``train`` that one scheduler alone reads (note 004's lr_scheduler_milestones and lr_scheduler_gamma are
# MultiStepLR's): given without ``train.scheduler`` they choose it; given with another scheduler they are an error.
SCHEDULER_KEYS: dict[str, str] = {"milestones": "multistep", "gamma": "multistep"}

# Values a renamed key takes in vidfit's terms, when they differ: {(section, key): {old value: new value}}.
VALUE_ALIASES: dict[tuple[str, str], dict[Any, Any]] = {
    (section, "use_amp"): {True: "16-mixed", False: "32"} for section in ("", "train", "trainer")
}

# Other spellings of the values of vidfit's own keys: {(section, key): {spelling: vidfit's value}}. A task adds
# its own (`TaskSpec.value_aliases`).
VALUE_SPELLINGS: dict[tuple[str, str], dict[Any, Any]] = {
    ("trainer", "precision"): {
        16: "16-mixed", "16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed", 32: "32", "fp32": "32",
    },
}  # fmt: skip


def apply_aliases(
    document: dict[str, Any], *, source: str, sections: tuple[str, ...], known: Mapping[str, Collection[str]]
) -> list[str]:
    """Rewrites `document` in place in vidfit's keys, logging a notice for each renamed key.

    Args:
        known: The keys of each section: a key of a renamed section gets a notice only when vidfit has it
            (the others are reported as unknown keys).

    Returns the problems found: a key given under both names, or a top-level value that is no section.
    """
    problems: list[str] = []
    for name in list(document):
        value = document[name]
        if name in SECTION_VALUE_KEYS and not isinstance(value, Mapping | None):
            key = SECTION_VALUE_KEYS[name]
            _notice(source, f"{name}: {shorten(value)}", f"{name}.{key}")
            document[name] = {key: value}
        elif name in SECTION_ALIASES:
            target = SECTION_ALIASES[name]
            moved = document.pop(name) or {}
            problems += _move_section(document, name, target, moved, source=source, known=known.get(target, ()))
        elif name not in sections and ("", name) in KEY_ALIASES:
            problems += _move(document, ("", name), document.pop(name), source=source)
    for section in sections:
        values = document.get(section)
        if isinstance(values, dict):
            for key in [key for key in values if (section, key) in KEY_ALIASES]:
                problems += _move(document, (section, key), values.pop(key), source=source)
    return problems


def alias_of(section: str, key: str) -> tuple[str, str]:
    """vidfit's (section, key) for a spelling given to ``--set`` (the same when it is not renamed)."""
    section = SECTION_ALIASES.get(section, section)
    return KEY_ALIASES.get((section, key), (section, key))


def _move_section(
    document: dict[str, Any], name: str, target: str, moved: Any, *, source: str, known: Collection[str]
) -> list[str]:
    if not isinstance(moved, dict):
        return [f"section {name!r} must be a mapping, got {shorten(moved)}"]
    problems: list[str] = []
    for key, value in moved.items():
        if (target, key) in KEY_ALIASES:
            problems += _move(document, (target, key), value, source=source, given=f"{name}.{key}")
        else:
            if key in known:
                _notice(source, f"{name}.{key}", f"{target}.{key}")
            problems += _put(document, (target, key), value, given=f"{name}.{key}")
    return problems


def _move(
    document: dict[str, Any], old: tuple[str, str], value: Any, *, source: str, given: str | None = None
) -> list[str]:
    new = KEY_ALIASES[old]
    given = given or ".".join(part for part in old if part)
    _notice(source, given, ".".join(new))
    value = VALUE_ALIASES.get(old, {}).get(value, value) if _hashable(value) else value
    return _put(document, new, value, given=given)


def _put(document: dict[str, Any], where: tuple[str, str], value: Any, *, given: str) -> list[str]:
    section, key = where
    target = document.setdefault(section, {})
    if target is None:
        target = document[section] = {}
    if not isinstance(target, dict):
        return [f"section {section!r} must be a mapping, got {shorten(target)}"]
    if key in target:
        return [f"{given} and {section}.{key} are both given: keep {section}.{key}"]
    target[key] = value
    return []


def apply_value_spellings(
    document: dict[str, Any], *, source: str, spellings: Mapping[tuple[str, str], Mapping[Any, Any]]
) -> None:
    """Rewrites other spellings of values (`VALUE_SPELLINGS` and `spellings`) in vidfit's, each with a notice."""
    for (section, key), table in {**VALUE_SPELLINGS, **spellings}.items():
        values = document.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if value is None or not _hashable(value) or isinstance(value, bool) or value not in table:
            continue
        new = table[value]
        if str(value) != str(new):
            _LOG.warning(
                "%s: %s.%s: %s is read as %r (vidfit's name for it)", source, section, key, shorten(value), new
            )
        values[key] = new  # type: ignore[index]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _notice(source: str, given: str, new: str) -> None:
    _LOG.warning("%s: %s is read as %s (vidfit's name for it)", source, given, new)


def select_scheduler(document: dict[str, Any], *, source: str, train_section: type) -> list[str]:
    """Sets ``train.scheduler`` to the scheduler that reads the `SCHEDULER_KEYS` given, with a notice.

    A key at its default (as a saved config holds it whatever the scheduler) counts as not given.

    Args:
        train_section: The task's train dataclass, whose defaults those are.

    Returns the problem when ``train.scheduler`` names another scheduler, under which those keys would do nothing.
    """
    train = document.get("train")
    if not isinstance(train, dict):
        return []
    defaults = {
        key.name: key.default_factory() if callable(key.default_factory) else key.default
        for key in fields(train_section)
    }
    given = [key for key in SCHEDULER_KEYS if key in train and train[key] != defaults.get(key)]
    if not given:
        return []
    wanted = sorted({SCHEDULER_KEYS[key] for key in given})
    names = " and ".join(f"train.{key}" for key in given)
    if len(wanted) == 1 and "scheduler" not in train:
        train["scheduler"] = wanted[0]
        _LOG.warning("%s: %s given: train.scheduler is %r, the scheduler that reads it", source, names, wanted[0])
        return []
    if len(wanted) == 1 and train["scheduler"] == wanted[0]:
        return []
    return [
        f"{names} only apply to train.scheduler: {' or '.join(wanted)}, but train.scheduler is "
        f"{shorten(train.get('scheduler'))}: set train.scheduler: {wanted[0]}, or leave {names} out"
    ]
