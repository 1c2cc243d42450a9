"""Fine-tuning a video transformer on 16 GB: VideoMAE-B at 16x224x224 in each memory-lean way, estimate beside measure.

Usage:
    python benchmarks/encoders.py              # on a GPU: measured step time and peak beside the plan's estimate,
                                               # and the largest batch that fits the budget, per row
    python benchmarks/encoders.py --quick      # anywhere: a tiny VideoMAE, estimates only without a GPU

The model is VideoMAE-B as `transformers`' ``VideoMAEConfig()`` describes it (ViT-B/16, 16 frames of 224x224 in
tubelets of 2: 1,568 tokens a clip), with random weights saved in a temporary folder: memory and speed do not
depend on the weights, and nothing is downloaded. Every row is one training step of vidfit's classifier (clip
and per-frame heads, AdamW) at a batch of 8, in fp16 and bf16 mixed precision, with and without activation
checkpointing, for full fine-tuning, ``model.freeze: first:8``, LoRA rank 16, ``train.token_drop: 0.5`` and
LoRA with token drop. The largest batch is estimated from the plan's estimates at batch 1 and 8 (they grow
linearly with the batch) and, on a GPU, measured under the budget as a memory cap, searching from the estimate.
Targets (issue 26): LoRA + token drop 0.5 at batch >= 8 within 16 GiB; estimates within 10% of measured.
"""

from __future__ import annotations

import argparse
import functools
import platform
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidfit.config import Config, PlanStep, config_from_dict
from vidfit.memory import memory_report
from vidfit.memory._report import format_bytes, parse_bytes
from vidfit.train._plan_step import task_plan_step

TARGET_MODE = "LoRA r16 + token_drop 0.5"


def modes(frozen_blocks: int) -> dict[str, tuple[str, ...]]:
    """Each way to fine-tune, by name, and its config changes."""
    return {
        "full": (),
        f"freeze first:{frozen_blocks}": (f"model.freeze=first:{frozen_blocks}",),
        "LoRA r16": ("model.lora={rank: 16}",),
        "token_drop 0.5": ("train.token_drop=0.5",),
        TARGET_MODE: ("model.lora={rank: 16}", "train.token_drop=0.5"),
    }


@dataclass(frozen=True)
class Setup:
    """The model and the step: VideoMAE-B at 16x224 (or a tiny one), the batch, precisions and budget."""

    frames: int = 16
    size: int = 224
    batch: int = 8
    precisions: tuple[str, ...] = ("16-mixed", "bf16-mixed")
    checkpointing: tuple[bool, ...] = (False, True)
    budget: str = "16GiB"
    tiny: bool = False
    frozen_blocks: int = 8  # of VideoMAE-B's 12

    def model_config(self) -> Any:
        import transformers

        if not self.tiny:
            return transformers.VideoMAEConfig()
        return transformers.VideoMAEConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=self.size, patch_size=8, num_frames=self.frames, tubelet_size=2,
        )  # fmt: skip


QUICK = Setup(
    frames=4, size=32, batch=2, precisions=("bf16-mixed",), checkpointing=(False,), tiny=True, frozen_blocks=1
)


@dataclass(frozen=True)
class EncoderRow:
    """One mode at one precision and checkpointing: the estimate, the measurement, the largest batch."""

    mode: str
    precision: str
    checkpointing: bool
    batch: int
    estimate_bytes: int
    measured_bytes: int | None  # None: no GPU, or out of memory ("oom" in `measured`)
    measured: str
    seconds_per_step: float | None
    largest_estimated: int
    largest_measured: int | None


def save_model(setup: Setup, folder: Path) -> Path:
    """Saves the randomly initialized model (config.json and weights) as `save_pretrained` writes it."""
    import transformers

    torch.manual_seed(0)
    transformers.AutoModel.from_config(setup.model_config()).save_pretrained(folder)
    return folder


def _config(setup: Setup, folder: Path, changes: tuple[str, ...]) -> Config:
    document = {
        "model": {"backbone": f"hf:{folder}"},
        "data": {"manifest": "unused.yaml", "image_size": [setup.size, setup.size], "num_frames": setup.frames},
        "train": {"chunk_infer_size": setup.frames},
    }
    return config_from_dict(document, source="benchmarks/encoders.py", overrides=changes)


def encoder_rows(setup: Setup, folder: Path, *, measure: bool) -> Iterator[EncoderRow]:
    """Every mode, precision and checkpointing of the setup, estimated and (with `measure`) measured."""
    budget = parse_bytes(setup.budget, name="--budget")
    for mode, changes in modes(setup.frozen_blocks).items():
        step = task_plan_step(_config(setup, folder, changes), views=("front",), num_classes=10)
        for precision in setup.precisions:
            for checkpointing in setup.checkpointing:
                settings: dict[str, Any] = {"num_frames": setup.frames, "precision": precision}
                settings["checkpointing"] = checkpointing
                estimate = functools.partial(_estimate, step, settings)
                measured = functools.partial(_measure, step, settings, budget) if measure else None
                yield _row(setup, mode, settings, estimate, measured, budget)


def _estimate(step: PlanStep, settings: dict[str, Any], batch: int) -> int:
    return int(step.estimate(batch_size=batch, **settings))


def _measure(step: PlanStep, settings: dict[str, Any], budget: int, batch: int) -> tuple[int | None, float | None]:
    return step.measure(batch_size=batch, budget_bytes=budget, **settings)


def _row(
    setup: Setup,
    mode: str,
    settings: dict[str, Any],
    estimate: Callable[[int], int],
    measured: Callable[[int], tuple[int | None, float | None]] | None,
    budget: int,
) -> EncoderRow:
    """One row: the estimate at the batch and the linear fit of the largest batch; the measurements on a GPU."""
    at_batch, at_one = estimate(setup.batch), estimate(1)
    per_clip = max(1, (at_batch - at_one) // max(1, setup.batch - 1))
    largest = max(0, (budget - (at_one - per_clip)) // per_clip)
    peak, seconds, largest_measured, cell = None, None, None, "no GPU"
    if measured is not None:
        peak, clips_per_second = measured(setup.batch)
        seconds = setup.batch / clips_per_second if clips_per_second else None
        cell = "oom" if peak is None else format_bytes(peak)
        largest_measured = _largest_measured(lambda batch: measured(batch)[0], hint=max(1, largest), budget=budget)
    return EncoderRow(
        mode=mode, precision=settings["precision"], checkpointing=settings["checkpointing"], batch=setup.batch,
        estimate_bytes=at_batch, measured_bytes=peak, measured=cell, seconds_per_step=seconds,
        largest_estimated=int(largest), largest_measured=largest_measured,
    )  # fmt: skip


def _largest_measured(peak: Callable[[int], int | None], *, hint: int, budget: int, max_batch: int = 256) -> int:
    """The largest batch whose measured step stays within the budget, searched from the estimate's `hint`.

    Steps of a sixteenth of the batch: the answer is within that of the largest.
    """

    def fits(batch: int) -> bool:
        found = peak(batch)
        return found is not None and found <= budget

    batch = min(hint, max_batch)
    if fits(batch):
        while batch < max_batch and fits(batch + max(1, batch // 16)):
            batch += max(1, batch // 16)
        return batch
    while batch > 1:
        batch -= max(1, batch // 16)
        if fits(batch):
            return batch
    return 0


def markdown(rows: list[EncoderRow], setup: Setup) -> str:
    """The rows as docs/BENCHMARKS.md tables them."""
    lines = [
        f"VideoMAE-{'tiny' if setup.tiny else 'B'}, {setup.frames}x{setup.size}x{setup.size}, batch {setup.batch}, "
        f"budget {setup.budget}",
        "",
        "| mode | precision | checkpointing | estimate | measured | estimate / measured | s/step | largest batch "
        "(estimated) | largest batch (measured) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.estimate_bytes / row.measured_bytes:.2f}" if row.measured_bytes else "n/a"
        seconds = f"{row.seconds_per_step:.3f}" if row.seconds_per_step else "-"
        lines.append(
            f"| {row.mode} | {row.precision} | {'on' if row.checkpointing else 'off'} | "
            f"{format_bytes(row.estimate_bytes)} | {row.measured} | {ratio} | {seconds} | {row.largest_estimated} | "
            f"{'-' if row.largest_measured is None else row.largest_measured} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny VideoMAE, estimates only without a GPU")
    parser.add_argument("--estimate-only", action="store_true", help="no measurement even on a GPU")
    args = parser.parse_args()
    setup = QUICK if args.quick else Setup()
    total = memory_report().device_total_bytes
    device = torch.cuda.get_device_name() if total else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {device}; {'measured and estimated' if total and not args.estimate_only else 'estimated'}\n")
    with tempfile.TemporaryDirectory(prefix="vidfit-encoders-") as folder:
        model = save_model(setup, Path(folder) / "videomae")
        rows = list(encoder_rows(setup, model, measure=bool(total) and not args.estimate_only))
    print(markdown(rows, setup))


if __name__ == "__main__":
    main()
