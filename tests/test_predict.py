"""`vidfit predict`: manifests, files and folders through a checkpoint, keypoints, failures per video."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
from vidfit.cli import main
from vidfit.data import load_manifest, save_manifest
from vidfit.predict import predict
from vidfit.train import ConfigError, fit, load_config


def test_manifest_videos_are_predicted_and_scored_against_their_timelines(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    result = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "out" / "p.json", progress=False)
    ids = [entry.id for entry in load_manifest(tiny_manifest).videos]
    assert sorted(result.predictions) == ids and result.failures == {}
    document = json.loads(result.json_path.read_text())
    assert sorted(document["results"]) == ids
    assert {"label", "scores", "chunk_infer_size", "num_windows"} <= set(document["vidfit"]["vid_000"])
    rows = list(csv.DictReader(result.csv_path.open()))
    assert result.csv_path == tmp_path / "out" / "p.csv"
    assert len(rows) == 16 * len(ids) and rows[0]["video_id"] == "vid_000"
    assert result.frame_accuracy is not None and 0.0 <= result.frame_accuracy <= 1.0
    assert result.segment_f1 is not None and 0.0 <= result.segment_f1 <= 1.0


def test_split_and_overrides_select_videos_and_windows(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    val = [entry.id for entry in load_manifest(tiny_manifest).videos if entry.split == "val"]
    overrides = ["train.chunk_infer_size=8", "train.chunk_overlap=4"]
    result = predict(
        tiny_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", overrides=overrides, progress=False
    )
    assert sorted(result.predictions) == val
    assert all(len(p.windows) == 3 and len(p.frame_logits) == 16 for p in result.predictions.values())
    with pytest.raises(ConfigError, match=r"train\.chunk_infer_sise"):
        predict(tiny_checkpoint, [tiny_manifest], overrides=["train.chunk_infer_sise=8"], progress=False)


def test_an_unreadable_video_fails_alone(tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_manifest.parent, tmp_path / "data")
    manifest = load_manifest(copy / tiny_manifest.name)
    garbage = copy / "vid_000" / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    broken = dataclasses.replace(manifest.videos[0], views={**manifest.videos[0].views, "left": garbage})
    path = save_manifest(dataclasses.replace(manifest, videos=(broken, *manifest.videos[1:])), copy / "m.yaml")
    result = predict(tiny_checkpoint, [path], out=tmp_path / "p.json", progress=False)
    assert list(result.failures) == ["vid_000"] and "garbage.mp4" in result.failures["vid_000"]
    assert len(result.predictions) == len(manifest.videos) - 1


def test_a_multi_view_model_refuses_single_files_with_exit_code_1(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = load_manifest(tiny_manifest).videos[0].views["front"]
    code = main(["predict", str(video), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "p.json")])
    assert code == 1
    assert "give a manifest that names each view's file" in capsys.readouterr().err
    assert json.loads((tmp_path / "p.json").read_text())["results"] == {}


def test_a_single_view_model_predicts_files_and_folders(tiny_manifest: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path / "runs", "data.views=[front]"))
    checkpoint = fit(config).last_checkpoint
    assert checkpoint is not None
    first = load_manifest(tiny_manifest).videos[0].views["front"]
    result = predict(checkpoint, [first.parent, first], out=tmp_path / "p.json", progress=False)
    assert sorted(result.predictions) == sorted(["front", "left", str(first)])
    assert result.frame_accuracy is None and result.failures == {}


def test_a_keypoint_model_reads_each_videos_keypoints(tiny_manifest: Path, tmp_path: Path) -> None:
    extra = ("model.input_type=rgb_kpt", "model.num_keypoints=5", "model.keypoint_dims=2", "data.load_kpt=true")
    checkpoint = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path / "runs", *extra))).last_checkpoint
    assert checkpoint is not None
    with_keypoints = predict(checkpoint, [tiny_manifest], out=tmp_path / "a.json", split="val", progress=False)
    assert with_keypoints.failures == {} and len(with_keypoints.predictions) == 4
    without = predict(checkpoint, [tiny_manifest.parent / "manifest.yaml"], out=tmp_path / "b.json", progress=False)
    assert not without.predictions
    assert all("model.input_type='rgb_kpt'" in reason for reason in without.failures.values())
