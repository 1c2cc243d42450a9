"""Memory plans: the fake-tensor estimate against the peak measured on the GPU, per model and configuration.

Usage:
    python benchmarks/plan.py                   # on a GPU: estimate and measurement side by side
    python benchmarks/plan.py --quick           # anywhere: the tiny backbone, estimates only without a GPU

Prints a Markdown table for docs/BENCHMARKS.md. The target: estimates within 10% of the measured peak.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from vidfit.memory import format_bytes, parse_bytes
from vidfit.train import config_from_dict, plan_memory


def _plan(backbone: str, *, budget: int, frames: list[int], batches: list[int], measure: bool) -> list:
    config = config_from_dict(
        {
            "model": {"backbone": backbone, "view_fusion": "late"},
            "data": {"manifest": "unused.yaml", "image_size": [160, 210]},
            "trainer": {"precision": "16-mixed"},
        },
        source="benchmarks/plan.py",
    )
    result = plan_memory(
        config, budget_bytes=budget, frames=frames, batches=batches, measure=measure, num_views=1, num_classes=5
    )
    return list(result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tiny backbone, small grid")
    parser.add_argument("--budget", default="16GiB")
    args = parser.parse_args()
    budget = parse_bytes(args.budget)
    gpu = torch.cuda.is_available()
    backbones = ["tiny"] if args.quick else ["r3d_18", "r2plus1d_18", "mvit_v2_s"]
    frames, batches = ([4, 8], [2, 4]) if args.quick else ([16, 40], [4, 12])
    device = torch.cuda.get_device_name() if gpu else f"CPU ({platform.processor() or platform.machine()})"
    print(f"device: {device}; budget {format_bytes(budget)}; 16-mixed; 160x210; one view, 5 classes\n")
    print("| backbone | frames | batch | estimate | measured | estimate / measured | clips/s | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for backbone in backbones:
        started = time.perf_counter()
        estimates = _plan(backbone, budget=budget, frames=frames, batches=batches, measure=False)
        measured = _plan(backbone, budget=budget, frames=frames, batches=batches, measure=True) if gpu else None
        for index, row in enumerate(estimates):
            real = measured[index] if measured is not None else None
            peak = real.peak_bytes if real is not None else None
            ratio = f"{row.peak_bytes / peak:.2f}" if peak and row.peak_bytes else "n/a"
            speed = f"{real.clips_per_second:.1f}" if real is not None and real.clips_per_second else "-"
            print(
                f"| {backbone} | {row.num_frames} | {row.batch_size} | {format_bytes(row.peak_bytes or 0)} | "
                f"{format_bytes(peak) if peak else 'oom' if real is not None else 'no GPU'} | {ratio} | {speed} | "
                f"{(real or row).verdict} |"
            )
        print(f"<!-- {backbone}: {time.perf_counter() - started:.1f} s -->")


if __name__ == "__main__":
    main()
