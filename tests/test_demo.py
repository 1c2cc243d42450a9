"""`vidfit demo`: the whole pipeline on generated data, shrunk to seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vidfit.cli import main
from vidfit.data import load_manifest


def test_demo_trains_validates_and_predicts_the_validation_videos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["demo", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "runs"), "--epochs", "1",
         "--videos-per-class", "2", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "validation accuracy:" in out
    run_dir = tmp_path / "runs" / "demo" / "version_0"
    assert (run_dir / "config.yaml").is_file() and list((run_dir / "checkpoints").glob("*.ckpt"))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["augment"]["enabled"] is True
    val = [v.id for v in load_manifest(tmp_path / "data" / "manifest.yaml").videos if v.split == "val"]
    assert sorted(json.loads((run_dir / "predictions.json").read_text())["results"]) == val
