"""Loader throughput (clips/s into a consumer loop) by worker count, from originals and prepared copies,
and a worker's peak RSS against video length.

Run: .venv/bin/python benchmarks/loader.py [--quick] [--tables all|throughput|rss] [--out /tmp/vidfit-loader-bench]

Throughput: `VideoDataset` clips (2 views of 40 frames at 160x210; `--quick`: 8 frames at 32x48)
through `make_loader` with 0, 4, 8 and 16 workers (capped to the CPU count), from 720p originals
with long GOPs decoded on the CPU, from the same originals decoded by NVDEC when CUDA is available,
and from copies made by `prepare_manifest`. Peak RSS: one process loading clips from single videos
of increasing length; it should stay flat, since nothing holds a whole video. Tables print as
Markdown. Compare rows within one run, never across machines.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from decode import make_video

from vidfit.data import VideoDataset, VideoDatasetConfig, make_loader, prepare_manifest
from vidfit.memory import track_peak


@dataclass(frozen=True)
class Settings:
    """What to measure; `--quick` shrinks everything to run in seconds on a laptop."""

    videos: int
    video_frames: int
    height: int
    width: int
    size: tuple[int, int]
    num_frames: int
    clips: int
    rss_lengths: tuple[int, ...]
    rss_size: tuple[int, int]


FULL = Settings(8, 1500, 720, 1280, (160, 210), 40, 512, (1000, 5000, 20000), (240, 320))
QUICK = Settings(2, 90, 96, 128, (32, 48), 8, 32, (100, 300, 1000), (48, 64))


def write_dataset(folder: Path, settings: Settings) -> Path:
    """Videos with front and left views (the left a hard link of the front) and their manifest."""
    videos = []
    for i in range(settings.videos):
        front = folder / f"v{i}" / "front.mp4"
        front.parent.mkdir(parents=True, exist_ok=True)
        make_video(front, num_frames=settings.video_frames, height=settings.height, width=settings.width, gop=250)
        left = front.with_name("left.mp4")
        if not left.exists():
            os.link(front, left)
        videos.append(
            {"id": f"v{i}", "split": "train", "views": {"front": f"v{i}/front.mp4", "left": f"v{i}/left.mp4"}}
        )
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"labels": ["a"], "root": ".", "videos": videos}), encoding="utf-8")
    return manifest


def clips_per_second(manifest: Path, settings: Settings, num_workers: int, backend: str) -> float:
    """Clips a consumer receives per second, after the first batch (worker start-up) is excluded."""
    config = VideoDatasetConfig(
        manifest=manifest,
        num_frames=settings.num_frames,
        image_size=settings.size,
        max_video_frames=300,
        decode_backend=backend,
    )
    dataset = VideoDataset(config)
    loader = make_loader(dataset, batch_size=4, shuffle=True, num_workers=num_workers, seed=0, pin_memory=False)
    received, started = 0, 0.0
    while received < settings.clips:
        for batch in loader:
            if not started:
                started = time.perf_counter()
                continue
            received += batch["video"].shape[0]
            if received >= settings.clips:
                break
    seconds = time.perf_counter() - started
    dataset.close()
    return received / seconds


def throughput_table(sources: list[tuple[str, Path, str]], settings: Settings) -> None:
    """One row per (name, manifest, decode backend)."""
    cores = os.cpu_count() or 1
    counts = sorted({min(n, cores) for n in (0, 4, 8, 16)})
    print(f"\n### Clips/s ({settings.num_frames} frames x 2 views at {settings.size}, {cores} CPUs)\n")
    print("| source | " + " | ".join(f"{n} workers" for n in counts) + " |")
    print("| --- |" + " --- |" * len(counts))
    for name, manifest, backend in sources:
        rates = [clips_per_second(manifest, settings, n, backend) for n in counts]
        print(f"| {name} | " + " | ".join(f"{rate:.1f}" for rate in rates) + " |")


def _peak_rss_worker(manifest: Path, size: tuple[int, int], samples: int, queue: mp.Queue) -> None:
    dataset = VideoDataset(VideoDatasetConfig(manifest=manifest, num_frames=16, image_size=size))
    # Sampled, not ru_maxrss: Linux carries ru_maxrss across exec, so a spawned child would report its parent's.
    with track_peak("cpu") as peak:
        for _ in range(samples):
            dataset[0]
    dataset.close()
    queue.put(peak.peak_bytes)


def peak_rss_table(folder: Path, settings: Settings) -> None:
    """Peak RSS of a fresh process drawing 20 random clips from one video of each length."""
    context = mp.get_context("spawn")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n### Peak RSS of a loading process (16-frame clips at {settings.rss_size})\n")
    print("| video frames | peak RSS (MiB) |\n| --- | --- |")
    for length in settings.rss_lengths:
        video = folder / f"rss_{length}.mp4"
        height, width = settings.rss_size
        make_video(video, num_frames=length, height=height, width=width, gop=32)
        manifest = folder / f"rss_{length}.yaml"
        document = {"labels": [], "root": ".", "videos": [{"id": "long", "views": {"front": video.name}}]}
        manifest.write_text(yaml.safe_dump(document), encoding="utf-8")
        queue: mp.Queue = context.Queue()
        process = context.Process(target=_peak_rss_worker, args=(manifest, settings.rss_size, 20, queue))
        process.start()
        peak = queue.get()
        process.join()
        print(f"| {length} | {peak / 2**20:.0f} |")


def throughput(folder: Path, settings: Settings) -> None:
    """Writes the originals, prepares copies at the clip size, and measures both."""
    originals = write_dataset(folder / "originals", settings)
    started = time.perf_counter()
    prepared = prepare_manifest(
        originals, size=settings.size, gop=16, out_dir=folder / "prepared", workers=os.cpu_count() or 1
    )
    print(f"prepare_manifest: {time.perf_counter() - started:.1f} s for {settings.videos * 2} views")
    sources: list[tuple[str, Path, str]] = [(f"originals {settings.height}p", originals, "pyav")]
    if torch.cuda.is_available():
        sources.append((f"originals {settings.height}p, nvdec", originals, "nvdec"))
    else:
        print("originals, nvdec: skipped, CUDA is not available (NVDEC decodes on an NVIDIA GPU)")
    sources.append((f"prepared {settings.size}", prepared, "pyav"))
    throughput_table(sources, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny videos: a smoke run in seconds")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vidfit-loader-bench"), help="work folder (reused)")
    parser.add_argument("--tables", choices=("all", "throughput", "rss"), default="all", help="which tables to measure")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    folder = args.out / ("quick" if args.quick else "full")
    if args.tables in ("all", "throughput"):
        throughput(folder, settings)
    if args.tables in ("all", "rss"):
        peak_rss_table(folder, settings)


if __name__ == "__main__":
    main()
