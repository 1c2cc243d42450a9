"""Does whole-video context matter? The clip-level action task against the temporal task, on data where it must.

Run: .venv/bin/python benchmarks/temporal_context.py [--quick] [--demo] [--out result.json]

Data (`vidfit._synthetic_context`): each episode is a red or blue cue, a long gap, then one action whose label
(``after_red`` or ``after_blue``) only the cue tells. The two-stage recipe is run as docs/TEMPORAL.md gives it:

1. the action task (tiny backbone, 16-frame clips) trains on the videos; its per-frame head is the clip baseline,
   scored on the validation videos as `vidfit predict` reads them (16-frame windows, overlap 8);
2. `vidfit extract` writes the features of every 16-frame window every 4 frames with that checkpoint's backbone;
3. the temporal task (MS-TCN, and the ActionFormer-style detector) trains on the features of whole videos.

Both are scored by the same code at every frame of the validation videos: frame accuracy, segmental F1@{10,25,50}
and edit score (background left out of the segments). `--demo` runs the same on the demo's data (one action per
48-frame video, after a short idle), where no long context is needed. `--test` is the size of the test
(tests/benchmarks/test_temporal_context.py, MS-TCN only); `--quick` a little larger; the default the recorded one
(docs/BENCHMARKS.md). Prints a table; `--out` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfit._synthetic import make_demo_dataset
from vidfit._synthetic_context import ContextSpec, make_context_dataset
from vidfit.apps import extract, predict
from vidfit.config import config_from_dict
from vidfit.data import frame_labels, load_manifest
from vidfit.tasks.temporal import score_segmentation, segmentation_metrics
from vidfit.train import fit


@dataclass(frozen=True)
class Sizes:
    """How long each stage trains, and on how much data."""

    spec: ContextSpec
    action_epochs: int
    temporal_epochs: int
    demo_videos_per_class: int


TEST = Sizes(ContextSpec(num_videos=12, num_val_videos=3, gap_frames=40, cue_frames=6, action_frames=20), 12, 60, 2)
QUICK = Sizes(ContextSpec(num_videos=16, num_val_videos=4, gap_frames=48, cue_frames=6, action_frames=24), 12, 60, 4)
FULL = Sizes(ContextSpec(num_videos=32, num_val_videos=8, gap_frames=200, cue_frames=8, action_frames=40), 15, 80, 8)


def action_config(manifest: Path, work: Path, *, epochs: int, background: str) -> dict[str, Any]:
    """The clip baseline: the demo's recipe (tiny backbone, 16-frame clips) on the per-frame head alone."""
    return {
        "experiment": {"name": "clip", "output_dir": str(work / "runs"), "task": "action"},
        "model": {"backbone": "tiny", "dropout": 0.2},
        "data": {"manifest": str(manifest), "batch_size": 8, "num_workers": 0, "num_frames": 16,
                 "sampling": "consecutive", "max_video_frames": 32, "views": ["front"]},
        "train": {"lr": 0.004, "weight_decay": 0.01, "chunk_infer_size": 16, "chunk_overlap": 8,
                  "frame_loss_weight": 1.0, "monitor": "val/frame_acc"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 5,
                    "check_val_every_n_epoch": 3},
    }  # fmt: skip


# Per head: learning rate and videos per batch, tuned on the quick size (more steps than the papers' settings need
# on datasets of thousands of videos: these have a dozen).
_TEMPORAL_TRAINING = {"mstcn": (0.005, 4), "actionformer": (0.01, 2)}


def temporal_config(manifest: Path, features: Path, work: Path, *, head: str, epochs: int, background: str) -> dict:
    lr, batch_size = _TEMPORAL_TRAINING[head]
    return {
        "experiment": {"name": f"temporal-{head}", "output_dir": str(work / "runs"), "task": "temporal"},
        "model": {"head": head, "channels": 32, "num_stages": 2, "num_layers": 8, "num_levels": 4, "dropout": 0.3,
                  "background": background},
        "data": {"manifest": str(manifest), "features": str(features), "batch_size": batch_size},
        "train": {"lr": lr, "monitor": "val/f1@50" if head == "mstcn" else "val/mAP"},
        "trainer": {"max_epochs": epochs, "enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 5,
                    "check_val_every_n_epoch": 5},
    }  # fmt: skip


def clip_figures(checkpoint: Path, manifest: Path, work: Path, *, background: str) -> dict[str, float | None]:
    """The action checkpoint's per-frame head on the validation videos, as `vidfit predict` reads them."""
    result = predict(checkpoint, [manifest], out=work / "clip-predictions.json", split="val", progress=False)
    loaded = load_manifest(manifest)
    labels, scores = loaded.labels, []
    for entry in (v for v in loaded.videos if v.split == "val"):
        prediction = result.predictions[entry.id]
        frames = prediction.first_frame + np.arange(len(prediction.frame_logits))
        assert prediction.pts_seconds is not None
        truth = frame_labels(entry.timeline, labels=labels, frame_indices=frames,
                             times_seconds=prediction.pts_seconds.numpy())  # fmt: skip
        scores.append(score_segmentation(prediction.frame_labels.numpy(), truth, video_id=entry.id,
                                         background=labels.index(background)))  # fmt: skip
    metrics = segmentation_metrics(scores)
    return {"frame_acc": metrics.frame_accuracy, **dict(zip(("f1@10", "f1@25", "f1@50"), metrics.f1, strict=True)),
            "edit": metrics.edit, "mAP": None}  # fmt: skip


def temporal_figures(checkpoint: Path, manifest: Path, work: Path, head: str) -> dict[str, float | None]:
    """The temporal checkpoint on the validation videos, through `vidfit predict` (its features)."""
    result = predict(checkpoint, [manifest], out=work / f"{head}-predictions.json", split="val", progress=False)
    assert result.metrics is not None and result.metrics.segmentation is not None
    found = result.metrics.segmentation
    detection = result.metrics.detection
    return {"frame_acc": found.frame_accuracy, **dict(zip(("f1@10", "f1@25", "f1@50"), found.f1, strict=True)),
            "edit": found.edit, "mAP": None if detection is None else detection.average_map}  # fmt: skip


def compare(
    manifest: Path, work: Path, sizes: Sizes, *, background: str, heads: tuple[str, ...] = ("mstcn", "actionformer")
) -> dict[str, dict[str, Any]]:
    """Trains the clip model, extracts its features, trains both temporal heads; the figures of each."""
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    clip = fit(config_from_dict(action_config(manifest, work, epochs=sizes.action_epochs, background=background)))
    assert clip.best_checkpoint is not None
    rows["action (clip, per-frame head)"] = clip_figures(clip.best_checkpoint, manifest, work, background=background)
    rows["action (clip, per-frame head)"]["seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    features = work / "features"
    extract([manifest], out=features, checkpoint=clip.best_checkpoint, window=16, stride=4, progress=False)
    extract_seconds = time.perf_counter() - started
    for head in heads:
        started = time.perf_counter()
        document = temporal_config(manifest, features, work, head=head, epochs=sizes.temporal_epochs,
                                   background=background)  # fmt: skip
        run = fit(config_from_dict(document))
        assert run.best_checkpoint is not None
        rows[f"temporal ({head})"] = temporal_figures(run.best_checkpoint, manifest, work, head)
        rows[f"temporal ({head})"]["seconds"] = time.perf_counter() - started + extract_seconds
    return rows


def _table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    names = ("frame_acc", "f1@10", "f1@25", "f1@50", "edit", "mAP")
    lines = [f"\n{title}\n", "| model | " + " | ".join(names) + " | seconds |", "|---" * (len(names) + 2) + "|"]
    for model, figures in rows.items():
        cells = ["-" if figures[n] is None else f"{figures[n]:.3f}" for n in names]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {figures['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 videos, 48-frame gaps")
    parser.add_argument("--test", action="store_true", help="the test's size: 12 videos, 40-frame gaps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the CPU is shared)")
    parser.add_argument("--demo", action="store_true", help="also on the demo's data (no long context needed)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    parser.add_argument("--heads", nargs="+", default=["mstcn", "actionformer"], choices=("mstcn", "actionformer"))
    parser.add_argument("--seed", type=int, default=0, help="seeds the generated videos")
    parser.add_argument("--work", type=Path, help="keep the data and runs in this folder (default: a temporary one)")
    args = parser.parse_args()
    sizes = TEST if args.test else QUICK if args.quick else FULL
    sizes = replace(sizes, spec=replace(sizes.spec, seed=args.seed))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict[str, Any] = {"spec": vars(sizes.spec) | {"size": list(sizes.spec.size)}}
    with tempfile.TemporaryDirectory(prefix="vidfit-context-") as folder:
        work = args.work or Path(folder)
        manifest = make_context_dataset(work / "context", sizes.spec)
        results["context"] = compare(manifest, work / "context-runs", sizes, background="background",
                                     heads=tuple(args.heads))  # fmt: skip
        print(_table(f"context (cue {sizes.spec.gap_frames} frames before the action)", results["context"]))
        if args.demo:
            demo = make_demo_dataset(work / "demo", num_videos_per_class=sizes.demo_videos_per_class, views=("front",))
            results["demo"] = compare(demo.manifest_path, work / "demo-runs", sizes, background="idle",
                                      heads=tuple(args.heads))  # fmt: skip
            print(_table("demo (one action after a short idle)", results["demo"]))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
