"""`vidfit plan`: which clip length, batch size, precision and checkpointing fit a memory budget.

Every configuration of the grid runs the training step of the config's classifier (clip and per-frame
cross-entropy, the config's optimizer): measured on the CUDA GPU when there is one, capped at the budget,
else estimated on fake CUDA tensors, so that the GPU's autocast policy decides what runs in half precision.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidfit.memory import PlanRow, Precision, format_bytes, plan_verdict, recommend, render_table, write_plan
from vidfit.train._config import Config
from vidfit.train._plan_grid import check_counts, check_precisions, check_switches
from vidfit.train._plan_step import DEFAULT_IMAGE_SIZE, PlanStep, views_and_classes


@dataclass(frozen=True)
class PlanResult:
    """A memory plan over a grid of configurations.

    Attributes:
        rows: One row per configuration: frames, then batch size, precision and checkpointing.
        budget_bytes: The budget the verdicts are against.
        measured: Whether the peaks were measured on the GPU rather than estimated.
        recommendation: `vidfit.memory.recommend` of the rows, None when none is safe.
        advice: What to change when every configuration runs out of memory, else None.
    """

    rows: tuple[PlanRow, ...]
    budget_bytes: int
    measured: bool
    recommendation: PlanRow | None
    advice: str | None = None

    def table(self) -> str:
        """The Markdown table of `vidfit.memory.render_table`, followed by the advice when there is one."""
        text = render_table(self.rows, self.budget_bytes)
        return text if self.advice is None else f"{text}\n\n{self.advice}"

    def write(self, json_path: Path | str, png_path: Path | str) -> None:
        """Writes the plan as JSON and as a PNG chart (see `vidfit.memory.write_plan`)."""
        write_plan(self.rows, self.budget_bytes, json_path, png_path)


def plan_memory(
    config: Config,
    *,
    budget_bytes: int,
    frames: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    precisions: Sequence[str] | None = None,
    checkpointing: Sequence[bool] | None = None,
    measure: bool | None = None,
    num_views: int | None = None,
    num_classes: int | None = None,
) -> PlanResult:
    """Measures or estimates a training step's peak memory for every configuration of a grid.

    Args:
        config: The run; its model, image size, optimizer and frame-loss weight are planned for.
        budget_bytes: Memory available to training.
        frames: Clip lengths; by default ``data.num_frames``.
        batches: Batch sizes; by default ``data.batch_size``.
        precisions: ``"32"``, ``"16-mixed"``, ``"bf16-mixed"`` or ``"auto"``; by default ``trainer.precision``.
            ``"auto"`` is bf16-mixed (16-mixed on a GPU without bf16).
        checkpointing: Activation checkpointing off/on; by default ``model.activation_checkpointing``.
        measure: Run the steps on the CUDA GPU (True) or estimate them (False); None measures when a GPU
            is available. Measured steps are capped at the budget, so going over it is an ``"oom"`` row.
        num_views: Camera views; by default ``data.views`` or the manifest's first video's.
        num_classes: Classes; by default the manifest's labels.

    Raises:
        ValueError: A bad axis value, budget or count, a budget above the GPU's memory, ``measure=True``
            without a GPU, or a manifest that cannot be read while views or classes are needed from it.
    """
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes={budget_bytes} must be > 0")
    measured = _resolve_measure(measure, budget_bytes)
    axes = _Axes(
        frames=check_counts("frames", frames, config.data.num_frames),
        batches=check_counts("batches", batches, _configured_batch(config)),
        precisions=check_precisions(precisions, config.trainer.precision, measured),
        checkpointing=check_switches(checkpointing, config.model.activation_checkpointing),
    )
    step = PlanStep(config, *views_and_classes(config, num_views, num_classes))
    rows: list[PlanRow] = []
    for num_frames, batch_size, precision, ckpt in itertools.product(*axes.values()):
        row_args = (num_frames, batch_size, precision, ckpt)
        if measured and _known_oom(rows, *row_args):
            peak, clips_per_second = None, None
        else:
            peak, clips_per_second = (step.measure if measured else step.estimate)(*row_args, budget_bytes)
        rows.append(
            PlanRow(
                num_frames=num_frames,
                batch_size=batch_size,
                precision=precision,
                activation_checkpointing=ckpt,
                peak_bytes=peak,
                clips_per_second=clips_per_second,
                measured=measured,
                verdict=plan_verdict(peak, budget_bytes),
            )
        )
    advice = _advice(config, axes, budget_bytes) if all(row.verdict == "oom" for row in rows) else None
    return PlanResult(tuple(rows), budget_bytes, measured, recommend(rows), advice)


def _configured_batch(config: Config) -> int:
    """The config's batch size; with ``batch_size: auto``, the effective batch it must reach."""
    batch = config.data.batch_size
    return batch if batch != "auto" else config.train.effective_batch_size or 1


@dataclass(frozen=True)
class _Axes:
    frames: list[int]
    batches: list[int]
    precisions: list[Precision]
    checkpointing: list[bool]

    def values(self) -> tuple[list[Any], ...]:
        return self.frames, self.batches, self.precisions, self.checkpointing


def _resolve_measure(measure: bool | None, budget_bytes: int) -> bool:
    available = torch.cuda.is_available()
    if measure and not available:
        raise ValueError("measure=True needs a CUDA GPU and none is available; use measure=False to estimate")
    measured = available if measure is None else measure
    if measured:
        _, total = torch.cuda.mem_get_info()
        if budget_bytes > total:
            raise ValueError(
                f"budget_bytes={budget_bytes} ({format_bytes(budget_bytes)}) is above the GPU's total memory "
                f"of {total} bytes ({format_bytes(total)})"
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


def _advice(config: Config, axes: _Axes, budget_bytes: int) -> str:
    """What to change when no configuration fits, from what the grid has not tried yet."""
    height, width = config.data.image_size or DEFAULT_IMAGE_SIZE
    changes = []
    if min(axes.batches) > 1:
        changes.append(f"a smaller batch size than {min(axes.batches)}")
    if min(axes.frames) > 1:
        changes.append(f"fewer frames than {min(axes.frames)} (data.num_frames)")
    if True not in axes.checkpointing:
        changes.append("activation checkpointing (model.activation_checkpointing: true)")
    if not set(axes.precisions) & {"16-mixed", "bf16-mixed"}:
        changes.append("a 16-bit precision (trainer.precision: bf16-mixed or 16-mixed)")
    changes.append(f"a smaller image_size than {height}x{width} (data.image_size)")
    changes.append("a smaller backbone (model.backbone)" if config.model.backbone != "tiny" else "a larger budget")
    return (
        f"No configuration fits the budget of {format_bytes(budget_bytes)}, not even batch size "
        f"{min(axes.batches)} at {min(axes.frames)} frames. Try: " + "; ".join(changes) + "."
    )
