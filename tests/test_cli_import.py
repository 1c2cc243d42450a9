"""The command line's `import` and the stream view of `info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.io.test_streams import write_two_stream_mp4
from vidfit.cli import main
from vidfit.data import load_manifest


def test_info_lists_every_stream_with_the_whole_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    video = write_two_stream_mp4(tmp_path / ("a_rather_long_recording_name_" * 3 + "end.mp4"))
    assert main(["info", str(video)]) == 0
    out = capsys.readouterr().out
    assert "1 (read)" in out and "320x180" in out and "480x270" in out
    first_column = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    assert first_column == str(video) * 2  # folded over lines, never cut: one row per stream
    assert main(["info", "--json", "--stream", "0", str(video)]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["stream_index"] == 0 and record["height"] == 180
    assert [s["width"] for s in record["streams"]] == [320, 480]


def test_import_segments_writes_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "v1.mp4").write_bytes(b"")
    (tmp_path / "s.csv").write_text("video,start,stop,label\nv1,0,2.5,walk\nv1,1,4,run\n")
    out = tmp_path / "m.yaml"
    argv = ["import", "segments", str(tmp_path / "s.csv"), "--video-dir", str(tmp_path), "--out", str(out)]
    assert main([*argv, "--overlap", "longest"]) == 0
    assert "1 videos, 1 labels" in capsys.readouterr().out
    timeline = load_manifest(out).videos[0].timeline
    assert timeline is not None and [(s.start, s.end, s.label) for s in timeline.segments] == [(1, 4, "run")]
    out.unlink()
    assert main(argv) == 2
    assert "error: 1 problem(s)" in capsys.readouterr().err and not out.exists()


def test_import_missing_annotations_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["import", "kinetics", str(tmp_path / "gone.csv"), "--video-dir", str(tmp_path), "--out", "m.yaml"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gone.csv" in err and len(err.splitlines()) == 1
