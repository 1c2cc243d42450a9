"""Manifests from what users arrive with: Kinetics CSVs, UCF101/HMDB51 split lists, segment CSVs,
THUMOS14 annotations and multi-view folders. Each importer reports every problem in one `ManifestError`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidfit.data._errors import ManifestError, Problem
from vidfit.data._importers import _VIDEO_SUFFIXES, _find_video, _sorted_labels
from vidfit.data._manifest import Manifest, Segment, Timeline, TimelineUnit, VideoEntry

OverlapPolicy = Literal["error", "first", "longest"]
_KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
_SEGMENT_COLUMNS = ("video", "start", "stop", "label")
# Split names as the datasets spell them, shortened to the names used elsewhere.
_SPLITS = {"training": "train", "validate": "val", "validation": "val", "testing": "test"}
_HMDB_SPLIT_CODES = {"1": "train", "2": "test", "0": None}
_THUMOS_FILE = re.compile(r"^(?P<label>.+)_(?P<split>val|test)\.txt$")
# THUMOS14 marks spans it could not label as this class; they are not an action.
_THUMOS_AMBIGUOUS = "Ambiguous"


@dataclass
class _Problems:
    """Problems gathered while importing, raised together."""

    items: list[Problem] = field(default_factory=list)

    def add(self, video_id: str | None, file: Path, where: str, message: str) -> None:
        self.items.append(Problem(video_id, file, where, message))

    def raise_any(self) -> None:
        if self.items:
            raise ManifestError(self.items)


@dataclass(frozen=True)
class _Candidate:
    segment: Segment
    position: int  # order in the annotation files, which `first` keeps


def _keep_none(candidates: list[_Candidate]) -> list[_Candidate]:
    return candidates  # overlaps are reported afterwards


def _keep_first(candidates: list[_Candidate]) -> list[_Candidate]:
    return sorted(candidates, key=lambda c: c.position)


def _keep_longest(candidates: list[_Candidate]) -> list[_Candidate]:
    return sorted(candidates, key=lambda c: (-(c.segment.end - c.segment.start), c.position))


# Each policy orders a video's segments by priority; a segment overlapping a kept one is dropped.
OVERLAP_POLICIES: dict[str, Callable[[list[_Candidate]], list[_Candidate]]] = {
    "error": _keep_none,
    "first": _keep_first,
    "longest": _keep_longest,
}


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def _resolve_overlaps(
    candidates: list[_Candidate], overlap: OverlapPolicy, *, video_id: str, file: Path, problems: _Problems
) -> tuple[Segment, ...]:
    kept: list[Segment] = []
    for candidate in OVERLAP_POLICIES[overlap](candidates):
        segment = candidate.segment
        clash = next((k for k in kept if segment.start < k.end and k.start < segment.end), None)
        if clash is None:
            kept.append(segment)
        elif overlap == "error":
            problems.add(
                video_id, file, "segments",
                f"[{segment.start:g}, {segment.end:g}) {segment.label!r} overlaps [{clash.start:g}, {clash.end:g}) "
                f"{clash.label!r}; choose overlap='first' or 'longest' to keep one",
            )  # fmt: skip
    return tuple(sorted(kept, key=lambda s: (s.start, s.end)))


def _read_csv(path: Path, columns: Sequence[str], problems: _Problems) -> list[tuple[int, dict[str, str]]]:
    """Rows with their line numbers; the header must name `columns` (others are ignored)."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            problems.add(None, path, "header", f"lacks column(s) {missing}; need {list(columns)}")
            return []
        return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader]


def _number(text: str, *, where: str, path: Path, problems: _Problems, video_id: str | None) -> float | None:
    try:
        value = float(text)
    except ValueError:
        problems.add(video_id, path, where, f"must be a number, got {text!r}")
        return None
    return value


def _check_file(video: Path, *, video_id: str, view: str, problems: _Problems) -> None:
    if not video.is_file():
        problems.add(video_id, video, f"views.{view}", "no such video file")


def import_kinetics(
    csv_path: str | os.PathLike[str], *, video_dir: str | os.PathLike[str], view_name: str = "front"
) -> Manifest:
    """A manifest from a Kinetics-style CSV (``label,youtube_id,time_start,time_end,split``).

    Each row is one clip with a video-level label, the file ``<youtube_id>_<start:06d>_<end:06d>``
    (the downloaders' name) in `video_dir` or in its ``<label>/`` folder, with any known video
    extension. Split ``validate`` becomes ``val``.
    """
    source, root, problems = Path(csv_path), Path(video_dir).resolve(), _Problems()
    entries: dict[str, VideoEntry] = {}
    for line, row in _read_csv(source, _KINETICS_COLUMNS, problems):
        start, end = (_number(row[c], where=f"line {line}: {c}", path=source, problems=problems, video_id=None)
                      for c in ("time_start", "time_end"))  # fmt: skip
        if start is None or end is None:
            continue
        video_id = f"{row['youtube_id']}_{int(start):06d}_{int(end):06d}"
        if video_id in entries:
            problems.add(video_id, source, f"line {line}", "the clip is listed more than once")
            continue
        video = _find_video(root / row["label"], video_id)
        video = video if video.is_file() else _find_video(root, video_id)
        _check_file(video, video_id=video_id, view=view_name, problems=problems)
        split = _SPLITS.get(row["split"], row["split"]) or None
        entries[video_id] = VideoEntry(id=video_id, views={view_name: video}, split=split, label=row["label"])
    problems.raise_any()
    labels = tuple(sorted({entry.label for entry in entries.values() if entry.label is not None}))
    return Manifest(labels, root, tuple(entries.values()))


def import_ucf101(
    video_dir: str | os.PathLike[str], *, split_files: Sequence[str | os.PathLike[str]], view_name: str = "front"
) -> Manifest:
    """A manifest from UCF101's ``<Class>/<video>.avi`` folder and its ``trainlist0N.txt``/``testlist0N.txt``.

    Lines are ``<Class>/<video>.avi`` (train lists add a class number, ignored): the label is the
    folder, the split comes from the list's name (``trainlist`` -> ``train``, ``testlist`` -> ``test``).
    """
    root, problems = Path(video_dir).resolve(), _Problems()
    entries: dict[str, VideoEntry] = {}
    for split_file in map(Path, split_files):
        split = (
            "train" if split_file.name.startswith("train") else "test" if split_file.name.startswith("test") else None
        )
        if split is None:
            problems.add(None, split_file, "name", "must start with 'trainlist' or 'testlist'")
            continue
        for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            relative = Path(line.split()[0])
            if len(relative.parts) != 2:
                problems.add(None, split_file, f"line {number}", f"need '<Class>/<video>', got {line!r}")
                continue
            _add_folder_video(entries, root / relative, label=relative.parts[0], split=split, view=view_name,
                              where=(split_file, number), problems=problems)  # fmt: skip
    problems.raise_any()
    return Manifest(tuple(sorted({e.label for e in entries.values() if e.label})), root, tuple(entries.values()))


def import_hmdb51(
    video_dir: str | os.PathLike[str], *, split_files: Sequence[str | os.PathLike[str]], view_name: str = "front"
) -> Manifest:
    """A manifest from HMDB51's ``<class>/<video>.avi`` folder and its ``<class>_test_splitN.txt`` files.

    Lines are ``<video>.avi <code>``, code 1 train, 2 test, 0 unused (left out); the label is the
    class the file name starts with.
    """
    root, problems = Path(video_dir).resolve(), _Problems()
    entries: dict[str, VideoEntry] = {}
    for split_file in map(Path, split_files):
        label, marker, _ = split_file.name.rpartition("_test_split")
        if not marker:
            problems.add(None, split_file, "name", "must be '<class>_test_split<N>.txt'")
            continue
        for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in _HMDB_SPLIT_CODES:
                problems.add(None, split_file, f"line {number}", f"need '<video> <0|1|2>', got {line!r}")
                continue
            split = _HMDB_SPLIT_CODES[fields[1]]
            if split is not None:
                _add_folder_video(entries, root / label / fields[0], label=label, split=split, view=view_name,
                                  where=(split_file, number), problems=problems)  # fmt: skip
    problems.raise_any()
    return Manifest(tuple(sorted({e.label for e in entries.values() if e.label})), root, tuple(entries.values()))


def _add_folder_video(
    entries: dict[str, VideoEntry],
    video: Path,
    *,
    label: str,
    split: str,
    view: str,
    where: tuple[Path, int],
    problems: _Problems,
) -> None:
    video_id = video.stem
    if video_id in entries:
        problems.add(video_id, where[0], f"line {where[1]}", f"already listed (split {entries[video_id].split!r})")
        return
    _check_file(video, video_id=video_id, view=view, problems=problems)
    entries[video_id] = VideoEntry(id=video_id, views={view: video}, split=split, label=label)


def import_segments(
    csv_path: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str],
    unit: TimelineUnit = "seconds",
    overlap: OverlapPolicy = "error",
    split: str | None = None,
    view_name: str = "front",
) -> Manifest:
    """A manifest from a CSV of labelled spans ``video,start,stop,label`` (Charades, EPIC-KITCHENS style).

    Args:
        csv_path: The CSV; other columns are ignored.
        video_dir: Folder of ``<video>.<ext>`` files, the data root.
        unit: ``"seconds"`` or ``"frames"``, the unit of start and stop.
        overlap: Overlapping spans of one video: ``"error"`` reports them, ``"first"`` keeps the one
            listed first, ``"longest"`` the longest (the first listed among equals).
        split: Split given to every video.
        view_name: Name of the single view.
    """
    _check_choice("unit", unit, ("seconds", "frames"))
    _check_choice("overlap", overlap, tuple(OVERLAP_POLICIES))
    source, root, problems = Path(csv_path), Path(video_dir).resolve(), _Problems()
    spans: dict[str, list[_Candidate]] = {}
    for line, row in _read_csv(source, _SEGMENT_COLUMNS, problems):
        video_id = row["video"]
        start, stop = (_number(row[c], where=f"line {line}: {c}", path=source, problems=problems, video_id=video_id)
                       for c in ("start", "stop"))  # fmt: skip
        if start is None or stop is None:
            continue
        if not 0 <= start < stop:
            problems.add(video_id, source, f"line {line}", f"need 0 <= start < stop, got [{start:g}, {stop:g})")
            continue
        spans.setdefault(video_id, []).append(_Candidate(Segment(start, stop, row["label"]), line))
    return _timeline_manifest(spans, root=root, unit=unit, overlap=overlap, split=split, view_name=view_name,
                              source=source, problems=problems)  # fmt: skip


def import_thumos14(
    annotation_dir: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str],
    overlap: OverlapPolicy = "error",
    view_name: str = "front",
) -> Manifest:
    """A manifest from THUMOS14's temporal annotations: ``<Class>_val.txt``/``<Class>_test.txt`` files
    of ``<video> <start seconds> <end seconds>`` lines.

    The split is the files' (``val`` or ``test``); ``Ambiguous_*.txt`` spans are left unlabelled.
    THUMOS14 classes overlap (CliffDiving lies inside Diving), so `overlap` usually needs ``"first"``
    or ``"longest"``.
    """
    _check_choice("overlap", overlap, tuple(OVERLAP_POLICIES))
    folder, root, problems = Path(annotation_dir), Path(video_dir).resolve(), _Problems()
    spans: dict[str, list[_Candidate]] = {}
    splits: dict[str, str] = {}
    files = sorted(p for p in folder.glob("*.txt") if _THUMOS_FILE.match(p.name))
    if not files:
        problems.add(None, folder, "files", "holds no '<Class>_val.txt' or '<Class>_test.txt' annotation files")
    for file in files:
        match = _THUMOS_FILE.match(file.name)
        assert match is not None  # the glob above kept matching names only
        if match["label"] == _THUMOS_AMBIGUOUS:
            continue
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                start, end = float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                problems.add(None, file, f"line {number}", f"need '<video> <start> <end>', got {line!r}")
                continue
            splits[fields[0]] = match["split"]
            position = len(spans.get(fields[0], []))
            spans.setdefault(fields[0], []).append(_Candidate(Segment(start, end, match["label"]), position))
    manifest = _timeline_manifest(spans, root=root, unit="seconds", overlap=overlap, split=None, view_name=view_name,
                                  source=folder, problems=problems)  # fmt: skip
    videos = tuple(VideoEntry(**{**vars(e), "split": splits[e.id]}) for e in manifest.videos)
    return Manifest(manifest.labels, root, videos)


def _timeline_manifest(
    spans: dict[str, list[_Candidate]],
    *,
    root: Path,
    unit: TimelineUnit,
    overlap: OverlapPolicy,
    split: str | None,
    view_name: str,
    source: Path,
    problems: _Problems,
) -> Manifest:
    entries = []
    for video_id, candidates in spans.items():
        segments = _resolve_overlaps(candidates, overlap, video_id=video_id, file=source, problems=problems)
        video = _find_video(root, video_id)
        _check_file(video, video_id=video_id, view=view_name, problems=problems)
        entries.append(
            VideoEntry(id=video_id, views={view_name: video}, split=split, timeline=Timeline(unit, segments))
        )
    problems.raise_any()
    return Manifest(_sorted_labels(entries), root, tuple(entries))


def import_multiview(
    video_dir: str | os.PathLike[str], *, views: Sequence[str] | None = None, split: str | None = None
) -> Manifest:
    """A manifest from a folder of recordings ``<id>/<view>.<ext>``, one folder per recording.

    Args:
        video_dir: The folder, the data root.
        views: View names in order (the first is the reference view); by default the first
            recording's, sorted. Every recording must have them all.
        split: Split given to every video.
    """
    root, problems = Path(video_dir).resolve(), _Problems()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        problems.add(None, root, "folders", "holds no '<id>/<view>.<ext>' recordings")
    found = {folder.name: _view_files(folder) for folder in folders}
    names = tuple(views) if views else tuple(sorted(next(iter(found.values()), {})))
    entries = []
    for video_id, files in found.items():
        missing = [name for name in names if name not in files]
        if missing:
            problems.add(video_id, root / video_id, "views", f"lacks view(s) {missing} of {list(names)}")
            continue
        entries.append(VideoEntry(id=video_id, views={name: files[name] for name in names}, split=split))
    problems.raise_any()
    return Manifest((), root, tuple(entries))


def _view_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in _VIDEO_SUFFIXES and p.is_file()}
