"""ActivityNet 1.3, THUMOS14 and per-frame label files in their real layouts, each video's length read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import (
    IGNORE_LABEL,
    ManifestError,
    Segment,
    Timeline,
    VideoDataset,
    VideoDatasetConfig,
    import_activitynet,
    import_frame_labels,
    import_thumos14,
    load_manifest,
)

ANET_DATABASE = {
    "--0edUL8zmA": {"annotations": [{"label": "Dodgeball", "segment": [1.2, 8.9]}], "duration": 10.0,
                    "resolution": "640x480", "subset": "training", "url": "https://www.youtube.com/watch?v=--0edUL8zmA"},
    "-0KZHI6UISM": {"annotations": [{"label": "Playing badminton", "segment": [6.5, 10.34]},
                                    {"label": "Playing badminton", "segment": [10.5, 11.0]}],
                    "duration": 12.4, "resolution": "1280x720", "subset": "training", "url": "u"},
    "0b5bcTD1a9o": {"annotations": [{"label": "Rock-paper-scissors", "segment": [0.0, 3.0]}], "duration": 10.0,
                    "resolution": "640x360", "subset": "validation", "url": "u"},
    "zz_missing01": {"annotations": [{"label": "Dodgeball", "segment": [1, 2]}], "duration": 30.1,
                     "resolution": "640x360", "subset": "validation", "url": "u"},
    "--1DO2V4K74": {"annotations": [], "duration": 10.0, "resolution": "640x360", "subset": "testing", "url": "u"},
}  # fmt: skip


def activitynet(root: Path) -> tuple[Path, Path]:
    """``activity_net.v1-3.min.json`` (minified, as published) and the crawler's ``v_<id>.mp4`` files."""
    document = {"version": "VERSION 1.3", "taxonomy": [{"nodeName": "Root", "nodeId": 0}], "database": ANET_DATABASE}
    source = write(root / "activity_net.v1-3.min.json", json.dumps(document))
    videos = root / "videos"
    for name in ("v_--0edUL8zmA.mp4", "v_-0KZHI6UISM.mkv", "0b5bcTD1a9o.mp4", "v_--1DO2V4K74.mp4"):
        video(videos / name, seconds=10)
    return source, videos


def test_activitynet_finds_crawler_names_and_clips_segments_to_the_video(tmp_path: Path) -> None:
    source, videos = activitynet(tmp_path)
    result = import_activitynet(source, video_dir=videos)
    manifest = result.manifest
    assert manifest.labels == ("Dodgeball", "Playing badminton", "Rock-paper-scissors")
    rows = [(v.id, v.split, v.views["front"].name, v.timeline) for v in manifest.videos]
    assert rows == [
        ("--0edUL8zmA", "train", "v_--0edUL8zmA.mp4", Timeline("seconds", (Segment(1.2, 8.9, "Dodgeball"),))),
        ("-0KZHI6UISM", "train", "v_-0KZHI6UISM.mkv", Timeline("seconds", (Segment(6.5, 10.0, "Playing badminton"),))),
        ("0b5bcTD1a9o", "val", "0b5bcTD1a9o.mp4", Timeline("seconds", (Segment(0.0, 3.0, "Rock-paper-scissors"),))),
        ("--1DO2V4K74", "test", "v_--1DO2V4K74.mp4", Timeline("seconds", ())),
    ]
    assert [(n.origin.position, n.kind) for n in result.skipped] == [("database.zz_missing01", "missing files")]
    assert [(n.origin.position, n.kind, n.reason) for n in result.clipped] == [
        ("database.-0KZHI6UISM.annotations[0]", "clipped",
         "clipped [6.5, 10.34)s 'Playing badminton' to the video's end (10s)"),
        ("database.-0KZHI6UISM.annotations[1]", "dropped",
         "dropped [10.5, 11)s 'Playing badminton': it starts after the video's end (10s)"),
    ]  # fmt: skip
    out = result.save(tmp_path / "anet.yaml")
    assert len(VideoDataset(VideoDatasetConfig(out, num_frames=2)).index) == 4


def test_activitynet_bad_segments_and_bad_json_name_their_place(tmp_path: Path) -> None:
    source, videos = activitynet(tmp_path)
    database = {"v1": {"subset": "training", "annotations": [
        {"label": "a", "segment": [float("nan"), 3]}, {"label": "a", "segment": [5, 2]},
        {"label": "a", "segment": [-1, 2]}, {"label": "../x", "segment": [1, 2]}, {"label": "a"},
    ]}}  # fmt: skip
    write(source, json.dumps({"database": database}), bom=True)
    with pytest.raises(ManifestError) as caught:
        import_activitynet(source, video_dir=videos)
    found = [(p.field, p.message) for p in caught.value.problems]
    need = "need segment [start, end] (finite seconds >= 0) and label"
    assert found == [
        ("database.v1.annotations[0]", f"{need}: 'nan' is not a finite time"),
        ("database.v1.annotations[1]", "segment [5, 2) is inverted or empty"),
        ("database.v1.annotations[2]", f"{need}: '-1' is a negative time"),
        ("database.v1.annotations[4]", need),
        ("database.v1.annotations[3]",
         "label: '../x' is not a safe file name: it must be non-empty, not '.' or '..', without '/', '\\' or NUL"),
    ]  # fmt: skip
    write(source, '{"database": {"v1": {"subset": "training",}}}')
    with pytest.raises(ManifestError, match=r"activity_net.v1-3.min.json: line 1: not valid JSON: .* \(column 43\)"):
        import_activitynet(source, video_dir=videos)


def thumos14(root: Path) -> tuple[list[Path], Path]:
    """THUMOS14's validation and test annotation folders as unpacked, and its two video folders."""
    val = root / "TH14_Temporal_annotations_validation" / "annotation"
    test = root / "TH14_Temporal_Annotations_Test" / "annotations" / "annotation"
    write(val / "BaseballPitch_val.txt", "video_validation_0000051 1.0 2.5\nvideo_validation_0000052 0.5 1.5\n")
    write(val / "CliffDiving_val.txt", "video_validation_0000051 5.2 6.0\n")
    write(val / "Diving_val.txt", "video_validation_0000051 5.0 6.5\nvideo_validation_0000051 9.5 11.0\n")
    write(val / "Ambiguous_val.txt", "video_validation_0000051 3.0 4.0\n")
    write(test / "Diving_test.txt", "video_test_0000004  0.2  1.1 \n", crlf=True)
    write(test / "Ambiguous_test.txt", "video_test_0000004 2.0 3.0\n", crlf=True)
    videos = root / "videos"
    video(videos / "validation" / "video_validation_0000051.mp4", seconds=10)
    video(videos / "TH14_test_set_mp4" / "video_test_0000004.mp4", seconds=4)
    return [val.parent, test.parent.parent], videos


def test_thumos14_background_ambiguous_and_kept_overlaps(tmp_path: Path) -> None:
    folders, videos = thumos14(tmp_path)
    with pytest.raises(
        ManifestError,
        match=r"Diving_val.txt: line 1: \[5, 6.5\) 'Diving' overlaps \[5.2, 6\) "
        r"'CliffDiving' of CliffDiving_val.txt: line 1; set overlap \(--overlap\) to keep",
    ):
        import_thumos14(folders, video_dir=videos)
    result = import_thumos14(folders, video_dir=videos, overlap="keep")
    manifest = result.manifest
    assert manifest.multi_label and manifest.labels == ("background", "BaseballPitch", "CliffDiving", "Diving")
    spans = {v.id: (v.split, [(s.start, s.end, s.label) for s in v.timeline.segments]) for v in manifest.videos}
    assert spans == {
        "video_validation_0000051": ("val", [
            (0, 1, "background"), (1, 2.5, "BaseballPitch"), (2.5, 3, "background"), (4, 5, "background"),
            (5, 6.5, "Diving"), (5.2, 6, "CliffDiving"), (6.5, 9.5, "background"), (9.5, 10, "Diving"),
        ]),  # [3, 4) is Ambiguous: left unlabelled
        "video_test_0000004": ("test", [(0, 0.2, "background"), (0.2, 1.1, "Diving"), (1.1, 2, "background"),
                                        (3, 4, "background")]),
    }  # fmt: skip
    assert [n.video_id for n in result.skipped] == ["video_validation_0000052"]
    assert [n.origin.line for n in result.clipped] == [2]
    out = result.save(tmp_path / "thumos.yaml")
    assert load_manifest(out).multi_label
    assert len(VideoDataset(VideoDatasetConfig(out, num_frames=2, multi_label=True)).index) == 2


def test_thumos14_frames_of_background_are_a_class_and_ambiguous_frames_are_ignored(tmp_path: Path) -> None:
    folders, videos = thumos14(tmp_path)
    out = import_thumos14(folders, video_dir=videos, overlap="longest").save(tmp_path / "thumos.yaml")
    config = VideoDatasetConfig(out, split="val", num_frames=50, sampling="consecutive")
    dataset = VideoDataset(config)
    assert dataset.labels == ("background", "BaseballPitch", "Diving")  # CliffDiving lost to the longer Diving
    labels = dataset[0]["frame_labels"].tolist()  # 5 fps: frame i at i / 5 s
    assert labels[0] == 0 and labels[6] == 1 and labels[15] == IGNORE_LABEL and labels[26] == 2 and labels[40] == 0
    no_background = import_thumos14(folders, video_dir=videos, overlap="first", background=None).manifest
    assert "background" not in no_background.labels
    with pytest.raises(ManifestError, match=r"holds no '<Class>_val\.txt' or '<Class>_test\.txt'"):
        import_thumos14(tmp_path / "videos", video_dir=videos)


def test_frame_label_files_clip_to_the_video_and_find_their_video(tmp_path: Path) -> None:
    labels = write(tmp_path / "labels" / "clip.txt", "idle\nidle\n\nfront\nfront\nfront\nidle\n", crlf=True)
    write(tmp_path / "labels" / "gone.txt", "idle\n")
    video(tmp_path / "videos" / "cam" / "clip.mp4", seconds=1)  # 5 frames
    result = import_frame_labels(labels.parent, video_dir=tmp_path / "videos", split="val")
    (entry,) = result.manifest.videos
    assert (entry.id, entry.split, result.manifest.labels) == ("clip", "val", ("front", "idle"))
    assert entry.timeline == Timeline("frames", (Segment(0, 2, "idle"), Segment(3, 5, "front")))
    assert [(n.kind, n.origin.line) for n in result.clipped] == [("clipped", 4), ("dropped", 7)]
    assert [n.video_id for n in result.skipped] == ["gone"]


def test_unreadable_videos_are_skipped_or_errors(tmp_path: Path) -> None:
    source, videos = activitynet(tmp_path)
    (videos / "0b5bcTD1a9o.mp4").write_bytes(b"a broken download, not a video")
    result = import_activitynet(source, video_dir=videos)
    assert [(n.video_id, n.kind) for n in result.skipped] == [
        ("0b5bcTD1a9o", "unreadable"),
        ("zz_missing01", "missing files"),
    ]
    assert result.skipped[0].reason.startswith(f"{videos / '0b5bcTD1a9o.mp4'}: cannot be read: ")
    assert "0b5bcTD1a9o" not in {v.id for v in result.manifest.videos}
    with pytest.raises(ManifestError, match=r"(?s)2 problem.*database.0b5bcTD1a9o: .*cannot be read"):
        import_activitynet(source, video_dir=videos, missing="error")
