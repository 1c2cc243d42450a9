"""Memory: reports, peak tracking, meta-device step estimates, measured plans and the one OOM retry policy."""

from vidfit.memory._advice import memory_advice
from vidfit.memory._estimate import StepEstimate, UnestimableModelError, estimate_step_memory
from vidfit.memory._measure import (
    BatchFit,
    MeasuredStep,
    check_budget,
    largest_fitting_batch,
    measure_step,
)
from vidfit.memory._oom import OomRetry, free_memory, is_oom, retry_on_oom, split_batch
from vidfit.memory._plan import PlanRow, Verdict, plan_verdict, recommend, render_table, write_plan
from vidfit.memory._report import (
    MemoryReport,
    PeakMemory,
    format_bytes,
    memory_report,
    parse_bytes,
    print_memory_stats,
    track_peak,
)
from vidfit.memory._step import OptimizerName, Precision, cuda_mixed_precision

__all__ = [
    "BatchFit",
    "MeasuredStep",
    "MemoryReport",
    "OomRetry",
    "OptimizerName",
    "PeakMemory",
    "PlanRow",
    "Precision",
    "StepEstimate",
    "UnestimableModelError",
    "Verdict",
    "check_budget",
    "cuda_mixed_precision",
    "estimate_step_memory",
    "format_bytes",
    "free_memory",
    "is_oom",
    "largest_fitting_batch",
    "measure_step",
    "memory_advice",
    "memory_report",
    "parse_bytes",
    "plan_verdict",
    "print_memory_stats",
    "recommend",
    "render_table",
    "retry_on_oom",
    "split_batch",
    "track_peak",
    "write_plan",
]
