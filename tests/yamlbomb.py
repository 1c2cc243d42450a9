"""Hostile YAML made at test time: alias bombs, deep nesting, documents of a given size."""

from __future__ import annotations

import itertools


def alias_bomb(*, levels: int = 9, width: int = 9, key: str = "views") -> str:
    """A few hundred bytes whose `key` expands to ``width ** levels`` strings through aliases (a billion laughs).

    Each level is a list of `width` aliases of the level below, so loading it is cheap (an alias is a
    reference) and anything that walks the value does ``width ** levels`` steps.
    """
    names = [chr(ord("a") + level) for level in range(levels)]
    lines = [f"  {names[0]}: &{names[0]} [{','.join(['lol'] * width)}]"]
    lines += [f"  {name}: &{name} [{','.join([f'*{below}'] * width)}]" for below, name in itertools.pairwise(names)]
    return "\n".join(["bombs:", *lines, f"{key}: *{names[-1]}", ""])


def deep_yaml(depth: int) -> str:
    """A value nested `depth` lists deep, in flow style (``[[[...]]]``)."""
    return "data: " + "[" * depth + "]" * depth + "\n"


def deep_json(depth: int) -> str:
    """A JSON object whose ``data`` is nested `depth` lists deep."""
    return '{"data": ' + "[" * depth + "]" * depth + "}"


def views_list(num_bytes: int) -> str:
    """A config whose ``data.views`` lists names of about `num_bytes` in all."""
    count = num_bytes // 12
    return "data:\n  manifest: m.yaml\n  views: [" + ", ".join(f"v{i:09d}" for i in range(count)) + "]\n"
