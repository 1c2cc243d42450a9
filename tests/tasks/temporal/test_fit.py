"""The two-stage recipe end to end on CPU: extract -> fit temporal -> validate -> predict, for both heads."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.apps.test_report import page_data
from vidfit._synthetic import make_demo_dataset
from vidfit.apps import extract, merge, predict
from vidfit.apps._report_data import read_predictions
from vidfit.apps._report_runs import decode_lane
from vidfit.cli import main
from vidfit.config import ConfigError, config_from_dict, load_config
from vidfit.data import load_manifest
from vidfit.models import build_classifier
from vidfit.train import fit, validate
from vidfit.train import test as run_test


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's videos (one view, 2 per class, 32 frames) and their features from a hand-made action checkpoint."""
    root = tmp_path_factory.mktemp("temporal")
    data = make_demo_dataset(root / "data", num_videos_per_class=3, num_frames=32, size=(16, 16), views=("front",))
    config = load_config(None, [f"data.manifest={data.manifest_path}", "model.backbone=tiny"])
    torch.manual_seed(0)
    classifier = build_classifier(backbone="tiny", num_classes=4, views=("front",))
    hyper = {"config": config.to_dict(), "label_names": list(data.labels), "views": ["front"]}
    weights = {f"model.{k}": v for k, v in classifier.state_dict().items()}
    torch.save({"hyper_parameters": hyper, "state_dict": weights}, root / "action.ckpt")
    result = extract([data.manifest_path], out=root / "features", checkpoint=root / "action.ckpt", window=8, stride=4,
                     progress=False)  # fmt: skip
    assert result.failures == {}
    return data.manifest_path, root / "features"


def _config(features: tuple[Path, Path], tmp_path: Path, head: str, **changes: Any) -> dict[str, Any]:
    manifest, folder = features
    document = {
        "experiment": {"task": "temporal", "output_dir": str(tmp_path / "runs"), "name": head},
        "model": {"head": head, "channels": 8, "num_stages": 2, "num_layers": 3, "num_levels": 2, "background": "idle"},
        "data": {"manifest": str(manifest), "features": str(folder), "batch_size": 2},
        "trainer": {"max_epochs": 2, "enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 1},
    }
    for key, value in changes.items():
        section, name = key.split(".")
        document[section][name] = value
    return document


@pytest.mark.slow  # fit, validate and predict: 5 to 8 s on 2 cores
@pytest.mark.parametrize("head", ["mstcn", "actionformer"])
def test_fit_validate_predict(features: tuple[Path, Path], tmp_path: Path, head: str) -> None:
    config = config_from_dict(_config(features, tmp_path, head))
    run = fit(config)
    assert run.best_checkpoint is not None
    figures = validate(config, checkpoint=run.best_checkpoint)
    expected = {
        "val/loss",
        "val/frame_acc",
        "val/f1@10",
        "val/f1@25",
        "val/f1@50",
        "val/edit",
        "val/mAP",
        "val/mAP@0.5",
    }
    assert expected <= set(figures)
    assert all(0 <= figures[name] <= 1 for name in expected - {"val/loss"})
    # `test` scores its split as `validate` does (here the same videos).
    tested = run_test(config_from_dict(_config(features, tmp_path, head, **{"data.test_split": "val"})),
                      checkpoint=run.best_checkpoint)  # fmt: skip
    assert tested["test/f1@50"] == pytest.approx(figures["val/f1@50"]) and tested["test/mAP"] == figures["val/mAP"]
    result = predict(run.best_checkpoint, [features[0]], out=tmp_path / "predictions.json", split="val",
                     progress=False)  # fmt: skip
    assert result.failures == {} and result.metrics is not None and result.metrics.segmentation is not None
    # Predict scores the videos as validate does.
    assert result.metrics.segmentation.f1[2] == pytest.approx(figures["val/f1@50"], abs=1e-6)
    assert result.metrics.segmentation.frame_accuracy == pytest.approx(figures["val/frame_acc"], abs=1e-6)
    document = json.loads(result.json_path.read_text())
    videos = document["vidfit"]
    assert set(document["results"]) == set(videos) and len(videos) == 4
    for video_id, segments in document["results"].items():
        assert all(s["label"] != "idle" and s["segment"][0] <= s["segment"][1] for s in segments)
        assert videos[video_id]["frames"] == [0, 32] and videos[video_id]["head"] == head
    with result.csv_path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 * 32 and {row["label"] for row in rows} <= {"idle", "left", "right", "jump"}


@pytest.fixture(scope="module")
def checkpoint(features: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MS-TCN after one epoch."""
    config = config_from_dict(_config(features, tmp_path_factory.mktemp("mstcn"), "mstcn", **{"trainer.max_epochs": 1}))
    result = fit(config).best_checkpoint
    assert result is not None
    return result


def test_predicted_shards_merge(features: tuple[Path, Path], checkpoint: Path, tmp_path: Path) -> None:
    whole = predict(checkpoint, [features[0]], out=tmp_path / "all.json", progress=False)
    for index in range(2):
        predict(checkpoint, [features[0]], out=tmp_path / "merged.json", shard=f"{index}/2", progress=False)
    merged = merge(tmp_path / "merged.json")
    assert (tmp_path / "merged.csv").read_bytes() == whole.csv_path.read_bytes()
    assert json.loads((tmp_path / "merged.json").read_text()) == json.loads(whole.json_path.read_text())
    # The figures of the shards' records, scored together, are those of the whole run.
    assert whole.metrics is not None and whole.metrics.segmentation is not None and merged.metrics is not None
    assert merged.metrics.frame_accuracy == pytest.approx(whole.metrics.segmentation.frame_accuracy)
    assert whole.metrics.detection is not None and merged.metrics.detection is not None
    assert merged.metrics.detection.average_map == pytest.approx(whole.metrics.detection.average_map)


def test_predict_writes_the_report_of_true_and_predicted_segments(
    features: tuple[Path, Path], checkpoint: Path, tmp_path: Path
) -> None:
    result = predict(checkpoint, [features[0]], out=tmp_path / "p.json", split="val", progress=False)
    page = tmp_path / "p.html"
    assert result.report_path == page and result.report_lines()[-1] == f"report: {page}"
    entries = {entry["id"]: entry for entry in page_data(page.read_text())["videos"]}
    manifest = {video.id: video for video in load_manifest(features[0]).videos if video.split == "val"}
    assert set(entries) == set(manifest) and set(entries) == set(result.results)
    names = read_predictions(result.json_path).label_names
    for video_id, video in manifest.items():
        assert video.timeline is not None and entries[video_id]["frames"] == [0, 32]
        true = [decode_lane(lane, origin=0) for lane in entries[video_id]["true"]]
        drawn = [(int(a), int(b), names[c]) for t in true for a, b, c in zip(t.starts, t.stops, t.labels, strict=True)]
        # The timeline's actions, the background ("idle") left out as the task scores them.
        assert drawn == [(int(s.start), int(s.end), s.label) for s in video.timeline.segments if s.label != "idle"]
        predicted = [decode_lane(lane, origin=0) for lane in entries[video_id]["pred"]]
        runs = sorted((int(a), int(b)) for lane in predicted for a, b in zip(lane.starts, lane.stops, strict=True))
        assert runs == sorted((s.start_frame, s.stop_frame) for s in result.results[video_id].segments)
        assert 0 <= entries[video_id]["error"] <= 1  # scored: the worst-first order has its frames
    assert any(entry["true"] for entry in entries.values()) and any(entry["pred"] for entry in entries.values())


def test_a_model_reads_only_features_made_as_those_it_learnt_on(
    features: tuple[Path, Path], checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    ckpt = yaml.safe_load((features[1] / "features.yaml").read_text())["checkpoint"]
    extract([features[0]], out=other, checkpoint=ckpt, window=8, stride=2, split="val", progress=False)
    args = ["predict", str(features[0]), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p.json")]
    assert main([*args, "--option", f"features={other}"]) == 2
    assert "stride: 4 vs 2" in capsys.readouterr().err


def test_the_config_is_checked_before_any_run(features: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.features must name the feature folder"):
        config_from_dict(_config(features, tmp_path, "mstcn", **{"data.features": ""}))
    with pytest.raises(ConfigError, match=r"model\.head='tcn' is not one of 'mstcn', 'actionformer'"):
        config_from_dict(_config(features, tmp_path, "tcn"))
    partial = tmp_path / "partial"
    extract([features[0]], out=partial, checkpoint=yaml.safe_load((features[1] / "features.yaml").read_text())[
        "checkpoint"], window=8, stride=4, split="val", progress=False)  # fmt: skip
    config = config_from_dict(_config(features, tmp_path, "mstcn", **{"data.features": str(partial)}))
    with pytest.raises(ConfigError, match=r"has no features of 4 videos of split .train.*run vidfit extract"):
        fit(config)
    assert not (tmp_path / "runs").exists()  # refused before any run folder
