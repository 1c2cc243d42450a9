"""Timelines from temporal-detection datasets: ActivityNet 1.3's JSON, THUMOS14's per-class files, and text
files of one label per frame. Each found video's length is read, so that segments fit the video.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidfit.data._import_build import MISSING_CHOICES, Draft, Missing, Options, finish_import
from vidfit.data._import_result import ImportResult
from vidfit.data._import_segments import OVERLAP_POLICIES, OverlapPolicy, resolve_overlaps
from vidfit.data._import_text import (
    SPLIT_NAMES,
    Origin,
    Problems,
    as_paths,
    check_choice,
    parse_seconds,
    read_json,
    read_lines,
)
from vidfit.data._import_videos import VideoFiles
from vidfit.data._manifest import Segment

_THUMOS_FILE = re.compile(r"^(?P<label>.+)_(?P<split>val|test)\.txt$")
# THUMOS14 marks spans it could not label as this class; they are neither an action nor background.
_THUMOS_AMBIGUOUS = "Ambiguous"


def import_activitynet(
    json_path: str | os.PathLike[str],
    *,
    video_dir: str | os.PathLike[str],
    missing: Missing = "skip",
    view_name: str = "front",
) -> ImportResult:
    """A manifest from ActivityNet 1.3's ``activity_net.v1-3.min.json``.

    ``{"database": {id: {"subset": ..., "annotations": [{"segment": [s, e], "label": ...}]}}}``: segments
    become ``seconds`` timelines (a segment ending past its video's measured end is clipped to it, with a
    notice in the report), subsets ``training``/``validation``/``testing`` become splits
    ``train``/``val``/``test`` (``testing`` videos have no annotations: their frames stay unlabelled),
    labels are sorted by name. A video is the crawler's ``v_<id>.<ext>`` or ``<id>.<ext>`` anywhere under
    `video_dir`, the data root.
    """
    check_choice("missing", missing, MISSING_CHOICES)
    source, root, problems = Path(json_path), Path(video_dir).resolve(), Problems()
    document = read_json(source, problems)
    database = document.get("database") if isinstance(document, dict) else None
    if document is not None and not isinstance(database, dict):
        problems.add(Origin(source), "expected a mapping with key 'database' of video id -> annotations")
    drafts = [_activitynet_draft(str(key), record, source, problems) for key, record in (database or {}).items()]
    files = VideoFiles(root)
    for draft in drafts:
        draft.video = files.find(f"v_{draft.id}") or files.find(draft.id)
        draft.looked_for = f"v_{draft.id}.<ext> or {draft.id}.<ext>"
    return finish_import(drafts, problems, Options("activitynet", root, view_name, missing, probe=True))


def _activitynet_draft(video_id: str, record: Any, source: Path, problems: Problems) -> Draft:
    origin = Origin(source, key=f"database.{video_id}")
    draft = Draft(video_id, origin, unit="seconds")
    if not isinstance(record, dict):
        problems.add(origin, "expected a mapping with 'subset' and 'annotations'", video_id=video_id)
        return draft
    subset = record.get("subset")
    draft.split = None if subset is None else SPLIT_NAMES.get(str(subset), str(subset))
    notes = record.get("annotations", [])
    for position, note in enumerate(notes if isinstance(notes, list) else [notes]):
        where = origin.at(f"annotations[{position}]")
        try:
            start, end = (parse_seconds(str(t)) for t in note["segment"])
            label = note["label"]
        except (KeyError, TypeError, ValueError) as error:
            detail = f": {error}" if isinstance(error, ValueError) else ""
            problems.add(where, f"need segment [start, end] (finite seconds >= 0) and label{detail}", video_id=video_id)
            continue
        if not start < end:
            problems.add(where, f"segment [{start:g}, {end:g}) is inverted or empty", video_id=video_id)
        elif not isinstance(label, str) or not label:
            problems.add(where, f"label must be a non-empty string, got {label!r}", video_id=video_id)
        else:
            draft.segments.append((Segment(start, end, label), where))
    resolve_overlaps(draft, "keep", problems)  # merges repeated spans of one label
    return draft


def import_thumos14(
    annotation_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    overlap: OverlapPolicy = "error",
    background: str | None = "background",
    missing: Missing = "skip",
    view_name: str = "front",
) -> ImportResult:
    """A manifest from THUMOS14's temporal annotations, validation and test folders in one call.

    Each ``<Class>_val.txt``/``<Class>_test.txt`` (found anywhere under the folders given) holds lines
    ``<video> <start seconds> <end seconds>``; the split is the file's (``val`` or ``test``). Frames outside
    every action are the class `background` (first in the label list; None leaves them unlabelled), except
    spans of ``Ambiguous_*.txt``, which stay unlabelled (ignored by training and evaluation). Classes
    overlap (CliffDiving lies inside Diving): `overlap` ``"keep"`` keeps both (a multi-label manifest),
    ``"first"``/``"longest"`` keep one, ``"error"`` reports each overlap.
    """
    check_choice("overlap", overlap, tuple(OVERLAP_POLICIES))
    check_choice("missing", missing, MISSING_CHOICES)
    root, problems = Path(video_dir).resolve(), Problems()
    drafts: dict[str, Draft] = {}
    ambiguous: list[tuple[str, float, float]] = []
    for file in _thumos_files(as_paths(annotation_dirs), problems):
        match = _THUMOS_FILE.match(file.name)
        assert match is not None  # _thumos_files keeps matching names only
        for origin, video_id, start, end in _thumos_spans(file, problems):
            if match["label"] == _THUMOS_AMBIGUOUS:
                ambiguous.append((video_id, start, end))
                continue
            draft = drafts.setdefault(video_id, Draft(video_id, origin, split=match["split"], unit="seconds"))
            if draft.split != match["split"]:
                problems.add(origin, f"video {video_id!r} is also in the {draft.split} annotations", video_id=video_id)
            draft.segments.append((Segment(start, end, match["label"]), origin))
    for video_id, start, end in ambiguous:
        if video_id in drafts:
            drafts[video_id].ignored.append((start, end))
    files = VideoFiles(root)
    for draft in drafts.values():
        draft.video, draft.looked_for = files.find(draft.id), f"{draft.id}.<ext>"
        resolve_overlaps(draft, overlap, problems)
    options = Options("thumos14", root, view_name, missing, probe=True, multi_label=overlap == "keep",
                      background=background)  # fmt: skip
    return finish_import(list(drafts.values()), problems, options)


def _thumos_files(folders: list[Path], problems: Problems) -> list[Path]:
    files = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*.txt") if _THUMOS_FILE.match(p.name)) if folder.is_dir() else []
        if not found:
            what = "is not a folder" if not folder.is_dir() else "holds no '<Class>_val.txt' or '<Class>_test.txt'"
            problems.add(Origin(folder), f"{what}: give THUMOS14's annotation folders (validation and test)")
        files += found
    return files


def _thumos_spans(file: Path, problems: Problems) -> list[tuple[Origin, str, float, float]]:
    spans = []
    for number, line in read_lines(file, problems):
        origin, fields = Origin(file, number), line.split()
        try:
            if len(fields) != 3:
                raise ValueError(f"need '<video> <start> <end>', got {line!r}")
            start, end = parse_seconds(fields[1]), parse_seconds(fields[2])
        except ValueError as error:
            problems.add(origin, str(error))
            continue
        if not start < end:
            problems.add(origin, f"the span [{start:g}, {end:g}) is inverted or empty", video_id=fields[0])
            continue
        spans.append((origin, fields[0], start, end))
    return spans


def import_frame_labels(
    label_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    split: str | None = None,
    missing: Missing = "skip",
    view_name: str = "front",
) -> ImportResult:
    """A manifest from text files of one label per line, line ``i`` labelling frame ``i``.

    Runs of equal labels become ``frames`` segments; blank lines leave their frame unlabelled; labels past
    the video's last frame are clipped (with a notice in the report). ``<id>.txt`` labels the video
    ``<id>.<ext>`` found anywhere under `video_dir`, the data root.

    Args:
        label_files: A folder of ``.txt`` files, or the files.
        video_dir: The data root.
        split: Split given to every video.
        missing: ``"skip"`` videos not found (listed in the report) or report them as an ``"error"``.
        view_name: Name of the single view.
    """
    check_choice("missing", missing, MISSING_CHOICES)
    paths = as_paths(label_files)
    if len(paths) == 1 and paths[0].is_dir():
        paths = sorted(paths[0].glob("*.txt"))
    root, problems = Path(video_dir).resolve(), Problems()
    files, drafts = VideoFiles(root), []
    for path in paths:
        draft = Draft(path.stem, Origin(path), split=split, unit="frames")
        draft.segments = _frame_runs(path, problems)
        draft.video, draft.looked_for = files.find(path.stem), f"{path.stem}.<ext>"
        drafts.append(draft)
    return finish_import(drafts, problems, Options("frame-labels", root, view_name, missing, probe=True))


def _frame_runs(path: Path, problems: Problems) -> list[tuple[Segment, Origin]]:
    lines = read_lines(path, problems)
    labels = [""] * (lines[-1][0] if lines else 0)
    for number, label in lines:
        labels[number - 1] = label
    runs, frame = [], 0
    for label, run in itertools.groupby(labels):
        length = len(list(run))
        if label:
            runs.append((Segment(frame, frame + length, label), Origin(path, frame + 1)))
        frame += length
    return runs
