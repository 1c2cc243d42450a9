"""`vidfit prepare` throughput with the local process pool and with Ray on this machine: the overhead of Ray.

Run: .venv/bin/python benchmarks/prepare_engines.py [--videos 8] [--frames 120] [--workers N] [--out DIR]

Writes a manifest of `--videos` two-view synthetic videos (`--frames` frames at 96x128, 15 fps), then
prepares it to 64x64 (GOP 8) with the local pool of `--workers` processes and with `--engine ray` on a
Ray cluster started on this machine with as many CPUs; each engine is timed alone, the Ray row both with
the cluster's start and without it (a second run on the started cluster). Prints one Markdown table.
On a machine of few cores this measures what Ray costs, not what it gains: it gains once the cluster
has more machines than one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from vidfit._synthetic import make_demo_dataset
from vidfit.apps import prepare


def _timed(manifest: Path, out: Path, **options: object) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    prepare(manifest, size=(64, 64), gop=8, out_dir=out, progress=False, **options)  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("/tmp/vidfit-prepare-engines"))
    args = parser.parse_args()
    import ray

    shutil.rmtree(args.out, ignore_errors=True)
    dataset = make_demo_dataset(
        args.out / "source", num_videos_per_class=max(1, args.videos // 4), num_frames=args.frames, size=(96, 128)
    )
    num_views = sum(1 for _ in (args.out / "source").rglob("*.mp4"))
    frames = num_views * args.frames
    rows = [("local pool", f"{args.workers} processes", _timed(dataset.manifest_path, args.out / "local",
                                                                workers=args.workers))]  # fmt: skip
    start = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start
    warm = _timed(dataset.manifest_path, args.out / "ray", engine="ray")
    ray.shutdown()
    rows += [
        ("ray, cluster start included", f"{args.workers} CPUs", started + warm),
        ("ray, cluster already started", f"{args.workers} CPUs", warm),
    ]
    print(f"{num_views} views of {args.frames} frames (96x128 -> 64x64), {frames} frames in all\n")
    print("| engine | workers | seconds | frames/s |\n|---|---|---|---|")
    for name, workers, seconds in rows:
        print(f"| {name} | {workers} | {seconds:.1f} | {frames / seconds:.0f} |")


if __name__ == "__main__":
    main()
