"""Memory: reports, peak tracking, meta-device step estimates, measured plans and the one OOM retry policy."""

from vidfit.memory._advice import memory_advice
from vidfit.memory._estimate import estimate_step_memory
from vidfit.memory._measure import measure_step
from vidfit.memory._oom import free_memory, is_oom, retry_on_oom
from vidfit.memory._report import MemoryReport, PeakMemory, memory_report, print_memory_stats, track_peak
from vidfit.memory._step import Precision

__all__ = [
    "MemoryReport",
    "PeakMemory",
    "Precision",
    "estimate_step_memory",
    "free_memory",
    "is_oom",
    "measure_step",
    "memory_advice",
    "memory_report",
    "print_memory_stats",
    "retry_on_oom",
    "track_peak",
]
