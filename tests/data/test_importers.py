"""Importers: each format to a manifest that loads back, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfit.data import (
    ManifestError,
    import_hmdb51,
    import_kinetics,
    import_multiview,
    import_segments,
    import_thumos14,
    import_ucf101,
    load_manifest,
    save_manifest,
)


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # importers check the file exists; they do not decode it


def round_trip(manifest: object, tmp_path: Path) -> object:
    return load_manifest(save_manifest(manifest, tmp_path / "out" / "manifest.yaml"))  # type: ignore[arg-type]


def test_kinetics_csv(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    touch(videos / "abseiling" / "aaa_000010_000020.mp4", videos / "zumba_x_000000_000010.mkv")
    csv = tmp_path / "k.csv"
    csv.write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,aaa,10,20,train\nzumba,zumba_x,0,10,validate\n"
    )
    manifest = import_kinetics(csv, video_dir=videos)
    assert manifest.labels == ("abseiling", "zumba")
    assert [(v.id, v.label, v.split, v.views["front"].name) for v in manifest.videos] == [
        ("aaa_000010_000020", "abseiling", "train", "aaa_000010_000020.mp4"),
        ("zumba_x_000000_000010", "zumba", "val", "zumba_x_000000_000010.mkv"),
    ]
    assert round_trip(manifest, tmp_path).videos[1].split == "val"  # type: ignore[attr-defined]


def test_kinetics_reports_every_problem(tmp_path: Path) -> None:
    csv = tmp_path / "k.csv"
    csv.write_text("label,youtube_id,time_start,time_end,split\na,x,ten,20,train\na,y,0,10,train\na,y,0,10,train\n")
    with pytest.raises(ManifestError, match="3 problem") as caught:
        import_kinetics(csv, video_dir=tmp_path)
    text = str(caught.value)
    assert "line 2: time_start: must be a number, got 'ten'" in text
    assert "views.front: no such video file" in text and "listed more than once" in text
    (tmp_path / "bad.csv").write_text("label,video\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['youtube_id', 'time_start', 'time_end', 'split'\]"):
        import_kinetics(tmp_path / "bad.csv", video_dir=tmp_path)


def test_ucf101_folder_and_split_lists(tmp_path: Path) -> None:
    root = tmp_path / "UCF-101"
    touch(root / "ApplyLipstick" / "v_ApplyLipstick_g01_c01.avi", root / "Biking" / "v_Biking_g02_c01.avi")
    train, test = tmp_path / "trainlist01.txt", tmp_path / "testlist01.txt"
    train.write_text("ApplyLipstick/v_ApplyLipstick_g01_c01.avi 1\n")
    test.write_text("Biking/v_Biking_g02_c01.avi\n\n")
    manifest = import_ucf101(root, split_files=[train, test])
    assert manifest.labels == ("ApplyLipstick", "Biking")
    assert [(v.id, v.label, v.split) for v in manifest.videos] == [
        ("v_ApplyLipstick_g01_c01", "ApplyLipstick", "train"),
        ("v_Biking_g02_c01", "Biking", "test"),
    ]
    (tmp_path / "classInd.txt").write_text("Biking/missing.avi\nnot a path\n")
    with pytest.raises(ManifestError, match="must start with 'trainlist' or 'testlist'"):
        import_ucf101(root, split_files=[tmp_path / "classInd.txt"])


def test_hmdb51_split_codes(tmp_path: Path) -> None:
    root = tmp_path / "hmdb51"
    touch(root / "brush_hair" / "a.avi", root / "brush_hair" / "b.avi", root / "brush_hair" / "c.avi")
    split = tmp_path / "brush_hair_test_split1.txt"
    split.write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    manifest = import_hmdb51(root, split_files=[split])
    assert [(v.id, v.split, v.label) for v in manifest.videos] == [
        ("a", "train", "brush_hair"),
        ("b", "test", "brush_hair"),
    ]
    split.write_text("a.avi 3\nmissing.avi 1\n")
    with pytest.raises(ManifestError, match="2 problem") as caught:
        import_hmdb51(root, split_files=[split])
    assert "need '<video> <0|1|2>', got 'a.avi 3'" in str(caught.value)


SEGMENTS = "video,start,stop,label,extra\nv1,0,4,walk,x\nv1,3,10,run,x\nv1,10,12,walk,x\nv2,1,2,run,x\n"


@pytest.mark.parametrize(
    ("overlap", "kept"),
    [("first", [(0, 4, "walk"), (10, 12, "walk")]), ("longest", [(3, 10, "run"), (10, 12, "walk")])],
)
def test_segment_csv_overlap_policies(tmp_path: Path, overlap: str, kept: list[tuple[float, float, str]]) -> None:
    touch(tmp_path / "v1.mp4", tmp_path / "v2.mp4")
    (tmp_path / "s.csv").write_text(SEGMENTS)
    manifest = import_segments(tmp_path / "s.csv", video_dir=tmp_path, unit="frames", overlap=overlap)  # type: ignore[arg-type]
    timeline = manifest.videos[0].timeline
    assert timeline is not None and timeline.unit == "frames"
    assert [(s.start, s.end, s.label) for s in timeline.segments] == kept
    assert manifest.labels == ("run", "walk")
    assert round_trip(manifest, tmp_path).videos[0].timeline == timeline  # type: ignore[attr-defined]


def test_segment_csv_reports_overlaps_and_bad_rows_together(tmp_path: Path) -> None:
    touch(tmp_path / "v1.mp4")
    (tmp_path / "s.csv").write_text(SEGMENTS + "v1,5,5,walk,x\n")
    with pytest.raises(ManifestError, match="3 problem") as caught:
        import_segments(tmp_path / "s.csv", video_dir=tmp_path)
    text = str(caught.value)
    assert "[3, 10) 'run' overlaps [0, 4) 'walk'; choose overlap='first' or 'longest'" in text
    assert "need 0 <= start < stop, got [5, 5)" in text and "video 'v2'" in text
    with pytest.raises(ValueError, match="overlap='last' is not one of 'error', 'first', 'longest'"):
        import_segments(tmp_path / "s.csv", video_dir=tmp_path, overlap="last")  # type: ignore[arg-type]


def test_thumos14_annotations(tmp_path: Path) -> None:
    notes = tmp_path / "annotation"
    notes.mkdir()
    (notes / "Diving_val.txt").write_text("video_validation_1 10.0 20.0\n")
    (notes / "CliffDiving_val.txt").write_text("video_validation_1 12.5 15.0\nvideo_validation_2 1 2\n")
    (notes / "Ambiguous_val.txt").write_text("video_validation_1 30 31\n")
    touch(tmp_path / "v" / "video_validation_1.mp4", tmp_path / "v" / "video_validation_2.mp4")
    with pytest.raises(ManifestError, match="overlaps"):
        import_thumos14(notes, video_dir=tmp_path / "v")
    manifest = import_thumos14(notes, video_dir=tmp_path / "v", overlap="longest")
    assert manifest.labels == ("CliffDiving", "Diving")
    first = manifest.videos[0]
    assert first.split == "val" and first.timeline is not None
    assert [(s.start, s.end, s.label) for s in first.timeline.segments] == [(10.0, 20.0, "Diving")]


def test_multiview_folders(tmp_path: Path) -> None:
    touch(tmp_path / "r1" / "front.mp4", tmp_path / "r1" / "left.mp4", tmp_path / "r2" / "front.mp4")
    touch(tmp_path / "r2" / "left.mkv", tmp_path / "r2" / "notes.txt")
    manifest = import_multiview(tmp_path, views=["left", "front"], split="train")
    assert [list(v.views) for v in manifest.videos] == [["left", "front"], ["left", "front"]]
    assert manifest.videos[1].views["left"].name == "left.mkv"
    touch(tmp_path / "r3" / "front.mp4")
    with pytest.raises(ManifestError, match=r"video 'r3'.*lacks view\(s\) \['left'\]"):
        import_multiview(tmp_path)
