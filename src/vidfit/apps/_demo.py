"""`vidfit demo`: makes the synthetic multi-view dataset, trains the tiny model on it, predicts, reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidfit._synthetic import make_demo_dataset
from vidfit.apps._predict import predict
from vidfit.config import config_from_dict
from vidfit.tasks.action import PredictResult
from vidfit.train import fit, validate

# Tuned on the 2-core CI machine: about two and a half minutes of training, with validation
# accuracy well above 80% (see docs/BENCHMARKS.md for the measured run).
DEMO_VIDEOS_PER_CLASS = 32
DEMO_EPOCHS = 20


@dataclass(frozen=True)
class DemoResult:
    """What the demo made.

    Attributes:
        manifest: The generated dataset's manifest.
        run_dir: The training run (config, checkpoints, TensorBoard and CSV logs).
        checkpoint: The best checkpoint.
        val_accuracy: Video-level accuracy on the validation split.
        val_frame_accuracy: Per-frame accuracy on the validation split.
        predictions: `vidfit predict` on the validation videos; its ``report_path`` is the HTML report of the run
            and its predictions (``predictions.html`` in the run folder).
    """

    manifest: Path
    run_dir: Path
    checkpoint: Path
    val_accuracy: float
    val_frame_accuracy: float
    predictions: PredictResult


def demo_config(manifest: Path, *, output_dir: str | os.PathLike[str], max_epochs: int, seed: int) -> dict:
    """The demo's config as plain data: the tiny backbone, two views fused late, 16-frame clips, augmented."""
    return {
        "experiment": {"name": "demo", "output_dir": str(output_dir), "seed": seed},
        "model": {"backbone": "tiny", "view_fusion": "late", "dropout": 0.2},
        "data": {
            "manifest": str(manifest), "batch_size": 16, "num_workers": 2, "num_frames": 16,
            "sampling": "consecutive", "frame_stride": 2,
            # The standard recipe without flips: a mirrored "left" clip is a "right" one.
            "augment": {"enabled": True, "flip_probability": 0.0},
        },
        "train": {
            "lr": 0.004, "weight_decay": 0.01, "scheduler": "cosine", "chunk_infer_size": 16, "chunk_overlap": 8,
        },
        "trainer": {"max_epochs": max_epochs, "log_every_n_steps": 5},
    }  # fmt: skip


def run_demo(
    *,
    data_dir: str | os.PathLike[str] = "data/demo",
    output_dir: str | os.PathLike[str] = "runs",
    max_epochs: int = DEMO_EPOCHS,
    videos_per_class: int = DEMO_VIDEOS_PER_CLASS,
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Runs the whole pipeline on generated data; on a GPU it trains there.

    Args:
        data_dir: Where the demo videos are written (reused when they are already there).
        output_dir: Where training runs go.
        max_epochs: Training epochs.
        videos_per_class: Generated videos per action class.
        seed: Seeds the data generator and training.
        progress: Show progress bars.
    """
    dataset = make_demo_dataset(data_dir, num_videos_per_class=videos_per_class, seed=seed)
    document = demo_config(dataset.manifest_path, output_dir=output_dir, max_epochs=max_epochs, seed=seed)
    document["trainer"]["enable_progress_bar"] = progress
    config = config_from_dict(document, source="vidfit demo")
    result = fit(config)
    if result.best_checkpoint is None:
        raise RuntimeError(f"{result.run_dir}: training saved no checkpoint")
    scores = validate(config, checkpoint=result.best_checkpoint)
    predictions = predict(
        result.best_checkpoint,
        [dataset.manifest_path],
        out=result.run_dir / "predictions.json",
        split="val",
        progress=progress,
    )
    return DemoResult(
        dataset.manifest_path,
        result.run_dir,
        result.best_checkpoint,
        scores["val/acc"],
        scores["val/frame_acc"],
        predictions,
    )
