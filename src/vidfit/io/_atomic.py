"""Files written whole or not at all, alone or as a set: temp files beside the targets, then renames."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path


def write_files_atomic(writers: Mapping[str | os.PathLike[str], Callable[[Path], object]]) -> list[Path]:
    """Writes a set of files so that a failure leaves every target as it was.

    Each writer fills a temp file in its target's folder; the targets are replaced by renames only once
    every writer has succeeded, so a failed write never leaves a new file beside a stale one of the set.
    A rename is atomic within one file system: readers see the old file or the new one, never half of
    one. The temp files are created like any file (mode 0666 less the umask), unlike `tempfile.mkstemp`'s
    0600, so the results get the permissions a plain write would give them.

    Args:
        writers: Target path to a function that writes the file's content to the path it is given.

    Returns:
        The targets, in the order given.
    """
    targets = [Path(path) for path in writers]
    # A random suffix keeps two writers of the same target (threads, processes) off each other's temp file.
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temps = [target.with_name(f".{target.name}.{token}.tmp") for target in targets]
    try:
        for target, temp, write in zip(targets, temps, writers.values(), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            write(temp)
        for target, temp in zip(targets, temps, strict=True):
            temp.replace(target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return targets


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Writes UTF-8 `text` to `path` whole or not at all (see `write_files_atomic`); returns the path."""
    return write_files_atomic({path: lambda temp: temp.write_text(text, encoding="utf-8")})[0]
