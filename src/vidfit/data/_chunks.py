"""The chunk index: every video cut into windows of at most `max_video_frames`, from metadata alone."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from vidfit.data._cache import cache_key, read_cache, write_cache
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._keypoints import KeypointSource
from vidfit.data._manifest import Manifest, VideoEntry
from vidfit.data._validate import Requirements, check_video
from vidfit.io import VideoMetadata
from vidfit.io._atomic import write_text_atomic
from vidfit.io._sources import is_url

Tail = Literal["keep", "merge", "drop"]
OnError = Literal["raise", "skip"]
TAILS: tuple[str, ...] = get_args(Tail)
ON_ERRORS: tuple[str, ...] = get_args(OnError)
logger = logging.getLogger("vidfit.data")


@dataclass(frozen=True)
class ChunkRef:
    """One sample of the index: frames ``[start_frame, stop_frame)`` of a video's reference view."""

    video_id: str
    chunk_index: int
    start_frame: int
    stop_frame: int

    @property
    def num_frames(self) -> int:
        return self.stop_frame - self.start_frame


@dataclass(frozen=True)
class IndexedVideo:
    """A video that passed its checks.

    Attributes:
        entry: Its manifest entry.
        views: Metadata of each view, the reference view first.
        keypoints: Keypoint sources by view (views without keypoints are absent).
        frames: The reference view's frames its samples come from: the entry's clip range, or every frame.
    """

    entry: VideoEntry
    views: dict[str, VideoMetadata]
    keypoints: dict[str, KeypointSource]
    frames: range


@dataclass
class ChunkIndex:
    """Chunks of every usable video, with what the dataset needs to read them.

    Attributes:
        chunks: The samples, video by video in manifest order.
        videos: Probe results, keypoint sources and manifest entry of each indexed video, by id.
        labels: The manifest's label names.
        max_video_frames: The chunk length asked for, None for whole videos.
        skipped: Problems of the videos left out with ``on_error="skip"``.
    """

    chunks: list[ChunkRef]
    videos: dict[str, IndexedVideo]
    labels: tuple[str, ...]
    max_video_frames: int | None
    skipped: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, position: int) -> ChunkRef:
        return self.chunks[position]

    def __iter__(self) -> Iterator[ChunkRef]:
        return iter(self.chunks)


def chunk_spans(
    num_frames: int,
    *,
    max_video_frames: int | None,
    chunk_overlap_frames: int = 0,
    tail: Tail = "keep",
    min_tail_frames: int | None = None,
) -> list[range]:
    """Frame ranges of the chunks of a video of `num_frames` frames.

    Chunk ``k`` starts at ``k * (max_video_frames - chunk_overlap_frames)`` and holds up to
    `max_video_frames` frames; chunks are made until the video's end is reached. The last chunk
    is a *tail* when the video has more than one chunk and it holds fewer than `min_tail_frames`
    frames (default: `max_video_frames`, so any short last chunk). ``tail`` says what happens to
    it: ``"keep"`` it, ``"merge"`` it into the chunk before (which then reaches the video's end),
    or ``"drop"`` it (its frames not in the chunk before are then not covered).

    Args:
        num_frames: Frames of the reference view.
        max_video_frames: Chunk length; None makes the whole video one chunk.
        chunk_overlap_frames: Frames shared by consecutive chunks, in ``[0, max_video_frames)``.
        tail: ``"keep"``, ``"merge"`` or ``"drop"``.
        min_tail_frames: Last chunks shorter than this are tails, in ``[1, max_video_frames]``.
    """
    _check_chunking(max_frames=max_video_frames, overlap=chunk_overlap_frames, tail=tail, min_tail=min_tail_frames)
    if max_video_frames is None or num_frames <= max_video_frames:
        return [range(0, num_frames)]
    stride = max_video_frames - chunk_overlap_frames
    spans: list[range] = []
    start = 0
    while not spans or spans[-1].stop < num_frames:
        spans.append(range(start, min(start + max_video_frames, num_frames)))
        start += stride
    threshold = max_video_frames if min_tail_frames is None else min_tail_frames
    if len(spans[-1]) < threshold and tail != "keep":
        spans.pop()
        if tail == "merge":
            spans[-1] = range(spans[-1].start, num_frames)
    return spans


def _check_chunking(*, max_frames: int | None, overlap: int, tail: str, min_tail: int | None) -> None:
    if tail not in TAILS:
        raise ValueError(f"tail={tail!r} is not one of {', '.join(map(repr, TAILS))}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_video_frames={max_frames!r} must be >= 1 or None")
    limit = max_frames if max_frames is not None else 1
    if not 0 <= overlap < limit:
        raise ValueError(f"chunk_overlap_frames={overlap!r} must be in [0, max_video_frames={max_frames!r})")
    if min_tail is not None and not 1 <= min_tail <= limit:
        raise ValueError(f"min_tail_frames={min_tail!r} must be in [1, max_video_frames={max_frames!r}]")


@dataclass(frozen=True)
class _Parameters:
    """The settings that shape an index, validated on creation; they are part of the cache key."""

    max_video_frames: int | None
    chunk_overlap_frames: int
    tail: Tail
    min_tail_frames: int | None
    sync_tolerance_seconds: float
    views: tuple[str, ...] | None
    same_frame_size: bool

    def __post_init__(self) -> None:
        _check_chunking(
            max_frames=self.max_video_frames,
            overlap=self.chunk_overlap_frames,
            tail=self.tail,
            min_tail=self.min_tail_frames,
        )
        if self.sync_tolerance_seconds < 0:
            raise ValueError(f"sync_tolerance_seconds={self.sync_tolerance_seconds!r} must be >= 0")


def build_chunk_index(
    manifest: Manifest,
    *,
    split: str | None = None,
    max_video_frames: int | None = None,
    chunk_overlap_frames: int = 0,
    tail: Tail = "keep",
    min_tail_frames: int | None = None,
    sync_tolerance_seconds: float = 0.1,
    views: Sequence[str] | None = None,
    same_frame_size: bool = False,
    on_error: OnError = "raise",
    cache_dir: str | os.PathLike[str] | None = None,
    report_path: str | os.PathLike[str] | None = None,
) -> ChunkIndex:
    """Checks every video of `split` and cuts it into chunks (see `chunk_spans`), probing metadata only.

    Args:
        manifest: The dataset.
        split: Only videos of this split; all videos when None.
        max_video_frames, chunk_overlap_frames, tail, min_tail_frames: The chunking, as in `chunk_spans`.
        sync_tolerance_seconds: Largest allowed difference between the durations of a video's views.
        views: Views every video must have (a video lacking one is a problem); None asks for none.
        same_frame_size: The `views` of each video must share one (height, width).
        on_error: ``"raise"`` one `ManifestError` listing every problem, or ``"skip"`` bad videos.
        cache_dir: Folder for the cached index; no caching when None.
        report_path: JSON file listing the problems of skipped videos (written with ``"skip"``).
    """
    if on_error not in ON_ERRORS:
        raise ValueError(f"on_error={on_error!r} is not one of {', '.join(map(repr, ON_ERRORS))}")
    required = None if views is None else tuple(views)
    parameters = _Parameters(
        max_video_frames, chunk_overlap_frames, tail, min_tail_frames, sync_tolerance_seconds, required, same_frame_size
    )
    entries = [entry for entry in manifest.videos if split is None or entry.split == split]
    index = _cached_index(manifest, entries=entries, parameters=parameters, cache_dir=cache_dir)
    _report(index, on_error=on_error, report_path=report_path)
    return index


def _cached_index(
    manifest: Manifest,
    *,
    entries: list[VideoEntry],
    parameters: _Parameters,
    cache_dir: str | os.PathLike[str] | None,
) -> ChunkIndex:
    # Whether segments may overlap changes which videos pass.
    settings = {**asdict(parameters), "multi_label": manifest.multi_label}
    key = cache_key(labels=manifest.labels, entries=entries, parameters=settings)
    cached = read_cache(Path(cache_dir), key) if cache_dir is not None else None
    if cached is not None:
        return _index_from_json(
            cached, entries=entries, labels=manifest.labels, max_video_frames=parameters.max_video_frames
        )
    index = _index_videos(manifest, entries, parameters)
    if cache_dir is not None:
        write_cache(Path(cache_dir), key, _index_to_json(index))
    return index


def _index_videos(manifest: Manifest, entries: list[VideoEntry], parameters: _Parameters) -> ChunkIndex:
    requirements = Requirements(
        labels=manifest.labels,
        sync_tolerance_seconds=parameters.sync_tolerance_seconds,
        views=parameters.views,
        same_frame_size=parameters.same_frame_size,
        manifest_file=manifest.path or manifest.root,
        multi_label=manifest.multi_label,
    )
    index = ChunkIndex([], {}, manifest.labels, parameters.max_video_frames)
    for entry in entries:
        check = check_video(entry, requirements)
        if check.problems:
            index.skipped.extend(check.problems)
            continue
        frames = check.frames if check.frames is not None else range(next(iter(check.views.values())).num_frames)
        index.videos[entry.id] = IndexedVideo(entry, check.views, check.keypoints, frames)
        # A clip range is chunked as a video of its own, its chunks then placed at its first frame.
        spans = chunk_spans(
            len(frames),
            max_video_frames=parameters.max_video_frames,
            chunk_overlap_frames=parameters.chunk_overlap_frames,
            tail=parameters.tail,
            min_tail_frames=parameters.min_tail_frames,
        )
        first = frames.start
        index.chunks.extend(
            ChunkRef(entry.id, k, first + span.start, first + span.stop) for k, span in enumerate(spans)
        )
    return index


def _report(index: ChunkIndex, *, on_error: OnError, report_path: str | os.PathLike[str] | None) -> None:
    if index.skipped and on_error == "raise":
        raise ManifestError(index.skipped)
    if report_path is not None:
        document = {"skipped": [problem.to_dict() for problem in index.skipped]}
        write_text_atomic(report_path, json.dumps(document, indent=2))
    for problem in index.skipped:
        logger.warning("Skipping a video: %s", problem)
    num_videos = len(index.videos)
    if index.max_video_frames is None:
        logger.info("Video chunking disabled: %d videos -> %d chunks (whole videos)", num_videos, len(index))
    else:
        logger.info(
            "Video chunking enabled: %d videos -> %d chunks (max %d frames/chunk)",
            num_videos,
            len(index),
            index.max_video_frames,
        )


def _index_to_json(index: ChunkIndex) -> dict[str, Any]:
    videos = {
        video_id: {
            "views": {name: {**asdict(meta), "path": str(meta.path)} for name, meta in video.views.items()},
            "keypoints": {name: {**asdict(src), "path": str(src.path)} for name, src in video.keypoints.items()},
            "frames": [video.frames.start, video.frames.stop],
        }
        for video_id, video in index.videos.items()
    }
    return {
        "videos": videos,
        "chunks": [[c.video_id, c.chunk_index, c.start_frame, c.stop_frame] for c in index.chunks],
        "skipped": [problem.to_dict() for problem in index.skipped],
    }


def _index_from_json(
    document: dict[str, Any], *, entries: list[VideoEntry], labels: tuple[str, ...], max_video_frames: int | None
) -> ChunkIndex:
    by_id = {entry.id: entry for entry in entries}
    videos = {}
    for video_id, record in document["videos"].items():
        views = {
            name: VideoMetadata(**{**meta, "path": meta["path"] if is_url(meta["path"]) else Path(meta["path"])})
            for name, meta in record["views"].items()
        }
        keypoints = {
            name: KeypointSource(**{**src, "path": Path(src["path"])}) for name, src in record["keypoints"].items()
        }
        videos[video_id] = IndexedVideo(by_id[video_id], views, keypoints, range(*record["frames"]))
    chunks = [ChunkRef(*row) for row in document["chunks"]]
    skipped = [Problem.from_dict(problem) for problem in document["skipped"]]
    return ChunkIndex(chunks, videos, labels, max_video_frames, skipped)
