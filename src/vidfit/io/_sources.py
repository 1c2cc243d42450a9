"""Where a video's bytes come from: a local path, an http(s) or other fsspec URL, or a file object.

http(s) URLs are read by `HttpFile` (byte ranges over Python's own HTTP client, the file's version
checked on every answer, bounded waits); other URLs (``s3://``, ``gs://``, ...) through fsspec, the
optional ``remote`` extra, in byte ranges of `REMOTE_BLOCK_BYTES`. The opened file is an `OpenedSource`.
"""

from __future__ import annotations

import importlib
import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from vidfit.io._http import RemoteError, is_http
from vidfit.io._opened import OpenedSource
from vidfit.io._remote import HttpFile, http_stamp

Source = str | os.PathLike[str] | IO[bytes]
# Bytes fetched per read from an fsspec store: small enough that a seek wastes little, large enough that
# sequential decoding makes few requests.
REMOTE_BLOCK_BYTES = 1 << 18
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The package each fsspec protocol needs beyond fsspec, named in the error when it is missing.
_PROTOCOL_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}
T = TypeVar("T")


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


def open_source(source: Source) -> OpenedSource:
    """Opens `source` for reading.

    Raises:
        FileNotFoundError: A local path or URL that does not exist.
        RemoteError: A URL that cannot be read, naming the cause (an HTTP status, a refused connection, ...).
        ImportError: A URL whose fsspec backend is not installed (naming the ``pip install``).
    """
    name = source_name(source)
    if isinstance(name, Path):
        if not name.is_file():
            raise FileNotFoundError(f"{name}: no such video file")
        stat = name.stat()
        return OpenedSource(name, str(name), stat.st_size, str(stat.st_mtime_ns))
    if isinstance(source, str) and is_http(source):
        http_file = HttpFile(source, noun="video file")
        file = cast(IO[bytes], http_file)
        return OpenedSource(name, file, http_file.size_bytes, http_file.stamp.version, owned=file, remote=True)
    if isinstance(source, str):
        filesystem, path = _filesystem(source)
        size, version = _remote_stamp(filesystem, path, url=source)
        file = _remote(
            source, lambda: filesystem.open(path, mode="rb", block_size=REMOTE_BLOCK_BYTES, cache_type="readahead")
        )
        return OpenedSource(name, file, size, version, owned=file, remote=True)
    if isinstance(source, os.PathLike) or not (hasattr(source, "read") and hasattr(source, "seek")):
        raise TypeError(f"source={source!r} must be a path, a URL or a seekable binary file object")
    position = source.seek(0, os.SEEK_END)
    source.seek(0)
    return OpenedSource(name, source, int(position), "")


def source_stamp(source: str | os.PathLike[str]) -> tuple[int, str] | None:
    """``(size_bytes, version)`` of a path or URL (see `OpenedSource`), or None when it cannot be read.

    Cheap for URLs too (one request for a byte, or for metadata), so caches can key on it.
    """
    name = source_name(source)
    try:
        if isinstance(name, Path):
            stat = name.stat()
            return stat.st_size, str(stat.st_mtime_ns)
        if is_http(str(source)):
            stamp = http_stamp(str(source))
            return stamp.size_bytes or 0, stamp.version
        filesystem, path = _filesystem(str(source))
        return _remote_stamp(filesystem, path, url=str(source))
    except OSError:
        return None


def _remote_stamp(filesystem: Any, path: str, *, url: str) -> tuple[int, str]:
    try:
        info = _remote(url, lambda: filesystem.info(path))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{url}: no such video file") from error
    return int(info.get("size") or 0), str(filesystem.ukey(path))


def _remote(url: str, call: Callable[[], T]) -> T:
    """`call`'s result; an fsspec store's own exception (a botocore error, say) as a `RemoteError` naming `url`."""
    try:
        return call()
    except (OSError, ValueError):
        raise
    except Exception as error:
        raise RemoteError(f"{url}: {type(error).__name__}: {error}") from error


def _filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for `url`, imported lazily: fsspec is the optional ``remote`` extra."""
    protocol = url.split("://", 1)[0].lower()
    try:
        fsspec = importlib.import_module("fsspec")
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        package = _PROTOCOL_PACKAGES.get(protocol)
        needs = "fsspec" + (f" and {package}" if package else "")
        install = "pip install 'vidfit[remote]'" + (f" {package}" if package else "")
        raise ImportError(f"{url}: reading {protocol}:// URLs needs {needs}: {install}") from error


def open_text(location: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a local file or of a URL (a manifest kept beside remote videos, say)."""
    name = source_name(location)
    if isinstance(name, Path):
        return name.read_text(encoding="utf-8")
    if is_http(str(location)):
        with HttpFile(str(location)) as file:
            return file.readall().decode("utf-8")
    filesystem, path = _filesystem(str(location))
    try:
        with _remote(str(location), lambda: filesystem.open(path, mode="rb")) as file:
            return bytes(file.read()).decode("utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{location}: no such file") from error


def as_location(value: str | os.PathLike[str]) -> Path | str:
    """A path or URL as written: the URL kept as a string (a `Path` would fold its ``//``)."""
    name = source_name(value)
    return name if isinstance(name, str) else Path(name)


def join_location(base: Path | str, relative: str) -> Path | str:
    """`relative` (a path, or an absolute URL kept as it is) resolved against the folder `base`, normalized.

    Under a URL, ``..`` stops at the host's root: a relative path never leads to another host.
    """
    if is_url(relative):
        return relative
    if not is_url(base):
        return Path(os.path.normpath(Path(base) / relative))
    scheme, rest = str(base).split("://", 1)
    host, _, folder = rest.partition("/")
    path = posixpath.normpath(posixpath.join("/" + folder, relative)).lstrip("/")
    return f"{scheme}://{host}" + (f"/{path}" if path else "")


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
