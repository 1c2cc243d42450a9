"""Evaluation scores whole videos as `predict` does: the same figures, with chunked training data or without."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.config import ConfigError, load_config
from vidfit.data import load_manifest, save_manifest
from vidfit.infer import VideoScore
from vidfit.tasks.action._evaluation import EvaluatedVideo, gather_videos, monitor_problem
from vidfit.train import fit, validate

# Windows of 4 frames over the 16-frame videos; enough steps that the frame head's predictions differ across frames.
TRAINED = ("train.chunk_infer_size=4", "trainer.max_steps=40", "trainer.max_epochs=50")


@pytest.fixture(scope="module")
def trained_checkpoint(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path_factory.mktemp("trained"), *TRAINED)))
    assert result.last_checkpoint is not None
    return result.last_checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("max_video_frames", ["null", "6"])
def test_validate_reports_what_predict_reports_with_and_without_chunking(
    tiny_manifest: Path, trained_checkpoint: Path, tmp_path: Path, max_video_frames: str
) -> None:
    # Training chunks of 6 frames used to be validated one by one, each in windows of its own: frame accuracy
    # then disagreed with predict's over the whole video (0.4375 against 0.406 on this checkpoint).
    extra = (*TRAINED, "trainer.limit_val_batches=1.0", f"data.max_video_frames={max_video_frames}")
    scores = validate(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)), checkpoint=trained_checkpoint)
    found = predict(trained_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", progress=False)
    # Logged figures are float32: equal to predict's up to that rounding.
    assert scores["val/frame_acc"] == pytest.approx(found.frame_accuracy, rel=1e-6)
    assert found.metrics is not None and found.metrics.num_videos == 4
    logged = {k: v for k, v in scores.items() if k not in ("val/loss", "val/acc")}
    assert logged == pytest.approx(found.metrics.logged("val"), rel=1e-6)
    assert scores["val/acc"] == scores["val/top1"] and "val/top5" not in scores  # 4 classes: no top-5
    assert {"val/f1@0.5", "val/mAP", "val/mAP@0.5", "val/mean_class_acc"} <= set(scores)


def _without(manifest: Path, folder: Path, field: str) -> Path:
    """A copy of `manifest` (same videos) without the videos' `field` (``timeline`` or ``label``)."""
    loaded = load_manifest(manifest)
    videos = tuple(dataclasses.replace(v, **{field: None}) for v in loaded.videos)  # type: ignore[arg-type]
    return save_manifest(dataclasses.replace(loaded, videos=videos, root=manifest.parent), folder / "manifest.yaml")


@pytest.mark.slow
def test_clip_labels_give_video_figures_and_no_frame_ones(tiny_manifest: Path, tmp_path: Path) -> None:
    clips = _without(tiny_manifest, tmp_path, "timeline")
    config = load_config(None, tiny_overrides(clips, tmp_path / "runs", "trainer.limit_val_batches=1.0"))
    result = fit(config)
    assert result.last_checkpoint is not None
    assert "val/frame_acc" not in result.metrics and "train/frame_acc" not in result.metrics
    assert torch.load(result.last_checkpoint, weights_only=True)["hyper_parameters"]["frame_head_trained"] is False
    scores = validate(config, checkpoint=result.last_checkpoint)
    assert set(scores) == {"val/loss", "val/acc", "val/top1", "val/mean_class_acc"}
    found = predict(result.last_checkpoint, [clips], out=tmp_path / "p.json", split="val", progress=False)
    assert found.metrics is not None
    logged = {k: v for k, v in scores.items() if k not in ("val/loss", "val/acc")}
    assert logged == pytest.approx(found.metrics.logged("val"), rel=1e-6)
    figures = [line for line in found.report_lines() if line.startswith(("videos:", "frames:", "detection"))]
    assert len(figures) == 1 and re.fullmatch(
        r"videos: top-1 \d\.\d{3} \(no top-5 with 4 classes < 5\), mean class accuracy \d\.\d{3} \(4 labelled videos\)",
        figures[0],
    )
    # The frame head was never trained: no segment and no per-frame label, the video's classes instead.
    results = json.loads(found.json_path.read_text())["results"]
    assert all(len(r) == 4 and all(set(item) == {"label", "score"} for item in r) for r in results.values())
    rows = list(csv.DictReader(found.csv_path.open()))
    assert [row["video_id"] for row in rows] == list(found.predictions) and set(rows[0]) == {
        "video_id",
        "label",
        "score",
    }


def test_a_monitor_the_data_cannot_give_is_refused_before_training(tiny_manifest: Path, tmp_path: Path) -> None:
    clips = _without(tiny_manifest, tmp_path, "timeline")
    for monitor, message in (
        ("val/frame_acc", "needs timelines in both the training split and data.val_split='val'"),
        ("val/top5", "needs at least 5 classes, the data has 4"),
    ):
        config = load_config(None, tiny_overrides(clips, tmp_path / "runs", f"train.monitor={monitor}"))
        with pytest.raises(ConfigError, match=re.escape(f"train.monitor={monitor!r} {message}")):
            fit(config)
    assert not (tmp_path / "runs").exists()
    assert monitor_problem(
        "val/acc", video_labels=False, frame_labels=True, num_classes=4, split_key="data.val_split='v'"
    )
    assert monitor_problem("val/mAP", video_labels=False, frame_labels=True, num_classes=4, split_key="x") is None
    assert monitor_problem("val/loss", video_labels=False, frame_labels=False, num_classes=2, split_key="x") is None


def test_gathered_videos_count_once_in_split_order() -> None:
    def evaluated(position: int, loss: float) -> EvaluatedVideo:
        return EvaluatedVideo(position, VideoScore(f"v{position}", 0, (1.0, 0.0), None), loss)

    # Rank 1's share repeats the first video to even out the shares (DistributedSampler's padding).
    assert [v.position for v in gather_videos([evaluated(2, 3.0), evaluated(0, 1.0), evaluated(0, 1.0)])] == [0, 2]
