"""Checks of one video against its files' metadata: views in sync, timeline inside, labels known, keypoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidfit.data._cut import has_clip_range
from vidfit.data._errors import Problem
from vidfit.data._keypoints import KeypointSource, inspect_keypoints
from vidfit.data._manifest import EPSILON_SECONDS, VideoEntry
from vidfit.data._sampling import clip_frame_range
from vidfit.io import VideoDecodeError, VideoMetadata, VideoReader, probe


@dataclass(frozen=True)
class Requirements:
    """What every video is checked against.

    Attributes:
        labels: The manifest's label names.
        sync_tolerance_seconds: Largest allowed difference between a view's duration and the reference's.
        views: Views every video must have; None asks for none beyond the manifest's.
        same_frame_size: The `views` of a video must share one (height, width), to be stacked unresized.
        manifest_file: Named in problems about manifest fields.
        multi_label: Timeline segments may overlap (the manifest's ``multi_label: true``).
    """

    labels: tuple[str, ...]
    sync_tolerance_seconds: float
    views: tuple[str, ...] | None
    same_frame_size: bool
    manifest_file: Path | str
    multi_label: bool = False


@dataclass
class VideoCheck:
    """What checking one video found.

    Attributes:
        views: Metadata of each view that could be probed.
        keypoints: Usable keypoint sources by view.
        problems: Everything wrong with the video; empty when it can be used.
        frames: The reference view's frames of the entry's clip range (all of them without one); None
            when the reference could not be read.
    """

    views: dict[str, VideoMetadata] = field(default_factory=dict)
    keypoints: dict[str, KeypointSource] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    frames: range | None = None


def check_video(entry: VideoEntry, requirements: Requirements) -> VideoCheck:
    """Probes every view of `entry` (packet index only) and checks the entry against the files.

    Checks that need no file (labels, segment order, views asked for, keypoint files present)
    run even when a view cannot be probed, so that every problem is reported at once.
    """
    check = VideoCheck()
    for position, (view, path) in enumerate(entry.views.items()):
        if isinstance(path, Path) and path.is_dir():
            check.problems.append(Problem(entry.id, path, f"views.{view}", "is a folder, not a video file"))
            continue
        try:
            if position == 0 and has_clip_range(entry):
                check.views[view], check.frames = _clip_frames(entry, path)
            else:
                check.views[view] = probe(path, stream_index=entry.streams.get(view))
        except (FileNotFoundError, VideoDecodeError, ValueError) as error:
            check.problems.append(Problem(entry.id, path, f"views.{view}", str(error).removeprefix(f"{path}: ")))
    manifest_file = requirements.manifest_file
    if entry.label is not None and entry.label not in requirements.labels:
        check.problems.append(Problem(entry.id, manifest_file, "label", _unknown_label(entry.label, requirements)))
    _check_views(entry, check, requirements)
    reference = check.views.get(next(iter(entry.views))) if entry.views else None
    if reference is not None:
        check.frames = check.frames if check.frames is not None else range(reference.num_frames)
        _check_range(entry, reference, check.frames, requirements, check.problems)
    _check_durations(entry, check, requirements.sync_tolerance_seconds)
    _check_timeline(entry, reference, requirements, check.problems)
    _check_keypoints(entry, check)
    return check


def _clip_frames(entry: VideoEntry, path: Path | str) -> tuple[VideoMetadata, range]:
    """The reference view's metadata and the frames of the entry's clip, from its packet index (nothing decoded)."""
    reference = next(iter(entry.views))
    with VideoReader(path, stream_index=entry.streams.get(reference)) as reader:
        times = reader.pts_seconds - reader.metadata.begin_seconds
        frames = clip_frame_range(times, start_seconds=entry.start_seconds, end_seconds=entry.end_seconds)
        return reader.metadata, frames


def _check_range(
    entry: VideoEntry, reference: VideoMetadata, frames: range, requirements: Requirements, problems: list[Problem]
) -> None:
    """A clip range must hold a frame; an end past the video's end only ends the clip with the video."""
    if frames:
        return
    end = "the end" if entry.end_seconds is None else f"{entry.end_seconds:g}"
    message = (
        f"the clip [{entry.start_seconds or 0:g}, {end}) s holds no frame of the reference view, which lasts "
        f"{reference.duration_seconds:.3f} s"
    )
    problems.append(Problem(entry.id, requirements.manifest_file, "start", message))


def _unknown_label(label: str, requirements: Requirements) -> str:
    return f"label {label!r} is not one of the manifest's labels {list(requirements.labels)}"


def _check_views(entry: VideoEntry, check: VideoCheck, requirements: Requirements) -> None:
    if requirements.views is None:
        return
    missing = [view for view in requirements.views if view not in entry.views]
    if missing:
        message = f"lacks view(s) {missing} of {requirements.views}"
        check.problems.append(Problem(entry.id, requirements.manifest_file, "views", message))
        return
    sizes = {(check.views[v].height, check.views[v].width) for v in requirements.views if v in check.views}
    if requirements.same_frame_size and len(sizes) > 1:
        message = f"views differ in (height, width) {sorted(sizes)}: set image_size to stack them"
        check.problems.append(Problem(entry.id, entry.views[requirements.views[0]], "image_size", message))


def _check_durations(entry: VideoEntry, check: VideoCheck, tolerance: float) -> None:
    names = list(entry.views)
    reference = check.views.get(names[0]) if names else None
    if reference is None:
        return
    for name in names[1:]:
        view = check.views.get(name)
        if view is None:
            continue
        if abs(view.duration_seconds - reference.duration_seconds) > tolerance + EPSILON_SECONDS:
            message = (
                f"view {name!r} lasts {view.duration_seconds:.3f} s but reference view {names[0]!r} lasts "
                f"{reference.duration_seconds:.3f} s (sync_tolerance_seconds={tolerance})"
            )
            check.problems.append(Problem(entry.id, view.path, "duration_seconds", message))


def _check_timeline(
    entry: VideoEntry, reference: VideoMetadata | None, requirements: Requirements, problems: list[Problem]
) -> None:
    """Segments inverted, overlapping (unless multi-label), with unknown labels, or outside the video (when known).

    Segments are visited by start; each one that starts before the furthest end seen so far
    overlaps the segment reaching that end, wherever it is in the list.
    """
    timeline, manifest_file = entry.timeline, requirements.manifest_file
    if timeline is None:
        return
    end = _timeline_end(timeline.unit, reference)
    furthest = None
    for i, segment in sorted(enumerate(timeline.segments), key=lambda item: item[1].start):
        where, span = f"timeline.segments[{i}]", f"[{segment.start:g}, {segment.end:g})"
        inverted = segment.start >= segment.end
        if inverted:
            problems.append(Problem(entry.id, manifest_file, where, f"segment {span} is inverted or empty"))
        if end is not None and (segment.start < 0 or segment.end > end):
            message = f"segment {span} is outside the video [0, {end:g}) {timeline.unit}"
            problems.append(Problem(entry.id, manifest_file, where, message))
        if segment.label not in requirements.labels:
            problems.append(Problem(entry.id, manifest_file, where, _unknown_label(segment.label, requirements)))
        if not requirements.multi_label and furthest is not None and not inverted and segment.start < furthest.end:
            message = f"segment {span} overlaps [{furthest.start:g}, {furthest.end:g})"
            problems.append(Problem(entry.id, manifest_file, where, message))
        if not inverted and (furthest is None or segment.end > furthest.end):
            furthest = segment


def _timeline_end(unit: str, reference: VideoMetadata | None) -> float | None:
    """End of the reference view in the timeline's unit; None when it could not be probed."""
    if reference is None:
        return None
    if unit == "frames":
        return float(reference.num_frames)
    return reference.duration_seconds + EPSILON_SECONDS


def _check_keypoints(entry: VideoEntry, check: VideoCheck) -> None:
    for view, path in entry.keypoints.items():
        meta = check.views.get(view)
        source = inspect_keypoints(
            path,
            video_id=entry.id,
            view=view,
            num_frames=meta.num_frames if meta is not None else None,
            problems=check.problems,
        )
        if source is not None:
            check.keypoints[view] = source
    shapes = {view: (s.num_keypoints, s.dims) for view, s in check.keypoints.items()}
    if len(set(shapes.values())) > 1:
        path = next(iter(check.keypoints.values())).path
        check.problems.append(Problem(entry.id, path, "keypoints", f"views disagree on (K, D): {shapes}"))
