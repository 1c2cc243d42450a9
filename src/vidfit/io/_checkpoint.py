"""Checkpoints read safely (tensors and plain data only), every bad file reported as one `CheckpointError`."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

# The boilerplate lines of torch's refusal, its advice to load with weights_only=False among them (a file
# vidfit refuses is never to be trusted that way); the line left says which object was refused.
_REFUSAL_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "(1)", "(2)")
_NOT_A_CHECKPOINT = "not a PyTorch checkpoint (truncated or not a zip file)"
# How much more than its file a checkpoint's zip entries may declare: torch.save's entries are stored, so a
# real checkpoint declares less than its file; a deflated one (re-zipped by hand) rarely gains even 2x.
_MAX_EXPANSION = 4


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is ``<path>: <reason>``, or ``<key>='<path>': <reason>``.

    Attributes:
        path: The checkpoint file.
        reason: What is wrong with it.
        key: The option or config key that named the file (``pretrained_path``, ``--checkpoint``), or None.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, *, key: str | None = None) -> None:
        super().__init__(f"{path}: {reason}" if key is None else f"{key}={str(path)!r}: {reason}")
        self.path = Path(path)
        self.reason = reason
        self.key = key


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Loads a whole checkpoint on the CPU with ``weights_only=True``: no object in it can run code.

    Raises:
        CheckpointError: For a missing file, a folder, an empty, truncated or foreign file, a pickle
            holding objects other than tensors and plain data, or content that is not a dict.
    """
    source = _checked_file(path)
    return _load(source, mmap=False)


def read_checkpoint_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's ``hyper_parameters`` without reading its tensors.

    A zip checkpoint (what `torch.save` and Lightning write) is memory-mapped, so its tensors stay on
    the disk; an old-format file is read whole, as `read_checkpoint` reads it.

    Raises:
        CheckpointError: As `read_checkpoint`, and when the checkpoint has no ``hyper_parameters``.
    """
    source = _checked_file(path)
    # torch's mmap path refuses every non-zip file with a message about torch.save's options, which
    # misleads for a file that is not a checkpoint at all: only zips take that path.
    document = _load(source, mmap=_is_zip(source))
    header = document.get("hyper_parameters")
    if not isinstance(header, dict):
        raise CheckpointError(source, "has no hyper_parameters: it was not saved by a vidfit (Lightning) run")
    return header


def _checked_file(path: str | os.PathLike[str]) -> Path:
    source = Path(path)
    if source.is_dir():
        raise CheckpointError(source, "is a folder, not a checkpoint file")
    if not source.exists():
        raise CheckpointError(source, "no such checkpoint file")
    try:
        num_bytes = source.stat().st_size
    except OSError as error:
        raise CheckpointError(source, f"cannot read: {error.strerror or error}") from error
    if num_bytes == 0:
        raise CheckpointError(source, "is empty (0 bytes), not a PyTorch checkpoint")
    if _is_zip(source):
        _check_declared_sizes(source, num_bytes)
    return source


def _check_declared_sizes(source: Path, num_bytes: int) -> None:
    """Refuses a zip whose entries declare more than the file can hold, before torch inflates any of them.

    torch's reader allocates and inflates each entry to the size it declares, so a few MB of deflated zeros
    declaring gigabytes would take that much memory before failing. `torch.save` stores entries
    uncompressed: their declared sizes add up to less than the file's.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise CheckpointError(source, _NOT_A_CHECKPOINT) from error
    except OSError as error:
        raise CheckpointError(source, f"cannot read: {error.strerror or error}") from error
    for entry in entries:
        if entry.header_offset + entry.compress_size > num_bytes:
            raise CheckpointError(source, f"{_NOT_A_CHECKPOINT}: entry {entry.filename!r} ends past the file's end")
        if entry.compress_type == zipfile.ZIP_STORED and entry.file_size != entry.compress_size:
            raise CheckpointError(
                source, f"entry {entry.filename!r} is stored as {entry.compress_size} bytes but declares "
                f"{entry.file_size}: refused (a forged zip header)",
            )  # fmt: skip
    declared = sum(entry.file_size for entry in entries)
    if declared > _MAX_EXPANSION * num_bytes:
        raise CheckpointError(
            source, f"its zip entries declare {_size(declared)} uncompressed, more than {_MAX_EXPANSION}x the "
            f"file's {_size(num_bytes)}: refused as a zip bomb (PyTorch stores a checkpoint's entries uncompressed)",
        )  # fmt: skip


def _size(num_bytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes} bytes"


def _is_zip(source: Path) -> bool:
    try:
        return zipfile.is_zipfile(source)
    except OSError as error:
        raise CheckpointError(source, f"cannot read: {error.strerror or error}") from error


def _load(source: Path, *, mmap: bool) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # Said of any pickle not written by torch.save, just before the file is refused anyway.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            document = torch.load(source, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(source, _refusal_reason(source, error)) from error
    except OSError as error:
        raise CheckpointError(source, f"cannot read: {error.strerror or error}") from error
    except Exception as error:
        # A foreign or cut file makes torch's zip reader or unpickler fail wherever it first trips:
        # RuntimeError, EOFError, KeyError, ValueError... all mean the same to the user.
        raise CheckpointError(source, _NOT_A_CHECKPOINT) from error
    if not isinstance(document, dict):
        raise CheckpointError(source, f"holds a {type(document).__name__}, not a checkpoint (a dict)")
    return document


def _refusal_reason(source: Path, error: pickle.UnpicklingError) -> str:
    message = str(error)
    if not message.startswith("Weights only load failed"):
        return _NOT_A_CHECKPOINT
    if not _is_zip(source):
        return "not a PyTorch checkpoint (a bare pickle, not a zip file); refused without running its content"
    lines = [line.strip() for line in message.splitlines()]
    detail = next((line for line in lines if line and not line.startswith(_REFUSAL_BOILERPLATE)), "")
    # "WeightsUnpickler error: Unsupported global: GLOBAL x.Y was not an allowed global by default. Please use
    # `torch.serialization.add_safe_globals(...)` ...": the object, without the advice to allow it.
    detail = detail.removeprefix("WeightsUnpickler error: ").split(" Please use ")[0].rstrip(".")
    return f"holds objects other than tensors and plain data, refused (weights_only=True): {detail}".rstrip(": ")
