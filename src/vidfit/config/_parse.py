"""Plain data to a typed config section: pydantic converts and checks each value against its field's type hint.

What vidfit adds is the wording: every problem of a section at once, each naming ``section.key``, the
value given and the allowed values, in the words the rest of the config checks use.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pydantic


class ConfigError(ValueError):
    """A configuration that cannot run: names the file, the key, the value and what is allowed."""


# Spellings of precision other tools and older configs use; Lightning's names are what vidfit keeps.
_PRECISION_ALIASES = {16: "16-mixed", "16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed", 32: "32"}


def section_keys(cls: type) -> list[str]:
    """The keys a config section takes: its init fields, own fields first, minus those vidfit sets itself."""
    hidden = set(getattr(cls, "NOT_CONFIG_KEYS", ()))
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in hidden]
    own = set(vars(cls).get("__annotations__", {}))
    return sorted(names, key=lambda name: (name != "manifest", name not in own))


def section_problems(
    cls: type, section: dict[str, Any], where: str, *, other_tasks: dict[str, str] | None = None
) -> tuple[Any, list[str]]:
    """An instance of the section `cls` from plain data (None when it has problems), and every problem found.

    Args:
        other_tasks: Keys this section takes under another task, and that task's name, for a better message.
    """
    allowed, elsewhere = section_keys(cls), other_tasks or {}
    problems = [
        f"{where}.{key} needs experiment.task: {elsewhere[key]}"
        if key in elsewhere
        else f"{where}.{key}: unknown key; allowed: {', '.join(allowed)}"
        for key in section
        if key not in allowed
    ] + _nested_problems(cls, section, where)
    values = dict(section)
    if isinstance(values.get("precision"), int | str):
        values["precision"] = _PRECISION_ALIASES.get(values["precision"], values["precision"])
    try:
        instance = _adapter(cls).validate_python({k: v for k, v in values.items() if k in allowed})
    except pydantic.ValidationError as error:
        hints = typing.get_type_hints(cls)
        seen: set[str] = set()
        for detail in error.errors():
            key = str(detail["loc"][0]) if detail["loc"] else ""
            if key not in seen:
                seen.add(key)
                problems.append(_describe_error(detail, key, hints.get(key), values, where))
        return None, problems
    return (instance if not problems else None), problems


def _nested_problems(cls: type, section: dict[str, Any], where: str) -> list[str]:
    """Unknown keys of the sub-sections (a field whose type is a dataclass, e.g. ``data.augment``)."""
    hints = typing.get_type_hints(cls)
    return [
        f"{where}.{name}.{key}: unknown key; allowed: {', '.join(section_keys(hints[name]))}"
        for name, value in section.items()
        if isinstance(value, dict) and dataclasses.is_dataclass(hints.get(name))
        for key in value
        if key not in section_keys(hints[name])
    ]


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
    value = values.get(key)
    if get_origin(annotation) is Literal:
        return f"{where}.{key}={value!r} is not one of {', '.join(map(repr, get_args(annotation)))}"
    return f"{where}.{key}={value!r} must be {describe_type(annotation)}"


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
