"""Which frames a sample takes, their labels, the matching frames of the other views, and open readers."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from torch.utils.data import get_worker_info

from vidfit.data._manifest import EPSILON_SECONDS, Timeline
from vidfit.io import VideoMetadata, VideoReader
from vidfit.io._decoders import Backend

Mode = Literal["clip", "chunk"]
Sampling = Literal["random", "uniform", "consecutive"]
MODES: tuple[str, ...] = get_args(Mode)
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
DECODE_BACKENDS: tuple[str, ...] = get_args(Backend)
IGNORE_LABEL = -1


def sample_positions(
    chunk_num_frames: int,
    *,
    mode: Mode,
    num_frames: int,
    sampling: Sampling,
    frame_stride: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted positions (0-based inside the chunk) of the frames of one sample.

    ``"chunk"`` mode takes every `frame_stride`-th frame of the chunk. ``"clip"`` mode takes
    `num_frames` frames: ``"consecutive"`` ones `frame_stride` apart from a random start (the last
    frame repeats when the chunk is too short), ``"uniform"`` ones spread evenly over the chunk, or
    ``"random"`` distinct ones (repeats only when the chunk has fewer than `num_frames`).
    """
    if mode == "chunk":
        return np.arange(0, chunk_num_frames, frame_stride, dtype=np.int64)
    if sampling == "consecutive":
        span = (num_frames - 1) * frame_stride + 1
        start = int(rng.integers(0, max(chunk_num_frames - span, 0) + 1))
        return np.minimum(start + np.arange(num_frames, dtype=np.int64) * frame_stride, chunk_num_frames - 1)
    if sampling == "uniform":
        return ((np.arange(num_frames) + 0.5) * chunk_num_frames / num_frames).astype(np.int64)
    replace = chunk_num_frames < num_frames
    return np.sort(rng.choice(chunk_num_frames, size=num_frames, replace=replace)).astype(np.int64)


def frame_labels(
    timeline: Timeline | None, *, labels: tuple[str, ...], frame_indices: np.ndarray, times_seconds: np.ndarray
) -> np.ndarray:
    """Class id of each frame, `IGNORE_LABEL` where no segment covers it.

    A frame belongs to the segment ``[start, end)`` holding its reference-view index (``frames``
    timelines) or its presentation time counted from the reference view's first frame (``seconds``).
    """
    out = np.full(len(frame_indices), IGNORE_LABEL, dtype=np.int64)
    if timeline is None:
        return out
    positions = frame_indices if timeline.unit == "frames" else times_seconds
    for segment in timeline.segments:
        out[(positions >= segment.start) & (positions < segment.end)] = labels.index(segment.label)
    return out


def frame_multi_hot(
    timeline: Timeline | None, *, labels: tuple[str, ...], frame_indices: np.ndarray, times_seconds: np.ndarray
) -> np.ndarray:
    """Classes of each frame of a multi-label timeline, int8 (T, C): 1 where a segment of the class covers it.

    A timeline is taken as complete: a frame in no segment is a negative of every class (background),
    as in THUMOS and Charades. Without a timeline every entry is `IGNORE_LABEL`: nothing is known.
    """
    if timeline is None:
        return np.full((len(frame_indices), len(labels)), IGNORE_LABEL, dtype=np.int8)
    out = np.zeros((len(frame_indices), len(labels)), dtype=np.int8)
    positions = frame_indices if timeline.unit == "frames" else times_seconds
    for segment in timeline.segments:
        out[(positions >= segment.start) & (positions < segment.end), labels.index(segment.label)] = 1
    return out


def clip_multi_hot(frame_targets: np.ndarray, *, video_label: int) -> np.ndarray:
    """A sample's classes, int8 (C,): its video label's and those of any of its labelled frames.

    `IGNORE_LABEL` everywhere when the sample has neither a video label nor a labelled frame.
    """
    labelled = frame_targets[(frame_targets != IGNORE_LABEL).all(axis=1)]
    if not len(labelled) and video_label == IGNORE_LABEL:
        return np.full(frame_targets.shape[1], IGNORE_LABEL, dtype=np.int8)
    out = labelled.max(axis=0) if len(labelled) else np.zeros(frame_targets.shape[1], dtype=np.int8)
    if video_label != IGNORE_LABEL:
        out[video_label] = 1
    return out


def clip_frame_range(times_seconds: np.ndarray, *, start_seconds: float | None, end_seconds: float | None) -> range:
    """The frames of a clip ``[start_seconds, end_seconds)``: those whose time lies inside (None: no bound).

    Args:
        times_seconds: Presentation time of every frame of the reference view, from its first frame.
        start_seconds: The clip's start; None for the video's start.
        end_seconds: The clip's end; None for the video's end.
    """
    # Times come from two clocks (the annotation's and the stream's time base): a frame a rounding
    # error before the start still starts the clip.
    first = 0 if start_seconds is None else int(np.searchsorted(times_seconds, start_seconds - EPSILON_SECONDS))
    stop = (
        len(times_seconds)
        if end_seconds is None
        else int(np.searchsorted(times_seconds, end_seconds - EPSILON_SECONDS))
    )
    return range(first, max(first, stop))


def frame_midpoints(reader: VideoReader, frames: np.ndarray) -> np.ndarray:
    """Middle of each frame's display interval, in seconds from the video's first frame.

    Views are matched at the middle of the reference frame rather than at its start, so that
    timestamps rounded to a container's time base cannot tip a tie to the wrong frame.
    """
    return (reader.pts_seconds[frames] + _frame_ends(reader)[frames]) / 2 - reader.metadata.begin_seconds


def _frame_ends(reader: VideoReader) -> np.ndarray:
    """When each frame leaves the screen, in the stream's clock."""
    meta = reader.metadata
    return np.append(reader.pts_seconds[1:], meta.begin_seconds + meta.duration_seconds)


def match_view_frames(
    reader: VideoReader, times_seconds: np.ndarray, *, video_id: str, tolerance_seconds: float
) -> np.ndarray:
    """Frames of another view on screen at the given times, counted from each view's first frame.

    Views are aligned at their first frames: time ``t`` of the reference is ``begin_seconds + t``
    in this view's stream clock. A matched frame more than `tolerance_seconds` away from ``t``
    (the view ended early) is an error.
    """
    meta = reader.metadata
    targets = times_seconds + meta.begin_seconds
    indices = np.array([reader.index_at_seconds(float(t)) for t in targets], dtype=np.int64)
    late = targets - _frame_ends(reader)[indices]
    if len(late) and late.max() > tolerance_seconds + EPSILON_SECONDS:
        worst = int(np.argmax(late))
        raise ValueError(
            f"video {video_id!r}: {reader.path}: no frame within sync_tolerance_seconds={tolerance_seconds} of "
            f"{times_seconds[worst]:.3f} s after the first frame (the view ends {late[worst]:.3f} s too early)"
        )
    return indices


def match_views(
    readers: Sequence[VideoReader], frames: range | np.ndarray, *, video_id: str, tolerance_seconds: float
) -> np.ndarray:
    """Each view's frame on screen at each of the first view's `frames`, as `VideoDataset` matches them.

    Args:
        readers: One open reader per view; the first is the reference.
        frames: The reference view's frames.
        video_id: The video, for error messages.
        tolerance_seconds: Largest distance between a frame's time and the matched frame of another view
            (``data.sync_tolerance_seconds``); a view that ends earlier is an error.

    Returns:
        int64 (V, T): the reference's `frames`, then each other view's matched frame, counted from its first.
    """
    reference = np.asarray(frames, dtype=np.int64)
    times = frame_midpoints(readers[0], reference)
    others = [match_view_frames(r, times, video_id=video_id, tolerance_seconds=tolerance_seconds) for r in readers[1:]]
    return np.stack([reference, *others])


class ReaderPool:
    """The few most recently used `VideoReader`s of one process, closed when pushed out.

    Args:
        capacity: Readers kept open.
        num_threads: FFmpeg decoding threads per reader (0 lets FFmpeg choose).
        backend: The readers' decoding backend: ``"pyav"``, ``"nvdec"`` or ``"torchcodec"``.
    """

    def __init__(self, *, capacity: int, num_threads: int, backend: Backend = "pyav") -> None:
        self.capacity = capacity
        self.num_threads = num_threads
        self.backend = backend
        self._readers: OrderedDict[tuple[Path | str, int, Backend], VideoReader] = OrderedDict()

    def get(self, meta: VideoMetadata) -> VideoReader:
        """An open reader of the view described by `meta`."""
        # Two views (or two videos) may be two streams of one file: a reader is one stream of one file.
        key = (meta.path, meta.stream_index, self.backend)
        reader = self._readers.pop(key, None)
        if reader is None:
            reader = VideoReader(
                meta.path, stream_index=meta.stream_index, backend=self.backend, num_threads=self.num_threads
            )
            if len(reader) != meta.num_frames:
                reader.close()
                raise ValueError(
                    f"{meta.path}: has {len(reader)} frames but was indexed with {meta.num_frames}; "
                    "the file changed since the chunk index was built"
                )
        self._readers[key] = reader
        while len(self._readers) > self.capacity:
            self._readers.popitem(last=False)[1].close()
        return reader

    def __len__(self) -> int:
        return len(self._readers)

    def close(self) -> None:
        """Closes every reader."""
        while self._readers:
            self._readers.popitem()[1].close()


class WorkerLocal:
    """Open readers and a random generator that belong to one process: each DataLoader worker makes its own.

    Datasets call `init_worker_local` in their constructor, then `reader_pool` and `worker_generator`.
    """

    def init_worker_local(
        self, *, seed: int, max_open_readers: int, reader_threads: int, decode_backend: Backend = "pyav"
    ) -> None:
        """Sets what the per-process state is built from.

        Args:
            seed: Seeds the generator, combined with the worker's own seed.
            max_open_readers: Readers kept open per process.
            reader_threads: FFmpeg threads per reader (0: FFmpeg picks).
            decode_backend: Backend of the readers.
        """
        self._local_seed, self._max_open_readers, self.reader_threads = seed, max_open_readers, reader_threads
        self._decode_backend = decode_backend
        # Stands in for DataLoader's per-worker seed when loading in the main process.
        self._main_process_seed = 0
        self._pool: ReaderPool | None = None
        self._rng: np.random.Generator | None = None
        self._owner_pid = os.getpid()

    def reader_pool(self) -> ReaderPool:
        """This process's readers."""
        self._forget_if_forked()
        if self._pool is None:
            self._pool = ReaderPool(
                capacity=self._max_open_readers, num_threads=self.reader_threads, backend=self._decode_backend
            )
        return self._pool

    def seed_main_process(self, seed: int) -> None:
        """Restarts the main process's generator from `seed` (`make_loader` does, without workers)."""
        self._main_process_seed, self._rng = seed, None

    def worker_generator(self) -> np.random.Generator:
        """This process's generator: seeded by the dataset's seed and the worker's, so workers differ."""
        self._forget_if_forked()
        if self._rng is None:
            info = get_worker_info()
            worker_seed = info.seed if info is not None else self._main_process_seed
            self._rng = np.random.default_rng([self._local_seed, worker_seed])
        return self._rng

    def _forget_if_forked(self) -> None:
        # A forked worker inherits the parent's readers and random state: sharing either is wrong.
        if self._owner_pid != os.getpid():
            self._pool, self._rng, self._owner_pid = None, None, os.getpid()

    def close(self) -> None:
        """Closes this process's readers; the dataset reopens them if used again."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"], state["_rng"] = None, None
        return state
