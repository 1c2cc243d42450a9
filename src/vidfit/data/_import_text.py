"""Annotation files as people have them: a BOM, Windows line endings, trailing spaces, CSV quoting, times
written ``HH:MM:SS.ff``. Every problem names the file and the line (or the JSON path) it is on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidfit.data._errors import ManifestError, Problem

# Split names as the datasets spell them, shortened to the names used elsewhere.
SPLIT_NAMES = {
    "train": "train", "training": "train", "trainval": "train",
    "val": "val", "valid": "val", "validate": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip
_TIME = re.compile(r"^(?:(?:(?P<h>\d+):)?(?P<m>\d+):)?(?P<s>\d+(?:\.\d*)?|\.\d+)$")
_WORDS = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Origin:
    """Where an annotation file says something: a line, a JSON path, or the file as a whole.

    Attributes:
        file: The annotation file (or folder).
        line: The 1-based line number, when the file has lines.
        key: A JSON path (``database.v1.annotations[0]``), or a part of the line (``actions[1]``).
    """

    file: Path
    line: int | None = None
    key: str | None = None

    @property
    def where(self) -> str:
        """``line 12``, ``line 12: actions[1]``, ``database.v1``, or ``file``/``folder`` for the whole."""
        parts = ([f"line {self.line}"] if self.line is not None else []) + ([self.key] if self.key else [])
        return ": ".join(parts) or ("folder" if self.file.is_dir() else "file")

    @property
    def position(self) -> str:
        """The line number or JSON path alone, as the skipped-entries report lists it."""
        return ": ".join(([str(self.line)] if self.line is not None else []) + ([self.key] if self.key else []))

    def at(self, key: str) -> Origin:
        """This place narrowed to `key`: a field of the line, or an element (``[0]``) or key of the JSON value."""
        joined = key if not self.key else f"{self.key}{key}" if key.startswith("[") else f"{self.key}.{key}"
        return Origin(self.file, self.line, joined)


@dataclass
class Problems:
    """Problems of an import, gathered so that every one is reported at once: by file (in the order the files
    were first named) and line."""

    placed: list[tuple[Origin, Problem]] = field(default_factory=list)

    @property
    def items(self) -> list[Problem]:
        return [problem for _, problem in self.placed]

    def add(self, origin: Origin, message: str, *, video_id: str | None = None) -> None:
        self.placed.append((origin, Problem(video_id, origin.file, origin.where, message)))

    def raise_any(self) -> None:
        if self.placed:
            files = {origin.file: rank for rank, (origin, _) in reversed(list(enumerate(self.placed)))}
            ordered = sorted(self.placed, key=lambda item: (files[item[0].file], item[0].line or 0))
            raise ManifestError([problem for _, problem in ordered])


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """The one error for a keyword argument outside its choices, before any file is read."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def read_text(path: Path, problems: Problems) -> str | None:
    """The file's text without a UTF-8 BOM; None (and a problem naming the line and byte) when unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        problems.add(Origin(path), "no such file")
        return None
    except IsADirectoryError:
        problems.add(Origin(path), "is a folder, not an annotation file")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        message = (
            f"byte 0x{data[error.start]:02x} at column {column} is not UTF-8 text; save the file as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)"
        )
        problems.add(Origin(path, line), message)
        return None


def read_lines(path: Path, problems: Problems) -> list[tuple[int, str]]:
    """Non-blank lines with their numbers, line endings (``\\n``, ``\\r\\n``) and outer spaces removed."""
    text = read_text(path, problems)
    if text is None:
        return []
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), start=1))
    return [(number, line) for number, line in lines if line]


def read_csv(path: Path, problems: Problems) -> tuple[list[str] | None, list[tuple[int, dict[str, str]]]]:
    """The header and the rows (stripped values by column name), each with the line it starts on; no header
    (None) when the file cannot be read."""
    text = read_text(path, problems)
    if text is None:
        return None, []
    reader = csv.reader(io.StringIO(text.replace("\r\n", "\n"), newline=""))  # quoted fields too
    header = [name.strip() for name in next(reader, [])]
    rows, line = [], reader.line_num + 1
    try:
        for values in reader:
            if any(value.strip() for value in values):
                rows.append((line, {name: value.strip() for name, value in zip(header, values, strict=False)}))
            line = reader.line_num + 1
    except csv.Error as error:
        problems.add(Origin(path, line), f"not valid CSV: {error}")
    return header, rows


def require_columns(path: Path, header: Sequence[str] | None, needed: Sequence[str], problems: Problems) -> bool:
    """Whether the header names every column in `needed` (a problem listing those missing when not)."""
    if header is None:
        return False  # the file could not be read, which is reported already
    missing = [name for name in needed if name not in header]
    if missing and header:
        problems.add(Origin(path, 1), f"lacks column(s) {missing}; the header has {list(header)}")
    elif missing:
        problems.add(Origin(path), f"is empty: a CSV with a header naming {list(needed)} is needed")
    return not missing


def read_json(path: Path, problems: Problems) -> Any:
    """The parsed JSON document, or None with a problem naming the file, line and column."""
    text = read_text(path, problems)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problems.add(Origin(path, error.lineno), f"not valid JSON: {error.msg} (column {error.colno})")
        return None


def parse_seconds(text: str) -> float:
    """Seconds from ``12.5``, ``01:02.5`` or ``00:01:02.50`` (``HH:MM:SS.ff``); finite and >= 0.

    Raises:
        ValueError: With what was wrong, for the caller to place.
    """
    match = _TIME.match(text.strip())
    if match is None:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time (seconds, or HH:MM:SS.ff)") from None
        return _finite(value, text)
    hours, minutes = int(match["h"] or 0), int(match["m"] or 0)
    return _finite(hours * 3600 + minutes * 60 + float(match["s"]), text)


def parse_frame(text: str) -> int:
    """A frame number: a whole number >= 0 (``12`` or ``12.0``)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a frame number") from None
    if not math.isfinite(value) or not value.is_integer() or value < 0:
        raise ValueError(f"{text!r} is not a frame number (a whole number >= 0)")
    return int(value)


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite time")
    if value < 0:
        raise ValueError(f"{text!r} is a negative time")
    return value


def split_from_name(path: Path) -> str | None:
    """The split a file's name gives (``EPIC_100_validation.csv`` -> ``val``), or None when it names none."""
    found = {SPLIT_NAMES[word] for word in _WORDS.findall(path.stem.lower()) if word in SPLIT_NAMES}
    return found.pop() if len(found) == 1 else None


def as_paths(value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """One path or several, as a list."""
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(item) for item in value]
