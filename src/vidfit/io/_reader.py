"""`VideoReader`: frame-accurate random access and bounded-memory streaming over one video file."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import torch

from vidfit.io._decoders import BACKENDS, Backend, FrameSource, make_source
from vidfit.io._index import build_metadata, open_container, read_packet_index
from vidfit.io._types import Chunk, FrameBatch, VideoMetadata


class VideoReader:
    """Reads any frames of a video by presentation-order index, decoding each one once.

    Frame ``i`` is always the ``i``-th frame in presentation order: the reader indexes the packets
    on open (demuxing only), so seeks are exact with B-frames, variable frame rate and streams
    whose first timestamp is not 0. Every seek starts at the last keyframe before the first frame
    asked for. Use it as a context manager: PyAV leaks memory when containers are not closed.

    Args:
        path: The video file.
        backend: ``"pyav"`` (CPU), ``"nvdec"`` (PyAV's cuvid decoders on an NVIDIA GPU, falling
            back to ``"pyav"`` with a warning without one) or ``"torchcodec"`` (optional extra).
        num_threads: FFmpeg decoding threads; 0 lets FFmpeg choose.
    """

    def __init__(self, path: str | os.PathLike[str], *, backend: Backend = "pyav", num_threads: int = 0) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {', '.join(map(repr, BACKENDS))}")
        if num_threads < 0:
            raise ValueError(f"num_threads={num_threads!r} must be >= 0 (0 lets FFmpeg choose)")
        self.path = Path(path)
        self._container: av.container.InputContainer | None = open_container(self.path)
        container = self._container
        try:
            self._index = read_packet_index(container, self.path)
            self.metadata: VideoMetadata = build_metadata(self.path, container, self._index)
            self._source: FrameSource = make_source(backend, self.path, container, self._index, num_threads)
        except BaseException:
            container.close()
            raise
        self.pts_seconds: np.ndarray = self._index.pts_seconds

    def __len__(self) -> int:
        return self.metadata.num_frames

    def get_frames(self, start: int, stop: int, *, step: int = 1, size: tuple[int, int] | None = None) -> FrameBatch:
        """Frames ``start, start + step, ...`` before `stop`.

        Args:
            start: First frame index.
            stop: End of the range (exclusive), at most ``num_frames``.
            step: Distance between frames, >= 1.
            size: ``(height, width)`` to resize to in FFmpeg's scaler; the native size when None.
        """
        _check_step(step)
        self._check_range(start, stop)
        return self._batch(np.arange(start, stop, step, dtype=np.int64), size)

    def get_frames_at(self, indices: Sequence[int] | np.ndarray, *, size: tuple[int, int] | None = None) -> FrameBatch:
        """Frames at the given indices, which must be in non-decreasing order (repeats allowed)."""
        targets = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(targets) and (targets.min() < 0 or targets.max() >= len(self)):
            raise IndexError(f"{self.path}: frame indices must lie in [0, {len(self)}), got {targets.tolist()}")
        if np.any(np.diff(targets) < 0):
            raise IndexError(f"{self.path}: frame indices must be sorted in non-decreasing order in [0, {len(self)})")
        return self._batch(targets, size)

    def get_frames_played_in_range(
        self, start_seconds: float, stop_seconds: float, *, size: tuple[int, int] | None = None
    ) -> FrameBatch:
        """Frames on screen during ``[start_seconds, stop_seconds)``, in the stream's own clock.

        The frame showing at `start_seconds` is included even when it began earlier; a frame
        starting at `stop_seconds` is not.
        """
        begin, end = self.metadata.begin_seconds, self.metadata.begin_seconds + self.metadata.duration_seconds
        if not begin <= start_seconds <= stop_seconds <= end:
            raise IndexError(
                f"{self.path}: need {begin:.6f} <= start_seconds <= stop_seconds <= {end:.6f}, "
                f"got [{start_seconds}, {stop_seconds})"
            )
        start = self.index_at_seconds(start_seconds)
        stop = int(np.searchsorted(self.pts_seconds, stop_seconds, side="left"))
        return self._batch(np.arange(start, max(start, stop), dtype=np.int64), size)

    def index_at_seconds(self, seconds: float) -> int:
        """Index of the frame on screen at `seconds` (stream clock), clamped to the video."""
        position = int(np.searchsorted(self.pts_seconds, seconds, side="right")) - 1
        return min(max(position, 0), len(self) - 1)

    def iter_chunks(
        self,
        *,
        chunk_num_frames: int,
        overlap_num_frames: int = 0,
        step: int = 1,
        size: tuple[int, int] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[Chunk]:
        """Streams ``[start, stop)`` as windows of `chunk_num_frames` frames, each frame decoded once.

        Window ``k`` holds sampled frames ``k * stride ... k * stride + chunk_num_frames`` with
        ``stride = chunk_num_frames - overlap_num_frames``; the last window is shorter when the
        frames run out, and a window is only produced while it holds frames not seen before.
        Memory stays O(chunk_num_frames) whatever the video's length.
        """
        if chunk_num_frames < 1 or not 0 <= overlap_num_frames < chunk_num_frames:
            raise ValueError(
                f"need chunk_num_frames >= 1 and 0 <= overlap_num_frames < chunk_num_frames, "
                f"got chunk_num_frames={chunk_num_frames!r}, overlap_num_frames={overlap_num_frames!r}"
            )
        _check_step(step)
        _check_size(size)
        stop = len(self) if stop is None else stop
        self._check_range(start, stop)
        targets = np.arange(start, stop, step, dtype=np.int64)
        # Frames are converted straight into the window's buffer; the overlap is copied to the next one.
        pool = _BufferPool(lambda: self._empty(chunk_num_frames, size))
        buffer, filled = pool.take(), 0
        for position, (_, frame) in enumerate(self._source.frames(targets, size)):
            frame.copy_to(buffer[filled])
            filled += 1
            if filled == chunk_num_frames:
                yield self._chunk(buffer, targets[position + 1 - filled : position + 1])
                previous, buffer = buffer, pool.take()
                buffer[:overlap_num_frames] = previous[chunk_num_frames - overlap_num_frames :]
                filled = overlap_num_frames
        if filled > overlap_num_frames or (filled and len(targets) < chunk_num_frames):
            yield self._chunk(buffer[:filled], targets[len(targets) - filled :])

    def _chunk(self, data: np.ndarray, indices: np.ndarray) -> Chunk:
        pts = torch.from_numpy(self.pts_seconds[indices])
        return Chunk(_as_nchw(data), torch.from_numpy(indices), pts, int(indices[0]), int(indices[-1]) + 1)

    def _batch(self, targets: np.ndarray, size: tuple[int, int] | None) -> FrameBatch:
        _check_size(size)
        data = self._empty(len(targets), size)
        for position, (_, frame) in enumerate(self._source.frames(targets, size)):
            frame.copy_to(data[position])
        return FrameBatch(_as_nchw(data), torch.from_numpy(targets), torch.from_numpy(self.pts_seconds[targets]))

    def _empty(self, num_frames: int, size: tuple[int, int] | None) -> np.ndarray:
        height, width = size or (self.metadata.height, self.metadata.width)
        return np.empty((num_frames, height, width, 3), dtype=np.uint8)

    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"{self.path}: need 0 <= start <= stop <= {len(self)}, got [{start}, {stop})")

    def close(self) -> None:
        """Releases the decoder and the file; safe to call twice."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_container", None) is not None:
            self.close()


class _BufferPool:
    """Hands out chunk buffers, reusing one once nothing else references it.

    Writing into fresh pages costs a fifth of the decoding time at 720p; a chunk the caller still
    holds (its tensor keeps a reference to the array) is never overwritten.

    Args:
        make: Allocates a new buffer.
        max_buffers: Buffers kept for reuse; beyond that, buffers are fresh and not tracked.
    """

    def __init__(self, make: Callable[[], np.ndarray], max_buffers: int = 4) -> None:
        self._make, self._max_buffers = make, max_buffers
        self._buffers: list[np.ndarray] = []

    def take(self) -> np.ndarray:
        for buffer in self._buffers:
            if sys.getrefcount(buffer) == _POOL_ONLY_REFERENCES:
                return buffer
        buffer = self._make()
        if len(self._buffers) < self._max_buffers:
            self._buffers.append(buffer)
        return buffer


# References to a pooled buffer no one else holds: the pool's list, the loop variable, getrefcount's argument.
_POOL_ONLY_REFERENCES = 3


def _as_nchw(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) storage seen as (N, 3, H, W) in channels_last layout, with no copy.

    A transposing copy would cost as much as decoding; channels_last is also the layout that
    `channels_last_3d` models want once frames are stacked in time.
    """
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def _check_step(step: int) -> None:
    if step < 1:
        raise ValueError(f"step={step!r} must be >= 1")


def _check_size(size: tuple[int, int] | None) -> None:
    if size is not None and (len(size) != 2 or any(int(s) != s or s < 1 for s in size)):
        raise ValueError(f"size={size!r} must be (height, width) with positive integers, or None")


def probe(path: str | os.PathLike[str]) -> VideoMetadata:
    """Metadata of a video from its packet index, without decoding a frame."""
    resolved = Path(path)
    container = open_container(resolved)
    try:
        return build_metadata(resolved, container, read_packet_index(container, resolved))
    finally:
        container.close()
