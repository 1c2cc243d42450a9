"""`HttpFile`: a file behind an http(s) URL, read in byte ranges, every answer checked against the first.

A seek fetches the blocks it touches, never the whole file; blocks are kept (a small file is fetched
once), and sequential reads ask for more blocks at a time. Every answer's ETag, Last-Modified and size
must match the first answer's, so a file replaced while being read is one error, never frames of two
versions. A server that ignores byte ranges (Python's ``http.server``, many simple servers) is read
front to back into an anonymous spool file, as far as reads need it, which then serves the seeks.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections import OrderedDict
from typing import IO, Any

from vidfit.io._http import HttpClient, HttpStamp, RemoteChangedError, RemoteError, content_range, stamp_of

SPOOL_LIMIT_ENV = "VIDFIT_SPOOL_MAX_BYTES"
DEFAULT_SPOOL_MAX_BYTES = 4 << 30
# Bytes per block: small enough that a seek wastes little, large enough that decoding makes few requests.
BLOCK_BYTES = 1 << 18
# Blocks kept (4 MiB); a file of at most this size is never fetched twice.
_CACHED_BLOCKS = 16
# Reads that go on where the last request ended ask for twice as many blocks, up to this many.
_MAX_BLOCKS_PER_REQUEST = 8
_SPOOL_CHUNK_BYTES = 1 << 20
logger = logging.getLogger("vidfit.io")


class HttpFile(io.RawIOBase):
    """A read-only, seekable file behind an http(s) URL.

    Args:
        url: The file's URL.
        noun: What the file is, in the error for a missing one (``"video file"``).

    Attributes:
        url: The URL, named in every error.
        stamp: The first answer's size, ETag and Last-Modified.
        size_bytes: The file's size.

    Raises:
        FileNotFoundError: HTTP 404 or 410.
        RemoteError: Anything else that keeps the file from being read, with the URL and the cause.
    """

    def __init__(self, url: str, *, noun: str = "file") -> None:
        super().__init__()
        self.url, self._position = url, 0
        self._client = HttpClient(url, noun=noun)
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._next_block, self._run_blocks = 0, 1  # where the last request ended, and how many blocks it asked for
        self._spool: _Spool | None = None
        response = self._client.get((0, BLOCK_BYTES))
        self.stamp = stamp_of(response)
        if response.status == 200:
            self._spool = _Spool(self._client, response, size_bytes=self.stamp.size_bytes)
            self.size_bytes = self._spool.size_bytes
            return
        if self.stamp.size_bytes is None:
            self._client.close()
            raise RemoteError(f"{url}: the server answers byte ranges without the file's size (Content-Range)")
        self.size_bytes = self.stamp.size_bytes
        self._check(response, 0, min(BLOCK_BYTES, self.size_bytes))
        self._blocks[0], self._next_block = self._client.read(response), 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size_bytes}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        stop = min(self._position + len(view), self.size_bytes)
        if stop <= self._position:
            return 0
        if self._spool is not None:
            data = self._spool.read(self._position, stop)
        else:
            data = self._read_range(self._position, stop)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def readall(self) -> bytes:
        return self.read(max(self.size_bytes - self._position, 0)) or b""

    def close(self) -> None:
        if not self.closed:
            self._client.close()
            self._blocks.clear()
            if self._spool is not None:
                self._spool.close()
        super().close()

    def _read_range(self, start: int, stop: int) -> bytes:
        first, last = start // BLOCK_BYTES, (stop - 1) // BLOCK_BYTES
        if last - first >= _CACHED_BLOCKS:  # more than the cache holds: fetched as it is
            return self._fetch(first * BLOCK_BYTES, min((last + 1) * BLOCK_BYTES, self.size_bytes))[
                start - first * BLOCK_BYTES : stop - first * BLOCK_BYTES
            ]
        for block in range(first, last + 1):
            if block not in self._blocks:
                self._fetch_blocks(block, last)
            self._blocks.move_to_end(block)
        offset = start - first * BLOCK_BYTES
        if first == last:  # FFmpeg's reads (32 KiB) mostly: no copy of the whole block
            data = self._blocks[first][offset : offset + stop - start]
        else:
            data = b"".join(self._blocks[block] for block in range(first, last + 1))[offset : offset + stop - start]
        while len(self._blocks) > _CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return data

    def _fetch_blocks(self, block: int, last: int) -> None:
        """Fetches the blocks from `block` to `last` not kept yet, and more ahead when reading sequentially."""
        sequential = block == self._next_block
        self._run_blocks = min(2 * self._run_blocks, _MAX_BLOCKS_PER_REQUEST) if sequential else 1
        end = block
        num_blocks = -(-self.size_bytes // BLOCK_BYTES)
        while end < num_blocks and end not in self._blocks and (end <= last or end < block + self._run_blocks):
            end += 1
        data = self._fetch(block * BLOCK_BYTES, min(end * BLOCK_BYTES, self.size_bytes))
        for index in range(block, end):
            offset = (index - block) * BLOCK_BYTES
            self._blocks[index] = data[offset : offset + BLOCK_BYTES]
        self._next_block = end

    def _fetch(self, start: int, stop: int) -> bytes:
        response = self._client.get((start, stop))
        self._check(response, start, stop)
        data = self._client.read(response)
        if len(data) != stop - start:
            raise RemoteError(f"{self.url}: asked for {stop - start} bytes at {start}, the server sent {len(data)}")
        return data

    def _check(self, response: Any, start: int, stop: int) -> None:
        """Raises unless `response` holds bytes ``[start, stop)`` of the version first read."""
        change = self.stamp.change_to(stamp_of(response))
        if change is not None:
            self._client.close()
            raise RemoteChangedError(f"{self.url}: the file changed while being read ({change}); read it again")
        held = content_range(response) if response.status == 206 else None
        if held != (start, stop):
            self._client.close()
            raise RemoteError(
                f"{self.url}: asked for bytes {start}-{stop - 1}, the server answered HTTP {response.status} "
                f"with {f'bytes {held[0]}-{held[1] - 1}' if held else 'no Content-Range'}"
            )


def http_stamp(url: str) -> HttpStamp:
    """The size, ETag and Last-Modified of the file at `url`, from an answer for its first byte."""
    client = HttpClient(url)
    try:
        return stamp_of(client.get((0, 1)))
    finally:
        client.close()  # the answer of a server without byte ranges holds the whole file: not read


def spool_max_bytes() -> int:
    """The largest file read through a spool file: `SPOOL_LIMIT_ENV`, else 4 GiB."""
    raw = os.environ.get(SPOOL_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_SPOOL_MAX_BYTES
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{SPOOL_LIMIT_ENV}={raw!r} must be a positive whole number of bytes")
    return int(raw)


class _Spool:
    """One answer holding the whole file, copied to an anonymous temp file as far as reads need it.

    Without a Content-Length the size is known only at the end, so such a file is copied whole at once.
    """

    def __init__(self, client: HttpClient, response: Any, *, size_bytes: int | None) -> None:
        self._client, self._response, self._declared = client, response, size_bytes
        self._limit = spool_max_bytes()
        url = client.url
        if size_bytes is not None and size_bytes > self._limit:
            client.close()
            raise RemoteError(
                f"{url}: the server does not serve byte ranges, and the file ({size_bytes} bytes) is larger than "
                f"the spool limit ({self._limit} bytes, {SPOOL_LIMIT_ENV})"
            )
        logger.warning(
            "%s: the server does not serve byte ranges: reading it from the start into a temporary spool file "
            "(at most %d bytes, %s)", url, self._limit, SPOOL_LIMIT_ENV,
        )  # fmt: skip
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="vidfit-spool-")  # noqa: SIM115 (closed with the file)
        self._filled, self._ended = 0, False
        if size_bytes is None:
            try:
                self._fill(None)
            except BaseException:
                self._file.close()
                raise
        self.size_bytes = size_bytes if size_bytes is not None else self._filled

    def read(self, start: int, stop: int) -> bytes:
        self._fill(stop)
        self._file.seek(start)
        return self._file.read(stop - start)

    def close(self) -> None:
        self._file.close()

    def _fill(self, stop: int | None) -> None:
        while not self._ended and (stop is None or self._filled < stop):
            chunk = self._client.read(self._response, _SPOOL_CHUNK_BYTES)
            if not chunk:
                self._ended = True
                if self._declared is not None and self._filled < self._declared:
                    raise RemoteError(
                        f"{self._client.url}: the connection closed after {self._filled} of {self._declared} bytes"
                    )
                return
            if self._filled + len(chunk) > self._limit:
                self._client.close()
                raise RemoteError(
                    f"{self._client.url}: the server does not serve byte ranges, and the file is larger than the "
                    f"spool limit ({self._limit} bytes, {SPOOL_LIMIT_ENV})"
                )
            self._file.seek(self._filled)
            self._file.write(chunk)
            self._filled += len(chunk)
