"""Annotation text as people have it: BOMs, CRLF, trailing spaces, other encodings, time formats, split names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import ManifestError, import_kinetics, import_thumos14
from vidfit.data._import_text import Problems, parse_seconds, read_csv, read_lines, split_from_name


def test_bom_crlf_and_trailing_spaces_are_read_as_plain_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "first line  \n\n  second\t\nthird", crlf=True, bom=True)
    problems = Problems()
    assert read_lines(path, problems) == [(1, "first line"), (3, "second"), (4, "third")]
    csv = write(tmp_path / "a.csv", 'name ,value\n"a, b", 1 \n\n"multi\nline",2\nlast,3\n', crlf=True, bom=True)
    header, rows = read_csv(csv, problems)
    assert header == ["name", "value"]
    assert rows == [(2, {"name": "a, b", "value": "1"}), (4, {"name": "multi\nline", "value": "2"}),
                    (6, {"name": "last", "value": "3"})]  # fmt: skip
    assert not problems.items


def test_bytes_that_are_not_utf8_are_one_error_naming_file_line_and_byte(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_bytes(b"label,youtube_id,time_start,time_end,split\ncaf\xe9,abc,0,10,train\n")
    with pytest.raises(ManifestError) as caught:
        import_kinetics(csv, video_dir=tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.field) == (csv, "line 2")
    assert problem.message.startswith("byte 0xe9 at column 4 is not UTF-8 text; save the file as UTF-8")


def test_missing_annotation_files_and_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"gone.csv: file: no such file"):
        import_kinetics(tmp_path / "gone.csv", video_dir=tmp_path)
    with pytest.raises(ManifestError, match=r"annotation: file: is not a folder: give THUMOS14's annotation folders"):
        import_thumos14(tmp_path / "annotation", video_dir=tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("12.5", 12.5), ("00:00:01.089", 1.089), ("00:01:02.50", 62.5), ("1:02", 62.0), ("1e1", 10.0), (".5", 0.5)],
)
def test_times_in_seconds_or_clock_notation(text: str, seconds: float) -> None:
    assert parse_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "reason"), [("nan", "not a finite"), ("-inf", "not a finite"), ("-0.5", "negative"),
                                              ("1:xx", "is not a time"), ("", "is not a time")])  # fmt: skip
def test_bad_times_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_seconds(text)


def test_split_names_from_file_names() -> None:
    names = ["EPIC_100_validation.csv", "Charades_v1_test.csv", "kinetics400_train_list_videos.txt", "train.csv",
             "validate.csv", "annotations.csv", "train_val.csv"]  # fmt: skip
    assert [split_from_name(Path(name)) for name in names] == ["val", "test", "train", "train", "val", None, None]


def test_the_same_video_listed_twice_names_both_places(tmp_path: Path) -> None:
    video(tmp_path / "videos" / "abc_000000_000010.mp4")
    write(tmp_path / "train.csv", "label,youtube_id,time_start,time_end,split\na,abc,0,10,train\na,abc,0,10,train\n")
    with pytest.raises(ManifestError) as caught:
        import_kinetics(tmp_path / "train.csv", video_dir=tmp_path / "videos")
    (problem,) = caught.value.problems
    assert problem.field == "line 3"
    assert (
        problem.message
        == f"lists video 'abc_000000_000010' again; it is first listed at {tmp_path / 'train.csv'}: line 2"
    )
