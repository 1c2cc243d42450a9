"""Decode speed and peak memory of VideoReader's access paths against PyAV's own decode loop.

Run: .venv/bin/python benchmarks/decode.py [--num-frames 1500] [--height 720 --width 1280] [--gop 50]

Each mode runs in a fresh process, so its peak RSS is its own. Printed as a Markdown table for
docs/BENCHMARKS.md. Compare rows as ratios within one run, never across machines.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from _cache import bench_video

from vidfit.io import VideoReader
from vidfit.io._decoders import Backend
from vidfit.memory import track_peak


def pyav_threaded(path: Path) -> int:
    """The ceiling: PyAV decoding every frame to RGB with FFmpeg's threads, nothing else."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)


def whole_file(path: Path) -> int:
    """The naive way: every frame of the file in memory at once."""
    with VideoReader(path) as reader:
        return len(reader.get_frames(0, len(reader)))


def iter_chunks(path: Path, num_threads: int = 0, backend: Backend = "pyav") -> int:
    """Counts each frame once: overlapping frames are decoded once and shared by two windows."""
    with VideoReader(path, num_threads=num_threads, backend=backend) as reader:
        if reader.backend != backend:
            raise RuntimeError(f"{path}: asked for backend={backend!r}, got {reader.backend!r}")
        return max(chunk.stop_frame for chunk in reader.iter_chunks(chunk_num_frames=64, overlap_num_frames=16))


def iter_chunks_one_thread(path: Path) -> int:
    return iter_chunks(path, num_threads=1)


def middle_range(path: Path) -> int:
    with VideoReader(path) as reader:
        middle = len(reader) // 2
        return len(reader.get_frames(middle, middle + 64))


def random_clips(path: Path, clips: int = 10, clip_num_frames: int = 40) -> int:
    rng = np.random.default_rng(0)
    with VideoReader(path) as reader:
        starts = rng.integers(0, len(reader) - clip_num_frames, size=clips)
        return sum(len(reader.get_frames(int(s), int(s) + clip_num_frames)) for s in starts)


def iter_chunks_nvdec(path: Path) -> int:
    return iter_chunks(path, backend="nvdec")


def nvdec_unavailable(path: Path) -> str | None:
    """Why the nvdec row cannot run here, or None: a fallback to pyav must never fill that row."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with VideoReader(path, backend="nvdec") as reader:
            if reader.backend == "nvdec":
                return None
    return "; ".join(str(warning.message) for warning in caught) or "the reader fell back to pyav"


MODES: dict[str, Callable[[Path], int]] = {
    "PyAV threaded decode (ceiling)": pyav_threaded,
    "whole file into memory (seed)": whole_file,
    "iter_chunks(64, overlap 16)": iter_chunks,
    "iter_chunks, 1 thread": iter_chunks_one_thread,
    "get_frames, 64 mid-file": middle_range,
    "10 random 40-frame clips": random_clips,
}


def _child(mode: str, path: str, warmup: str, queue: mp.Queue) -> None:
    try:
        MODES[mode](Path(warmup))  # loads codecs and scalers, so the timed run measures decoding alone
        # Sampled, not ru_maxrss: Linux carries ru_maxrss across exec, so a spawned child would report its parent's.
        with track_peak("cpu") as peak:
            start = time.perf_counter()
            frames = MODES[mode](Path(path))
            seconds = time.perf_counter() - start
    except Exception as error:
        queue.put(error)  # the parent waits on the queue: an error must reach it too
        raise
    queue.put((frames, seconds, peak.delta_bytes))


def run(mode: str, path: Path, warmup: Path) -> tuple[int, float, int]:
    """Runs one mode in a fresh process: frames decoded, seconds, and the growth of RSS over the
    process's footprint after warm-up (importing torch alone takes hundreds of MiB, in every mode)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(mode, str(path), str(warmup), queue))
    process.start()
    result = queue.get()
    process.join()
    if isinstance(result, Exception):
        raise RuntimeError(f"mode {mode!r} failed") from result
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-frames", type=int, default=1500)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--gop", type=int, default=50)
    args = parser.parse_args()
    size = f"{args.width}x{args.height}"
    shape = {"height": args.height, "width": args.width, "gop": args.gop}
    long = bench_video(num_frames=args.num_frames, **shape)
    short = bench_video(num_frames=args.num_frames // 4, **shape)
    print(f"{platform.node()}: {mp.cpu_count()} cores, torch {torch.__version__}, PyAV {av.__version__}")
    print(f"video: {size} H.264, GOP {args.gop}, {args.num_frames} frames\n")
    warmup = bench_video(num_frames=160, **shape)
    nvdec_skipped = nvdec_unavailable(warmup)
    if nvdec_skipped is None:
        MODES["nvdec iter_chunks(64, overlap 16)"] = iter_chunks_nvdec
    print("| mode | frames | frames/s | vs ceiling | seconds as frames of ceiling | peak RSS growth |")
    print("|---|---|---|---|---|---|")
    ceiling = None
    for mode in MODES:
        frames, seconds, rss = run(mode, long, warmup)
        rate = frames / seconds
        ceiling = ceiling or rate
        cost = seconds * ceiling
        print(
            f"| {mode} | {frames} | {rate:.1f} | {rate / ceiling:.2f} | {cost:.0f} | {rss / 2**20:.0f} MiB |",
            flush=True,
        )
    if nvdec_skipped is not None:
        print(f"\nnvdec row skipped: {nvdec_skipped}")
    chunks = "iter_chunks(64, overlap 16)"
    short_rss, long_rss = run(chunks, short, warmup)[2], run(chunks, long, warmup)[2]
    print(f"\niter_chunks peak RSS: {short_rss / 2**20:.0f} MiB at {args.num_frames // 4} frames, "
          f"{long_rss / 2**20:.0f} MiB at {args.num_frames} frames")  # fmt: skip


if __name__ == "__main__":
    main()
