"""Segment CSVs as published: EPIC-KITCHENS-100 (timestamps, 1-based frames), Charades (actions), plain tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import ManifestError, VideoDataset, VideoDatasetConfig, import_segments

EPIC_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
)
EPIC_TRAIN = EPIC_HEADER + (
    "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:01.37,2,14,open door,open,3,door,3,['door'],[3]\n"
    "P01_01_1,P01,P01_01,00:00:02.629,00:00:01.50,00:00:03.37,16,34,put rubbish in the bin,put-in,5,rubbish,54,"
    "\"['rubbish', 'bin']\",\"[54, 36]\"\n"
    "P01_01_2,P01,P01_01,00:00:03.000,00:00:02.80,00:00:04.90,29,49,close door,close,4,door,3,['door'],[3]\n"
    "P01_102_0,P01,P01_102,00:00:00.500,00:00:00.10,00:00:00.90,1,9,wash hand,wash,2,hand,10,['hand'],[10]\n"
)
EPIC_VALIDATION = EPIC_HEADER + (
    "P03_02_0,P03,P03_02,00:00:04.310,00:00:03.29,00:00:04.26,34,43,put lunch box,put,1,box:lunch,23,"
    "['box:lunch'],[23]\n"
)
EPIC_COLUMNS = {"video": "video_id", "start": "start_timestamp", "stop": "stop_timestamp", "label": "verb"}


def epic_kitchens(root: Path) -> tuple[list[Path], Path]:
    """``EPIC_100_train.csv``/``EPIC_100_validation.csv`` and ``EPIC-KITCHENS/P01/videos/P01_01.MP4`` (10 fps)."""
    notes = root / "epic-kitchens-100-annotations"
    csvs = [write(notes / "EPIC_100_train.csv", EPIC_TRAIN), write(notes / "EPIC_100_validation.csv", EPIC_VALIDATION)]
    videos = root / "EPIC-KITCHENS"
    video(videos / "P01" / "videos" / "P01_01.MP4", seconds=5, fps=10)
    video(videos / "P03" / "videos" / "P03_02.MP4", seconds=5, fps=10)
    return csvs, videos  # P01_102 is missing


def test_epic_kitchens_timestamps_as_they_are(tmp_path: Path) -> None:
    csvs, videos = epic_kitchens(tmp_path)
    with pytest.raises(ManifestError, match=r"EPIC_100_train.csv: line 4: \[2.8, 4.9\) 'close' overlaps"):
        import_segments(csvs, video_dir=videos, columns=EPIC_COLUMNS)
    result = import_segments(csvs, video_dir=videos, columns=EPIC_COLUMNS, overlap="keep")
    manifest = result.manifest
    assert manifest.multi_label and manifest.labels == ("close", "open", "put", "put-in")
    found = [(v.id, v.split, v.views["front"].relative_to(videos).as_posix(),
              [(s.start, s.end, s.label) for s in v.timeline.segments]) for v in manifest.videos]  # fmt: skip
    assert found == [
        (
            "P01_01",
            "train",
            "P01/videos/P01_01.MP4",
            [(0.14, 1.37, "open"), (1.5, 3.37, "put-in"), (2.8, 4.9, "close")],
        ),
        ("P03_02", "val", "P03/videos/P03_02.MP4", [(3.29, 4.26, "put")]),
    ]
    assert [(n.origin.file.name, n.origin.line, n.video_id) for n in result.skipped] == [
        ("EPIC_100_train.csv", 5, "P01_102")
    ]
    out = result.save(tmp_path / "epic.yaml")
    assert len(VideoDataset(VideoDatasetConfig(out, num_frames=2, multi_label=True)).index) == 2


def test_epic_kitchens_one_based_inclusive_frames(tmp_path: Path) -> None:
    csvs, videos = epic_kitchens(tmp_path)
    columns = {**EPIC_COLUMNS, "start": "start_frame", "stop": "stop_frame"}
    result = import_segments(csvs[0], video_dir=videos, columns=columns, unit="frames",
                             frame_numbering="one-based-inclusive", overlap="first")  # fmt: skip
    (entry,) = result.manifest.videos
    assert entry.timeline is not None and entry.timeline.unit == "frames"
    assert [(s.start, s.end, s.label) for s in entry.timeline.segments] == [(1, 14, "open"), (15, 34, "put-in")]
    write(csvs[0], EPIC_HEADER + "P01_01_0,P01,P01_01,,,,0,14,open door,open,3,door,3,[],[]\n")
    with pytest.raises(ManifestError, match="line 2: start_frame/stop_frame: frame 0 is not 1-based"):
        import_segments(csvs[0], video_dir=videos, columns=columns, unit="frames",
                        frame_numbering="one-based-inclusive")  # fmt: skip


CHARADES = (
    "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    '46GP8,HR43,Kitchen,6,7,Yes,"A person cooking on a stove while watching something out a window.",'
    'food;stove;window,"A person cooks food on a stove, then looks out of a window.",'
    "c092 1.90 4.20;c147 0.00 2.60,5.00\n"
    'N11GT,0KZ7,Stairs,6,7,Yes,"One person opens up a folded blanket, then sneezes.",blanket,'
    '"A person sneezes.",,4.12\n'
)


def test_charades_actions_field(tmp_path: Path) -> None:
    train = write(tmp_path / "Charades" / "Charades_v1_train.csv", CHARADES, crlf=True)
    test = write(
        tmp_path / "Charades" / "Charades_v1_test.csv", CHARADES.splitlines()[0] + "\nZZZZZ,a,b,,,,,,,c001 0 1,3\n"
    )
    videos = tmp_path / "Charades_v1_480"
    video(videos / "46GP8.mp4", seconds=4)
    video(videos / "N11GT.mp4", seconds=4)
    columns = {"video": "id", "actions": "actions"}
    result = import_segments([train, test], video_dir=videos, columns=columns, overlap="keep")
    assert result.manifest.labels == ("c092", "c147")
    assert [(v.id, v.split, [(s.start, s.end, s.label) for s in v.timeline.segments])
            for v in result.manifest.videos] == [
        ("46GP8", "train", [(0.0, 2.6, "c147"), (1.9, 4.0, "c092")]),  # 4.20 clipped to the 4 s video
        ("N11GT", "train", []),
    ]  # fmt: skip
    assert [(n.origin.where, n.kind) for n in result.clipped] == [("line 2: actions[0]", "clipped")]
    assert [(n.video_id, n.origin.file.name) for n in result.skipped] == [("ZZZZZ", "Charades_v1_test.csv")]
    write(train, CHARADES.splitlines()[0] + "\n46GP8,a,b,,,,,,,c092 1.9;c147 3 2;c001 1 nan,5\n")
    with pytest.raises(ManifestError) as caught:
        import_segments(train, video_dir=videos, columns=columns)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("line 2: actions[0]", "need '<class> <start> <end>', got 'c092 1.9'"),
        ("line 2: actions[1]", "the span [3, 2) is inverted or empty: need start < end"),
        ("line 2: actions[2]", "'nan' is not a finite time"),
    ]


SEGMENTS = "video,start,stop,label,extra\nv1,0,4,walk,x\nv1,3,10,run,x\nv1,10,12,walk,x\nv1,11,12,walk,x\n"


@pytest.mark.parametrize(
    ("overlap", "kept"),
    [("first", [(0, 4, "walk"), (10, 12, "walk")]), ("longest", [(3, 10, "run"), (10, 12, "walk")])],
)
def test_overlap_policies_keep_one_span(tmp_path: Path, overlap: str, kept: list[tuple[float, float, str]]) -> None:
    video(tmp_path / "v1.mp4", seconds=2.4, fps=5)  # 12 frames
    write(tmp_path / "s.csv", SEGMENTS)
    result = import_segments(tmp_path / "s.csv", video_dir=tmp_path, unit="frames", overlap=overlap)  # type: ignore[arg-type]
    timeline = result.manifest.videos[0].timeline
    assert timeline is not None and [(s.start, s.end, s.label) for s in timeline.segments] == kept
    assert not result.manifest.multi_label


def test_bad_spans_are_all_reported_with_their_lines(tmp_path: Path) -> None:
    video(tmp_path / "v1.mp4", seconds=2)
    write(tmp_path / "s.csv", "video,start,stop,label\nv1,00:00:01.5,1.5,walk\nv1,-2,1,walk\nv1,1,inf,run\n"
                              "v1,0,1,\n,0,1,run\nv1,soon,2,run\n")  # fmt: skip
    with pytest.raises(ManifestError) as caught:
        import_segments(tmp_path / "s.csv", video_dir=tmp_path)
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("line 2", "the span [1.5, 1.5) is inverted or empty: need start < stop"),
        ("line 3", "start/stop: '-2' is a negative time"),
        ("line 4", "start/stop: 'inf' is not a finite time"),
        ("line 5", "label: the label is empty"),
        ("line 6", "video: the video is empty"),
        ("line 7", "start/stop: 'soon' is not a time (seconds, or HH:MM:SS.ff)"),
    ]
    with pytest.raises(ValueError, match=r"columns: \['verb'\] are not fields; the fields are video, start"):
        import_segments(tmp_path / "s.csv", video_dir=tmp_path, columns={"video": "v", "verb": "x"})
    with pytest.raises(ValueError, match="overlap='last' is not one of 'error', 'first', 'longest', 'keep'"):
        import_segments(tmp_path / "s.csv", video_dir=tmp_path, overlap="last")  # type: ignore[arg-type]
