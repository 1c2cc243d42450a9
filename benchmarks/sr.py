"""Super-resolution (ESPCN, early fusion of 3 frames, x4) training speed and memory by precision and batch size,
and PSNR after a fixed number of steps.

Run: .venv/bin/python benchmarks/sr.py [--quick] [--device cuda] [--steps N]

Data: the videos of `--manifest` (train and val splits), or else the synthetic demo videos (made once by
`make_demo_dataset` into the benchmark cache; their noise caps what any model gains over bicubic), cut by
`SRPatchDataset` into fixed patches (96 pixels, 32 with `--quick`) held in device memory, so the figures
are the model's training step, not decoding (benchmarks/loader.py measures loading). For each precision
(32, 16-mixed, bf16-mixed) and batch size (16, 32), a fresh, seeded ESPCN trains `--steps` AdamW steps through
`vidfit.memory.measure_step`: steps/s (mean after the first step) and peak memory (the CUDA allocator's peak,
or the sampled RSS of the whole process on the CPU). Its PSNR and SSIM (BT.601 Y) are then measured in fp32 on
patches of the validation videos; the first row is bicubic, where the untrained network starts. Tables print as
Markdown. Compare rows within one run, never across machines. `--quick` shrinks everything to a CPU smoke run.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from _cache import demo_dataset
from torch import nn

from vidfit.memory import measure_step
from vidfit.memory._measure import MeasuredStep
from vidfit.memory._step import Precision
from vidfit.models import ESPCN, build_espcn
from vidfit.tasks.super_resolution._module import SRMetrics
from vidfit.tasks.super_resolution._patches import SRPatchConfig, SRPatchDataset, collate_patches

PRECISIONS: tuple[Precision, ...] = ("32", "16-mixed", "bf16-mixed")
BATCH_SIZES = (16, 32)
SCALE, NUM_FRAMES = 4, 3


@dataclass(frozen=True)
class Settings:
    """What to measure; `--quick` runs in seconds on a laptop CPU."""

    size: int
    videos_per_class: int
    patch: int
    train_patches_per_video: int
    val_patches_per_video: int
    steps: int


FULL = Settings(size=256, videos_per_class=8, patch=96, train_patches_per_video=96, val_patches_per_video=32, steps=500)
QUICK = Settings(size=64, videos_per_class=2, patch=32, train_patches_per_video=16, val_patches_per_video=8, steps=10)


class _WithLoss(nn.Module):
    """The ESPCN with its training loss, so that `measure_step` times forward, loss, backward and step."""

    def __init__(self, model: ESPCN) -> None:
        super().__init__()
        self.model = model

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.model(low).float(), high.float() / 255)


def load_patches(manifest: Path, split: str, settings: Settings, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed patches of a split: low-resolution uint8 (N, 3, 3, p/4, p/4) and high-resolution uint8 (N, 3, p, p)."""
    config = SRPatchConfig(
        manifest=manifest, scale=SCALE, split=split, num_frames=NUM_FRAMES, patch_size=settings.patch,
        patches_per_chunk=count, sampling="fixed",
    )  # fmt: skip
    dataset = SRPatchDataset(config)
    batch = collate_patches([dataset[i] for i in range(len(dataset))])
    dataset.close()
    return batch.lr, batch.hr


def score(model: nn.Module, low: torch.Tensor, high: torch.Tensor) -> dict[str, float]:
    """Y-channel PSNR and SSIM of `model` on the patches, in fp32, 64 at a time."""
    metrics = SRMetrics().to(low.device)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(low), 64):
            metrics.update(model(low[start : start + 64]), high[start : start + 64].float() / 255)
    return metrics.compute()


def train_and_measure(
    train: tuple[torch.Tensor, torch.Tensor], device: torch.device, precision: Precision, batch: int, steps: int
) -> tuple[MeasuredStep, ESPCN]:
    """A fresh ESPCN trained `steps` steps on random batches of `train`, and what the steps measured."""
    torch.manual_seed(0)
    model = build_espcn(num_frames=NUM_FRAMES, scale=SCALE)
    generator = torch.Generator().manual_seed(0)
    low, high = train

    def inputs() -> tuple[torch.Tensor, torch.Tensor]:
        picked = torch.randint(0, len(low), (batch,), generator=generator).to(device)
        return low[picked], high[picked]

    measured = measure_step(
        _WithLoss(model), inputs, device=device, precision=precision, optimizer="adamw", steps=steps,
        loss_fn=lambda loss: loss,
    )  # fmt: skip
    return measured, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny videos and few steps: a CPU smoke run in seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, help="training steps per row (default: 500, --quick: 10)")
    parser.add_argument("--manifest", type=Path, help="videos with train and val splits (default: the demo videos)")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    steps = args.steps if args.steps is not None else settings.steps
    device = torch.device(args.device)
    train, val = patches(settings, device, args.manifest)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name}), torch {torch.__version__}")
    if args.manifest is None:
        print("demo videos: noisy synthetic shapes whose noise no model recovers; PSNR stays near bicubic")
    print(f"ESPCN x{SCALE}, {NUM_FRAMES} frames, {settings.patch}px patches: {len(train[0])} train, {len(val[0])} val")
    print(f"\n| precision | batch | steps/s | patches/s | peak memory (MiB) | PSNR-Y after {steps} steps | SSIM |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    bicubic = score(build_espcn(num_frames=NUM_FRAMES, scale=SCALE).to(device), *val)
    print(f"| bicubic (untrained) | - | - | - | - | {bicubic['psnr']:.2f} | {bicubic['ssim']:.4f} |")
    for precision in PRECISIONS:
        for batch in BATCH_SIZES:
            print(_row(sr_row(train, val, device, precision, batch, steps)), flush=True)


@dataclass(frozen=True)
class SRRow:
    """One precision and batch size: steps/s, peak memory and quality after the steps, or why there are none."""

    precision: str
    batch: int
    steps_per_second: float | None = None
    peak_bytes: int | None = None
    psnr: float | None = None
    ssim: float | None = None
    failure: str | None = None


def patches(
    settings: Settings, device: torch.device, manifest: Path | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Train and val patches of `manifest` (default: the demo videos, from the benchmark cache) on `device`."""
    size = (settings.size, settings.size)
    manifest = manifest or demo_dataset(num_videos_per_class=settings.videos_per_class, size=size).manifest_path
    train = load_patches(manifest, "train", settings, settings.train_patches_per_video)
    val = load_patches(manifest, "val", settings, settings.val_patches_per_video)
    return (train[0].to(device), train[1].to(device)), (val[0].to(device), val[1].to(device))


def sr_row(
    train: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...], device: torch.device, precision: Precision,
    batch: int, steps: int,
) -> SRRow:  # fmt: skip
    try:
        measured, model = train_and_measure((train[0], train[1]), device, precision, batch, steps)
    except RuntimeError as error:  # e.g. a precision the device has no kernels for
        return SRRow(precision, batch, failure=f"failed: {str(error).splitlines()[0][:80]}")
    if measured.oom or measured.seconds_per_step is None:
        return SRRow(precision, batch, peak_bytes=measured.peak_bytes, failure="out of memory")
    quality = score(model, val[0], val[1])
    return SRRow(precision, batch, 1 / measured.seconds_per_step, measured.peak_bytes, quality["psnr"], quality["ssim"])


def _row(row: SRRow) -> str:
    if row.steps_per_second is None:
        peak = f"{row.peak_bytes / 2**20:.0f}" if row.peak_bytes is not None else ""
        return f"| {row.precision} | {row.batch} | {row.failure} | | {peak} | | |"
    rate = row.steps_per_second
    return (
        f"| {row.precision} | {row.batch} | {rate:.1f} | {rate * row.batch:.0f} | {(row.peak_bytes or 0) / 2**20:.0f} "
        f"| {row.psnr:.2f} | {row.ssim:.4f} |"
    )


if __name__ == "__main__":
    main()
