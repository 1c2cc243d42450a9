"""SIGTERM delivered as an interrupt, so that work stopped by a scheduler or `kill` unwinds as on Ctrl-C.

Left to its default, SIGTERM ends the process where it stands: a `VideoWriter` cannot drop its temp file,
worker processes and Ray tasks are left to whoever finds them, and Ray's own handler in a driver aborts with
a crash dump. Raised as `Terminated` instead, every ``with`` block and ``except BaseException`` cleanup runs,
and the command line exits with 128 + the signal's number (143), as a process killed by it would.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal other than Ctrl-C (SIGTERM).

    Attributes:
        signum: The signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# The signals `_raise_terminated` received, in order: a plain KeyboardInterrupt raised after one (Ray raises
# its own when a handler interrupts its waits) is that signal's.
_received: list[int] = []


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_as_interrupt(*, force: bool = False) -> Iterator[None]:
    """Inside, SIGTERM raises `Terminated` in the main thread; the previous handler is put back after.

    Nothing changes in another thread, or where someone else's handler is installed (Lightning's, an
    application's), unless `force`: Ray's ``ray.init`` installs one that aborts the driver with a crash dump.
    """
    previous = signal.getsignal(signal.SIGTERM)
    mine = force or previous in (signal.SIG_DFL, None, _raise_terminated)
    if threading.current_thread() is not threading.main_thread() or not mine:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    num_received = len(_received)
    try:
        yield
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, Terminated) or len(_received) == num_received:
            raise
        raise Terminated(_received[-1]) from interrupt
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
