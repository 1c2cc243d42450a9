"""Checks of one video against its files' metadata: views in sync, timeline inside, labels known, keypoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidfit.data._errors import Problem
from vidfit.data._keypoints import KeypointSource, inspect_keypoints
from vidfit.data._manifest import VideoEntry
from vidfit.io import VideoDecodeError, VideoMetadata, probe

# Float slack when comparing seconds read from two timestamps.
_EPSILON_SECONDS = 1e-6


@dataclass
class VideoCheck:
    """What checking one video found.

    Attributes:
        views: Metadata of each view that could be probed.
        keypoints: Usable keypoint sources by view.
        problems: Everything wrong with the video; empty when it can be used.
    """

    views: dict[str, VideoMetadata] = field(default_factory=dict)
    keypoints: dict[str, KeypointSource] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def check_video(
    entry: VideoEntry, *, labels: tuple[str, ...], sync_tolerance_seconds: float, manifest_file: Path
) -> VideoCheck:
    """Probes every view of `entry` (packet index only) and checks the entry against the files.

    Args:
        entry: The video.
        labels: The manifest's label names.
        sync_tolerance_seconds: Largest allowed difference between a view's duration and the reference's.
        manifest_file: Named in problems about manifest fields.
    """
    check = VideoCheck()
    for view, path in entry.views.items():
        try:
            check.views[view] = probe(path)
        except (FileNotFoundError, VideoDecodeError) as error:
            check.problems.append(Problem(entry.id, path, f"views.{view}", str(error).removeprefix(f"{path}: ")))
    if entry.label is not None and entry.label not in labels:
        check.problems.append(Problem(entry.id, manifest_file, "label", _unknown_label(entry.label, labels)))
    if len(check.views) != len(entry.views):
        return check
    reference = next(iter(check.views.values()))
    _check_durations(entry, check.views, sync_tolerance_seconds, check.problems)
    _check_timeline(entry, reference, labels, manifest_file, check.problems)
    _check_keypoints(entry, check)
    return check


def _unknown_label(label: str, labels: tuple[str, ...]) -> str:
    return f"label {label!r} is not one of the manifest's labels {list(labels)}"


def _check_durations(
    entry: VideoEntry, views: dict[str, VideoMetadata], tolerance: float, problems: list[Problem]
) -> None:
    names = list(views)
    reference = views[names[0]]
    for name in names[1:]:
        difference = abs(views[name].duration_seconds - reference.duration_seconds)
        if difference > tolerance + _EPSILON_SECONDS:
            message = (
                f"view {name!r} lasts {views[name].duration_seconds:.3f} s but reference view {names[0]!r} lasts "
                f"{reference.duration_seconds:.3f} s (sync_tolerance_seconds={tolerance})"
            )
            problems.append(Problem(entry.id, views[name].path, "duration_seconds", message))


def _check_timeline(
    entry: VideoEntry, reference: VideoMetadata, labels: tuple[str, ...], manifest_file: Path, problems: list[Problem]
) -> None:
    timeline = entry.timeline
    if timeline is None:
        return
    if timeline.unit == "frames":
        end, unit = float(reference.num_frames), "frames"
    else:
        end, unit = reference.duration_seconds + _EPSILON_SECONDS, "seconds"
    previous = None
    for i, segment in sorted(enumerate(timeline.segments), key=lambda item: item[1].start):
        where = f"timeline.segments[{i}]"
        span = f"[{segment.start:g}, {segment.end:g})"
        if segment.start >= segment.end:
            problems.append(Problem(entry.id, manifest_file, where, f"segment {span} is inverted or empty"))
        if segment.start < 0 or segment.end > end:
            message = f"segment {span} is outside the video [0, {end:g}) {unit}"
            problems.append(Problem(entry.id, manifest_file, where, message))
        if segment.label not in labels:
            problems.append(Problem(entry.id, manifest_file, where, _unknown_label(segment.label, labels)))
        if previous is not None and segment.start < previous.end:
            message = f"segment {span} overlaps [{previous.start:g}, {previous.end:g})"
            problems.append(Problem(entry.id, manifest_file, where, message))
        previous = segment


def _check_keypoints(entry: VideoEntry, check: VideoCheck) -> None:
    for view, path in entry.keypoints.items():
        num_frames = check.views[view].num_frames
        source = inspect_keypoints(path, video_id=entry.id, view=view, num_frames=num_frames, problems=check.problems)
        if source is not None:
            check.keypoints[view] = source
    shapes = {view: (s.num_keypoints, s.dims) for view, s in check.keypoints.items()}
    if len(set(shapes.values())) > 1:
        path = next(iter(check.keypoints.values())).path
        check.problems.append(Problem(entry.id, path, "keypoints", f"views disagree on (K, D): {shapes}"))
