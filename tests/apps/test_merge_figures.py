"""`vidfit merge` prints the figures of the videos of all the shards it joins, as one unsharded run reports them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfit.apps import merge, predict
from vidfit.cli import main


def test_merge_prints_the_combined_figures_of_its_shards(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = predict(tiny_checkpoint, [tiny_manifest], out=tmp_path / "whole.json", progress=False)
    assert whole.metrics is not None and whole.metrics.num_videos == 8
    out = tmp_path / "sharded" / "p.json"
    shards = [predict(tiny_checkpoint, [tiny_manifest], out=out, shard=f"{i}/2", progress=False) for i in range(2)]
    assert [s.metrics.num_videos for s in shards if s.metrics is not None] == [4, 4]
    merged = merge(out)
    assert merged.metrics == whole.metrics  # every video once, scored together
    capsys.readouterr()
    assert main(["merge", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()

    def figures(lines: list[str]) -> list[str]:
        return [line for line in lines if line.startswith(("videos:", "frames:", "detection mAP"))]

    assert figures(printed) == figures(whole.report_lines()) and len(figures(printed)) == 3
