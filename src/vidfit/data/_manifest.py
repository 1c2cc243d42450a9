"""The dataset manifest: videos, their views, labels, timelines and keypoints, read from YAML or JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from vidfit.data._errors import ManifestError, Problem

TimelineUnit = Literal["frames", "seconds"]
TIMELINE_UNITS: tuple[str, ...] = get_args(TimelineUnit)
_TOP_KEYS = {"labels", "root", "videos"}
_VIDEO_KEYS = {"id", "split", "views", "label", "timeline", "keypoints"}
_TIMELINE_KEYS = {"unit", "segments"}
_SEGMENT_KEYS = {"start", "end", "label"}


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
        views: View name to absolute file path; the first view is the reference view.
        split: ``"train"``, ``"val"``, ... or None.
        label: Video-level label, or None.
        timeline: Per-frame labels as segments, or None.
        keypoints: View name to a folder of per-frame ``.npz`` files or one ``.npy`` of (T, K, D).
    """

    id: str
    views: dict[str, Path]
    split: str | None = None
    label: str | None = None
    timeline: Timeline | None = None
    keypoints: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A dataset: label names, the data root, and the videos.

    Attributes:
        labels: Label names; a label's index is its class id.
        root: Absolute data root all paths are inside (unless loaded with ``allow_outside_root``).
        videos: The videos, in file order.
        path: The file the manifest was loaded from, if any.
    """

    labels: tuple[str, ...]
    root: Path
    videos: tuple[VideoEntry, ...]
    path: Path | None = None


def load_manifest(path: str | os.PathLike[str], *, allow_outside_root: bool = False) -> Manifest:
    """Reads a manifest (``.yaml``/``.yml`` or ``.json``), reporting every problem in one `ManifestError`.

    Args:
        path: The manifest file; relative paths inside it are relative to its folder.
        allow_outside_root: Accept video and keypoint paths outside the data root.
    """
    source = Path(path)
    raw = _read_document(source)
    problems: list[Problem] = []
    _check_keys(raw, _TOP_KEYS, problems, source, None, "manifest")
    labels = raw.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        problems.append(Problem(None, source, "labels", f"must be a list of strings, got {labels!r}"))
        labels = []
    root = (source.parent / str(raw.get("root", "."))).resolve()
    videos = raw.get("videos")
    if not isinstance(videos, list):
        problems.append(Problem(None, source, "videos", f"must be a list of videos, got {type(videos).__name__}"))
        videos = []
    entries = [_parse_video(item, i, root, source, allow_outside_root, problems) for i, item in enumerate(videos)]
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            problems.append(Problem(entry.id, source, "id", "is used by more than one video"))
        seen.add(entry.id)
    if problems:
        raise ManifestError(problems)
    return Manifest(tuple(labels), root, tuple(entries), source.resolve())


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Writes `manifest` to `path` (YAML or JSON by extension) through a temp file; returns the path.

    The root is written relative to the new file's folder and every video path relative to the root.
    """
    target = Path(path)
    root = Path(os.path.relpath(manifest.root, target.parent.resolve())).as_posix()
    document = {
        "labels": list(manifest.labels),
        "root": root,
        "videos": [_dump_video(entry, manifest.root) for entry in manifest.videos],
    }
    suffix = target.suffix.lower()
    if suffix == ".json":
        text = json.dumps(document, indent=2)
    elif suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=False)
    else:
        raise ValueError(f"{target}: manifest extension {suffix!r} is not one of '.yaml', '.yml', '.json'")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    return target


def _read_document(source: Path) -> dict[str, Any]:
    suffix = source.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"{source}: manifest extension {suffix!r} is not one of '.yaml', '.yml', '.json'")
    text = source.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{source}: not valid {suffix.lstrip('.').upper()}: {error}") from error
    if not isinstance(document, dict):
        raise ManifestError([Problem(None, source, "manifest", "must be a mapping with 'labels', 'root', 'videos'")])
    return document


def _check_keys(
    raw: dict[str, Any], allowed: set[str], problems: list[Problem], source: Path, video_id: str | None, where: str
) -> None:
    for key in raw:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            problems.append(Problem(video_id, source, f"{where}.{key}", f"unknown key (expected one of {expected})"))


def _parse_video(
    raw: Any, position: int, root: Path, source: Path, outside: bool, problems: list[Problem]
) -> VideoEntry:
    if not isinstance(raw, dict):
        problems.append(Problem(None, source, f"videos[{position}]", "must be a mapping"))
        return VideoEntry(id=f"#{position}", views={})
    video_id = str(raw.get("id", f"#{position}"))
    if "id" not in raw:
        problems.append(Problem(video_id, source, "id", "is missing"))
    _check_keys(raw, _VIDEO_KEYS, problems, source, video_id, "video")
    views = _parse_paths(raw.get("views"), "views", root, source, video_id, outside, problems)
    if not views:
        problems.append(Problem(video_id, source, "views", "needs at least one view: {name: path}"))
    keypoints = _parse_paths(raw.get("keypoints", {}), "keypoints", root, source, video_id, outside, problems)
    for view in keypoints:
        if view not in views:
            problems.append(Problem(video_id, source, f"keypoints.{view}", f"names no view (views: {list(views)})"))
    timeline = None
    if raw.get("timeline") is not None:
        timeline = _parse_timeline(raw["timeline"], source, video_id, problems)
    split, label = raw.get("split"), raw.get("label")
    return VideoEntry(
        id=video_id,
        views=views,
        split=None if split is None else str(split),
        label=None if label is None else str(label),
        timeline=timeline,
        keypoints=keypoints,
    )


def _parse_paths(
    raw: Any, where: str, root: Path, source: Path, video_id: str, outside: bool, problems: list[Problem]
) -> dict[str, Path]:
    if not isinstance(raw, dict):
        problems.append(Problem(video_id, source, where, f"must be a mapping of view name to path, got {raw!r}"))
        return {}
    paths: dict[str, Path] = {}
    for name, value in raw.items():
        resolved = (root / str(value)).resolve()
        if not outside and not resolved.is_relative_to(root):
            problems.append(
                Problem(video_id, source, f"{where}.{name}", f"path {value!r} is outside the data root {root}")
            )
        paths[str(name)] = resolved
    return paths


def _parse_timeline(raw: Any, source: Path, video_id: str, problems: list[Problem]) -> Timeline | None:
    if not isinstance(raw, dict):
        problems.append(Problem(video_id, source, "timeline", "must be a mapping with 'unit' and 'segments'"))
        return None
    _check_keys(raw, _TIMELINE_KEYS, problems, source, video_id, "timeline")
    unit = raw.get("unit", "frames")
    if unit not in TIMELINE_UNITS:
        allowed = ", ".join(map(repr, TIMELINE_UNITS))
        problems.append(Problem(video_id, source, "timeline.unit", f"unit={unit!r} is not one of {allowed}"))
        return None
    segments = []
    for i, item in enumerate(raw.get("segments") or []):
        where = f"timeline.segments[{i}]"
        if not isinstance(item, dict) or not {"start", "end", "label"} <= item.keys():
            problems.append(Problem(video_id, source, where, f"needs start, end and label, got {item!r}"))
            continue
        _check_keys(item, _SEGMENT_KEYS, problems, source, video_id, where)
        try:
            segments.append(Segment(float(item["start"]), float(item["end"]), str(item["label"])))
        except (TypeError, ValueError):
            problems.append(Problem(video_id, source, where, f"start and end must be numbers, got {item!r}"))
    return Timeline(unit, tuple(segments))


def _dump_video(entry: VideoEntry, root: Path) -> dict[str, Any]:
    def relative(paths: dict[str, Path]) -> dict[str, str]:
        return {name: Path(os.path.relpath(p, root)).as_posix() for name, p in paths.items()}

    document: dict[str, Any] = {"id": entry.id, "split": entry.split, "views": relative(entry.views)}
    if entry.label is not None:
        document["label"] = entry.label
    if entry.timeline is not None:
        segments = [
            {"start": _number(s.start), "end": _number(s.end), "label": s.label} for s in entry.timeline.segments
        ]
        document["timeline"] = {"unit": entry.timeline.unit, "segments": segments}
    if entry.keypoints:
        document["keypoints"] = relative(entry.keypoints)
    return document


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
