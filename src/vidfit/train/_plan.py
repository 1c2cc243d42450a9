"""`vidfit plan`: which clip length, batch size, precision and checkpointing fit a memory budget.

Every configuration of the grid runs the training step of the config's classifier (clip and per-frame
cross-entropy, the config's optimizer): measured on the CUDA GPU when there is one, capped at the budget,
else estimated on fake CUDA tensors, so that the GPU's autocast policy decides what runs in half precision.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vidfit.config import Config, config_from_dict
from vidfit.memory._measure import check_budget
from vidfit.memory._plan import PlanRow, plan_verdict, recommend, render_table, write_plan
from vidfit.memory._report import format_bytes, parse_bytes
from vidfit.memory._step import Precision
from vidfit.train._plan_grid import check_counts, check_precisions, check_switches, variant_name
from vidfit.train._plan_step import PlanStep, task_plan_step


@dataclass(frozen=True, kw_only=True)
class PlanResult:
    """A memory plan over a grid of configurations.

    Attributes:
        rows: One row per configuration: frames, then batch size, precision and checkpointing. A row that
            does not fit carries `PlanRow.advice`.
        budget_bytes: The budget the verdicts are against.
        image_size: (height, width) of the planned frames.
        image_size_source: Where `image_size` comes from: ``data.image_size`` or the data's native size.
        measured: Whether the peaks were measured on the GPU rather than estimated.
        recommendation: `vidfit.memory.recommend` of the rows, None when none is safe.
        advice: What to change when every configuration runs out of memory, else None.
    """

    rows: tuple[PlanRow, ...]
    budget_bytes: int
    image_size: tuple[int, int]
    image_size_source: str
    measured: bool
    recommendation: PlanRow | None
    advice: str | None = None

    def table(self) -> str:
        """The Markdown table of `vidfit.memory.render_table`, where the frame size comes from, and the advice."""
        height, width = self.image_size
        text = render_table(self.rows, budget_bytes=self.budget_bytes, image_size=self.image_size)
        text += f"\n\nFrames of {height}x{width}: {self.image_size_source}."
        return text if self.advice is None else f"{text}\n\n{self.advice}"

    def write(self, *, json_path: Path | str, png_path: Path | str) -> None:
        """Writes the plan as JSON and as a PNG chart (see `vidfit.memory.write_plan`)."""
        write_plan(
            self.rows,
            budget_bytes=self.budget_bytes,
            image_size=self.image_size,
            json_path=json_path,
            png_path=png_path,
        )


def plan_memory(
    config: Config,
    *,
    budget: str | int,
    frames: Sequence[int] | None = None,
    batch: Sequence[int] | None = None,
    precision: Sequence[str] | None = None,
    checkpointing: Sequence[bool] | None = None,
    measure: bool | None = None,
    num_views: int | None = None,
    num_classes: int | None = None,
    variants: Sequence[Sequence[str]] | None = None,
) -> PlanResult:
    """Measures or estimates a training step's peak memory for every configuration of a grid.

    The keywords are the options of `vidfit plan`, and the messages name them so.

    Args:
        config: The run; its model, image size, optimizer and frame-loss weight are planned for.
        budget: Memory available to training: a size with a unit such as ``"16GiB"``, or an int of bytes.
        frames: Clip lengths; by default ``data.num_frames``.
        batch: Batch sizes; by default ``data.batch_size``.
        precision: ``"32"``, ``"16-mixed"``, ``"bf16-mixed"`` or ``"auto"``; by default ``trainer.precision``.
            ``"auto"`` is bf16-mixed (16-mixed on a GPU without bf16).
        checkpointing: Activation checkpointing off/on; by default ``model.activation_checkpointing``.
        measure: Run the steps on the CUDA GPU (True) or estimate them (False); None measures when a GPU
            is available. Measured steps are capped at the budget, so going over it is an ``"oom"`` row.
        num_views: Camera views; by default ``data.views`` or the manifest's first video's.
        num_classes: Classes; by default the manifest's labels.
        variants: Sets of ``section.key=value`` changes to plan besides the config as it is (``--vary``), e.g.
            ``[("model.freeze=first:8",), ("model.lora={rank: 16}", "train.token_drop=0.5")]``; each gets the
            whole grid, its rows named by its changes (`PlanRow.variant`).

    Raises:
        ConfigError: A variant whose changes make a config that does not load.
        ValueError: A bad axis value, budget or count, a budget above the GPU's memory, ``measure=True``
            without a GPU, or a manifest that cannot be read while views, classes or the native frame size
            (``data.image_size`` unset) are needed from it.
    """
    budget_bytes = parse_bytes(budget, name="--budget")
    if budget_bytes <= 0:
        raise ValueError(f"--budget {budget!r} must be more than 0 bytes")
    if num_views is not None and num_views < 1:
        raise ValueError(f"num_views={num_views} must be >= 1")
    measured = _resolve_measure(measure, budget, budget_bytes)
    views = None if num_views is None else tuple(f"view{index}" for index in range(num_views))
    rows: list[PlanRow] = []
    first: tuple[PlanStep, _Axes] | None = None
    for changes in [(), *(tuple(changes) for changes in variants or ())]:
        planned = config_from_dict(config.to_dict(), source="--vary", overrides=changes) if changes else config
        step = task_plan_step(planned, views=views, num_classes=num_classes)
        axes = _axes(planned, step, frames=frames, batch=batch, precision=precision, checkpointing=checkpointing)
        first = first or (step, axes)
        rows += _variant_rows(step, axes, variant_name(changes), measured=measured, budget_bytes=budget_bytes)
    assert first is not None
    step, axes = first
    inputs = step.inputs  # the config's own frame size heads the plan
    advice = _advice(axes, step, budget_bytes) if all(row.verdict == "oom" for row in rows) else None
    return PlanResult(
        rows=tuple(rows),
        budget_bytes=budget_bytes,
        image_size=inputs.image_size,
        image_size_source=inputs.image_size_source,
        measured=measured,
        recommendation=recommend(rows),
        advice=advice,
    )


def _axes(
    config: Config,
    step: PlanStep,
    *,
    frames: Sequence[int] | None,
    batch: Sequence[int] | None,
    precision: Sequence[str] | None,
    checkpointing: Sequence[bool] | None,
) -> _Axes:
    """The grid's axes, each defaulting to the config's value."""
    return _Axes(
        frames=check_counts("frames", frames, config.data.num_frames),
        batch=check_counts("batch", batch, _configured_batch(config)),
        precision=check_precisions(precision, config.trainer.precision),
        checkpointing=check_switches(checkpointing, step.checkpointing),
    )


def _variant_rows(step: PlanStep, axes: _Axes, variant: str, *, measured: bool, budget_bytes: int) -> list[PlanRow]:
    """The rows of one variant: every configuration of the grid, in order."""
    rows: list[PlanRow] = []
    for num_frames, batch_size, precision, checkpointing in itertools.product(*axes.values()):
        row = _row(
            step, rows, measured=measured, budget_bytes=budget_bytes, num_frames=num_frames,
            batch_size=batch_size, precision=precision, checkpointing=checkpointing,
        )  # fmt: skip
        rows.append(replace(row, variant=variant))
    return rows


def _row(
    step: PlanStep,
    earlier: list[PlanRow],
    *,
    measured: bool,
    budget_bytes: int,
    num_frames: int,
    batch_size: int,
    precision: Precision,
    checkpointing: bool,
) -> PlanRow:
    """Measures or estimates one configuration; a measured one is skipped when a smaller one already ran out."""
    speed: float | None = None
    peak: int | None = None
    if not measured:
        peak = step.estimate(
            num_frames=num_frames, batch_size=batch_size, precision=precision, checkpointing=checkpointing
        )
    elif not _known_oom(earlier, num_frames, batch_size, precision, checkpointing):
        peak, speed = step.measure(
            num_frames=num_frames,
            batch_size=batch_size,
            precision=precision,
            checkpointing=checkpointing,
            budget_bytes=budget_bytes,
        )
    verdict = plan_verdict(peak, budget_bytes)
    advice = None
    if verdict == "oom":
        advice = step.advice(
            num_frames=num_frames, batch_size=batch_size, precision=precision, checkpointing=checkpointing
        )
    return PlanRow(
        num_frames=num_frames,
        batch_size=batch_size,
        precision=precision,
        activation_checkpointing=checkpointing,
        peak_bytes=peak,
        clips_per_second=speed,
        measured=measured,
        verdict=verdict,
        advice=advice,
    )


def _configured_batch(config: Config) -> int:
    """The config's batch size; with ``batch_size: auto``, the effective batch it must reach."""
    batch = config.data.batch_size
    return batch if batch != "auto" else config.train.effective_batch_size or 1


@dataclass(frozen=True)
class _Axes:
    frames: list[int]
    batch: list[int]
    precision: list[Precision]
    checkpointing: list[bool]

    def values(self) -> tuple[list[Any], ...]:
        return self.frames, self.batch, self.precision, self.checkpointing


def _resolve_measure(measure: bool | None, budget: str | int, budget_bytes: int) -> bool:
    available = torch.cuda.is_available()
    if measure and not available:
        raise ValueError("measure=True needs a CUDA GPU and none is available; use measure=False to estimate")
    measured = available if measure is None else measure
    if measured:
        check_budget(
            budget_bytes, device=torch.device("cuda", torch.cuda.current_device()), label=f"--budget {budget!r}"
        )
    return measured


def _known_oom(rows: list[PlanRow], num_frames: int, batch_size: int, precision: str, ckpt: bool) -> bool:
    """Whether a smaller configuration of the same precision and checkpointing already ran out of memory.

    Peak memory grows with frames and batch size, so measuring the larger one would only fail again.
    """
    return any(
        row.peak_bytes is None
        and row.precision == precision
        and row.activation_checkpointing == ckpt
        and row.num_frames <= num_frames
        and row.batch_size <= batch_size
        for row in rows
    )


def _advice(axes: _Axes, step: PlanStep, budget_bytes: int) -> str:
    """What to change when no configuration fits: the changes the grid's smallest configuration leaves."""
    half = [p for p in axes.precision if p != "32"]
    changes = step.advice(
        num_frames=min(axes.frames),
        batch_size=min(axes.batch),
        precision=half[0] if half else "32",
        checkpointing=True in axes.checkpointing,
    )
    return (
        f"No configuration fits the budget of {format_bytes(budget_bytes)}, not even batch size "
        f"{min(axes.batch)} at {min(axes.frames)} frames. Try: {changes}; else a smaller model.backbone or a "
        "larger budget."
    )
