"""Finding videos under a data root, and reading their lengths in this process or in a pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_layouts import video
from vidfit.data._import_videos import VideoFiles, folder_key, probe_all
from vidfit.io import VideoMetadata


def test_videos_are_found_by_name_preferring_the_suggested_folder(tmp_path: Path) -> None:
    for name in ("a/x.mp4", "b/x.MKV", "b/x.avi", "c/Y.webm", ".hidden/z.mp4", "notes/x.txt"):
        video(tmp_path / name)
    (tmp_path / "loop").symlink_to(tmp_path)  # a link back up the tree is walked once
    files = VideoFiles(tmp_path)
    assert len(files) == 4
    assert files.find("x") == tmp_path / "a" / "x.mp4"  # .mp4 before .mkv and .avi
    assert files.find("x", prefer=lambda path: path.parent.name != "b") == tmp_path / "b" / "x.MKV"
    assert files.find("x", within=tmp_path / "b") == tmp_path / "b" / "x.MKV"
    assert files.find("y") == tmp_path / "c" / "Y.webm" and files.find("y", any_case=False) is None
    assert files.find("z") is None
    assert folder_key("passing American football (in game)") == folder_key("passing_American_football_(in_game)")


@pytest.mark.slow
def test_a_pool_of_processes_reads_the_same_lengths(tmp_path: Path) -> None:
    videos = {"a": video(tmp_path / "a.mp4", seconds=2), "b": video(tmp_path / "b.mp4", seconds=4)}
    videos["gone"] = tmp_path / "gone.mp4"
    here = probe_all(videos, workers=1)
    pooled = probe_all(videos, workers=2, pool_from=1)
    assert list(pooled) == ["a", "b", "gone"]
    assert [m.duration_seconds for m in (here["a"], here["b"]) if isinstance(m, VideoMetadata)] == [2.0, 4.0]
    assert here == pooled and isinstance(pooled["gone"], str)
