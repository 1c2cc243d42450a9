"""Labelled spans from CSVs as datasets publish them: EPIC-KITCHENS-100 (``start_timestamp``
``00:00:01.089``, 1-based inclusive ``start_frame``/``stop_frame``), Charades (``actions`` as
``c092 11.90 21.20;c147 0.00 12.60``), or any ``video,start,stop,label`` table; and the overlap policies
that THUMOS14 shares.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from vidfit.data._import_build import MISSING_CHOICES, Draft, Missing, Options, finish_import
from vidfit.data._import_result import ImportResult
from vidfit.data._import_text import (
    Origin,
    Problems,
    as_paths,
    check_choice,
    parse_frame,
    parse_seconds,
    read_csv,
    require_columns,
    split_from_name,
)
from vidfit.data._import_videos import VideoFiles
from vidfit.data._manifest import Segment, TimelineUnit

OverlapPolicy = Literal["error", "first", "longest", "keep"]
FrameNumbering = Literal["zero-based-exclusive", "one-based-inclusive"]
FRAME_NUMBERINGS: tuple[str, ...] = ("zero-based-exclusive", "one-based-inclusive")
SEGMENT_FIELDS: tuple[str, ...] = ("video", "start", "stop", "label", "actions")
_Spans = list[tuple[Segment, Origin]]


def _keep_all(spans: _Spans) -> _Spans:
    return spans


def _by_position(spans: _Spans) -> _Spans:
    return spans  # already in annotation order


def _by_length(spans: _Spans) -> _Spans:
    return sorted(spans, key=lambda item: -(item[0].end - item[0].start))  # stable: the first among equals


# Each policy orders a video's spans by priority; "first" and "longest" then drop a span overlapping a kept one,
# "error" reports it, "keep" keeps every span (a multi-label manifest).
OVERLAP_POLICIES: dict[str, Callable[[_Spans], _Spans]] = {
    "error": _keep_all,
    "first": _by_position,
    "longest": _by_length,
    "keep": _keep_all,
}


def resolve_overlaps(draft: Draft, overlap: OverlapPolicy, problems: Problems) -> None:
    """Applies `overlap` to `draft`'s segments; spans of one label that overlap are first merged into one."""
    spans = _merge_same_label(draft.segments)
    if overlap != "keep":
        kept: _Spans = []
        for segment, origin in OVERLAP_POLICIES[overlap](spans):
            clash = next((k for k in kept if segment.start < k[0].end and k[0].start < segment.end), None)
            if clash is None:
                kept.append((segment, origin))
            elif overlap == "error":
                problems.add(origin, _overlap_message(segment, clash), video_id=draft.id)
        spans = kept
    draft.segments = sorted(spans, key=lambda item: (item[0].start, item[0].end))


def _overlap_message(segment: Segment, clash: tuple[Segment, Origin]) -> str:
    other, origin = clash
    return (
        f"[{segment.start:g}, {segment.end:g}) {segment.label!r} overlaps [{other.start:g}, {other.end:g}) "
        f"{other.label!r} of {origin.file.name}: {origin.where}; set overlap (--overlap) to keep (multi-label), "
        "first or longest"
    )


def _merge_same_label(spans: _Spans) -> _Spans:
    """One span per run of overlapping spans of one label (annotations often repeat a span)."""
    merged: _Spans = []
    for segment, origin in sorted(spans, key=lambda item: (item[0].label, item[0].start)):
        last = merged[-1] if merged else None
        if last is not None and last[0].label == segment.label and segment.start < last[0].end:
            merged[-1] = (Segment(last[0].start, max(last[0].end, segment.end), segment.label), last[1])
        else:
            merged.append((segment, origin))
    order = {id(origin): position for position, (_, origin) in enumerate(spans)}
    return sorted(merged, key=lambda item: order[id(item[1])])


def import_segments(
    csv_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    video_dir: str | os.PathLike[str],
    columns: Mapping[str, str] | None = None,
    unit: TimelineUnit = "seconds",
    frame_numbering: FrameNumbering = "zero-based-exclusive",
    overlap: OverlapPolicy = "error",
    background: str | None = None,
    split: str | None = None,
    missing: Missing = "skip",
    view_name: str = "front",
) -> ImportResult:
    """A manifest from CSVs of labelled spans, one row per span (EPIC-KITCHENS-100) or per video (Charades).

    Args:
        csv_paths: The CSVs; the split of each is `split`, else the one its name gives
            (``EPIC_100_validation.csv`` -> ``val``), else none.
        video_dir: The data root; ``<video>.<ext>`` is looked for anywhere under it.
        columns: Field to column name for ``video``, ``start``, ``stop``, ``label`` (each named as itself
            by default) or ``actions`` (Charades' ``c092 11.90 21.20;...`` field, in seconds, instead of
            start, stop and label).
        unit: ``"seconds"`` (numbers or ``HH:MM:SS.ff``) or ``"frames"``.
        frame_numbering: Frame numbers as counted in the file: ``"zero-based-exclusive"`` (``[start, stop)``
            from 0) or ``"one-based-inclusive"`` (EPIC-KITCHENS' ``start_frame``/``stop_frame``).
        overlap: Overlapping spans of one video: ``"error"``, ``"keep"`` (a multi-label manifest), ``"first"``
            (the one listed first) or ``"longest"``.
        background: Label for the frames no span covers; unlabelled when None.
        split: The split of every video.
        missing: ``"skip"`` videos not found (listed in the report) or report them as an ``"error"``.
        view_name: Name of the single view.
    """
    fields = {name: name for name in ("video", "start", "stop", "label")} if columns is None else dict(columns)
    _check_options(fields, unit=unit, frame_numbering=frame_numbering, overlap=overlap, missing=missing)
    root, problems = Path(video_dir).resolve(), Problems()
    drafts: dict[str, Draft] = {}
    for path in as_paths(csv_paths):
        file_split = split if split is not None else split_from_name(path)
        for line, values in _rows(path, fields, problems):
            _add_row(drafts, values, Origin(path, line), fields, file_split, unit, frame_numbering, problems)
    files = VideoFiles(root)
    for draft in drafts.values():
        draft.video, draft.looked_for = files.find(draft.id), f"{draft.id}.<ext>"
        resolve_overlaps(draft, overlap, problems)
    options = Options("segments", root, view_name, missing, probe=True, multi_label=overlap == "keep",
                      background=background)  # fmt: skip
    return finish_import(list(drafts.values()), problems, options)


def _check_options(fields: dict[str, str], **choices: object) -> None:
    unknown = sorted(set(fields) - set(SEGMENT_FIELDS))
    if unknown:
        raise ValueError(f"columns: {unknown} are not fields; the fields are {', '.join(SEGMENT_FIELDS)}")
    needed = ("video", "actions") if "actions" in fields else ("video", "start", "stop", "label")
    if lacking := [name for name in needed if name not in fields]:
        raise ValueError(f"columns: lacks {lacking}; name the column of each of {', '.join(needed)}")
    check_choice("unit", choices["unit"], ("seconds", "frames"))
    check_choice("frame_numbering", choices["frame_numbering"], FRAME_NUMBERINGS)
    check_choice("overlap", choices["overlap"], tuple(OVERLAP_POLICIES))
    check_choice("missing", choices["missing"], MISSING_CHOICES)
    if "actions" in fields and choices["unit"] != "seconds":
        raise ValueError("unit='frames' cannot read an actions column: its spans are in seconds")


def _rows(path: Path, fields: dict[str, str], problems: Problems) -> list[tuple[int, dict[str, str]]]:
    header, rows = read_csv(path, problems)
    needed = [column for name, column in fields.items() if name != "label" or "actions" not in fields]
    if not require_columns(path, header, needed, problems):
        return []
    return [(line, {name: row.get(column, "") for name, column in fields.items()}) for line, row in rows]


def _add_row(
    drafts: dict[str, Draft],
    values: dict[str, str],
    origin: Origin,
    fields: dict[str, str],
    split: str | None,
    unit: TimelineUnit,
    numbering: str,
    problems: Problems,
) -> None:
    video_id = values["video"]
    if not video_id:
        problems.add(origin, f"{fields['video']}: the video is empty")
        return
    draft = drafts.setdefault(video_id, Draft(video_id, origin, split=split, unit=unit))
    if draft.split != split:
        problems.add(origin, f"video {video_id!r} is also in split {draft.split!r} ({draft.origin.file.name})")
        return
    if "actions" in fields:
        draft.segments += _actions(values["actions"], origin.at(fields["actions"]), problems)
    elif (segment := _span(values, origin, fields, unit, numbering, problems)) is not None:
        draft.segments.append((segment, origin))


def _span(
    values: dict[str, str], origin: Origin, fields: dict[str, str], unit: str, numbering: str, problems: Problems
) -> Segment | None:
    try:
        if unit == "seconds":
            start, stop = parse_seconds(values["start"]), parse_seconds(values["stop"])
        else:
            start, stop = parse_frame(values["start"]), parse_frame(values["stop"])
            if numbering == "one-based-inclusive":
                if start < 1:
                    raise ValueError(f"frame {start} is not 1-based (one-based-inclusive frames start at 1)")
                start -= 1  # [first, last] counted from 1 is [first - 1, last) counted from 0
    except ValueError as error:
        problems.add(origin, f"{fields['start']}/{fields['stop']}: {error}")
        return None
    if not values["label"]:
        problems.add(origin, f"{fields['label']}: the label is empty")
        return None
    if not start < stop:
        problems.add(origin, f"the span [{start:g}, {stop:g}) is inverted or empty: need start < stop")
        return None
    return Segment(start, stop, values["label"])


def _actions(text: str, origin: Origin, problems: Problems) -> list[tuple[Segment, Origin]]:
    """Charades' ``c092 11.90 21.20;c147 0.00 12.60`` (an empty field: no action)."""
    spans = []
    for position, item in enumerate(part for part in text.split(";") if part.strip()):
        where = origin.at(f"[{position}]")
        parts = item.split()
        try:
            if len(parts) != 3:
                raise ValueError(f"need '<class> <start> <end>', got {item.strip()!r}")
            start, end = parse_seconds(parts[1]), parse_seconds(parts[2])
        except ValueError as error:
            problems.add(where, str(error))
            continue
        if not start < end:
            problems.add(where, f"the span [{start:g}, {end:g}) is inverted or empty: need start < end")
            continue
        spans.append((Segment(start, end, parts[0]), where))
    return spans
