"""`predict` on Ray actors and in shards: the JSON and CSV of the local engine, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidfit.apps import merge, predict
from vidfit.cli import main


def test_predict_on_ray_writes_the_local_engines_json_and_csv(
    ray_cluster: Any, tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    local = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "local.json", progress=False)
    on_ray = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "ray.json", engine="ray", progress=False)
    assert on_ray.failures == local.failures == {} and list(on_ray.predictions) == list(local.predictions)
    assert on_ray.json_path.read_bytes() == local.json_path.read_bytes()
    assert on_ray.csv_path.read_bytes() == local.csv_path.read_bytes()


def test_shards_merge_into_the_unsharded_predictions(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "whole.json", progress=False)
    out = tmp_path / "sharded" / "p.json"
    first = predict(tiny_checkpoint, [tiny_manifest], out=out, shard="0/2", progress=False)
    assert first.json_path.name == "p.shard-0-of-2.json" and sorted(first.predictions) == [
        f"vid_00{i}" for i in (0, 2, 4, 6)
    ]
    with pytest.raises(ValueError, match=r"p\.json: shards 1/2 have not finished \(no record\)"):
        merge(out)
    arguments = ["predict", str(tiny_manifest), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert main([*arguments, "--shard", "1/2"]) == 0
    assert main(["merge", str(out)]) == 0
    assert "2 shards, 8 videos" in capsys.readouterr().out
    assert out.read_bytes() == whole.json_path.read_bytes()
    assert out.with_suffix(".csv").read_bytes() == whole.csv_path.read_bytes()
    assert main([*arguments, "--shard", "0/3"]) == 0  # a rerun split another way beside the first
    assert main(["merge", str(out)]) == 2
    assert "shards of runs split [2, 3] ways lie side by side" in capsys.readouterr().err


def test_the_ray_options_are_checked_before_any_work(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["predict", str(tmp_path), "--checkpoint", str(tiny_checkpoint), "--ray-address", "auto"]
    assert main(arguments) == 2
    assert capsys.readouterr().err.strip() == "error: ray_address='auto' needs engine='ray' (engine='local')"
    assert main(["predict", str(tmp_path), "--checkpoint", str(tiny_checkpoint), "--shard", "3/3"]) == 2
    assert capsys.readouterr().err.strip() == "error: shard 3/3 must be i/N with N >= 1 and 0 <= i < N"
