"""The temporal task's training step on long videos of features: seconds a step, and peak memory.

Run: .venv/bin/python benchmarks/temporal_train.py [--quick]

A feature folder as `vidfit extract` writes it (16-frame windows every 4 frames, 512 channels: r3d_18's) for 100
videos of 10,000 frames (2,497 windows each), with timelines of random action segments over 4 labels, is
written under `--work`; then `vidfit.train.fit` trains each head (MS-TCN at its paper's size: 4 stages of 10
layers, 64 channels; the ActionFormer-style detector: 6 levels) with its defaults, 4 whole videos a batch, for a
few steps. The step time is the throughput monitor's `perf/batch_time` over the steps after the warm-up (data
loading, the feature files read in the main process, included). `--quick`: 26 videos of 600 frames, 32 channels,
one step timed.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidfit.config import config_from_dict
from vidfit.data import Manifest, Segment, Timeline, VideoEntry, save_manifest
from vidfit.infer import FeatureEntry, FeatureIndex, VideoFeatures, save_feature_index, write_video_features
from vidfit.memory._report import format_bytes
from vidfit.train import fit

WINDOW, STRIDE, FPS = 16, 4, 30.0
LABELS = ("background", "a", "b", "c")
HEADS = ("mstcn", "actionformer")


@dataclass(frozen=True)
class Shape:
    """The feature folder: videos, frames of each, channels of a window."""

    videos: int = 100
    frames: int = 10_000
    channels: int = 512


QUICK = Shape(videos=26, frames=600, channels=32)
# The throughput monitor times the steps of one epoch after its first 5: 4 * (5 + steps) training videos at least.
_MONITOR_WARMUP_STEPS = 5


@dataclass(frozen=True)
class StepTime:
    """One head's training: seconds a step, the steps timed, peak GPU memory (None on the CPU)."""

    head: str
    seconds_per_step: float
    steps: int
    peak_gpu_bytes: int | None


def write_features(folder: Path, shape: Shape, *, seed: int = 0) -> Path:
    """The feature folder and a manifest of its videos (all ``train`` but two ``val``); the manifest's path."""
    rng = np.random.default_rng(seed)
    settings = {"backbone": "r3d_18", "pretrained": None, "checkpoint": None, "checkpoint_sha256": None,
                "window": WINDOW, "stride": STRIDE, "frame_stride": 1, "image_size": None, "views": ["front"],
                "fused": False, "feature_dim": shape.channels, "precision": "16-mixed"}  # fmt: skip
    starts = np.arange(0, shape.frames - WINDOW + 1, STRIDE)
    windows = np.stack([starts, starts + WINDOW], 1)
    centres = starts + (WINDOW - 1) / 2
    pts = np.arange(shape.frames) / FPS
    videos, entries = {}, []
    for index in range(shape.videos):
        video_id = f"v{index:03d}"
        values = rng.standard_normal((1, len(starts), shape.channels)).astype(np.float16)
        meta = {"format": "vidfit-features-1", "video_id": video_id, "settings": settings}
        features = VideoFeatures(values, windows, centres, centres / FPS, pts)
        digest = write_video_features(folder / f"{video_id}.npz", features, meta={**meta, "fps": FPS})
        videos[video_id] = FeatureEntry(f"{video_id}.npz", shape.frames, len(starts), FPS, digest)
        split = "val" if index < 2 else "train"
        entries.append(VideoEntry(video_id, {"front": folder / f"{video_id}.mp4"}, split=split,
                                  timeline=_timeline(rng, shape.frames)))  # fmt: skip
    save_feature_index(FeatureIndex(settings, videos, {}, folder), folder / "features.yaml")
    return save_manifest(Manifest(LABELS, folder, tuple(entries)), folder / "manifest.yaml")


def _timeline(rng: np.random.Generator, num_frames: int) -> Timeline:
    """Actions of 50 to 500 frames with background between, over the whole video."""
    segments, start = [], 0
    while start < num_frames:
        gap, length = (int(n) for n in rng.integers(50, 500, size=2))
        segments.append(Segment(start, min(start + gap, num_frames), "background"))
        start += gap
        if start < num_frames:
            segments.append(Segment(start, min(start + length, num_frames), LABELS[1 + int(rng.integers(3))]))
            start += length
    return Timeline("frames", tuple(segments))


def train_steps(manifest: Path, work: Path, *, head: str, steps: int, model: dict | None = None) -> StepTime:
    """`fit` of `head` (`model`: other keys of its section) for the monitor's warm-up and `steps` more, without
    validation; its seconds a step."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    document = {
        "experiment": {"task": "temporal", "output_dir": str(work / "runs"), "name": head},
        "model": {"head": head, **(model or {})},
        "data": {"manifest": str(manifest), "features": str(manifest.parent), "batch_size": 4},
        "train": {"monitor": "val/loss", "scheduler": "none"},
        "trainer": {"accelerator": device.type, "max_steps": _MONITOR_WARMUP_STEPS + steps, "max_epochs": -1,
                    "log_every_n_steps": steps, "limit_val_batches": 0, "enable_progress_bar": False},
    }  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(config_from_dict(document, source="benchmarks/temporal_train.py"))
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return StepTime(head, result.metrics["perf/batch_time"], steps, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="26 videos of 600 frames, 32 channels, 1 step")
    parser.add_argument("--work", type=Path, default=Path("temporal-bench"), help="features and runs go here")
    parser.add_argument("--steps", type=int, help="steps timed after 5 of warm-up (default 15; --quick 1)")
    args = parser.parse_args()
    shape = QUICK if args.quick else Shape()
    manifest = write_features(args.work / "features", shape)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}; {shape.videos} videos of {shape.frames} frames, {shape.channels} channels, batch 4\n")
    print("| head | s/step | steps | peak GPU memory |\n|---|---|---|---|")
    for head in HEADS:
        run = train_steps(manifest, args.work, head=head, steps=args.steps or (1 if args.quick else 15))
        gpu = "-" if run.peak_gpu_bytes is None else format_bytes(run.peak_gpu_bytes)
        print(f"| {head} | {run.seconds_per_step:.3f} | {run.steps} | {gpu} |")


if __name__ == "__main__":
    main()
