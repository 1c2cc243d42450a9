"""Memory plans: which clip length, batch size, precision and checkpointing fit a budget, as a table and chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from vidfit.io import write_files_atomic
from vidfit.memory._report import format_bytes
from vidfit.memory._step import Precision

Verdict = Literal["safe", "tight", "oom"]

_VERDICT_COLORS = {"safe": "tab:green", "tight": "tab:orange", "oom": "tab:red"}
_GIB = 2**30


@dataclass(frozen=True)
class PlanRow:
    """One configuration of a memory plan.

    Attributes:
        num_frames: Frames per clip.
        batch_size: Clips per step.
        precision: ``"32"``, ``"16-mixed"`` or ``"bf16-mixed"``.
        activation_checkpointing: Whether activations are recomputed in backward.
        peak_bytes: Measured or estimated peak; None when the measured step ran out of memory.
        clips_per_second: Measured training throughput, None for an estimate or an out-of-memory step.
        measured: Whether `peak_bytes` was measured on the device rather than estimated.
        verdict: `plan_verdict` of the peak against the budget.
        advice: What to change when the row does not fit (see `memory_advice`), else None.
        variant: The config changes this row plans (``section.key=value`` joined by ``" + "``, e.g. a way to
            fine-tune); empty for the config as it is.
    """

    num_frames: int
    batch_size: int
    precision: Precision
    activation_checkpointing: bool
    peak_bytes: int | None
    clips_per_second: float | None
    measured: bool
    verdict: Verdict
    advice: str | None = None
    variant: str = ""


def plan_verdict(peak_bytes: int | None, budget_bytes: int, *, tight_fraction: float = 0.9) -> Verdict:
    """Classifies a peak against a budget.

    Args:
        peak_bytes: The peak; None means the step ran out of memory.
        budget_bytes: Memory available.
        tight_fraction: Share of the budget above which a fit is only ``"tight"``, in (0, 1].

    Returns:
        ``"oom"`` when out of memory or over budget, ``"tight"`` above ``tight_fraction * budget_bytes``,
        else ``"safe"``.
    """
    if not 0 < tight_fraction <= 1:
        raise ValueError(f"tight_fraction={tight_fraction} is not in (0, 1]")
    if peak_bytes is None or peak_bytes > budget_bytes:
        return "oom"
    return "tight" if peak_bytes > tight_fraction * budget_bytes else "safe"


def recommend(rows: Sequence[PlanRow]) -> PlanRow | None:
    """Picks the configuration to train with among the ``"safe"`` rows.

    When some safe rows have a measured throughput, the fastest of them by clips per second wins.
    Otherwise the one doing the most work per step (``batch_size * num_frames``) wins; among equals one
    without activation checkpointing (no recomputation), then the one with the lowest peak.

    Returns:
        The recommended row, None when no row is safe.
    """
    safe = [row for row in rows if row.verdict == "safe"]
    timed = [row for row in safe if row.clips_per_second is not None]
    if timed:
        return max(timed, key=lambda row: (row.clips_per_second or 0.0, row.batch_size * row.num_frames))
    if not safe:
        return None
    return max(
        safe,
        key=lambda row: (row.batch_size * row.num_frames, not row.activation_checkpointing, -(row.peak_bytes or 0)),
    )


def render_table(rows: Sequence[PlanRow], *, budget_bytes: int, image_size: tuple[int, int]) -> str:
    """A Markdown table of the plan with each peak's share of the budget; the recommended row is starred.

    The rows that do not fit and carry advice are listed under the table with what to change.

    Args:
        rows: The plan's rows.
        budget_bytes: The budget the verdicts are against.
        image_size: (height, width) of every clip's frames, shown above the table.
    """
    best = recommend(rows)
    varied = any(row.variant for row in rows)
    header = ["num_frames", "batch_size", "precision", "checkpointing", "memory", "clips/s", "verdict"]
    header = ["variant", *header] if varied else header
    lines = [
        f"budget: {format_bytes(budget_bytes)}; clips of num_frames x {image_size[0]}x{image_size[1]} (T x H x W)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("-" * (len(name) + 2) for name in header) + "|",
    ]
    for row in rows:
        memory = (
            "OOM" if row.peak_bytes is None else f"{format_bytes(row.peak_bytes)} ({row.peak_bytes / budget_bytes:.0%})"
        )
        cells = [
            str(row.num_frames),
            str(row.batch_size),
            row.precision,
            _switch(row.activation_checkpointing),
            memory + ("" if row.measured else " est."),
            "-" if row.clips_per_second is None else f"{row.clips_per_second:.1f}",
            row.verdict + (" *" if row is best else ""),
        ]
        cells = [row.variant or "as configured", *cells] if varied else cells
        lines.append("| " + " | ".join(cells) + " |")
    advised = [row for row in rows if row.advice is not None]
    if advised:
        lines += ["", "Over the budget, what to change:"]
        lines += [
            f"- {row.variant + ', ' if row.variant else ''}{row.num_frames} frames x {row.batch_size}, "
            f"{row.precision}, checkpointing {_switch(row.activation_checkpointing)}: {row.advice}"
            for row in advised
        ]
    return "\n".join(lines)


def _switch(on: bool) -> str:
    return "on" if on else "off"


def write_plan(
    rows: Sequence[PlanRow],
    *,
    budget_bytes: int,
    image_size: tuple[int, int],
    json_path: Path | str,
    png_path: Path | str,
) -> None:
    """Writes the plan as a PNG bar chart of peak GiB per row against the budget line, and as JSON.

    Both go to temp files first and replace the targets only once both are written (see
    `write_files_atomic`), so a chart that fails to draw leaves the old JSON and PNG as they were. The
    JSON holds ``budget_bytes``, ``image_size`` ([height, width]), ``rows`` and ``recommended`` (an index
    into rows, or null).
    """
    best = recommend(rows)
    document = {
        "budget_bytes": budget_bytes,
        "image_size": list(image_size),
        "rows": [asdict(row) for row in rows],
        "recommended": next((index for index, row in enumerate(rows) if row is best), None),
    }
    write_files_atomic(
        {
            png_path: lambda path: _draw_chart(rows, budget_bytes, image_size, path),
            json_path: lambda path: path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8"),
        }
    )


def _draw_chart(rows: Sequence[PlanRow], budget_bytes: int, image_size: tuple[int, int], path: Path) -> None:
    # A bare Figure renders PNG with the Agg canvas and leaves pyplot's global backend and figures alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 0.8 * len(rows) + 2), 4.5), layout="constrained")
    axes = figure.add_subplot()
    labels = [
        f"{r.num_frames}f x{r.batch_size}\n{r.precision}{' ckpt' if r.activation_checkpointing else ''}"
        + (f"\n{r.variant}" if r.variant else "")
        for r in rows
    ]
    # An out-of-memory row has no peak; its bar reaches past the budget line, hatched.
    heights = [(budget_bytes * 1.05 if r.peak_bytes is None else r.peak_bytes) / _GIB for r in rows]
    bars = axes.bar(labels, heights, color=[_VERDICT_COLORS[r.verdict] for r in rows])
    for bar, row in zip(bars, rows, strict=True):
        if row.peak_bytes is None:
            bar.set_hatch("//")
    axes.axhline(budget_bytes / _GIB, color="black", linestyle="--", label=f"budget {format_bytes(budget_bytes)}")
    axes.set_ylabel("peak memory (GiB)")
    axes.set_title(f"Training step peak memory by configuration, {image_size[0]}x{image_size[1]} frames")
    axes.legend(loc="upper left")
    axes.tick_params(axis="x", labelsize=8)
    figure.savefig(path, format="png", dpi=100)
