"""Cutting a video entry to its clip range for `prepare`: each view's frames, the timeline, the keypoints."""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidfit.data._keypoints import KeypointSource
from vidfit.data._manifest import Segment, Timeline, VideoEntry
from vidfit.data._sampling import clip_frame_range
from vidfit.io import VideoReader, write_files_atomic


@dataclass(frozen=True)
class ViewCut:
    """The frames ``[start_frame, stop_frame)`` of one view that a clip range keeps.

    Attributes:
        start_frame: First kept frame.
        stop_frame: One past the last kept frame.
        offset_seconds: Time of the first kept frame from the view's first frame: the copy's time 0.
        duration_seconds: From the first kept frame until the last one stops showing.
    """

    start_frame: int
    stop_frame: int
    offset_seconds: float
    duration_seconds: float

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame < self.stop_frame:
            raise ValueError(f"a cut needs 0 <= start_frame < stop_frame, got [{self.start_frame}, {self.stop_frame})")

    @property
    def num_frames(self) -> int:
        return self.stop_frame - self.start_frame


def has_clip_range(entry: VideoEntry) -> bool:
    """Whether the entry names a clip range (``start`` or ``end``) inside its video."""
    return entry.start_seconds is not None or entry.end_seconds is not None


def view_cuts(entry: VideoEntry) -> dict[str, ViewCut]:
    """Each view's frames of the entry's clip: those whose time from the view's own first frame lies inside.

    Views are cut each by its own clock, as views are synchronized (from their first frames): a view at
    another frame rate may start up to one of its frames after the reference.
    """
    return {
        view: _view_cut(path, entry=entry, stream_index=entry.streams.get(view)) for view, path in entry.views.items()
    }


def _view_cut(path: Path | str, *, entry: VideoEntry, stream_index: int | None) -> ViewCut:
    with VideoReader(path, stream_index=stream_index) as reader:
        times = reader.pts_seconds - reader.metadata.begin_seconds
        ends = np.append(times[1:], reader.metadata.duration_seconds)
    frames = clip_frame_range(times, start_seconds=entry.start_seconds, end_seconds=entry.end_seconds)
    if not frames:
        raise ValueError(f"video {entry.id!r}: {path}: the clip holds no frame of this view")
    offset = float(times[frames.start])
    return ViewCut(frames.start, frames.stop, offset, float(ends[frames.stop - 1]) - offset)


def cut_timeline(timeline: Timeline | None, cut: ViewCut) -> Timeline | None:
    """The timeline counted from the clip's first frame: segments moved, cut at the clip's ends, or dropped."""
    if timeline is None:
        return None
    if timeline.unit == "frames":
        shift, length = float(cut.start_frame), float(cut.num_frames)
    else:
        shift, length = cut.offset_seconds, cut.duration_seconds
    segments = []
    for segment in timeline.segments:
        start, end = max(segment.start - shift, 0.0), min(segment.end - shift, length)
        if start < end:
            segments.append(Segment(start, end, segment.label))
    return Timeline(timeline.unit, tuple(segments))


def cut_keypoints(source: KeypointSource, target: Path, cut: ViewCut) -> None:
    """Writes the keypoints of the clip's frames to `target`, renumbered from 0.

    A ``.npy`` is sliced into a new file (temp file, then rename); a folder's per-frame files are hard-linked
    (copied across file systems) under their new frame numbers.
    """
    if source.format == "npy":
        rows = np.load(source.path, mmap_mode="r")[cut.start_frame : cut.stop_frame]
        target.parent.mkdir(parents=True, exist_ok=True)
        write_files_atomic({target: functools.partial(_save_npy, rows=rows)})
        return
    target.mkdir(parents=True, exist_ok=True)
    for frame in range(cut.start_frame, cut.stop_frame):
        renumbered = f"{frame - cut.start_frame:0{source.digits}d}{source.suffix}"
        link_or_copy(source.frame_file(frame), target / renumbered)


def _save_npy(path: Path, *, rows: np.ndarray) -> None:
    with path.open("wb") as file:
        np.save(file, np.ascontiguousarray(rows))


def link_or_copy(original: Path, link: Path) -> None:
    """Hard-links `original` to `link` (replacing it), or copies it where the file system cannot link."""
    link.unlink(missing_ok=True)
    try:
        os.link(original, link)
    except OSError:
        shutil.copy2(original, link)
