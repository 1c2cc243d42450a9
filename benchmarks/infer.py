"""Chunked inference of long videos: peak GPU memory and host RSS against video length, and speed.

Run: .venv/bin/python benchmarks/infer.py [--quick]   (videos are generated once, into benchmarks/_cache.py's cache)

Table 1: `ChunkedPredictor.predict_readers` (64-frame windows, overlap 8) over single videos of
increasing length; both peaks should stay flat, since nothing holds a whole video. Table 2: speed of
chunked against whole-video inference where the whole video fits. Table 3 (GPU only): the
memory-against-chunk table, measured. Every measurement runs in a fresh process. Compare rows within
one run, never across machines. `--quick` uses the tiny backbone and small frames, to run on a CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _cache import bench_video

from vidfit.infer import ChunkedPredictor
from vidfit.io import VideoReader
from vidfit.memory import track_peak
from vidfit.memory._report import format_bytes
from vidfit.models import build_classifier


@dataclass(frozen=True)
class InferRun:
    """One video through the predictor: wall time, peak host RSS, and peak GPU memory (None on the CPU)."""

    seconds: float
    host_peak_bytes: int
    gpu_peak_bytes: int | None


def predict_once(path: str, backbone: str, size: int, chunk: int, overlap: int) -> InferRun:
    """One video through the predictor in this process (fresh, for the host peak to be its own)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_classifier(backbone=backbone, num_classes=5, views=("front",)).eval().to(device)
    precision = "bf16-mixed" if device.type == "cuda" else "32"
    predictor = ChunkedPredictor(model, chunk_infer_size=chunk, chunk_overlap=overlap, precision=precision)
    with VideoReader(path) as reader, track_peak("cpu") as host:
        gpu_peak = None
        started = time.perf_counter()
        if device.type == "cuda":
            with track_peak(device) as gpu:
                predictor.predict_readers([reader], size=(size, size))
            gpu_peak = gpu.peak_bytes
        else:
            predictor.predict_readers([reader], size=(size, size))
        seconds = time.perf_counter() - started
    return InferRun(seconds, host.peak_bytes, gpu_peak)


def _predict(queue: mp.Queue, path: str, backbone: str, size: int, chunk: int, overlap: int) -> None:
    run = predict_once(path, backbone, size, chunk, overlap)
    queue.put((run.seconds, run.host_peak_bytes, run.gpu_peak_bytes))


def run(path: Path, backbone: str, size: int, chunk: int, overlap: int) -> tuple[float, int, int | None]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_predict, args=(queue, str(path), backbone, size, chunk, overlap))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny backbone, 64 px, shorter videos")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    backbone, size = ("tiny", 64) if args.quick else ("r3d_18", 112)
    lengths = (1_000, 10_000, 30_000) if args.quick else (1_000, 10_000, 100_000)
    videos = {n: bench_video(num_frames=n, height=size, width=size, gop=32) for n in lengths}
    device = torch.cuda.get_device_name() if gpu else "CPU"
    print(f"device: {device}; {backbone} at {size}x{size}, one view\n")
    print("| frames | chunk | overlap | seconds | frames/s | peak host RSS | peak GPU memory |")
    print("|---|---|---|---|---|---|---|")
    for frames, path in videos.items():
        seconds, host, peak = run(path, backbone, size, 64, 8)
        gpu_text = format_bytes(peak) if peak is not None else "-"
        print(f"| {frames} | 64 | 8 | {seconds:.1f} | {frames / seconds:.0f} | {format_bytes(host)} | {gpu_text} |")
    shortest = videos[lengths[0]]
    chunked = run(shortest, backbone, size, 64, 0)
    whole = run(shortest, backbone, size, -1, 0)
    print(f"\nchunked (64, overlap 0) vs whole video, {lengths[0]} frames: {whole[0] / chunked[0]:.2f} of the speed")
    print(f"(chunked {chunked[0]:.1f} s, whole {whole[0]:.1f} s; host peak {format_bytes(chunked[1])} vs ", end="")
    print(f"{format_bytes(whole[1])})")
    if gpu:
        print("\n| chunk | overlap | peak GPU memory (3000 frames) |\n|---|---|---|")
        long_video = bench_video(num_frames=3000, height=size, width=size, gop=32)
        for chunk in (-1, 128, 64, 32):
            for overlap in (0, 8) if chunk != -1 else (0,):
                peak = run(long_video, backbone, size, chunk, overlap)[2]
                print(f"| {chunk} | {overlap} | {format_bytes(peak or 0)} |")


if __name__ == "__main__":
    main()
