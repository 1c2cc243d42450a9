"""The command line: info, fit, validate, test and prepare (predict and demo have their own files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MakeVideo, tiny_overrides
from vidfit.cli import main
from vidfit.config import load_config, save_config
from vidfit.data import load_manifest
from vidfit.io import probe


def test_info_prints_json_for_each_video(make_video: MakeVideo, capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = make_video("a.mkv", num_frames=12)
    second, _ = make_video("b.mkv", num_frames=7, fps=10.0)
    assert main(["info", "--json", str(first), str(second)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["num_frames"]) for r in records] == [(str(first), 12), (str(second), 7)]
    assert records[1]["fps"] == pytest.approx(10.0, rel=1e-3)


def test_info_table_and_failures(
    make_video: MakeVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    good, _ = make_video("good[bold].mkv", num_frames=5)
    assert main(["info", str(good), str(tmp_path / "gone[red].mp4")]) == 2
    captured = capsys.readouterr()
    # Brackets in paths are printed as they are, not read as rich markup.
    assert "good[bold].mkv" in captured.out and "h264" in captured.out
    assert "gone[red].mp4" in captured.err


def test_fit_then_validate_and_test_from_a_config_file(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = save_config(load_config(None, tiny_overrides(tiny_manifest, tmp_path)), tmp_path / "config.yaml")
    assert main(["fit", "--config", str(config), "--set", "train.lr=0.01"]) == 0
    checkpoint = Path(capsys.readouterr().out.split("best checkpoint: ")[1].split(" (")[0])
    assert checkpoint.is_file()
    assert main(["validate", "--config", str(config), "--checkpoint", str(checkpoint)]) == 0
    assert "val/acc" in json.loads(capsys.readouterr().out)
    # Two videos per class leave none for testing: the split is named rather than an empty result.
    assert main(["test", "--config", str(config), "--checkpoint", str(checkpoint)]) == 2
    assert (
        "data.test_split='test' has no videos; the manifest's splits: {'train': 4, 'val': 4}" in capsys.readouterr().err
    )
    assert main(["test", "--config", str(config), "--checkpoint", str(checkpoint), "--set", "data.test_split=val"]) == 0
    assert "test/acc" in json.loads(capsys.readouterr().out)


def test_a_bad_config_key_exits_2_naming_it(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = save_config(load_config(None, tiny_overrides(tiny_manifest, tmp_path)), tmp_path / "config.yaml")
    assert main(["fit", "--config", str(config), "--set", "train.learning_rate=0.1"]) == 2
    assert "train.learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "vidfit").exists()


def test_prepare_writes_a_manifest_of_transcoded_videos(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "prepared"
    assert main(["prepare", str(tiny_manifest), "--size", "16", "16", "--gop", "4", "--out", str(out)]) == 0
    prepared = load_manifest(Path(capsys.readouterr().out.split("prepared manifest: ")[1].strip()))
    first = next(iter(prepared.videos[0].views.values()))
    assert first.is_relative_to(out) and (probe(first).height, probe(first).width) == (16, 16)
