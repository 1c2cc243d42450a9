"""Files written whole or not at all, alone or as a set: temp files beside the targets, then renames.

What a set write guarantees (`write_files_atomic`):

- Before any target changes, every file of the set is complete in a temp file beside its target, and
  every target that already exists has a backup (a hard link, or a copy where links are refused).
- A failure while writing, or while making backups, changes no target.
- A failure of one rename puts the targets already renamed back: their previous content where they had
  one, removed where they were new. Only if a rollback rename fails too does a target keep its new
  content; the raised error then carries a note naming it.
- Temp files and backups are removed on every path, Ctrl-C included; a removal that fails is added to
  the raised error as a note and never replaces it.

Each rename is atomic on one file system, so a reader sees a file's old content or its new one, never
half. The set as a whole is not: between the first and the last rename a reader may see new and old
files side by side. Nothing is flushed to the disk (no fsync): after a power cut the files may be empty.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path


class OutputError(OSError):
    """A result could not be written; the message is ``<path>: <reason>``.

    Attributes:
        path: The file or folder at fault.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, *, code: int | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.errno = code


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Checks, before any work, that a file can be written at `path`; returns the path.

    The nearest existing folder above `path` must be a folder where a file can be created (checked by
    creating and removing one, which sees read-only mounts and full inode tables that permission bits
    miss); the folders in between are created by the write. `path` itself must not be a folder.

    Raises:
        OutputError: Naming the path and why it cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(target, "is a folder, not a file that can be written")
    folder = target.parent
    while not folder.exists():
        if folder.is_symlink():
            raise OutputError(folder, "is a broken symbolic link; the output folder cannot be created")
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(folder, f"is not a folder, so {target} cannot be written")
    probe = folder / f".vidfit-write-check.{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.touch(exist_ok=False)
    except OSError as error:
        raise OutputError(folder, f"cannot write here: {error.strerror or error}", code=error.errno) from error
    probe.unlink()
    return target


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """``root / relative`` with every symbolic link followed; refuses a path that leaves `root`.

    Links inside `root` that point elsewhere (``out/videos/a -> /elsewhere``) are refused as well as
    ``..`` and absolute paths. The check is made when called: a link made afterwards is not seen.

    Raises:
        ValueError: Naming the path, where it leads, and the root.
    """
    base = Path(root).resolve()
    wanted = Path(root) / relative
    resolved = (base / relative).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"{wanted}: resolves to {resolved}, outside the output folder {base}")
    return resolved


@dataclass
class _Slot:
    """One file of a set: its target, its temp file, and the backup of the target's previous content."""

    target: Path
    temp: Path
    backup: Path | None = None
    renamed: bool = False


def write_files_atomic(writers: Mapping[str | os.PathLike[str], Callable[[Path], object]]) -> list[Path]:
    """Writes a set of files so that a failure leaves every target as it was (see the module's guarantees).

    Each writer fills a temp file in its target's folder, named like the target with its extension kept
    (``.name.<token>.tmp.png``), so writers that choose a format by extension work. The temp files are
    created like any file (mode 0666 less the umask), unlike `tempfile.mkstemp`'s 0600.

    Args:
        writers: Target path to a function that writes the file's content to the path it is given.

    Returns:
        The targets, in the order given.

    Raises:
        OutputError: When the file system refuses a write or a rename (full disk, read-only folder...),
            naming the file. Other errors of a writer propagate unchanged.
    """
    # A random token keeps two writers of the same target (threads, processes) off each other's files.
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    slots = [_Slot(Path(p), Path(p).with_name(f".{Path(p).stem}.{token}.tmp{Path(p).suffix}")) for p in writers]
    notes: list[str] = []
    try:
        for slot, write in zip(slots, writers.values(), strict=True):
            _step(slot.target, partial(_write_temp, slot, write))
        for slot in slots:
            _step(slot.target, partial(_make_backup, slot, token))
        for slot in slots:
            _step(slot.target, partial(_rename, slot))
    except BaseException as error:
        _roll_back(slots, notes)
        _clean_up(slots, notes)
        for note in notes:
            error.add_note(note)
        raise
    _clean_up(slots, notes)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    return [slot.target for slot in slots]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Writes UTF-8 `text` to `path` whole or not at all (see `write_files_atomic`); returns the path."""
    return write_files_atomic({path: lambda temp: temp.write_text(text, encoding="utf-8")})[0]


def _step(target: Path, action: Callable[[], object]) -> None:
    """Runs one step on `target`'s behalf, naming the target in the file system's refusals."""
    try:
        action()
    except OutputError:
        raise
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            reason = "no space left on the device"
        raise OutputError(target, f"cannot write: {reason}", code=error.errno) from error


def _write_temp(slot: _Slot, write: Callable[[Path], object]) -> None:
    if slot.target.is_dir():
        raise OutputError(slot.target, "is a folder, not a file that can be written")
    slot.target.parent.mkdir(parents=True, exist_ok=True)
    write(slot.temp)
    if not slot.temp.is_file():
        raise OutputError(slot.target, "the writer wrote no file")


def _make_backup(slot: _Slot, token: str) -> None:
    """Keeps the target's previous content under a second name, for a rollback; nothing when it is new."""
    if not slot.target.exists():
        return
    backup = slot.target.with_name(f".{slot.target.stem}.{token}.bak{slot.target.suffix}")
    try:
        os.link(slot.target, backup)
    except OSError:
        # File systems without hard links (some network and FUSE mounts) get a copy.
        shutil.copy2(slot.target, backup)
    slot.backup = backup


def _rename(slot: _Slot) -> None:
    slot.temp.replace(slot.target)
    slot.renamed = True


def _roll_back(slots: list[_Slot], notes: list[str]) -> None:
    for slot in (s for s in slots if s.renamed):
        try:
            if slot.backup is not None:
                slot.backup.replace(slot.target)
                slot.backup = None
            else:
                slot.target.unlink()
        except OSError as error:
            notes.append(f"{slot.target}: could not be put back as it was, it holds the new content: {error}")


def _clean_up(slots: list[_Slot], notes: list[str]) -> None:
    for slot in slots:
        _remove(slot.temp, notes=notes)
        if slot.backup is not None:
            _remove(slot.backup, notes=notes)


def _remove(path: Path, *, notes: list[str]) -> None:
    """Removes a temp file; a failure becomes a note, so that it never hides the error being raised."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        notes.append(f"{path}: temp file left behind, remove it by hand: {error}")
