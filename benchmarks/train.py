"""Training speed at the seeds' shapes: the seed's plain loop, the same loop with vidfit's settings, and vidfit.

Run: .venv/bin/python benchmarks/train.py [--quick] [--steps 30]

Rows, in one run on one device (compare as ratios):
- seed loop: float32 inputs normalized on the host, pageable copies, fp16 autocast with a GradScaler,
  default memory format, no cudnn.benchmark (the seeds' trainer).
- vidfit settings by hand: uint8 inputs pinned and copied non-blocking, normalized on the GPU,
  channels_last_3d, cudnn.benchmark, TF32, bf16 autocast (the same model and optimizer).
- `VideoClassificationModule` under Lightning's Trainer with the same in-memory batches.
Targets (issue 4): vidfit within 3% of the hand-written loop, and at least 1.8x the seed loop.
`--quick` uses the tiny backbone at small shapes so the script runs on a CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vidfit.models import build_classifier
from vidfit.train import VideoClassificationModule, config_from_dict


class _Batches(Dataset):
    """The same uint8 clips over and over, as the data module would give them (views first)."""

    def __init__(self, clips: torch.Tensor, length: int) -> None:
        self.clips, self.length = clips, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = self.clips[index % len(self.clips)]
        frames = clip.shape[1]
        return {"video": clip[None], "label": torch.tensor(index % 5), "frame_labels": torch.full((frames,), index % 5)}


def _loss(output: Any, device: torch.device) -> torch.Tensor:
    """What `VideoClassificationModule` trains on: clip cross-entropy plus half the per-frame cross-entropy."""
    logits, frames = output.logits.float(), output.frame_logits.float()
    labels = torch.zeros(len(logits), dtype=torch.long, device=device)
    frame_labels = torch.zeros(frames.shape[0] * frames.shape[1], dtype=torch.long, device=device)
    return F.cross_entropy(logits, labels) + 0.5 * F.cross_entropy(frames.flatten(0, 1), frame_labels)


def _timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def seed_loop(backbone: str, clips: torch.Tensor, batch: int, steps: int, device: torch.device) -> float:
    model = build_classifier(backbone=backbone, num_classes=5, views=("v",)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    host = clips[:batch].float()  # the seed's dataset gave float32 clips: four times the bytes to copy

    def step() -> None:
        video = host.to(device).to(torch.uint8)[:, None]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = _loss(model(video), device)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    torch.backends.cudnn.benchmark = False
    return batch * steps / _timed(step, steps, device)


def tuned_loop(backbone: str, clips: torch.Tensor, batch: int, steps: int, device: torch.device) -> float:
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model = build_classifier(backbone=backbone, num_classes=5, views=("v",)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    host = clips[:batch][:, None].pin_memory() if device.type == "cuda" else clips[:batch][:, None]

    def step() -> None:
        video = host.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = _loss(model(video), device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch * steps / _timed(step, steps, device)


def vidfit_module(backbone: str, clips: torch.Tensor, batch: int, steps: int, device: torch.device) -> float:
    config = config_from_dict(
        {"model": {"backbone": backbone}, "data": {"manifest": "in-memory", "batch_size": batch}},
        source="benchmarks/train.py",
    )
    module = VideoClassificationModule(config=config.to_dict(), label_names=list("abcde"), views=["v"])
    loader = DataLoader(_Batches(clips, batch * (steps + 3)), batch_size=batch, pin_memory=device.type == "cuda")
    timer = _StepTimer(warmup=3)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision="bf16-mixed" if device.type == "cuda" else "32",
        max_steps=steps + 3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return batch * steps / timer.seconds


class _StepTimer(L.Callback):
    def __init__(self, *, warmup: int) -> None:
        self.warmup, self.started, self.seconds = warmup, 0.0, 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if trainer.global_step == self.warmup:
            self.started = time.perf_counter()
        self.seconds = time.perf_counter() - self.started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny backbone, small shapes (CPU)")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        backbones, batch, frames, height, width = ["tiny"], 4, 8, 32, 40
    else:
        backbones, batch, frames, height, width = ["r3d_18", "r2plus1d_18", "mvit_v2_s"], 12, 40, 160, 210
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}; batch {batch} x {frames} frames at {height}x{width}; {args.steps} timed steps\n")
    print("| backbone | seed loop clips/s | vidfit settings by hand | vidfit module | vidfit / hand | vidfit / seed |")
    print("|---|---|---|---|---|---|")
    for backbone in backbones:
        size = (16, 16, 3, frames, height, width) if backbone != "mvit_v2_s" else (16, 16, 3, 16, 224, 224)
        clips = torch.randint(0, 256, size[1:], dtype=torch.uint8)
        seed = seed_loop(backbone, clips, batch, args.steps, device)
        hand = tuned_loop(backbone, clips, batch, args.steps, device)
        ours = vidfit_module(backbone, clips, batch, args.steps, device)
        print(f"| {backbone} | {seed:.1f} | {hand:.1f} | {ours:.1f} | {ours / hand:.2f} | {ours / seed:.2f} |")


if __name__ == "__main__":
    main()
