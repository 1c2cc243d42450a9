"""Byte sizes, the boxed memory report and peak tracking on CUDA or host memory."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TextIO

import psutil
import torch

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)
_ACCEPTED = "an int of bytes, or a number with a unit: B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB"
_RSS_SAMPLE_SECONDS = 0.005


def parse_bytes(value: str | int, *, name: str = "memory size") -> int:
    """Reads a memory size such as ``"16GiB"``, ``"7.5 gib"``, ``"500MB"`` or ``1024``.

    A string needs a unit (``"42 B"`` for bytes): a bare ``"16"`` is more likely meant as 16 GiB than as
    16 bytes, so it is refused rather than guessed.

    Args:
        value: An int of bytes, or a string: a number and a unit, case-insensitive.
        name: What the value is, for the error message, e.g. ``"budget"``.

    Returns:
        The size in bytes, rounded down.

    Raises:
        ValueError: The value is negative, a string without a unit, or not a number with a known unit.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} {value!r} is not {_ACCEPTED}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{name} {value!r} is negative")
        return value
    match = _SIZE.match(value)
    if match is not None and not match.group(2):
        number = match.group(1)
        raise ValueError(f"{name} {value!r} has no unit: write e.g. '{number}GiB', '{number}GB' or '{number}B'")
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{name} {value!r} is not {_ACCEPTED}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(num_bytes: int) -> str:
    """Formats a size with the largest binary unit that keeps the number at least 1, e.g. ``"7.30 GiB"``."""
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} TiB"


@dataclass(frozen=True)
class MemoryReport:
    """A snapshot of memory use. CUDA fields are None on a CPU device.

    Attributes:
        device: The device described, e.g. ``"cuda:0"`` or ``"cpu"``.
        process_rss_bytes: Resident host memory of this process.
        allocated_bytes: Bytes in live tensors (``torch.cuda.memory_allocated``).
        reserved_bytes: Bytes held by PyTorch's caching allocator (``torch.cuda.memory_reserved``).
        peak_allocated_bytes: Highest `allocated_bytes` since the last peak reset.
        device_used_bytes: Bytes in use on the whole device, by every process (the driver's view).
        device_free_bytes: Bytes the driver can still hand out.
        device_total_bytes: Device memory size.
    """

    device: str
    process_rss_bytes: int
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    peak_allocated_bytes: int | None = None
    device_used_bytes: int | None = None
    device_free_bytes: int | None = None
    device_total_bytes: int | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        """The fields by name, for loggers."""
        return asdict(self)

    def box(self) -> str:
        """The report as a framed text block, one line per known figure."""
        groups: list[list[tuple[str, int | None]]] = [
            [
                ("Device total", self.device_total_bytes),
                ("Device used", self.device_used_bytes),
                ("Device free", self.device_free_bytes),
            ],
            [
                ("PyTorch allocated", self.allocated_bytes),
                ("PyTorch reserved", self.reserved_bytes),
                ("PyTorch peak", self.peak_allocated_bytes),
            ],
            [("Process RSS", self.process_rss_bytes)],
        ]
        lines: list[str] = []
        for group in groups:
            known = [f" {label + ':':<19}{format_bytes(value):>12}" for label, value in group if value is not None]
            if known and lines:
                lines.append("")
            lines.extend(known)
        title = f"Memory use ({self.device})"
        width = max(len(title) + 4, *(len(line) + 2 for line in lines))
        body = [f"║{line:<{width}}║" for line in lines]
        top = [f"╔{'═' * width}╗", f"║{title:^{width}}║", f"╠{'═' * width}╣"]
        return "\n".join([*top, *body, f"╚{'═' * width}╝"])


def memory_report(device: torch.device | str | None = None) -> MemoryReport:
    """Reads current memory use.

    Args:
        device: A CUDA device fills the PyTorch and driver figures; None means the current CUDA device
            when CUDA is available, else the CPU, where only the process RSS is known.
    """
    dev = _resolve(device)
    rss = psutil.Process().memory_info().rss
    if dev.type != "cuda":
        return MemoryReport(device=str(dev), process_rss_bytes=rss)
    free, total = torch.cuda.mem_get_info(dev)
    return MemoryReport(
        device=str(dev),
        process_rss_bytes=rss,
        allocated_bytes=torch.cuda.memory_allocated(dev),
        reserved_bytes=torch.cuda.memory_reserved(dev),
        peak_allocated_bytes=torch.cuda.max_memory_allocated(dev),
        device_used_bytes=total - free,
        device_free_bytes=free,
        device_total_bytes=total,
    )


def print_memory_stats(device: torch.device | str | None = None, *, file: TextIO | None = None) -> MemoryReport:
    """Prints `memory_report`'s box (to `file`, standard output by default) and returns the report.

    The name training scripts call between steps to watch memory; `memory_report` reads it without printing.
    """
    report = memory_report(device)
    print(report.box(), file=file if file is not None else sys.stdout)
    return report


@dataclass
class PeakMemory:
    """Filled when `track_peak` exits.

    Attributes:
        device: The tracked device.
        start_bytes: Allocated CUDA bytes, or process RSS on the CPU, on entry.
        peak_bytes: Highest allocated CUDA bytes, or highest sampled process RSS on the CPU.
        delta_bytes: ``peak_bytes - start_bytes``: what the block added at its peak.
    """

    device: str
    start_bytes: int = 0
    peak_bytes: int = 0
    delta_bytes: int = 0


@contextmanager
def track_peak(device: torch.device | str | None = None) -> Iterator[PeakMemory]:
    """Tracks the peak memory of the enclosed block.

    On CUDA the allocator's exact peak of tensor bytes is read (its peak statistic is reset on entry).
    On the CPU a thread samples the process RSS every 5 ms: an approximate peak of host memory that can
    miss allocations living shorter than a sample or placed in memory the process freed earlier and
    still holds, and that counts every thread of the process.

    Args:
        device: As in `memory_report`.

    Yields:
        A `PeakMemory`, whose figures are set when the block exits, also when it raises.
    """
    dev = _resolve(device)
    result = PeakMemory(device=str(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        result.start_bytes = torch.cuda.memory_allocated(dev)
        try:
            yield result
        finally:
            torch.cuda.synchronize(dev)
            result.peak_bytes = torch.cuda.max_memory_allocated(dev)
            result.delta_bytes = result.peak_bytes - result.start_bytes
        return
    sampler = _RssSampler()
    result.start_bytes = sampler.peak_bytes
    sampler.start()
    try:
        yield result
    finally:
        result.peak_bytes = sampler.stop()
        result.delta_bytes = result.peak_bytes - result.start_bytes


class _RssSampler(threading.Thread):
    """Records the highest RSS of this process, sampled until `stop`."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="vidfit-rss-sampler")
        self._process = psutil.Process()
        self._stopped = threading.Event()
        self.peak_bytes = self._process.memory_info().rss

    def run(self) -> None:
        while not self._stopped.wait(_RSS_SAMPLE_SECONDS):
            self._sample()

    def stop(self) -> int:
        self._stopped.set()
        self.join()
        self._sample()
        return self.peak_bytes

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)


def _resolve(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev
