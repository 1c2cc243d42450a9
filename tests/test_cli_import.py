"""The command line's `import` and the stream view of `info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.test_import_formats import kinetics
from tests.data.test_import_segments import epic_kitchens
from tests.data.test_import_splits import ucf101
from tests.data.test_importers import thumos14
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


def test_import_kinetics_prints_one_summary_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos, csvs = kinetics(tmp_path)
    out = tmp_path / "k400.yaml"
    assert main(["import", "kinetics", *map(str, csvs), "--video-dir", str(videos), "--out", str(out)]) == 0
    report = tmp_path / "k400.skipped.csv"
    assert capsys.readouterr().out.splitlines() == [
        f"kinetics: 5 videos, 3 labels, 2 skipped (missing files), see {report}",
        f"manifest: {out}",
    ]
    assert len(load_manifest(out).videos) == 5 and len(report.read_text().splitlines()) == 3
    argv = ["import", "kinetics", *map(str, csvs), "--video-dir", str(videos), "--out", str(tmp_path / "strict.yaml")]
    assert main([*argv, "--missing", "error"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 problem(s) in the dataset:") and "train.csv: line 4: no video file found" in err
    assert "validate.csv: line 3: no video file found" in err and not (tmp_path / "strict.yaml").exists()


def test_import_errors_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    videos, csvs = kinetics(tmp_path)
    csvs[2].write_text("youtube_id,time_start,time_end,split\n--65_UAU7ao,0,nan,test\n", encoding="utf-8")
    out = tmp_path / "k.yaml"
    assert main(["import", "kinetics", *map(str, csvs), "--video-dir", str(videos), "--out", str(out)]) == 2
    assert "test.csv: line 2: time_start/time_end: 'nan' is not a finite time" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "k.skipped.csv").exists()
    assert main(["import", "kinetics", str(csvs[0]), "--video-dir", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "none of the 4 video(s) the annotations list was found" in capsys.readouterr().err
    assert main(["import", "kinetics", str(csvs[0]), "--video-dir", str(videos), "--out", "m.txt"]) == 2
    assert capsys.readouterr().err == "error: --out m.txt: the manifest must be a .yaml, .yml or .json file\n"
    assert main(["import", "kinetics", str(tmp_path / "gone.csv"), "--video-dir", str(videos), "--out", str(out)]) == 2
    assert f"{tmp_path / 'gone.csv'}: file: no such file" in capsys.readouterr().err


def test_import_epic_kitchens_with_a_column_map_and_one_based_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csvs, videos = epic_kitchens(tmp_path)
    out = tmp_path / "epic.json"
    columns = "video=video_id,start=start_frame,stop=stop_frame,label=verb"
    argv = ["import", "segments", *map(str, csvs), "--video-dir", str(videos), "--columns", columns,
            "--frames", "one-based-inclusive", "--overlap", "keep", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("segments: 2 videos, 4 labels, 1 skipped (missing files), see ")
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["multi_label"] is True
    assert document["videos"][0]["timeline"] == {"unit": "frames", "segments": [
        {"start": 1, "end": 14, "label": "open"}, {"start": 15, "end": 34, "label": "put-in"},
        {"start": 28, "end": 49, "label": "close"},
    ]}  # fmt: skip
    with pytest.raises(SystemExit, match="2"):
        main([*argv[:6], "--columns", "video", "--out", str(out)])
    assert "argument --columns: 'video' is not FIELD=COLUMN,..." in capsys.readouterr().err


def test_import_thumos14_and_ucf101_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders, videos = thumos14(tmp_path)
    out = tmp_path / "thumos.yaml"
    argv = ["import", "thumos14", *map(str, folders), "--video-dir", str(videos), "--out", str(out)]
    assert main([*argv, "--overlap", "longest", "--no-background"]) == 0
    assert (
        "thumos14: 2 videos, 2 labels, 1 skipped (missing files), 1 segment clipped to their video's end"
        in capsys.readouterr().out
    )
    assert load_manifest(out).labels == ("BaseballPitch", "Diving")
    ucf_videos, lists = ucf101(tmp_path)
    argv = ["import", "ucf101", str(ucf_videos), "--splits", str(lists), "--fold", "2", "--out", str(out)]
    assert main(argv) == 0
    assert [(v.id, v.split) for v in load_manifest(out).videos] == [
        ("v_ApplyEyeMakeup_g01_c01", "train"),
        ("v_ApplyEyeMakeup_g08_c01", "test"),
    ]
