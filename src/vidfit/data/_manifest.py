"""The dataset manifest: videos, their views, labels, timelines, keypoints and clip ranges, read from YAML or JSON."""

from __future__ import annotations

import json
import math
import os
import posixpath
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from vidfit.data._errors import ManifestError, Problem
from vidfit.io._atomic import write_text_atomic
from vidfit.io._documents import DocumentLimits, load_document
from vidfit.io._sources import as_location, is_inside, join_location, location_parent, open_text, relative_location

TimelineUnit = Literal["frames", "seconds"]
TIMELINE_UNITS: tuple[str, ...] = get_args(TimelineUnit)
# Float slack when comparing times in seconds read from two timestamps or streams.
EPSILON_SECONDS = 1e-6
_TOP_KEYS = {"labels", "root", "videos", "multi_label"}
_VIDEO_KEYS = {"id", "split", "views", "label", "timeline", "keypoints", "start", "end"}
_TIMELINE_KEYS = {"unit", "segments"}
_SEGMENT_KEYS = {"start", "end", "label"}
_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
# A manifest of a million videos is about 200 MB of YAML; one larger, deeper or expanding further is an error.
MANIFEST_LIMITS = DocumentLimits(max_bytes=256 << 20, max_depth=32, max_nodes=20_000_000)
# Views of one video (each is opened for every sample): more cameras than any rig records together.
MAX_VIEWS = 1024
# Ids and view names become file and folder names (prepare writes videos/<id>/<view>.mp4).
_UNSAFE_NAMES = {"", ".", ".."}
_UNSAFE_CHARACTERS = ("/", "\\", "\0")


@dataclass(frozen=True)
class Segment:
    """A labelled span ``[start, end)`` of a video, in the unit of its timeline."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Timeline:
    """Labelled spans of one video, in reference-view frames or in seconds from its first frame."""

    unit: TimelineUnit
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class VideoEntry:
    """One recording, seen from one or more synchronized views.

    Attributes:
        id: Unique name of the video.
        views: View name to absolute file path or URL; the first view is the reference view.
        split: ``"train"``, ``"val"``, ... or None.
        label: Video-level label, or None.
        timeline: Per-frame labels as segments, or None.
        keypoints: View name to a folder of per-frame ``.npz`` files or one ``.npy`` of (T, K, D).
        streams: View name to the video stream it reads (``views: {front: {path: x.mp4, stream: 3}}``);
            a view not named here reads FFmpeg's best video stream.
        start_seconds: Start of the clip's range ``[start, end)`` in seconds from the reference view's
            first frame (an untrimmed source video), or None for the video's start.
        end_seconds: End of the clip's range, or None for the video's end.
    """

    id: str
    views: Mapping[str, Path | str]
    split: str | None = None
    label: str | None = None
    timeline: Timeline | None = None
    keypoints: dict[str, Path] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)
    start_seconds: float | None = None
    end_seconds: float | None = None


@dataclass(frozen=True)
class Manifest:
    """A dataset: label names, the data root, and the videos.

    Attributes:
        labels: Label names; a label's index is its class id.
        root: Absolute data root all paths are inside (unless loaded with ``allow_outside_root``); a
            URL for a manifest read from one.
        videos: The videos, in file order.
        path: The file the manifest was loaded from, if any.
        multi_label: A frame may carry several labels: timeline segments may overlap.
    """

    labels: tuple[str, ...]
    root: Path | str
    videos: tuple[VideoEntry, ...]
    path: Path | str | None = None
    multi_label: bool = False


def load_manifest(path: str | os.PathLike[str], *, allow_outside_root: bool = False) -> Manifest:
    """Reads a manifest (``.yaml``/``.yml`` or ``.json``), reporting every problem in one `ManifestError`.

    Args:
        path: The manifest file, or its http(s)/fsspec URL; relative paths inside it are relative to
            its folder (so a remote manifest names remote videos; keypoints must be local files).
        allow_outside_root: Accept video and keypoint paths outside the data root.
    """
    source = as_location(path)
    raw = _read_document(source)
    root = join_location(location_parent(source), str(raw.get("root", ".")))
    root = root.resolve() if isinstance(root, Path) else root
    parser = _Parser(source, root, allow_outside_root)
    parser.check_keys(raw, _TOP_KEYS, video_id=None, where="manifest")
    labels = parser.labels(raw.get("labels", []))
    multi_label = raw.get("multi_label", False)
    if not isinstance(multi_label, bool):
        parser.report(None, "multi_label", f"must be true or false, got {multi_label!r}")
    videos = raw.get("videos")
    if not isinstance(videos, list):
        parser.report(None, "videos", f"must be a list of videos, got {type(videos).__name__}")
        videos = []
    entries = [parser.video(item, position) for position, item in enumerate(videos)]
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            parser.report(entry.id, "id", "is used by more than one video")
        seen.add(entry.id)
    if parser.problems:
        raise ManifestError(parser.problems)
    path = source.resolve() if isinstance(source, Path) else source
    return Manifest(labels, root, tuple(entries), path, multi_label=multi_label is True)


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Writes `manifest` to `path` (YAML or JSON by extension) through a temp file; returns the path.

    The root is written relative to the new file's folder and every video path relative to the root.
    """
    target = Path(path)
    form = _manifest_format(target)
    root = relative_location(manifest.root, target.parent.resolve())
    document: dict[str, Any] = {"labels": list(manifest.labels), "root": root}
    if manifest.multi_label:
        document["multi_label"] = True
    document["videos"] = [_dump_video(entry, manifest.root) for entry in manifest.videos]
    text = json.dumps(document, indent=2) if form == "json" else yaml.safe_dump(document, sort_keys=False)
    return write_text_atomic(target, text)


def _manifest_format(path: Path | str) -> str:
    suffix = posixpath.splitext(str(path))[1].lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{path}: manifest extension {suffix!r} is not one of {', '.join(map(repr, _FORMATS))}")
    return _FORMATS[suffix]


def _read_document(source: Path | str) -> dict[str, Any]:
    if isinstance(source, Path) and source.is_dir():
        raise ValueError(f"{source}: is a folder, not a manifest file")
    form = _manifest_format(source)
    try:
        if isinstance(source, Path) and source.stat().st_size > MANIFEST_LIMITS.max_bytes:  # not read at all
            raise ValueError(f"{source}: a manifest of more than {MANIFEST_LIMITS.max_bytes:,} bytes")
        text = open_text(source)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{source}: no such manifest file") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{source}: not a {form.upper()} manifest: byte {error.start} is not UTF-8 text") from error
    # Size, depth and alias expansion bounded: a hostile manifest fails here, in one line.
    document = load_document(
        text, form="json" if form == "json" else "yaml", source=str(source), limits=MANIFEST_LIMITS
    )
    if not isinstance(document, dict):
        raise ManifestError([Problem(None, source, "manifest", "must be a mapping with 'labels', 'root', 'videos'")])
    return document


def _unsafe_name_reason(name: str) -> str | None:
    """Why `name` cannot be a video id or view name (they become file names), or None when it can."""
    if name in _UNSAFE_NAMES or any(character in name for character in _UNSAFE_CHARACTERS):
        return f"{name!r} is not a safe file name: it must be non-empty, not '.' or '..', without '/', '\\' or NUL"
    return None


@dataclass
class _Parser:
    """Parses one manifest document, collecting every problem instead of stopping at the first."""

    source: Path | str
    root: Path | str
    allow_outside_root: bool
    problems: list[Problem] = field(default_factory=list)

    def report(self, video_id: str | None, where: str, message: str) -> None:
        self.problems.append(Problem(video_id, self.source, where, message))

    def check_keys(self, raw: dict[str, Any], allowed: set[str], *, video_id: str | None, where: str) -> None:
        for key in raw:
            if key not in allowed:
                self.report(video_id, f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(allowed))})")

    def labels(self, raw: Any) -> tuple[str, ...]:
        if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
            self.report(None, "labels", f"must be a list of strings, got {raw!r}")
            return ()
        repeated = sorted(label for label, count in Counter(raw).items() if count > 1)
        if repeated:
            self.report(None, "labels", f"{repeated} appear more than once; a label's position is its class id")
        return tuple(raw)

    def video(self, raw: Any, position: int) -> VideoEntry:
        if not isinstance(raw, dict):
            self.report(None, f"videos[{position}]", "must be a mapping")
            return VideoEntry(id=f"#{position}", views={})
        video_id = str(raw.get("id", f"#{position}"))
        if "id" not in raw:
            self.report(video_id, "id", "is missing")
        elif reason := _unsafe_name_reason(video_id):
            self.report(video_id, "id", reason)
        self.check_keys(raw, _VIDEO_KEYS, video_id=video_id, where="video")
        raw_views = raw.get("views")
        if isinstance(raw_views, Mapping) and len(raw_views) > MAX_VIEWS:
            self.report(video_id, "views", f"names {len(raw_views):,} views, more than the {MAX_VIEWS} allowed")
            raw_views = dict(list(raw_views.items())[:MAX_VIEWS])
        streams = self.streams(raw_views, video_id=video_id)
        views = self.paths(raw_views, video_id=video_id, where="views")
        if not views:
            self.report(video_id, "views", "needs at least one view: {name: path}")
        for view in views:
            if reason := _unsafe_name_reason(view):
                self.report(video_id, f"views.{view}", reason)
        keypoints = self.paths(raw.get("keypoints", {}), video_id=video_id, where="keypoints")
        for view in (name for name, path in keypoints.items() if not isinstance(path, Path)):
            self.report(video_id, f"keypoints.{view}", "must be a local file or folder, not a URL")
        for view in (name for name in keypoints if name not in views):
            self.report(video_id, f"keypoints.{view}", f"names no view (views: {list(views)})")
        timeline = None if raw.get("timeline") is None else self.timeline(raw["timeline"], video_id)
        start_seconds, end_seconds = self.clip_range(raw, video_id)
        split, label = raw.get("split"), raw.get("label")
        return VideoEntry(
            id=video_id,
            views=views,
            split=None if split is None else str(split),
            label=None if label is None else str(label),
            timeline=timeline,
            keypoints={name: path for name, path in keypoints.items() if isinstance(path, Path)},
            streams=streams,
            start_seconds=start_seconds,
            end_seconds=end_seconds,
        )

    def clip_range(self, raw: dict[str, Any], video_id: str) -> tuple[float | None, float | None]:
        """The optional ``start``/``end`` of the clip in seconds: finite, start >= 0, start < end."""
        bounds: list[float | None] = []
        for key in ("start", "end"):
            value = raw.get(key)
            number = None if value is None or isinstance(value, bool) else _as_float(value)
            if value is not None and (number is None or not math.isfinite(number)):
                self.report(video_id, key, f"must be a finite number of seconds, got {value!r}")
            bounds.append(number if number is not None and math.isfinite(number) else None)
        start, end = bounds
        if start is not None and start < 0:
            self.report(video_id, "start", f"start={start:g} must be >= 0 seconds")
        if start is not None and end is not None and not start < end:
            self.report(video_id, "end", f"the clip [{start:g}, {end:g}) s must have start < end")
        return start, end

    def streams(self, raw: Any, *, video_id: str) -> dict[str, int]:
        """View name to stream index, for views written ``{path: ..., stream: N}``."""
        streams: dict[str, int] = {}
        for name, value in raw.items() if isinstance(raw, dict) else ():
            if not isinstance(value, dict):
                continue
            if value.keys() - {"path", "stream"} or not isinstance(value.get("stream"), int) or value["stream"] < 0:
                self.report(video_id, f"views.{name}", f"must be a path or {{path, stream: N >= 0}}, got {value!r}")
                continue
            streams[str(name)] = value["stream"]
        return streams

    def paths(self, raw: Any, *, video_id: str, where: str) -> dict[str, Path | str]:
        """View name to absolute path or URL; containment is judged on the path as written, links unresolved."""
        if not isinstance(raw, dict):
            self.report(video_id, where, f"must be a mapping of view name to path, got {raw!r}")
            return {}
        paths: dict[str, Path | str] = {}
        for name, value in raw.items():
            value = value.get("path") if isinstance(value, dict) and where == "views" else value
            if not isinstance(value, str) or not value:
                self.report(video_id, f"{where}.{name}", f"must be a non-empty path, got {value!r}")
                continue
            path = join_location(self.root, value)
            if not self.allow_outside_root and not is_inside(path, self.root):
                self.report(video_id, f"{where}.{name}", f"path {value!r} is outside the data root {self.root}")
            paths[str(name)] = path
        return paths

    def timeline(self, raw: Any, video_id: str) -> Timeline | None:
        if not isinstance(raw, dict):
            self.report(video_id, "timeline", "must be a mapping with 'unit' and 'segments'")
            return None
        self.check_keys(raw, _TIMELINE_KEYS, video_id=video_id, where="timeline")
        unit = raw.get("unit", "frames")
        if unit not in TIMELINE_UNITS:
            allowed = ", ".join(map(repr, TIMELINE_UNITS))
            self.report(video_id, "timeline.unit", f"unit={unit!r} is not one of {allowed}")
            return None
        items = raw.get("segments")
        if not isinstance(items, list):
            got = "it is missing" if "segments" not in raw else f"got {items!r}"
            self.report(video_id, "timeline.segments", f"must be a list of {{start, end, label}} ([] for none), {got}")
            return None
        segments = (self.segment(item, video_id, f"timeline.segments[{i}]") for i, item in enumerate(items))
        return Timeline(unit, tuple(segment for segment in segments if segment is not None))

    def segment(self, raw: Any, video_id: str, where: str) -> Segment | None:
        if not isinstance(raw, dict) or not raw.keys() >= _SEGMENT_KEYS:
            self.report(video_id, where, f"needs start, end and label, got {raw!r}")
            return None
        self.check_keys(raw, _SEGMENT_KEYS, video_id=video_id, where=where)
        try:
            start, end = float(raw["start"]), float(raw["end"])
        except (TypeError, ValueError):
            start = end = math.nan
        if not (math.isfinite(start) and math.isfinite(end)):
            self.report(video_id, where, f"start and end must be finite numbers, got {raw!r}")
            return None
        return Segment(start, end, str(raw["label"]))


def _dump_video(entry: VideoEntry, root: Path | str) -> dict[str, Any]:
    def relative(paths: Mapping[str, Path | str]) -> dict[str, str]:
        return {name: relative_location(p, root) for name, p in paths.items()}

    views: dict[str, Any] = relative(entry.views)
    for name, stream in entry.streams.items():
        views[name] = {"path": views[name], "stream": stream}
    document: dict[str, Any] = {"id": entry.id, "split": entry.split, "views": views}
    if entry.label is not None:
        document["label"] = entry.label
    if entry.timeline is not None:
        segments = [
            {"start": _number(s.start), "end": _number(s.end), "label": s.label} for s in entry.timeline.segments
        ]
        document["timeline"] = {"unit": entry.timeline.unit, "segments": segments}
    if entry.keypoints:
        document["keypoints"] = relative(entry.keypoints)
    for key, seconds in (("start", entry.start_seconds), ("end", entry.end_seconds)):
        if seconds is not None:
            document[key] = _number(seconds)
    return document


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
