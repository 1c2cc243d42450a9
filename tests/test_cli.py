"""The command line: `vidfit info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MakeVideo
from vidfit.cli import main


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
    good, _ = make_video("good.mkv", num_frames=5)
    assert main(["info", str(good), str(tmp_path / "gone.mp4")]) == 1
    captured = capsys.readouterr()
    assert "good.mkv" in captured.out and "h264" in captured.out
    assert "gone.mp4" in captured.err
