"""`vidfit extract` on videos of increasing length: frames per second and peak memory, which must stay flat.

Run: .venv/bin/python benchmarks/extract.py [--quick]   (videos are generated once, into benchmarks/_cache.py's cache)

One view, 16-frame windows every 4 frames, r3d_18 at 112x112 with random weights (a checkpoint written here: the
GPU machine cannot download Kinetics weights, and the cost is the same), fp16 on a GPU (`trainer.precision`
16-mixed), 32 windows per pass. Each row is one video through `vidfit.apps.extract`, after a warm-up on the
shortest; peak GPU memory (on a GPU) and peak host RSS are tracked around it. `--quick` uses the tiny backbone at
32x32 and videos of 100 to 3,000 frames, to run on a CPU. Compare rows within one run, never across machines.
"""

from __future__ import annotations

import argparse
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from _cache import bench_video

from vidfit.apps import extract
from vidfit.config import load_config
from vidfit.memory import track_peak
from vidfit.memory._report import format_bytes
from vidfit.models import build_classifier

WINDOW, STRIDE, WINDOWS_PER_PASS = 16, 4, 32


@dataclass(frozen=True)
class ExtractRun:
    """One video through `extract`: its frames, wall time, peak host RSS and peak GPU memory (None on the CPU)."""

    num_frames: int
    seconds: float
    host_peak_bytes: int
    gpu_peak_bytes: int | None

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds


def write_checkpoint(path: Path, *, backbone: str, precision: str = "16-mixed") -> Path:
    """An action checkpoint of `backbone` with random weights (seed 0), the shape `vidfit fit` saves."""
    overrides = ["data.manifest=unused.yaml", f"model.backbone={backbone}", f"trainer.precision={precision}",
                 f"train.video_batch_size={WINDOWS_PER_PASS}"]  # fmt: skip
    config = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_classifier(backbone=backbone, num_classes=2, views=("front",))
    hyper = {"config": config.to_dict(), "label_names": ["a", "b"], "views": ["front"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"hyper_parameters": hyper, "state_dict": weights}, path)
    return path


def extract_once(video: Path, checkpoint: Path, out: Path, *, num_frames: int) -> ExtractRun:
    """`video`'s features into a fresh `out` in this process; its time and peaks."""
    shutil.rmtree(out, ignore_errors=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = track_peak(device) if device.type == "cuda" else nullcontext(None)
    with track_peak("cpu") as host, on_gpu as gpu:
        started = time.perf_counter()
        result = extract([video], out=out, checkpoint=checkpoint, window=WINDOW, stride=STRIDE, progress=False)
        seconds = time.perf_counter() - started
    if result.failures:
        raise RuntimeError(f"extract failed: {result.failures}")
    return ExtractRun(num_frames, seconds, host.peak_bytes, None if gpu is None else gpu.peak_bytes)


def extract_rows(folder: Path, *, backbone: str, size: int, lengths: tuple[int, ...]) -> list[ExtractRun]:
    """A warm-up on the shortest video, then one run per length."""
    checkpoint = write_checkpoint(folder / f"{backbone}.ckpt", backbone=backbone)
    videos = {n: bench_video(num_frames=n, height=size, width=size, gop=32) for n in lengths}
    extract_once(videos[lengths[0]], checkpoint, folder / "features", num_frames=lengths[0])
    return [extract_once(video, checkpoint, folder / "features", num_frames=n) for n, video in videos.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny backbone, 32 px, 100 to 3,000 frames")
    parser.add_argument("--work", type=Path, default=Path("extract-bench"), help="checkpoint and features go here")
    args = parser.parse_args()
    backbone, size = ("tiny", 32) if args.quick else ("r3d_18", 112)
    lengths = (100, 1_000, 3_000) if args.quick else (1_000, 10_000, 100_000)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"device: {device}; {backbone} at {size}x{size}, window {WINDOW}, stride {STRIDE}, one view\n")
    print("| frames | seconds | frames/s | peak host RSS | peak GPU memory |\n|---|---|---|---|---|")
    for run in extract_rows(args.work, backbone=backbone, size=size, lengths=lengths):
        gpu = "-" if run.gpu_peak_bytes is None else format_bytes(run.gpu_peak_bytes)
        print(f"| {run.num_frames} | {run.seconds:.1f} | {run.frames_per_second:.0f} | "
              f"{format_bytes(run.host_peak_bytes)} | {gpu} |")  # fmt: skip


if __name__ == "__main__":
    main()
