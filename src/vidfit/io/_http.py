"""Requests to an http(s) URL with Python's own client: kept-alive connections, redirects, bounded waits.

Every failure is one `RemoteError` whose message is ``<url>: <cause>``: an HTTP status, a refused
connection, a redirect loop, a connection that closed early, or a server that sent nothing for the
read timeout. Sockets are read on the calling thread, so Ctrl-C interrupts a stalled read at once.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

READ_TIMEOUT_ENV = "VIDFIT_READ_TIMEOUT_SECONDS"
DEFAULT_READ_TIMEOUT_SECONDS = 30.0
_MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# How a kept-alive connection that the server has closed fails the next request on it.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# A redirect's body is read (so that its connection can be kept) only when it is this small.
_MAX_DRAINED_BYTES = 1 << 16


class RemoteError(OSError):
    """A remote file that cannot be read; the message is ``<url>: <cause>``."""


class RemoteChangedError(RemoteError):
    """The file changed between two requests of one read: its frames would mix two versions."""


def is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https")


def read_timeout_seconds() -> float:
    """The longest wait for a connection or for the next bytes of an answer: `READ_TIMEOUT_ENV`, else 30 s."""
    raw = os.environ.get(READ_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_READ_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"{READ_TIMEOUT_ENV}={raw!r} must be a positive number of seconds")
    return value


@dataclass(frozen=True)
class HttpStamp:
    """What identifies one version of a remote file, from the headers of an answer.

    Attributes:
        size_bytes: The file's size (from Content-Range, else Content-Length); None when not given.
        etag: The ETag header; None without one.
        last_modified: The Last-Modified header; None without one.
    """

    size_bytes: int | None
    etag: str | None
    last_modified: str | None

    @property
    def version(self) -> str:
        return f"{self.etag or ''}|{self.last_modified or ''}"

    def change_to(self, later: HttpStamp) -> str | None:
        """How `later` differs from this stamp in a header both give, or None when it does not."""
        for name, before, after in (
            ("ETag", self.etag, later.etag),
            ("Last-Modified", self.last_modified, later.last_modified),
            ("size", self.size_bytes, later.size_bytes),
        ):
            if before is not None and after is not None and before != after:
                return f"{name} {before} then {after}"
        return None


def stamp_of(response: http.client.HTTPResponse) -> HttpStamp:
    total = (response.getheader("Content-Range") or "").rpartition("/")[2].strip()
    length = response.getheader("Content-Length")
    size = total if response.status == 206 else length
    return HttpStamp(
        int(size) if size and size.isdigit() else None, response.getheader("ETag"), response.getheader("Last-Modified")
    )


def content_range(response: http.client.HTTPResponse) -> tuple[int, int] | None:
    """The half-open byte range a 206 answer holds, from its Content-Range; None when it names none."""
    spec = (response.getheader("Content-Range") or "").removeprefix("bytes ").partition("/")[0]
    first, _, last = spec.partition("-")
    return (int(first), int(last) + 1) if first.isdigit() and last.isdigit() else None


class HttpClient:
    """GET requests for one URL over kept-alive connections, redirects followed.

    Args:
        url: The file's URL, named in every error.
        noun: What the file is, in the error for a missing one (``"video file"``).
    """

    def __init__(self, url: str, *, noun: str = "file") -> None:
        self.url, self._noun = url, noun
        self.timeout_seconds = read_timeout_seconds()
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._pending: http.client.HTTPResponse | None = None
        self._pid = os.getpid()

    def get(self, byte_range: tuple[int, int] | None = None) -> http.client.HTTPResponse:
        """The answer to a GET of ``[start, stop)`` (the whole file for None): status 200 or 206, headers read.

        Raises:
            FileNotFoundError: HTTP 404 or 410.
            RemoteError: Any other status, a redirect loop, or the connection failing.
        """
        visited = [self.url]
        response = self._send(self.url, byte_range)
        while response.status in _REDIRECTS:
            location = response.getheader("Location")
            self._discard(response)
            if not location:
                raise RemoteError(f"{self.url}: HTTP {response.status} redirect without a Location header")
            visited.append(urljoin(visited[-1], location))
            if visited[-1] in visited[:-1]:
                raise RemoteError(f"{self.url}: redirect loop: {' -> '.join(visited)}")
            if len(visited) > _MAX_REDIRECTS + 1:
                raise RemoteError(f"{self.url}: more than {_MAX_REDIRECTS} redirects (the last to {visited[-1]})")
            response = self._send(visited[-1], byte_range)
        if response.status in (200, 206):
            return response
        self._discard(response)
        status = f"HTTP {response.status} {response.reason}".strip()
        if response.status in (404, 410):
            raise FileNotFoundError(f"{self.url}: no such {self._noun} ({status})")
        raise RemoteError(f"{self.url}: the server answered {status}")

    def read(self, response: http.client.HTTPResponse, num_bytes: int | None = None) -> bytes:
        """The next `num_bytes` of `response`'s body (all of it for None); b"" at its end."""
        try:
            return response.read(num_bytes)
        except BaseException as error:
            self.close()  # the connection is somewhere in the middle of an answer: never reused
            if isinstance(error, Exception):
                raise self.error(error) from error
            raise

    def error(self, error: Exception) -> RemoteError:
        """`error` of a request or an answer as one line naming the URL and the cause."""
        return RemoteError(f"{self.url}: {_cause(error, timeout_seconds=self.timeout_seconds)}")

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
        self._pending = None

    def _send(self, url: str, byte_range: tuple[int, int] | None) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"{self.url}: {url} is not an http(s) URL with a host")
        if self._pending is not None and not self._pending.isclosed():
            self.close()  # an answer left half read: its connection cannot carry another request
        headers = {"Accept-Encoding": "identity", "User-Agent": "vidfit"}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self._request(parts, target, headers, may_retry=True)

    def _request(
        self, parts: SplitResult, target: str, headers: dict[str, str], *, may_retry: bool
    ) -> http.client.HTTPResponse:
        connection, reused = self._connection(parts)
        try:
            connection.request("GET", target, headers=headers)
            self._pending = connection.getresponse()
            return self._pending
        except BaseException as error:
            self.close()
            # A kept-alive connection that the server closed while idle fails at once: tried again on a new one.
            if may_retry and reused and isinstance(error, _STALE_CONNECTION):
                return self._request(parts, target, headers, may_retry=False)
            if isinstance(error, Exception):
                raise self.error(error) from error
            raise

    def _connection(self, parts: SplitResult) -> tuple[http.client.HTTPConnection, bool]:
        if os.getpid() != self._pid:  # a forked worker must not share its parent's sockets
            self._connections.clear()
            self._pid = os.getpid()
        key = (parts.scheme.lower(), parts.netloc)
        if key in self._connections:
            return self._connections[key], True
        kind = http.client.HTTPSConnection if key[0] == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=self.timeout_seconds)
        self._connections[key] = connection
        return connection, False

    def _discard(self, response: http.client.HTTPResponse) -> None:
        """Reads a short body to the end so that its connection is kept; closes the connection otherwise."""
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) <= _MAX_DRAINED_BYTES:
            self.read(response)
        else:
            self.close()


def _cause(error: Exception, *, timeout_seconds: float) -> str:
    """What went wrong, in words: the exception types of `socket`, `ssl` and `http.client`."""
    if isinstance(error, TimeoutError):
        return f"no answer for {timeout_seconds:g} s (the read timeout, {READ_TIMEOUT_ENV})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name: {error.strerror}"
    if isinstance(error, http.client.IncompleteRead):
        received = len(error.partial)
        total = f" of {received + error.expected}" if error.expected is not None else ""
        return f"the connection closed after {received}{total} bytes of the answer"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(error, ConnectionResetError):
        return "the connection was reset (by the server or the network)"
    if isinstance(error, ConnectionError):
        return f"the connection broke ({error.strerror or error})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    if isinstance(error, http.client.HTTPException):
        return f"not a valid HTTP answer ({type(error).__name__}: {error})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"
