"""Memory plans: the fake-tensor estimate against the peak measured on the GPU, and an auto-fit epoch under a cap.

Usage:
    python benchmarks/plan.py                   # on a GPU: estimate and measurement side by side, auto-fit epoch
    python benchmarks/plan.py --quick           # anywhere: the tiny backbone, estimates only without a GPU

Prints Markdown tables for docs/BENCHMARKS.md. The targets (issue 6): estimates within 10% of the measured
peak, and an auto-fit run under the budget as a memory cap that completes a full epoch with no OOM.

Rows measured under the cap that run out of memory are measured again without it (up to the whole GPU),
so that the estimate has a figure to be compared with; "oom" when the GPU cannot hold them either.
"""

from __future__ import annotations

import argparse
import csv
import logging
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from _cache import demo_dataset

from vidfit.config import Config, config_from_dict
from vidfit.memory import memory_report
from vidfit.memory._plan import PlanRow
from vidfit.memory._report import format_bytes, parse_bytes
from vidfit.models._backbone_recipes import backbone_constraints
from vidfit.train import fit, plan_memory

PRECISION = "16-mixed"


@dataclass(frozen=True)
class _Grid:
    frames: list[int]
    batch: list[int]
    image_size: tuple[int, int]


def _fixed_shape(backbone: str, batch: list[int]) -> _Grid:
    """The one clip shape a backbone with fixed positional embeddings takes (mvit_v2_s: 16 x 224 x 224)."""
    shape = backbone_constraints(backbone).exact_shape
    if shape is None:
        raise ValueError(f"backbone {backbone!r} takes clips of any shape")
    frames, height, width = shape
    return _Grid(frames=[frames], batch=batch, image_size=(height, width))


_SEED_SHAPE = _Grid(frames=[16, 40], batch=[4, 12], image_size=(160, 210))
_GRIDS = {"r3d_18": _SEED_SHAPE, "r2plus1d_18": _SEED_SHAPE, "mvit_v2_s": _fixed_shape("mvit_v2_s", [4, 12])}
_QUICK = {"tiny": _Grid(frames=[4, 8], batch=[2, 4], image_size=(160, 210))}


def _config(backbone: str, grid: _Grid) -> Config:
    # The grid's first clip length also sizes the inference windows, which a fixed-shape backbone checks.
    document = {
        "model": {"backbone": backbone, "view_fusion": "late"},
        "data": {"manifest": "unused.yaml", "image_size": list(grid.image_size), "num_frames": grid.frames[0]},
        "train": {"chunk_infer_size": grid.frames[0]},
        "trainer": {"precision": PRECISION},
    }
    return config_from_dict(document, source="benchmarks/plan.py")


def _plan(config: Config, *, budget: int, frames: list[int], batch: list[int], measure: bool) -> list[PlanRow]:
    result = plan_memory(config, budget=budget, frames=frames, batch=batch, measure=measure, num_views=1, num_classes=5)
    return list(result.rows)


def _measured_cell(config: Config, row: PlanRow, capped: PlanRow | None, total: int | None) -> tuple[str, int | None]:
    """The measured column and the peak to compare with: under the cap, else without it, else none."""
    if capped is None or total is None:
        return "no GPU", None
    if capped.peak_bytes is not None:
        return format_bytes(capped.peak_bytes), capped.peak_bytes
    (uncapped,) = _plan(config, budget=total, frames=[row.num_frames], batch=[row.batch_size], measure=True)
    if uncapped.peak_bytes is None:
        return "oom", None
    return f"oom under the cap; {format_bytes(uncapped.peak_bytes)} without", uncapped.peak_bytes


def _compare(grids: dict[str, _Grid], budget: int, total: int | None) -> None:
    print("| backbone | clip (T x H x W) | batch | estimate | measured | estimate / measured | clips/s | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for backbone, grid in grids.items():
        started = time.perf_counter()
        config = _config(backbone, grid)
        estimates = _plan(config, budget=budget, frames=grid.frames, batch=grid.batch, measure=False)
        measured = _plan(config, budget=budget, frames=grid.frames, batch=grid.batch, measure=True) if total else None
        for index, row in enumerate(estimates):
            capped = measured[index] if measured is not None else None
            cell, peak = _measured_cell(config, row, capped, total)
            ratio = f"{row.peak_bytes / peak:.2f}" if peak and row.peak_bytes else "n/a"
            speed = f"{capped.clips_per_second:.1f}" if capped is not None and capped.clips_per_second else "-"
            height, width = grid.image_size
            print(
                f"| {backbone} | {row.num_frames} x {height} x {width} | {row.batch_size} | "
                f"{format_bytes(row.peak_bytes or 0)} | {cell} | {ratio} | {speed} | {(capped or row).verdict} |"
            )
        print(f"<!-- {backbone}: {time.perf_counter() - started:.1f} s -->")


@contextmanager
def _cap(budget: int, total: int) -> Iterator[None]:
    """Holds this process to the budget on the GPU, as a card of that size would."""
    torch.cuda.set_per_process_memory_fraction(budget / total)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


class _AutoFitLine(logging.Handler):
    """Keeps the auto-fit log line (Lightning's rank-zero logger)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("auto-fit:"):
            self.lines.append(record.getMessage())


@dataclass(frozen=True)
class AutoFitRun:
    """What an auto-fit run logged: its auto-fit line, the largest step peak, the OOM guard's largest split."""

    line: str
    peak_gib: float
    max_micro_batches: float
    steps: int
    seconds: float


@dataclass(frozen=True)
class AutoFitSetup:
    """The run: a backbone at a clip length on demo videos of a size, with an effective batch."""

    backbone: str = "r2plus1d_18"
    num_frames: int = 40
    size: tuple[int, int] = (160, 210)
    videos_per_class: int = 16
    effective_batch_size: int = 12
    max_steps: int = -1  # -1: one whole epoch
    num_workers: int = 4


def autofit_run(setup: AutoFitSetup, budget_text: str, folder: Path) -> AutoFitRun:
    """`fit` with `data.batch_size: auto` under the budget, held to it as a cap on a GPU (estimated on a CPU)."""
    dataset = demo_dataset(
        num_videos_per_class=setup.videos_per_class, num_frames=setup.num_frames + 8, views=("front",), size=setup.size
    )
    document = {
        "experiment": {"name": "autofit", "output_dir": str(folder / "runs")},
        "model": {"backbone": setup.backbone},
        # No image_size: clips load at the videos' native size, which auto-fit plans for.
        "data": {"manifest": str(dataset.manifest_path), "batch_size": "auto", "num_frames": setup.num_frames,
                 "num_workers": setup.num_workers},
        "train": {"memory_budget": budget_text, "effective_batch_size": setup.effective_batch_size},
        "trainer": {"precision": PRECISION, "max_epochs": 1, "max_steps": setup.max_steps, "log_every_n_steps": 1,
                    "enable_progress_bar": False},
    }  # fmt: skip
    handler = _AutoFitLine()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addHandler(handler)
    started = time.perf_counter()
    total = memory_report().device_total_bytes
    try:
        with _cap(parse_bytes(budget_text, name="budget"), total) if total else nullcontext():
            result = fit(config_from_dict(document, source="benchmarks/plan.py"))
    finally:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").removeHandler(handler)
    rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
    peaks = [float(row["memory/peak_gib"]) for row in rows if row.get("memory/peak_gib")]
    splits = [float(row["memory/micro_batches"]) for row in rows if row.get("memory/micro_batches")]
    line, seconds = handler.lines[-1] if handler.lines else "no auto-fit line logged", time.perf_counter() - started
    return AutoFitRun(line, max(peaks, default=0.0), max(splits, default=1.0), len(peaks), seconds)


def _print_autofit(run: AutoFitRun, budget: int) -> None:
    print(f"\nauto-fit epoch under a {format_bytes(budget)} cap ({run.seconds:.0f} s):")
    print(f"- {run.line}")
    print(f"- epoch peak: {run.peak_gib:.2f} GiB (the largest memory/peak_gib of {run.steps} logged steps)")
    print(f"- OOM guard splits: {'none' if run.max_micro_batches <= 1 else f'up to {run.max_micro_batches:.0f}'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tiny backbone, small grid, no auto-fit epoch")
    parser.add_argument("--budget", default="16GiB")
    args = parser.parse_args()
    budget = parse_bytes(args.budget, name="--budget")
    total = memory_report().device_total_bytes  # None without a GPU
    device = torch.cuda.get_device_name() if total else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {device}; budget {format_bytes(budget)}; {PRECISION}; one view, 5 classes\n")
    _compare(_QUICK if args.quick else _GRIDS, budget, total)
    if total is None or args.quick:
        print("\nauto-fit epoch under the cap: skipped (" + ("--quick" if args.quick else "no GPU") + ")")
        return
    with tempfile.TemporaryDirectory(prefix="vidfit-plan-") as folder:
        _print_autofit(autofit_run(AutoFitSetup(), args.budget, Path(folder)), budget)


if __name__ == "__main__":
    main()
