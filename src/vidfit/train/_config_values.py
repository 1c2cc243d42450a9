"""Plain data to typed config values: each value checked against its field's type hint."""

from __future__ import annotations

import contextlib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin


class ConfigError(ValueError):
    """A configuration that cannot run: names the file, the key, the value and what is allowed."""


# The seeds wrote precision as 16, "fp16" or "bf16"; Lightning's names are what vidfit keeps.
_PRECISION_ALIASES = {16: "16-mixed", "16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed", 32: "32"}


def build_section(cls: type, section: dict[str, Any], where: str) -> Any:
    """An instance of the config section `cls` from plain data, each value checked against its type hint."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in section.items():
        if key not in hints:
            raise ConfigError(f"{where}.{key}: unknown key; allowed: {', '.join(hints)}")
        if key == "precision" and value in _PRECISION_ALIASES:
            value = _PRECISION_ALIASES[value]
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple) or (origin is tuple and len(value) != len(args)):
            raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")
        kinds = args if origin is tuple else (args[0],) * len(value)
        coerced = [_coerce(item, kind, where) for item, kind in zip(value, kinds, strict=True)]
        return tuple(coerced) if origin is tuple else coerced
    if annotation is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        # YAML 1.1 reads 1e-3 (no dot) as a string; a string that parses as a number is that number.
        with contextlib.suppress(ValueError):
            return float(value)
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")


def _describe(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return str(getattr(annotation, "__name__", annotation))
    if origin is Literal:
        return " or ".join(map(repr, args))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    return str(annotation).replace("typing.", "")
