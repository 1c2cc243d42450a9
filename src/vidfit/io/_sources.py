"""Where a video's bytes come from: a local path, an http(s) or other fsspec URL, or a file object.

Remote files are read through fsspec in byte ranges of `REMOTE_BLOCK_BYTES`, so a seek fetches
the blocks it touches and never the whole file.
"""

from __future__ import annotations

import importlib
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

Source = str | os.PathLike[str] | IO[bytes]
# Bytes fetched per remote read: small enough that a seek wastes little, large enough that
# sequential decoding makes few requests.
REMOTE_BLOCK_BYTES = 1 << 18
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The package each protocol needs beyond fsspec, named in the error when it is missing.
_PROTOCOL_PACKAGES = {"http": "aiohttp", "https": "aiohttp", "s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}


def is_url(value: object) -> bool:
    """True for ``scheme://...`` strings other than ``file://`` (which are local paths)."""
    return isinstance(value, str) and _URL.match(value) is not None and not value.startswith("file://")


def source_name(source: Source) -> Path | str:
    """How a source is named in metadata and messages: the path, the URL, or the file object's name."""
    if isinstance(source, str) and is_url(source):
        return source
    if isinstance(source, str | os.PathLike):
        return Path(str(source).removeprefix("file://"))
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else f"<{type(source).__name__}>"


@dataclass
class OpenedSource:
    """A source ready for `av.open`.

    Attributes:
        name: See `source_name`.
        target: What `av.open` reads: a local path or a seekable file object.
        size_bytes: The file's size.
        version: Changes when the content does: the mtime for local files, fsspec's ``ukey``
            (size, ETag, modification time as the store gives them) for URLs, "" for file objects.
        owned: A file this module opened, closed by `close`; a caller's file object is left open.
    """

    name: Path | str
    target: str | IO[bytes]
    size_bytes: int
    version: str
    owned: IO[bytes] | None = None

    @property
    def is_local(self) -> bool:
        return isinstance(self.target, str)

    def reopen(self) -> str | IO[bytes]:
        """The target rewound, for a second container over the same bytes."""
        if not isinstance(self.target, str):
            self.target.seek(0)
        return self.target

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()
            self.owned = None


def open_source(source: Source) -> OpenedSource:
    """Opens `source` for reading.

    Raises:
        FileNotFoundError: A local path or URL that does not exist.
        ImportError: A URL whose fsspec backend is not installed (naming the ``pip install``).
    """
    name = source_name(source)
    if isinstance(name, Path):
        if not name.is_file():
            raise FileNotFoundError(f"{name}: no such video file")
        stat = name.stat()
        return OpenedSource(name, str(name), stat.st_size, str(stat.st_mtime_ns))
    if isinstance(source, str):
        filesystem, path = _filesystem(source)
        size, version = _remote_stamp(filesystem, path, url=source)
        file = filesystem.open(path, mode="rb", block_size=REMOTE_BLOCK_BYTES, cache_type="readahead")
        return OpenedSource(name, file, size, version, owned=file)
    if isinstance(source, os.PathLike) or not (hasattr(source, "read") and hasattr(source, "seek")):
        raise TypeError(f"source={source!r} must be a path, a URL or a seekable binary file object")
    position = source.seek(0, os.SEEK_END)
    source.seek(0)
    return OpenedSource(name, source, int(position), "")


def source_stamp(source: str | os.PathLike[str]) -> tuple[int, str] | None:
    """``(size_bytes, version)`` of a path or URL (see `OpenedSource`), or None when it cannot be read.

    Cheap for URLs too (one metadata request, no content), so caches can key on it.
    """
    name = source_name(source)
    try:
        if isinstance(name, Path):
            stat = name.stat()
            return stat.st_size, str(stat.st_mtime_ns)
        filesystem, path = _filesystem(str(source))
        return _remote_stamp(filesystem, path, url=str(source))
    except (OSError, FileNotFoundError):
        return None


def _remote_stamp(filesystem: Any, path: str, *, url: str) -> tuple[int, str]:
    try:
        info = filesystem.info(path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{url}: no such video file") from error
    return int(info.get("size") or 0), str(filesystem.ukey(path))


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url`, imported lazily: fsspec is the optional ``remote`` extra."""
    protocol = url.split("://", 1)[0].lower()
    needed = ["fsspec", _PROTOCOL_PACKAGES.get(protocol, f"the fsspec backend for {protocol}://")]
    try:
        fsspec = importlib.import_module("fsspec")
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        install = "pip install 'vidfit[remote]'" + (f" {needed[1]}" if protocol not in ("http", "https") else "")
        raise ImportError(f"{url}: reading {protocol}:// URLs needs {' and '.join(needed)}: {install}") from error


def open_text(location: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a local file or of a URL (a manifest kept beside remote videos, say)."""
    name = source_name(location)
    if isinstance(name, Path):
        return name.read_text(encoding="utf-8")
    filesystem, path = _filesystem(str(location))
    try:
        with filesystem.open(path, mode="rb") as file:
            return bytes(file.read()).decode("utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{location}: no such file") from error


def as_location(value: str | os.PathLike[str]) -> Path | str:
    """A path or URL as written: the URL kept as a string (a `Path` would fold its ``//``)."""
    name = source_name(value)
    return name if isinstance(name, str) else Path(name)


def join_location(base: Path | str, relative: str) -> Path | str:
    """`relative` (a path, or an absolute URL kept as it is) resolved against the folder `base`, normalized."""
    if is_url(relative) or not is_url(base):
        return as_location(relative) if is_url(relative) else Path(os.path.normpath(Path(base) / relative))
    scheme, rest = str(base).split("://", 1)
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, relative))}"


def location_parent(location: Path | str) -> Path | str:
    """The folder holding a file or URL."""
    if isinstance(location, Path):
        return location.parent
    scheme, rest = location.split("://", 1)
    return f"{scheme}://{posixpath.dirname(rest)}"


def is_inside(location: Path | str, root: Path | str) -> bool:
    """Whether `location` lies under `root` (both paths or both URLs), judged on the normalized text."""
    if isinstance(location, Path) and isinstance(root, Path):
        return location.is_relative_to(root)
    return isinstance(location, str) and isinstance(root, str) and location.startswith(root.rstrip("/") + "/")


def relative_location(location: Path | str, root: Path | str) -> str:
    """`location` written relative to `root` (as a manifest stores it); an absolute URL when they differ in kind."""
    if isinstance(location, Path) and isinstance(root, Path):
        return Path(os.path.relpath(location, root)).as_posix()
    if isinstance(location, str) and isinstance(root, str) and location.split("://")[0] == root.split("://")[0]:
        return posixpath.relpath(location.split("://", 1)[1], root.split("://", 1)[1])
    return str(location)
