"""`OpenedSource`: one video's bytes, ready for `av.open`, and the views several containers read it through.

PyAV reads a file object through Python callbacks inside FFmpeg, and cannot carry an exception out of
them: it keeps one for whichever FFmpeg call checks next, and Ctrl-C not at all. So a read that fails
(the network, Ctrl-C) is recorded on the source and reads as the end of the file, and the code that
called FFmpeg raises it with `OpenedSource.check` once FFmpeg has returned.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from vidfit.io._http import RemoteError

# PyAV's read and seek callbacks, as an unraisable exception names them.
_PYAV_CALLBACKS = "av.container.pyio"


@dataclass
class OpenedSource:
    """A source ready for `av.open`.

    Attributes:
        name: The path, the URL, or the file object's name (`source_name`).
        target: A local path, or a seekable file object that containers read through `reopen`'s views.
        size_bytes: The file's size.
        version: Changes when the content does: the mtime for local files; for http(s) the ETag and
            Last-Modified; fsspec's ``ukey`` (size, ETag, modification time as the store gives them)
            for other URLs; "" for file objects.
        owned: A file opened for this source, closed by `close`; a caller's file object is left open.
        remote: The bytes come over a network: a store's own exception while reading is a `RemoteError`.
        failure: What the first failed read through a view raised, or None.
    """

    name: Path | str
    target: str | IO[bytes]
    size_bytes: int
    version: str
    owned: IO[bytes] | None = None
    remote: bool = False
    failure: BaseException | None = None

    @property
    def is_local(self) -> bool:
        return isinstance(self.target, str)

    def reopen(self) -> str | IO[bytes]:
        """What one more container reads: the path, or a view of the file object with a position of its own."""
        return self.target if isinstance(self.target, str) else cast(IO[bytes], SourceView(self))

    def fail(self, error: BaseException) -> None:
        """Records the first failure of a read; an fsspec store's own exception becomes a `RemoteError`."""
        if self.failure is None:
            foreign = self.remote and isinstance(error, Exception) and not isinstance(error, OSError | ValueError)
            self.failure = RemoteError(f"{self.name}: {type(error).__name__}: {error}") if foreign else error

    def check(self) -> None:
        """Raises the failure a read met, or a Ctrl-C that PyAV lost; called where FFmpeg has returned."""
        if _LOST_INTERRUPTS.take() and self.failure is None:
            self.failure = KeyboardInterrupt()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()
            self.owned = None


class SourceView(io.RawIOBase):
    """One container's reading position over the file object of `source`, which other containers read too.

    FFmpeg reads a file object from wherever it was left, so a second container (indexing, a raw stream
    opened again) would move it under the first: a view seeks the file to its own position before each
    read. A failed read is recorded on the source (see the module's docstring) and reads as b"".
    """

    def __init__(self, source: OpenedSource) -> None:
        super().__init__()
        self._source, self._position = source, 0
        self._file = cast(IO[bytes], source.target)
        _LOST_INTERRUPTS.install()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._source.size_bytes}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if self._source.failure is not None:
            return b""
        wanted = size if size is not None and size >= 0 else max(self._source.size_bytes - self._position, 0)
        try:
            self._file.seek(self._position)
            data = self._file.read(wanted)
        except BaseException as error:
            self._source.fail(error)
            return b""
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer).cast("B")))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class _LostInterrupts:
    """Keeps the Ctrl-C that PyAV's callbacks could not raise, for the next `OpenedSource.check`.

    Python raises a pending Ctrl-C on entering a function, so one that arrives while FFmpeg demuxes
    can be raised on entering `SourceView.read`, before its ``try``; PyAV then reports it as
    unraisable and goes on. This unraisable hook counts such interrupts instead of printing them.
    """

    def __init__(self) -> None:
        self._count = 0
        self._previous = sys.unraisablehook

    def install(self) -> None:
        """Puts the hook in front of the current one (a test runner may have replaced it since)."""
        if sys.unraisablehook != self._hook:
            self._previous, sys.unraisablehook = sys.unraisablehook, self._hook

    def take(self) -> bool:
        """Whether a Ctrl-C was lost since the last call."""
        lost, self._count = self._count > 0, 0
        return lost

    def _hook(self, unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and _PYAV_CALLBACKS in repr(unraisable.object):
            self._count += 1
            return
        self._previous(unraisable)


_LOST_INTERRUPTS = _LostInterrupts()
