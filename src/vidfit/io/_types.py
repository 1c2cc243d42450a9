"""Result types and errors of the io layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


class VideoDecodeError(RuntimeError):
    """A file that FFmpeg cannot demux or decode: not a video, no video stream, or broken data."""


@dataclass(frozen=True)
class StreamInfo:
    """One video stream of a file, as its header describes it (cheap to read for every stream).

    Attributes:
        index: The stream's index among all the file's streams (what ``stream_index`` takes).
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: The header's average frame rate (0.0 when it declares none).
        num_frames: The header's frame count (0 when it declares none).
        codec: FFmpeg's codec name.
    """

    index: int
    width: int
    height: int
    fps: float
    num_frames: int
    codec: str


@dataclass(frozen=True)
class VideoMetadata:
    """What a video holds, read from its packet index (not from the header, which can lie).

    Attributes:
        path: The file, the URL (a ``str``), or a file object's name.
        num_frames: Frames in presentation order, counted from the packets.
        fps: Average frame rate, ``num_frames / duration_seconds``; the header's rate is not used.
        width: Frame width in pixels.
        height: Frame height in pixels.
        duration_seconds: From the first frame's pts to the end of the last frame.
        begin_seconds: Presentation time of frame 0 (not always 0).
        codec: FFmpeg's codec name, e.g. ``"h264"``.
        size_bytes: File size, used with `mtime_ns` as a cache key.
        mtime_ns: File modification time; 0 for URLs and file objects, which have none.
        stream_index: Index of the stream read, among all the file's streams.
        streams: Every video stream of the file, the one read included.
        num_audio_streams: Audio streams of the file (never decoded: counted so that what drops them can say so).
    """

    path: Path | str
    num_frames: int
    fps: float
    width: int
    height: int
    duration_seconds: float
    begin_seconds: float
    codec: str
    size_bytes: int
    mtime_ns: int
    stream_index: int = 0
    streams: tuple[StreamInfo, ...] = ()
    num_audio_streams: int = 0

    def __post_init__(self) -> None:
        # A chunk index read back from JSON gives lists of mappings.
        streams = tuple(s if isinstance(s, StreamInfo) else StreamInfo(**s) for s in self.streams)
        object.__setattr__(self, "streams", streams)


@dataclass
class FrameBatch:
    """Decoded frames with where they sit in the video.

    Attributes:
        data: RGB frames, ``torch.uint8`` of shape (N, 3, H, W).
        frame_indices: Presentation-order index of each frame, int64 (N,).
        pts_seconds: Presentation time of each frame, float64 (N,).
    """

    data: torch.Tensor
    frame_indices: torch.Tensor
    pts_seconds: torch.Tensor

    def __len__(self) -> int:
        return int(self.data.shape[0])


@dataclass
class Chunk(FrameBatch):
    """One window of `VideoReader.iter_chunks`: frames ``[start_frame, stop_frame)`` taken every ``step``.

    Attributes:
        start_frame: First frame index of the window.
        stop_frame: One past the last frame index covered by the window.
    """

    start_frame: int = 0
    stop_frame: int = 0
