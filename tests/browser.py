"""Headless Chromium driven over the DevTools protocol, for the tests and benchmarks of the HTML report.

The protocol runs over a pipe (``--remote-debugging-pipe``: the browser reads commands on its file descriptor 3
and writes replies on 4, each a JSON message ended by a NUL byte), so no port is opened and no package beyond
the standard library is needed. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

# Flags for a browser with no network, no first-run work, and no sandbox (tests run as root in containers).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
    "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars", "--mute-audio",
)  # fmt: skip


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, None if there is none."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((found for name in names if (found := shutil.which(name))), None)


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Browser:
    """One headless Chromium with one page; `errors` collects the page's console errors and uncaught exceptions.

    Use as a context manager: the browser (and its process group) is stopped on exit.
    """

    def __init__(self, executable: str, *, width: int = 1280, height: int = 900, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.errors: list[str] = []
        self._profile = tempfile.TemporaryDirectory(prefix="vidfit-chromium-")
        commands_read, self._commands = os.pipe()  # the browser reads fd 3
        self._replies, replies_write = os.pipe()  # and writes fd 4

        def child_fds() -> None:
            read, write = os.dup(commands_read), os.dup(replies_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}"]
        self._process = subprocess.Popen(
            [executable, *flags, "--remote-debugging-pipe", "about:blank"],
            preexec_fn=child_fds, close_fds=False, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._next_id, self._session = b"", 0, ""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                          "mobile": False})  # fmt: skip

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the browser, killing its process group if it does not exit within seconds."""
        try:
            self._write({"id": 0, "method": "Browser.close", "params": {}})
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        finally:
            for fd in (self._commands, self._replies):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._profile.cleanup()

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sends a command to the page's session (the browser's before it has one) and returns its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session
        self._write(message)
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._commands, json.dumps(message).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"no answer from the browser within {self.timeout_s} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError("the browser closed its pipe (it exited)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(line)

    def _event(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('text')} ({entry.get('url', '')})")

    def open(self, url: str) -> None:
        """Navigates to `url` and waits for its load event."""
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, *, timeout_s: float | None = None) -> Any:
        """Polls until `expression` is truthy; its value. Raises `BrowserError` after the timeout."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise BrowserError(f"{expression} stayed false for {timeout_s or self.timeout_s} s")

    def click(self, x: float, y: float) -> None:
        """A left click at page coordinates (CSS pixels of the viewport)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: Path | None = None, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport (or the whole page), also written to `path` when given."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        png = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        if path is not None:
            path.write_bytes(png)
        return png
