"""Kinetics CSVs, MMAction2 video lists, class-folder trees and multi-view folders in their real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import (
    ManifestError,
    VideoDataset,
    VideoDatasetConfig,
    import_kinetics,
    import_multiview,
    import_video_folders,
    import_video_list,
    load_manifest,
)

K400_TRAIN = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    '"air drumming",-3B32lodo2M,59,69,train,0\n'
    "abseiling,--GkrdYZ9Tc,0,10,train,0\n"
    "abseiling,-8C7GnyR0Tw,3,13,train,0\n"
    '"passing American football (in game)",0ARtgJX9d0c,1,3,train,0\n'
)
K400_VAL = (
    "label,youtube_id,time_start,time_end,split,is_cc\n"
    "air drumming,_dbcJuKJQNs,40,50,validate,0\nabseiling,xX0_missing,0,10,validate,1\n"
)
K400_TEST = "youtube_id,time_start,time_end,split\n--65_UAU7ao,0,10,test\n"


def kinetics(root: Path) -> tuple[Path, list[Path]]:
    """A Kinetics copy as people have one: class folders with spaces (the downloader's) in train, MMAction2's
    underscores in val, flat test clips, one untrimmed source video, missing clips; Excel's BOM and CRLF."""
    notes = root / "annotations"
    csvs = [
        write(notes / "train.csv", K400_TRAIN, crlf=True, bom=True),
        write(notes / "validate.csv", K400_VAL),
        write(notes / "test.csv", K400_TEST),
    ]
    videos = root / "videos"
    video(videos / "train" / "air drumming" / "-3B32lodo2M_000059_000069.mp4")
    video(videos / "train" / "abseiling" / "--GkrdYZ9Tc_000000_000010.mp4")
    video(videos / "raw" / "0ARtgJX9d0c.mp4", seconds=4)
    video(videos / "val" / "air_drumming" / "_dbcJuKJQNs_000040_000050.mp4")
    video(videos / "test" / "--65_UAU7ao_000000_000010.mp4")
    return videos, csvs


def test_kinetics_train_val_and_test_csvs_in_one_call(tmp_path: Path) -> None:
    videos, csvs = kinetics(tmp_path)
    result = import_kinetics(csvs, video_dir=videos)
    manifest = result.manifest
    assert manifest.labels == ("abseiling", "air drumming", "passing American football (in game)")
    rows = [(v.id, v.split, v.label, str(v.views["front"].relative_to(videos)), v.start_seconds, v.end_seconds)
            for v in manifest.videos]  # fmt: skip
    assert rows == [
        ("-3B32lodo2M_000059_000069", "train", "air drumming", "train/air drumming/-3B32lodo2M_000059_000069.mp4",
         None, None),
        ("--GkrdYZ9Tc_000000_000010", "train", "abseiling", "train/abseiling/--GkrdYZ9Tc_000000_000010.mp4",
         None, None),
        ("0ARtgJX9d0c_000001_000003", "train", "passing American football (in game)", "raw/0ARtgJX9d0c.mp4", 1.0, 3.0),
        ("_dbcJuKJQNs_000040_000050", "val", "air drumming", "val/air_drumming/_dbcJuKJQNs_000040_000050.mp4",
         None, None),
        ("--65_UAU7ao_000000_000010", "test", None, "test/--65_UAU7ao_000000_000010.mp4", None, None),
    ]  # fmt: skip
    assert [(n.origin.file.name, n.origin.line, n.video_id) for n in result.skipped] == [
        ("train.csv", 4, "-8C7GnyR0Tw_000003_000013"),
        ("validate.csv", 3, "xX0_missing_000000_000010"),
    ]
    out = result.save(tmp_path / "k400.yaml")
    report = (tmp_path / "k400.skipped.csv").read_text(encoding="utf-8").splitlines()
    assert report[0] == "file,line,id,reason" and report[1].startswith(f"{csvs[0]},4,-8C7GnyR0Tw_000003_000013,")
    assert result.summary(out) == (
        f"kinetics: 5 videos, 3 labels, 2 skipped (missing files), see {tmp_path / 'k400.skipped.csv'}"
    )
    loaded = load_manifest(out)
    assert loaded.videos == manifest.videos
    dataset = VideoDataset(VideoDatasetConfig(out, split="train", num_frames=2))
    clip = dataset.index.videos["0ARtgJX9d0c_000001_000003"].frames
    assert (clip.start, clip.stop) == (5, 15)  # 1 s to 3 s of the 5 fps source: nothing transcoded


def test_kinetics_bad_rows_are_all_errors_naming_their_lines(tmp_path: Path) -> None:
    videos, csvs = kinetics(tmp_path)
    write(csvs[1], "label,youtube_id,time_start,time_end,split\n"
                   "zumba,aaaaaaaaaaa,0,10,val\n"
                   "abseiling,bbbbbbbbbbb,nan,10,val\n"
                   "abseiling,ccccccccccc,10,inf,val\n"
                   "abseiling,ddddddddddd,12,2,val\n"
                   "abseiling,eeeeeeeeeee,-1,9,val\n"
                   "abseiling,../../etc,0,10,val\n"
                   "../evil,fffffffffff,0,10,val\n")  # fmt: skip
    video(videos / "val" / "zumba" / "aaaaaaaaaaa_000000_000010.mp4")
    with pytest.raises(ManifestError) as caught:
        import_kinetics(csvs, video_dir=videos)
    found = [(p.file.name, p.field, p.message) for p in caught.value.problems]
    unsafe = "is not a safe file name: it must be non-empty, not '.' or '..', without '/', '\\' or NUL"
    assert found == [
        ("validate.csv", "line 2",
         "label: label 'zumba' is not one of the dataset's ['abseiling', 'air drumming', "
         "'passing American football (in game)']"),
        ("validate.csv", "line 3", "time_start/time_end: 'nan' is not a finite time"),
        ("validate.csv", "line 4", "time_start/time_end: 'inf' is not a finite time"),
        ("validate.csv", "line 5", "the clip [12, 2) s is inverted or empty"),
        ("validate.csv", "line 6", "time_start/time_end: '-1' is a negative time"),
        ("validate.csv", "line 7", f"id: '../../etc_000000_000010' {unsafe}"),
        ("validate.csv", "line 8", f"label: '../evil' {unsafe}"),
    ]  # fmt: skip


def test_kinetics_missing_error_lists_every_missing_clip(tmp_path: Path) -> None:
    videos, csvs = kinetics(tmp_path)
    with pytest.raises(ManifestError, match="2 problem") as caught:
        import_kinetics(csvs, video_dir=videos, missing="error")
    assert [(p.file.name, p.field) for p in caught.value.problems] == [
        ("train.csv", "line 4"),
        ("validate.csv", "line 3"),
    ]
    with pytest.raises(ManifestError, match=r"none of the 7 video\(s\) the annotations list was found"):
        import_kinetics(csvs, video_dir=tmp_path / "annotations")
    write(csvs[0], "label,video\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['youtube_id', 'time_start', 'time_end'\]"):
        import_kinetics(csvs, video_dir=videos)


def test_mmaction2_video_lists_with_a_label_map(tmp_path: Path) -> None:
    videos, _ = kinetics(tmp_path)
    write(tmp_path / "label_map_k400.txt", "abseiling\nair drumming\n")
    train = write(tmp_path / "kinetics400_train_list_videos.txt",
                  "train/abseiling/--GkrdYZ9Tc_000000_000010.mp4 0\n"
                  "train/air drumming/-3B32lodo2M_000059_000069.mp4 1\n"
                  "train/abseiling/gone_000000_000010.mp4 0\n")  # fmt: skip
    val = write(tmp_path / "kinetics400_val_list_videos.txt", "val/air_drumming/_dbcJuKJQNs_000040_000050.mp4 1\n")
    result = import_video_list([train, val], video_dir=videos, classes=tmp_path / "label_map_k400.txt")
    assert result.manifest.labels == ("abseiling", "air drumming")
    assert [(v.id, v.split, v.label) for v in result.manifest.videos] == [
        ("--GkrdYZ9Tc_000000_000010", "train", "abseiling"),
        ("-3B32lodo2M_000059_000069", "train", "air drumming"),
        ("_dbcJuKJQNs_000040_000050", "val", "air drumming"),
    ]
    assert [n.origin.line for n in result.skipped] == [3]
    numeric = import_video_list(val, video_dir=videos).manifest
    assert numeric.labels == ("0", "1") and numeric.videos[0].label == "1"  # index 1 keeps class id 1
    write(val, "val/air_drumming/_dbcJuKJQNs_000040_000050.mp4 1 3\nval/a.mp4 7\n")
    with pytest.raises(ManifestError) as caught:
        import_video_list(val, video_dir=videos, classes=tmp_path / "label_map_k400.txt")
    assert [p.message for p in caught.value.problems] == [
        "need '<path> <label>' (one label per video), got 'val/air_drumming/_dbcJuKJQNs_000040_000050.mp4 1 3'",
        "class index 7 is past the 2 classes of the label map",
    ]


def test_class_folder_trees_with_and_without_split_folders(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for name in ("walk/0001.mp4", "walk/0002.MP4", "run/0001.mkv", "run/extra/clip.avi", "loose.mp4"):
        video(flat / name)
    result = import_video_folders(flat)
    assert result.manifest.labels == ("run", "walk")
    assert [(v.id, v.label, v.split) for v in result.manifest.videos] == [
        ("run__0001", "run", None),
        ("run__extra__clip", "run", None),
        ("walk__0001", "walk", None),
        ("walk__0002", "walk", None),
    ]  # stems repeat across classes, so ids carry the folders
    assert [(n.video_id, n.kind) for n in result.skipped] == [("loose", "not in a class folder")]
    split = tmp_path / "split"
    for name in ("train/walk/a.mp4", "train/run/b.mp4", "val/walk/c.mp4"):
        video(split / name)
    assert [(v.id, v.split, v.label) for v in import_video_folders(split).manifest.videos] == [
        ("b", "train", "run"),
        ("a", "train", "walk"),
        ("c", "val", "walk"),
    ]
    with pytest.raises(ManifestError, match="the annotations list no video"):
        import_video_folders(tmp_path / "nothing")


def test_multiview_folders(tmp_path: Path) -> None:
    for name in ("r1/front.mp4", "r1/left.mp4", "r2/front.mp4", "r2/left.mkv"):
        video(tmp_path / name)
    (tmp_path / "r2" / "notes.txt").write_text("not a video")
    manifest = import_multiview(tmp_path, views=["left", "front"], split="train").manifest
    assert [list(v.views) for v in manifest.videos] == [["left", "front"], ["left", "front"]]
    assert manifest.videos[1].views["left"].name == "left.mkv"
    video(tmp_path / "r3" / "front.mp4")
    with pytest.raises(ManifestError, match=r"video 'r3'.*lacks view\(s\) \['left'\]"):
        import_multiview(tmp_path)
