"""Loader throughput (clips/s into a consumer loop) by worker count, from originals and prepared copies,
and a worker's peak RSS against video length.

Run: .venv/bin/python benchmarks/loader.py [--quick] [--tables all|throughput|rss|ceiling]
     [--out /tmp/vidfit-loader-bench]

Throughput: `VideoDataset` clips (2 views of 40 frames at 160x210; `--quick`: 8 frames at 32x48)
through `make_loader` with 0, 4, 8 and 16 workers (capped to the CPU count), from 720p originals
with long GOPs decoded on the CPU, from the same originals decoded by NVDEC when CUDA is available,
and from copies made by `prepare_manifest`. Peak RSS: one process loading clips from single videos
of increasing length; it should stay flat, since nothing holds a whole video. Ceiling: `VideoDataset`
against a bare PyAV loop decoding the same clips in one process (target >= 0.95). Tables print as
Markdown. Compare rows within one run, never across machines.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import yaml
from _cache import place_video
from torch.utils.data import DataLoader, Dataset

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
    gop: int = 250  # long GOPs, as cameras write; what `prepare_manifest` writes has 16
    max_seconds: float = 60.0  # a row stops after this long, with the clips received so far


FULL = Settings(8, 1500, 720, 1280, (160, 210), 40, 512, (1000, 5000, 20000), (240, 320))
QUICK = Settings(2, 90, 96, 128, (32, 48), 8, 32, (100, 300, 1000), (48, 64))


def write_dataset(folder: Path, settings: Settings) -> Path:
    """Videos with front and left views (the left a hard link of the front) and their manifest."""
    videos = []
    for i in range(settings.videos):
        shape = {"height": settings.height, "width": settings.width, "gop": settings.gop}
        for view in ("front", "left"):
            place_video(folder / f"v{i}" / f"{view}.mp4", num_frames=settings.video_frames, **shape)
        videos.append(
            {"id": f"v{i}", "split": "train", "views": {"front": f"v{i}/front.mp4", "left": f"v{i}/left.mp4"}}
        )
    manifest = folder / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"labels": ["a"], "root": ".", "videos": videos}), encoding="utf-8")
    return manifest


def clips_per_second(
    manifest: Path, settings: Settings, num_workers: int, backend: str, *, image_size: tuple[int, int] | None = ()
) -> float:
    """Clips a consumer receives per second from `VideoDataset`, after the first batch (worker start-up).

    `image_size` defaults to the settings' clip size; None decodes at the files' own size.
    """
    config = VideoDatasetConfig(
        manifest=manifest,
        num_frames=settings.num_frames,
        image_size=settings.size if image_size == () else image_size,
        max_video_frames=300,
        decode_backend=backend,
    )
    dataset = VideoDataset(config)
    loader = make_loader(dataset, batch_size=4, shuffle=True, num_workers=num_workers, seed=0, pin_memory=False)
    rate = consumer_rate(loader, settings)
    dataset.close()
    return rate


def consumer_rate(loader: Iterable[dict[str, Any]], settings: Settings) -> float:
    """Clips/s received from `loader` after its first batch, over `settings.clips` clips or `max_seconds`."""
    received, started, seconds = 0, 0.0, 0.0
    while received < settings.clips and seconds < settings.max_seconds:
        for batch in loader:
            if not started:
                started = time.perf_counter()
                continue
            received += len(batch)
            seconds = time.perf_counter() - started
            if received >= settings.clips or seconds >= settings.max_seconds:
                break
    return received / seconds


class BareClips(Dataset):
    """The ceiling: clips of the same videos decoded by PyAV alone (seek to a keyframe, decode, RGB), nothing else.

    Starts are multiples of the GOP, so no frame is decoded and dropped; each view opens its file per clip.
    """

    def __init__(self, views: list[list[Path]], settings: Settings, *, num_threads: int) -> None:
        self.views, self.settings, self.num_threads = views, settings, num_threads

    def __len__(self) -> int:
        return 10**6

    def __getitem__(self, index: int) -> dict[str, Any]:
        gops = max(1, (self.settings.video_frames - self.settings.num_frames) // self.settings.gop)
        start = self.settings.gop * random.Random(index).randrange(gops)
        paths = self.views[index % len(self.views)]
        clips = [_decode_clip(path, start, self.settings.num_frames, self.num_threads) for path in paths]
        return {"video": torch.from_numpy(np.stack(clips)), "meta": {}}


def _decode_clip(path: Path, start: int, num_frames: int, num_threads: int) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type, stream.codec_context.thread_count = "AUTO", num_threads
        return _decode_from(container, start, num_frames)


def bare_clips_per_second(folder: Path, settings: Settings, num_workers: int) -> float:
    """Clips/s of `BareClips` over the videos `write_dataset` wrote in `folder`, with `num_workers` workers."""
    views = [[folder / f"v{i}" / f"{view}.mp4" for view in ("front", "left")] for i in range(settings.videos)]
    threads = max(1, (os.cpu_count() or 1) // max(num_workers, 1))
    dataset = BareClips(views, settings, num_threads=threads)
    loader = DataLoader(dataset, batch_size=4, num_workers=num_workers, collate_fn=_stack)
    return consumer_rate(loader, settings)


def _stack(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"video": torch.stack([sample["video"] for sample in samples])}


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
        place_video(video, num_frames=length, height=height, width=width, gop=32)
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


def ceiling_table(folder: Path, settings: Settings) -> None:
    """`VideoDataset` against a bare PyAV loop decoding the same clips, in one process, on files at the clip size.

    Files are written at the clip size with GOP 16, as `vidfit prepare` writes them. The bare loop keeps
    each file open and, for every clip of a batch, seeks to the keyframe before it and decodes to its end
    (RGB, stacked by view): the same decoding work, without vidfit's index, sampling, view matching and
    collation. The two take turns batch by batch, which goes first alternating, so that a noisy neighbour
    slows both alike; the ratio is of the summed times, wall clock and CPU.
    """
    prepared = replace(settings, height=settings.size[0], width=settings.size[1], gop=16)
    manifest = write_dataset(folder / "ceiling", prepared)
    config = VideoDatasetConfig(
        manifest=manifest, num_frames=settings.num_frames, sampling="consecutive", num_threads=0,
        max_open_readers=2 * settings.videos,
    )  # fmt: skip
    plan = _planned_clips(replace(config, load_rgb=False), settings)
    loader = _ceiling_loader(config, settings)
    containers = _open_views(folder / "ceiling", settings)
    seconds = {"bare": np.zeros(2), "vidfit": np.zeros(2)}  # wall, CPU
    batches = iter(loader)
    for turn, clips in enumerate(plan):
        for who in ("bare", "vidfit") if turn % 2 else ("vidfit", "bare"):
            started = np.array([time.perf_counter(), time.process_time()])
            if who == "bare":
                _bare_batch(containers, clips, settings.num_frames)
            elif _batch_clips(next(batches)) != clips:
                raise RuntimeError("VideoDataset delivered other clips than planned")
            seconds[who] += np.array([time.perf_counter(), time.process_time()]) - started
    for container in containers.values():
        container.close()
    num_clips = sum(len(clips) for clips in plan)
    bare, vidfit = (num_clips / seconds[who] for who in ("bare", "vidfit"))
    print(f"\n### Loader ceiling ({settings.num_frames} frames x 2 views at {settings.size}, one process)\n")
    print("| clips per | bare PyAV loop | VideoDataset | ratio (target >= 0.95) |\n| --- | --- | --- | --- |")
    for row, name in enumerate(("second (wall clock)", "CPU second")):
        print(f"| {name} | {bare[row]:.2f} | {vidfit[row]:.2f} | {vidfit[row] / bare[row]:.3f} |")


_CEILING_BATCH = 4


def _ceiling_loader(config: VideoDatasetConfig, settings: Settings) -> DataLoader[Any]:
    """`settings.clips` clips of random chunks, batches of 4, in this process, every reader already open."""
    dataset = VideoDataset(config)
    positions = random.Random(0).choices(range(len(dataset)), k=settings.clips)
    loader = make_loader(
        dataset, batch_size=_CEILING_BATCH, shuffle=False, num_workers=0, seed=0, pin_memory=False, sampler=positions
    )
    for video in dataset.index.videos.values():
        for reference in video.views.values():
            dataset.reader_pool().get(reference)
    return loader


def _planned_clips(config: VideoDatasetConfig, settings: Settings) -> list[list[tuple[str, int]]]:
    """The clips (video id, first frame) of each batch `_ceiling_loader` delivers, found without decoding.

    Clip sampling draws the same numbers whether frames are decoded or not, so a loader of the same
    config without RGB plans the clips of the one that decodes them.
    """
    return [_batch_clips(batch) for batch in _ceiling_loader(config, settings)]


def _batch_clips(batch: Any) -> list[tuple[str, int]]:
    return [(meta["video_id"], int(meta["frame_indices"][0])) for meta in batch.meta]


def _open_views(folder: Path, settings: Settings) -> dict[tuple[str, str], av.container.InputContainer]:
    """Every view of every video, open, decoding with FFmpeg's own thread count (as `num_threads=0`)."""
    containers = {
        (f"v{index}", view): av.open(str(folder / f"v{index}" / f"{view}.mp4"))
        for index in range(settings.videos)
        for view in ("front", "left")
    }
    for container in containers.values():
        container.streams.video[0].thread_type = "AUTO"
    return containers


def _bare_batch(
    containers: dict[tuple[str, str], av.container.InputContainer], clips: list[tuple[str, int]], num_frames: int
) -> None:
    for video_id, start in clips:
        views = [_decode_from(containers[video_id, view], start, num_frames) for view in ("front", "left")]
        torch.from_numpy(np.stack(views))


def _decode_from(container: av.container.InputContainer, start: int, num_frames: int) -> np.ndarray:
    stream = container.streams.video[0]
    start_seconds = start / float(stream.average_rate)
    container.seek(int(start_seconds / stream.time_base), stream=stream, backward=True)
    frames = []
    for frame in container.decode(stream):
        if frame.time is not None and frame.time < start_seconds - 1e-6:
            continue
        frames.append(frame.to_ndarray(format="rgb24", threads=1))  # as vidfit converts (io/_pyav.py)
        if len(frames) == num_frames:
            break
    return np.stack(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny videos: a smoke run in seconds")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vidfit-loader-bench"), help="work folder (reused)")
    parser.add_argument(
        "--tables", choices=("all", "throughput", "rss", "ceiling"), default="all", help="which tables to measure"
    )
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    folder = args.out / ("quick" if args.quick else "full")
    if args.tables in ("all", "throughput"):
        throughput(folder, settings)
    if args.tables in ("all", "rss"):
        peak_rss_table(folder, settings)
    if args.tables in ("all", "ceiling"):
        ceiling_table(folder, settings)


if __name__ == "__main__":
    main()
