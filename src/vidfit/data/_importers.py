"""Manifests from other annotation formats.

ActivityNet-style JSON and one label per line per frame here; CSVs, folder layouts and THUMOS14 in
`_import_formats`. Every importer returns a `Manifest` for `save_manifest`.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidfit.data._manifest import Manifest, Segment, Timeline, VideoEntry

# ActivityNet's subset names, shortened to the split names used elsewhere.
_SUBSETS = {"training": "train", "validation": "val", "testing": "test"}
_VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")


def import_activitynet(
    json_path: str | os.PathLike[str], *, video_dir: str | os.PathLike[str], view_name: str = "front"
) -> Manifest:
    """A manifest from ``{"database": {id: {"subset": ..., "annotations": [{"segment": [s, e], "label": ...}]}}}``.

    Segments become ``seconds`` timelines; subsets ``training``/``validation``/``testing`` become
    splits ``train``/``val``/``test``; labels are sorted by name. Each video is the file
    ``video_dir/<id>.<ext>`` (mp4, mkv, webm, mov or avi), and `video_dir` is the data root.

    Args:
        json_path: The annotation file.
        video_dir: Folder of the videos.
        view_name: Name of the single view.
    """
    source = Path(json_path)
    document = json.loads(source.read_text(encoding="utf-8"))
    database = document.get("database") if isinstance(document, dict) else None
    if not isinstance(database, dict):
        raise ValueError(f"{source}: expected a mapping with key 'database' of video id -> annotations")
    root = Path(video_dir).resolve()
    entries = [
        _activitynet_entry(str(video_id), record, source=source, root=root, view_name=view_name)
        for video_id, record in database.items()
    ]
    return Manifest(_sorted_labels(entries), root, tuple(entries))


def _activitynet_entry(video_id: str, record: Any, *, source: Path, root: Path, view_name: str) -> VideoEntry:
    where = f"{source}: database.{video_id}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a mapping with 'subset' and 'annotations'")
    segments = []
    for i, note in enumerate(record.get("annotations", [])):
        try:
            start, end = (float(t) for t in note["segment"])
            segments.append(Segment(start, end, str(note["label"])))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}.annotations[{i}]: need segment [s, e] and label") from error
    subset = record.get("subset")
    return VideoEntry(
        id=video_id,
        views={view_name: _find_video(root, video_id)},
        split=None if subset is None else _SUBSETS.get(str(subset), str(subset)),
        timeline=Timeline("seconds", tuple(sorted(segments, key=lambda s: s.start))),
    )


def import_frame_labels(
    label_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    view_name: str = "front",
    split: str | None = None,
) -> Manifest:
    """A manifest from text files of one label per line, line ``i`` labelling frame ``i``.

    Runs of equal labels become ``frames`` segments; blank lines leave their frame unlabelled.
    The file ``<id>.txt`` labels the video ``video_dir/<id>.<ext>``.

    Args:
        label_files: A folder of ``.txt`` files, or the files.
        video_dir: Folder of the videos, the data root.
        view_name: Name of the single view.
        split: Split given to every video.
    """
    if isinstance(label_files, (str, os.PathLike)) and Path(label_files).is_dir():
        files = sorted(Path(label_files).glob("*.txt"))
    elif isinstance(label_files, (str, os.PathLike)):
        files = [Path(label_files)]
    else:
        files = [Path(f) for f in label_files]
    if not files:
        raise ValueError(f"{label_files}: no .txt label files")
    root = Path(video_dir).resolve()
    entries = []
    for file in files:
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        segments, frame = [], 0
        for label, run in itertools.groupby(lines):
            length = len(list(run))
            if label:
                segments.append(Segment(frame, frame + length, label))
            frame += length
        view = {view_name: _find_video(root, file.stem)}
        entries.append(VideoEntry(id=file.stem, views=view, split=split, timeline=Timeline("frames", tuple(segments))))
    return Manifest(_sorted_labels(entries), root, tuple(entries))


def _find_video(root: Path, stem: str) -> Path:
    """``root/<stem>.<ext>`` for the first known video extension present; ``.mp4`` when none is."""
    for suffix in _VIDEO_SUFFIXES:
        candidate = root / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return root / f"{stem}.mp4"


def _sorted_labels(entries: list[VideoEntry]) -> tuple[str, ...]:
    names = {segment.label for entry in entries if entry.timeline for segment in entry.timeline.segments}
    return tuple(sorted(names))
