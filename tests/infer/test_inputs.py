"""The videos named by command-line inputs: files, folders, manifests, and names given twice."""

from __future__ import annotations

from pathlib import Path

import yaml

from vidfit.infer import expand_inputs
from vidfit.infer._inputs import VideoFile, first_duplicate


def _manifest(root: Path) -> Path:
    path = root / "m.yaml"
    videos = [
        {"id": "v0", "split": "train", "views": {"front": "v0_front.mp4", "left": "v0_left.mp4"}},
        {"id": "v1", "split": "val", "views": {"front": "v1_front.mp4", "left": "v1_left.mp4"}},
    ]
    path.write_text(yaml.safe_dump({"labels": [], "root": ".", "videos": videos}), encoding="utf-8")
    return path


def test_files_folders_and_manifests_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.mkv", "a.MP4", "notes.txt"):
        (folder / name).touch()
    manifest = _manifest(tmp_path)
    videos, failures = expand_inputs([tmp_path / "one.mp4", folder, manifest], split="val")
    assert videos[:3] == [
        VideoFile(str(tmp_path / "one.mp4"), tmp_path / "one.mp4"),  # a file named by itself: its path
        VideoFile("a", folder / "a.MP4"),  # a folder's files: their stems, sorted, video suffixes only
        VideoFile("b", folder / "b.mkv"),
    ]
    assert [(v.id, v.views) for v in videos[3:]] == [  # type: ignore[union-attr]
        ("v1", {"front": tmp_path / "v1_front.mp4", "left": tmp_path / "v1_left.mp4"})
    ]
    assert failures == {}
    everything, _ = expand_inputs([manifest], split=None)
    assert len(everything) == 2


def test_inputs_that_give_no_video_are_reported_by_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    videos, failures = expand_inputs([empty, tmp_path / "missing.yaml"], split=None)
    assert videos == []
    assert list(failures) == [str(empty), str(tmp_path / "missing.yaml")]
    assert failures[str(empty)] == f"{empty}: the folder holds no video files (.mp4, .mkv, .mov, .avi, .webm, .m4v)"
    assert "missing.yaml" in failures[str(tmp_path / "missing.yaml")]


def test_first_duplicate_names_both_files() -> None:
    a, b, c = Path("x/a.mp4"), Path("y/a.mp4"), Path("z/b.mp4")
    assert first_duplicate([("a", a), ("b", c), ("a", b)]) == ("a", a, b)
    assert first_duplicate([("a", a), ("b", c)]) is None
