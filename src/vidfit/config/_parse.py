"""Plain data to a typed config section: pydantic converts and checks each value against its field's type hint.

What vidfit adds is the wording: every problem of a section at once, each naming ``section.key``, the
value given and the allowed values, in the words the rest of the config checks use.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Literal, Union, get_args, get_origin

import pydantic

from vidfit.io._documents import shorten


class ConfigError(ValueError):
    """A configuration that cannot run: names the file, the key, the value and what is allowed."""


def section_keys(cls: type) -> list[str]:
    """The keys a config section takes: its init fields, own fields first, minus those vidfit sets itself."""
    hidden = set(getattr(cls, "NOT_CONFIG_KEYS", ()))
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in hidden]
    own = set(vars(cls).get("__annotations__", {}))
    return sorted(names, key=lambda name: (name != "manifest", name not in own))


@dataclass(frozen=True)
class SectionCheck:
    """A config section built from plain data, and everything wrong with it.

    Attributes:
        instance: The section; None when it has problems.
        problems: Every problem, each naming ``section.key``.
        bad_keys: The keys the problems are about.
        stand_in: The section with the bad keys left at their defaults, for the rules between keys to run on
            while the problems are reported; None when even that cannot be built.
    """

    instance: Any
    problems: list[str]
    bad_keys: set[str]
    stand_in: Any


def section_problems(
    cls: type, section: dict[str, Any], where: str, *, other_tasks: dict[str, str] | None = None
) -> SectionCheck:
    """The section `cls` from plain data, and every problem of its keys and values at once.

    Pydantic stops at the type errors before a dataclass checks its values (``__post_init__``), so the
    section is built again without the keys found bad until it builds: every problem in one pass.

    Args:
        other_tasks: Keys this section takes under another task, and that task's name, for a better message.
    """
    allowed, elsewhere = section_keys(cls), other_tasks or {}
    problems = [
        f"{where}.{_name(key)} needs experiment.task: {elsewhere[key]}"
        if key in elsewhere
        else f"{where}.{_name(key)}: unknown key (allowed: {', '.join(allowed)})"
        for key in section
        if key not in allowed
    ]
    nested = _nested_problems(cls, section, where)
    problems += [message for messages in nested.values() for message in messages]
    values = {key: value for key, value in section.items() if key in allowed}
    bad = {str(key) for key in section if key not in allowed} | set(nested)
    instance = None
    # A required key that is bad or missing stands in as "" (a path, say), so the rules still run.
    required = [f.name for f in dataclasses.fields(cls) if f.init and f.default is f.default_factory is MISSING]
    for _ in range(len(values) + 1):  # each round removes at least one bad key, or ends
        trial = {k: v for k, v in values.items() if k not in bad} | {key: "" for key in required if key in bad}
        instance, found = _validate(cls, trial, where)
        new = {key: message for key, message in found.items() if key not in bad}
        problems += new.values()
        if instance is not None or not new:
            break
        bad |= set(new)
    if not problems:
        return SectionCheck(instance, [], set(), instance)
    return SectionCheck(None, problems, bad, instance)


def _validate(cls: type, values: dict[str, Any], where: str) -> tuple[Any, dict[str, str]]:
    """The section built from `values`, or None and the problem of each bad key."""
    try:
        return _adapter(cls).validate_python(values), {}
    except pydantic.ValidationError as error:
        hints, found = typing.get_type_hints(cls), dict[str, str]()
        for detail in error.errors():
            key = str(detail["loc"][0]) if detail["loc"] else ""
            by_key = getattr(detail.get("ctx", {}).get("error"), "problems", None)
            if not key and isinstance(by_key, dict):  # the section's own check, every bad value by key
                found |= {name: f"{where}.{message}" for name, message in by_key.items() if name not in found}
            elif key not in found:
                found[key] = _describe_error(detail, key, hints.get(key), values, where)
        return None, found


def _name(key: Any) -> str:
    """A key as a message names it: short keys as written, others abbreviated."""
    return key if isinstance(key, str) and len(key) <= 60 else shorten(key)


def _nested_problems(cls: type, section: dict[str, Any], where: str) -> dict[str, list[str]]:
    """Unknown keys of the sub-sections (a field whose type is a dataclass, e.g. ``data.augment``), by sub-section."""
    hints = typing.get_type_hints(cls)
    found: dict[str, list[str]] = {}
    for name, value in section.items():
        if isinstance(value, dict) and dataclasses.is_dataclass(hints.get(name)):
            allowed = section_keys(hints[name])
            messages = [
                f"{where}.{name}.{_name(key)}: unknown key (allowed: {', '.join(allowed)})"
                for key in value
                if key not in allowed
            ]
            found |= {name: messages} if messages else {}
    return found


@functools.cache
def _adapter(cls: type) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(cls)


def _describe_error(detail: Any, key: str, annotation: Any, values: dict[str, Any], where: str) -> str:
    if not key:  # raised by the section's own __post_init__ check, which names the key itself
        return f"{where}.{str(detail['msg']).removeprefix('Value error, ')}"
    if detail["type"] == "missing" and len(detail["loc"]) == 1:
        return f"{where}.{key} is required"
    if detail["type"] == "value_error":  # a sub-section's own check, which names its key
        return f"{where}.{key}.{str(detail['msg']).removeprefix('Value error, ')}"
    value = shorten(values.get(key))
    if get_origin(annotation) is Literal:
        return f"{where}.{key}={value} is not one of {', '.join(map(repr, get_args(annotation)))}"
    return f"{where}.{key}={value} must be {describe_type(annotation)}"


def describe_type(annotation: Any) -> str:
    """A type hint in the words of an error message: ``int or 'auto'``, ``tuple[int, int] or null``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return str(getattr(annotation, "__name__", annotation))
    if origin is Literal:
        return " or ".join(map(repr, args))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe_type(a) for a in args)
    return str(annotation).replace("typing.", "")
