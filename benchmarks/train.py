"""Training speed at the common 16 GB shapes: a plain baseline loop, the same loop with vidfit's settings, and vidfit.

Run: cd benchmarks && ../.venv/bin/python train.py [--quick] [--steps 30] [--out /tmp/vidfit-train-bench]

Rows, in one run on one device (compare as ratios):
- baseline loop: float32 inputs normalized on the host, pageable copies, fp16 autocast with a GradScaler,
  default memory format, no cudnn.benchmark (a typical hand-written trainer).
- vidfit settings by hand: uint8 inputs pinned and copied non-blocking, normalized on the GPU,
  channels_last_3d, cudnn.benchmark, TF32, bf16 autocast (the same model and optimizer).
- `VideoClassificationModule` under Lightning's Trainer with the same in-memory batches and vidfit's
  throughput monitor.
- `vidfit.train.fit` on generated H.264 files at the clip size with a short GOP (what `vidfit prepare`
  writes), with every vidfit callback; compared with the in-memory row through the same throughput monitor.
Targets (issue 4): vidfit within 3% of the hand-written loop, at least 1.8x the baseline loop, and from
prepared files at least 95% of the in-memory rate.
`--quick` uses the tiny backbone at small shapes so the script runs on a CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from _cache import place_video
from torch.utils.data import DataLoader, Dataset

from vidfit.config import config_from_dict
from vidfit.data import collate_samples
from vidfit.models import build_classifier
from vidfit.tasks.action import VideoClassificationModule
from vidfit.train import fit
from vidfit.train._callbacks import ThroughputReport

WARMUP = 5  # steps left out of every timing: workers starting, cuDNN autotuning
AUTOCAST = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16, "32": None}


class _Batches(Dataset):
    """The same uint8 clips over and over, as the data module would give them (views first)."""

    def __init__(self, clips: torch.Tensor, length: int) -> None:
        self.clips, self.length = clips, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.clips[index % len(self.clips)]
        frames = clip.shape[1]
        label = torch.tensor(index % 5)
        return {"video": clip[None], "label": label, "frame_labels": torch.full((frames,), index % 5), "meta": {}}


def _loss(output: Any, device: torch.device) -> torch.Tensor:
    """What `VideoClassificationModule` trains on: clip cross-entropy plus half the per-frame cross-entropy."""
    logits, frames = output.logits.float(), output.frame_logits.float()
    labels = torch.zeros(len(logits), dtype=torch.long, device=device)
    frame_labels = torch.zeros(frames.shape[0] * frames.shape[1], dtype=torch.long, device=device)
    return F.cross_entropy(logits, labels) + 0.5 * F.cross_entropy(frames.flatten(0, 1), frame_labels)


def _timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    for _ in range(WARMUP):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def baseline_loop(backbone: str, clips: torch.Tensor, *, batch: int, steps: int, device: torch.device) -> float:
    model = build_classifier(backbone=backbone, num_classes=5, views=("v",)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    host = clips[:batch].float()  # a typical dataset gives float32 clips: four times the bytes to copy

    def step() -> None:
        video = host.to(device).to(torch.uint8)[:, None]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = _loss(model(video), device)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # The baseline runs on PyTorch's defaults; earlier rows must not leave TF32 or cudnn.benchmark on.
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    return batch * steps / _timed(step, steps, device)


def tuned_loop(
    backbone: str, clips: torch.Tensor, *, batch: int, steps: int, device: torch.device, precision: str = "bf16-mixed"
) -> float:
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model = build_classifier(backbone=backbone, num_classes=5, views=("v",)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    host = clips[:batch][:, None].pin_memory() if device.type == "cuda" else clips[:batch][:, None]
    dtype = AUTOCAST[precision] if device.type == "cuda" else None
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)  # as Lightning's 16-mixed

    def step() -> None:
        video = host.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = _loss(model(video), device)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return batch * steps / _timed(step, steps, device)


def vidfit_module(
    backbone: str, clips: torch.Tensor, *, batch: int, steps: int, device: torch.device, precision: str = "bf16-mixed"
) -> Rates:
    """The module under a Trainer on in-memory batches: step-timed, and as the throughput monitor sees it."""
    config = config_from_dict(
        {"model": {"backbone": backbone}, "data": {"manifest": "in-memory", "batch_size": batch}},
        source="benchmarks/train.py",
    )
    module = VideoClassificationModule(config=config.to_dict(), label_names=list("abcde"), views=["v"])
    loader = DataLoader(
        _Batches(clips, batch * (steps + WARMUP)),
        batch_size=batch,
        pin_memory=device.type == "cuda",
        collate_fn=collate_samples,  # the typed batch the module takes, as the data module gives it
    )
    timer = _StepTimer(warmup=WARMUP)
    monitor = ThroughputReport(num_workers=0, decode_backend="pyav", every_n_steps=steps, warmup_steps=WARMUP)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=precision if device.type == "cuda" else "32",
        max_steps=steps + WARMUP, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer, monitor],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return Rates(batch * steps / timer.seconds, float(trainer.callback_metrics["perf/clips_per_second"]))


@dataclass(frozen=True)
class Rates:
    """Clips/s of one run, timed per step and as `ThroughputMonitor` logs it."""

    timed: float
    monitored: float


def vidfit_fit_from_files(
    backbone: str, shape: Shape, *, steps: int, device: torch.device, folder: Path, precision: str = "bf16-mixed"
) -> float:
    """`vidfit.train.fit` from short-GOP H.264 files at the clip size; clips/s as its throughput monitor logs it."""
    # One epoch holds every timed step: the throughput monitor starts a new window at each epoch.
    clips = (steps + WARMUP + 1) * shape.batch
    video_frames = -(-clips // (shape.videos - 2)) * shape.frames
    manifest = _prepared_videos(folder / f"{shape.frames}x{shape.height}x{shape.width}", shape, video_frames)
    settings = {
        "experiment": {"output_dir": str(folder / "runs"), "name": backbone},
        "model": {"backbone": backbone},
        "data": {
            "manifest": str(manifest), "num_frames": shape.frames, "batch_size": shape.batch,
            "max_video_frames": shape.frames, "num_workers": min(8, os.cpu_count() or 1),
        },
        "train": {"chunk_infer_size": shape.frames, "scheduler": "none"},
        "trainer": {
            "accelerator": device.type, "precision": precision if device.type == "cuda" else "32",
            "max_steps": steps + WARMUP, "max_epochs": -1, "log_every_n_steps": steps, "limit_val_batches": 0,
            "enable_progress_bar": False,
        },
    }  # fmt: skip
    result = fit(config_from_dict(settings, source="benchmarks/train.py"))
    return result.metrics["perf/clips_per_second"]


def _prepared_videos(folder: Path, shape: Shape, video_frames: int) -> Path:
    """Videos as `vidfit prepare` leaves them (clip size, GOP 16), 5 labels, 2 of them for validation."""
    videos = []
    for i in range(shape.videos):
        path = place_video(
            folder / f"v{i}_{video_frames}.mp4", num_frames=video_frames, height=shape.height, width=shape.width, gop=16
        )
        split = "val" if i < 2 else "train"
        videos.append({"id": f"v{i}", "split": split, "label": "abcde"[i % 5], "views": {"v": path.name}})
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"labels": list("abcde"), "root": ".", "videos": videos}), encoding="utf-8")
    return manifest


class _StepTimer(L.Callback):
    def __init__(self, *, warmup: int) -> None:
        self.warmup, self.started, self.seconds = warmup, 0.0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if trainer.global_step == self.warmup:
            self.started = time.perf_counter()
        self.seconds = time.perf_counter() - self.started


@dataclass(frozen=True)
class Shape:
    """A row's clip shape and the generated videos it trains from."""

    batch: int
    frames: int
    height: int
    width: int
    videos: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny backbone, small shapes (CPU)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", choices=tuple(AUTOCAST), default="bf16-mixed", help="all but the baseline loop")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vidfit-train-bench"), help="videos and runs (reused)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        shapes = {"tiny": Shape(4, 8, 32, 40, videos=6)}
    else:
        common_shape = Shape(12, 40, 160, 210, videos=16)
        mvit_shape = Shape(12, 16, 224, 224, videos=16)  # mvit's positional embeddings are fixed
        shapes = {"r3d_18": common_shape, "r2plus1d_18": common_shape, "mvit_v2_s": mvit_shape}
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}; {args.steps} timed steps after {WARMUP} warm-up steps\n")
    print(
        "| backbone | batch x frames x HxW | baseline loop clips/s | vidfit settings by hand "
        "| vidfit module (in memory) | vidfit fit (prepared files) | module / hand | module / baseline "
        "| files / in memory |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backbone, shape in shapes.items():
        clips = torch.randint(0, 256, (16, 3, shape.frames, shape.height, shape.width), dtype=torch.uint8)
        baseline = baseline_loop(backbone, clips, batch=shape.batch, steps=args.steps, device=device)
        rows = {"batch": shape.batch, "steps": args.steps, "device": device, "precision": args.precision}
        hand = tuned_loop(backbone, clips, **rows)
        ours = vidfit_module(backbone, clips, **rows)
        files = vidfit_fit_from_files(
            backbone, shape, steps=args.steps, device=device, folder=args.out, precision=args.precision
        )
        print(
            f"| {backbone} | {shape.batch} x {shape.frames} x {shape.height}x{shape.width} | {baseline:.1f} "
            f"| {hand:.1f} "
            f"| {ours.timed:.1f} | {files:.1f} | {ours.timed / hand:.2f} | {ours.timed / baseline:.2f} "
            f"| {files / ours.monitored:.2f} |"
        )


if __name__ == "__main__":
    main()
