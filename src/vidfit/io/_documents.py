"""YAML and JSON documents of untrusted size and shape, read with limits; their values quoted short in messages.

A few hundred bytes of YAML can hold a billion nodes through aliases (each alias is a reference, so
loading is cheap, but anything that walks the value afterwards, a deep copy, a check or an error message
printing it, does the billion), and a deeply nested document makes the parsers recurse until Python
stops them. Configs and manifests are read here: the text's size, the nesting depth and the node count
with every alias expanded are checked before any value is built, so a hostile file fails in one line
at once, whatever walks its value later.
"""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

DocumentForm = Literal["yaml", "json", "json5"]
# Longest quoted value in a message; longer ones keep their start and say how much was left out.
MAX_QUOTE_CHARACTERS = 120


class DocumentError(ValueError):
    """A document that is too large, too deep, expands too far through its aliases, or is not valid."""


@dataclass(frozen=True, kw_only=True)
class DocumentLimits:
    """How large a document may be.

    Attributes:
        max_bytes: Largest text, in UTF-8 bytes.
        max_depth: Deepest nesting of mappings and lists, aliases expanded.
        max_nodes: Most values (scalars, mappings, lists), aliases expanded.
    """

    max_bytes: int
    max_depth: int = 64
    max_nodes: int = 1_000_000


def load_document(text: str, *, form: DocumentForm, source: str, limits: DocumentLimits) -> Any:
    """The plain data of YAML (``yaml.safe_load``'s types), JSON, or JSON5 text within `limits`.

    Raises:
        DocumentError: The text breaks a limit or is not valid; the message starts with `source` and
            says which limit, and what it was.
    """
    size = len(text.encode("utf-8"))
    if size > limits.max_bytes:
        raise DocumentError(f"{source}: {size:,} bytes is more than the {limits.max_bytes:,} a {_WHAT[form]} may have")
    if form == "yaml":
        return _load_yaml(text, source=source, limits=limits)
    try:
        if form == "json":
            document = json.loads(text)
        else:
            import json5  # the JSON configs editors write, with comments and trailing commas

            document = json5.loads(text)
    except RecursionError:
        raise DocumentError(f"{source}: nested deeper than {limits.max_depth} levels") from None
    except ValueError as error:  # json.JSONDecodeError is one; json5 raises ValueError
        raise DocumentError(f"{source}: not valid {form.upper()}: {error}") from error
    _check_value(document, source=source, limits=limits)
    return document


_WHAT = {"yaml": "YAML document", "json": "JSON document", "json5": "JSON document"}


def read_document(path: Path, *, form: DocumentForm, source: str, limits: DocumentLimits) -> Any:
    """`load_document` of a file, of which at most one byte more than `limits.max_bytes` is read.

    A huge file, or an endless one (``/dev/zero``), fails at once without being read whole.

    Raises:
        DocumentError: As `load_document`, or the file is not UTF-8 text.
        OSError: The file cannot be read.
    """
    with path.open("rb") as file:
        data = file.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise DocumentError(f"{source}: more than the {limits.max_bytes:,} bytes a {_WHAT[form]} may have")
    try:
        text = data.decode("utf-8-sig")  # editors on Windows start files with a byte-order mark
    except UnicodeDecodeError as error:
        raise DocumentError(f"{source}: not UTF-8 text (byte {error.start})") from None
    return load_document(text, form=form, source=source, limits=limits)


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than `max_depth` while it composes the node tree."""

    def __init__(self, text: str, *, max_depth: int) -> None:
        super().__init__(text)
        self.max_depth, self.depth = max_depth, 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise DocumentError(f"nested deeper than {self.max_depth} levels (line {self.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _load_yaml(text: str, *, source: str, limits: DocumentLimits) -> Any:
    loader = _LimitedLoader(text, max_depth=limits.max_depth)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, limits)
        return loader.construct_document(node)
    except DocumentError as error:
        raise DocumentError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        raise DocumentError(f"{source}: not valid YAML: {error}") from error
    except ValueError as error:  # a scalar the safe constructor cannot convert, e.g. an int of 5000 digits
        raise DocumentError(f"{source}: not valid YAML: {error}") from error
    finally:
        loader.dispose()


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_nodes(root: Node, limits: DocumentLimits) -> None:
    """Counts the nodes and depth of the tree with every alias expanded, without expanding it.

    Each distinct node is visited once (an alias is the same node object as its anchor), remembering its
    expanded size and height, so a billion-node bomb is measured in a few hundred steps.
    """
    sizes: dict[int, tuple[int, int]] = {}
    path: set[int] = {id(root)}
    stack = [(root, iter(_children(root)))]
    while stack:
        node, pending = stack[-1]
        child = next(pending, None)
        if child is None:
            stack.pop()
            path.discard(id(node))
            measured = [sizes[id(c)] for c in _children(node)]
            size, height = 1 + sum(s for s, _ in measured), 1 + max((h for _, h in measured), default=0)
            if size > limits.max_nodes:
                raise DocumentError(f"expands to more than {limits.max_nodes:,} values (aliases: *name)")
            if height > limits.max_depth:
                raise DocumentError(f"nested deeper than {limits.max_depth} levels once its aliases are expanded")
            sizes[id(node)] = (size, height)
        elif id(child) in path:
            raise DocumentError(f"an alias refers to a value that holds it (line {child.start_mark.line + 1})")
        elif id(child) not in sizes:
            path.add(id(child))
            stack.append((child, iter(_children(child))))


def _check_value(document: Any, *, source: str, limits: DocumentLimits) -> None:
    """The depth and value count of parsed JSON (which has no aliases, so the count is its own)."""
    count, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if depth > limits.max_depth:
            raise DocumentError(f"{source}: nested deeper than {limits.max_depth} levels")
        if count > limits.max_nodes:
            raise DocumentError(f"{source}: holds more than {limits.max_nodes:,} values")
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((item, depth + 1) for item in items)


def _quoter() -> reprlib.Repr:
    quoter = reprlib.Repr()
    quoter.maxlevel, quoter.maxdict, quoter.maxlist, quoter.maxtuple, quoter.maxset = 3, 6, 8, 8, 8
    quoter.maxstring = quoter.maxother = quoter.maxlong = 80
    return quoter


_QUOTER = _quoter()


def shorten(value: Any, *, limit: int = MAX_QUOTE_CHARACTERS) -> str:
    """`repr(value)` for a message, abbreviated: nested and long values elided with ``...``, at most `limit`
    characters. Reads only what it shows, so a value of a billion nodes costs no more than a short one."""
    try:
        text = _QUOTER.repr(value)
    except ValueError:  # an int too long for Python to print
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}..."
