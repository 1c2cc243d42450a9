"""From what annotation files say about each video (a `Draft`) to a manifest the loader accepts.

Every importer ends here: videos not found are skipped (or, with ``missing="error"``, all reported at
once), timelines are fitted to each video's measured length, and the manifest is checked with the
loader's own checks (`_Parser` for ids, paths and times, `_check_timeline` for spans and labels) before
it is returned, each problem placed back at the annotation line it came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vidfit.data._errors import Problem
from vidfit.data._import_result import ImportNote, ImportResult
from vidfit.data._import_text import Origin, Problems
from vidfit.data._import_videos import probe_all
from vidfit.data._manifest import (
    EPSILON_SECONDS,
    Manifest,
    Segment,
    Timeline,
    TimelineUnit,
    VideoEntry,
    _dump_video,
    _Parser,
    _unsafe_name_reason,
)
from vidfit.data._validate import Requirements, _check_timeline
from vidfit.io import VideoMetadata

Missing = Literal["skip", "error"]
MISSING_CHOICES: tuple[str, ...] = ("skip", "error")
_SEGMENT_FIELD = re.compile(r"^timeline\.segments\[(\d+)\]$")


@dataclass
class Draft:
    """What the annotations say about one video, before its file is found and checked.

    Attributes:
        id: The video's id in the manifest.
        origin: Where the annotations first name it.
        split: Its split, or None.
        label: Its video-level label, or None.
        unit: The unit of its timeline; None for no timeline.
        segments: Labelled spans, each with the place it was read from.
        ignored: Spans left unlabelled on purpose (THUMOS14's ``Ambiguous``), which background does not cover.
        start_seconds: Start of the clip in an untrimmed source video, or None.
        end_seconds: End of that clip, or None.
        video: The video file found, or None.
        looked_for: What was looked for, for the report when nothing was found.
    """

    id: str
    origin: Origin
    split: str | None = None
    label: str | None = None
    unit: TimelineUnit | None = None
    segments: list[tuple[Segment, Origin]] = field(default_factory=list)
    ignored: list[tuple[float, float]] = field(default_factory=list)
    start_seconds: float | None = None
    end_seconds: float | None = None
    video: Path | None = None
    looked_for: str = ""


@dataclass(frozen=True)
class Options:
    """How an import ends.

    Attributes:
        format: The format's name, for the summary.
        root: The data root every video is under.
        view_name: The single view's name.
        missing: ``"skip"`` absent videos (listed in the report) or report them all as an ``"error"``.
        probe: Read every found video's length (needed to fit timelines; otherwise only existence is checked).
        labels: The dataset's own class order; sorted names of the labels used when None.
        multi_label: Timeline segments may overlap.
        background: Label of the frames no segment covers (added as segments), or None to leave them unlabelled.
    """

    format: str
    root: Path
    view_name: str = "front"
    missing: Missing = "skip"
    probe: bool = False
    labels: Sequence[str] | None = None
    multi_label: bool = False
    background: str | None = None


@dataclass
class _State:
    problems: Problems
    skipped: list[ImportNote] = field(default_factory=list)
    clipped: list[ImportNote] = field(default_factory=list)


def finish_import(drafts: Sequence[Draft], problems: Problems, options: Options) -> ImportResult:
    """The checked manifest of `drafts`, with what was skipped or clipped; every problem raised at once."""
    state = _State(problems)
    present = _found(_safe_names(_unique(drafts, problems), problems), options, state)
    metadata: dict[str, VideoMetadata] = {}
    if options.probe:
        metadata = _readable(present, options, state)
        present = [draft for draft in present if draft.id in metadata]
    for draft in present:
        if draft.id in metadata and draft.unit is not None:
            _fit_to_video(draft, metadata[draft.id], state)
            if options.background is not None:
                _add_background(draft, metadata[draft.id], options.background)
    if not present and not problems.items:
        _report_nothing_found(drafts, options, problems)
    labels = _labels(present, options)
    entries = [_entry(draft, options) for draft in present]
    _check(entries, present, metadata, labels, options, problems)
    problems.raise_any()
    manifest = Manifest(labels, options.root, tuple(entries), multi_label=options.multi_label)
    position = {draft.id: index for index, draft in reversed(list(enumerate(drafts)))}
    files = {draft.origin.file: index for index, draft in reversed(list(enumerate(drafts)))}

    def in_annotation_order(note: ImportNote) -> tuple[int, int, int]:
        return files.get(note.origin.file, 0), note.origin.line or 0, position.get(note.video_id or "", 0)

    skipped, clipped = sorted(state.skipped, key=in_annotation_order), sorted(state.clipped, key=in_annotation_order)
    return ImportResult(options.format, manifest, tuple(skipped), tuple(clipped))


def _unique(drafts: Sequence[Draft], problems: Problems) -> list[Draft]:
    first: dict[str, Draft] = {}
    for draft in drafts:
        if draft.id in first:
            earlier = first[draft.id].origin
            message = f"lists video {draft.id!r} again; it is first listed at {earlier.file}: {earlier.where}"
            problems.add(draft.origin, message, video_id=draft.id)
        else:
            first[draft.id] = draft
    return list(first.values())


def _safe_names(drafts: list[Draft], problems: Problems) -> list[Draft]:
    """Ids and labels become file and folder names: ``../x`` is an error, found or not, never written."""
    safe = []
    for draft in drafts:
        named = [(draft.origin, "id", draft.id)] + ([(draft.origin, "label", draft.label)] if draft.label else [])
        named += [(origin, "label", segment.label) for segment, origin in draft.segments]
        reasons = [(o, f"{what}: {reason}") for o, what, name in named if (reason := _unsafe_name_reason(name))]
        for origin, reason in reasons:
            problems.add(origin, reason, video_id=draft.id)
        if not reasons:
            safe.append(draft)
    return safe


def _found(drafts: list[Draft], options: Options, state: _State) -> list[Draft]:
    for draft in (d for d in drafts if d.video is None):
        reason = f"no video file found: looked for {draft.looked_for or draft.id} under {options.root}"
        if options.missing == "error":
            state.problems.add(draft.origin, reason, video_id=draft.id)
        else:
            state.skipped.append(ImportNote(draft.origin, draft.id, "missing files", reason))
    return [draft for draft in drafts if draft.video is not None]


def _readable(drafts: list[Draft], options: Options, state: _State) -> dict[str, VideoMetadata]:
    found = probe_all({draft.id: draft.video for draft in drafts if draft.video is not None})
    for draft in drafts:
        result = found[draft.id]
        if isinstance(result, str):
            reason = f"{draft.video}: cannot be read: {result}"
            if options.missing == "error":
                state.problems.add(draft.origin, reason, video_id=draft.id)
            else:
                state.skipped.append(ImportNote(draft.origin, draft.id, "unreadable", reason))
    return {video_id: meta for video_id, meta in found.items() if not isinstance(meta, str)}


def _video_end(unit: TimelineUnit, meta: VideoMetadata) -> float:
    return float(meta.num_frames) if unit == "frames" else meta.duration_seconds


def _fit_to_video(draft: Draft, meta: VideoMetadata, state: _State) -> None:
    """Segments ending past the video's measured end are clipped to it; those starting after it are dropped."""
    assert draft.unit is not None
    end, unit = _video_end(draft.unit, meta), "s" if draft.unit == "seconds" else " frames"
    slack = EPSILON_SECONDS if draft.unit == "seconds" else 0.0
    kept: list[tuple[Segment, Origin]] = []
    for segment, origin in draft.segments:
        span = f"[{segment.start:g}, {segment.end:g}){unit} {segment.label!r}"
        if segment.start >= end:
            reason = f"dropped {span}: it starts after the video's end ({end:g}{unit})"
            state.clipped.append(ImportNote(origin, draft.id, "dropped", reason))
        elif segment.end > end + slack:
            reason = f"clipped {span} to the video's end ({end:g}{unit})"
            state.clipped.append(ImportNote(origin, draft.id, "clipped", reason))
            kept.append((Segment(segment.start, end, segment.label), origin))
        else:
            kept.append((segment, origin))
    draft.segments = kept


def _add_background(draft: Draft, meta: VideoMetadata, name: str) -> None:
    """Segments labelled `name` over every span of the video no segment and no ignored span covers."""
    assert draft.unit is not None
    covered = sorted([(s.start, s.end) for s, _ in draft.segments] + draft.ignored)
    gaps, position = [], 0.0
    for start, end in covered:
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < (end_of_video := _video_end(draft.unit, meta)):
        gaps.append((position, end_of_video))
    origin = draft.origin.at("background")
    draft.segments = sorted(draft.segments + [(Segment(s, e, name), origin) for s, e in gaps],
                            key=lambda item: (item[0].start, item[0].end))  # fmt: skip


def _report_nothing_found(drafts: Sequence[Draft], options: Options, problems: Problems) -> None:
    if not drafts:
        problems.add(Origin(options.root), "the annotations list no video")
        return
    example = drafts[0].looked_for or drafts[0].id
    message = f"none of the {len(drafts)} video(s) the annotations list was found (e.g. {example}): the data root?"
    problems.add(Origin(options.root), message)


def _labels(drafts: list[Draft], options: Options) -> tuple[str, ...]:
    if options.labels is not None:
        labels = list(options.labels)
    else:
        used = {d.label for d in drafts if d.label is not None} | {s.label for d in drafts for s, _ in d.segments}
        labels = sorted(used - {options.background})
    if options.background is not None:
        labels = [options.background, *(label for label in labels if label != options.background)]
    return tuple(labels)


def _entry(draft: Draft, options: Options) -> VideoEntry:
    assert draft.video is not None
    timeline = None
    if draft.unit is not None:
        timeline = Timeline(draft.unit, tuple(segment for segment, _ in draft.segments))
    return VideoEntry(
        id=draft.id, views={options.view_name: draft.video}, split=draft.split, label=draft.label,
        timeline=timeline, start_seconds=draft.start_seconds, end_seconds=draft.end_seconds,
    )  # fmt: skip


def _check(
    entries: list[VideoEntry],
    drafts: list[Draft],
    metadata: dict[str, VideoMetadata],
    labels: tuple[str, ...],
    options: Options,
    problems: Problems,
) -> None:
    """The loader's checks on what will be written, each problem placed at its annotation line."""
    parser = _Parser(Path("manifest"), options.root, allow_outside_root=False)
    parser.labels(list(labels))
    requirements = Requirements(labels, 0.0, None, False, Path("manifest"), multi_label=options.multi_label)
    known = set(labels)
    for position, (entry, draft) in enumerate(zip(entries, drafts, strict=True)):
        parser.video(_dump_video(entry, options.root), position)
        found = parser.problems[:]
        parser.problems.clear()
        _check_timeline(entry, metadata.get(entry.id), requirements, found)
        if entry.label is not None and entry.label not in known:
            found.append(Problem(entry.id, "", "label", _unknown(entry.label, labels)))
        for problem in found:
            _place(problem, draft, problems)


def _unknown(label: str, labels: tuple[str, ...]) -> str:
    listed = f"{list(labels)}" if len(labels) <= 10 else f"{len(labels)} labels ({', '.join(labels[:5])}, ...)"
    return f"label {label!r} is not one of the dataset's {listed}"


def _place(problem: Problem, draft: Draft, problems: Problems) -> None:
    match = _SEGMENT_FIELD.match(problem.field)
    if match is not None and int(match[1]) < len(draft.segments):
        problems.add(draft.segments[int(match[1])][1], problem.message, video_id=draft.id)
    else:
        problems.add(draft.origin, f"{problem.field}: {problem.message}", video_id=draft.id)
