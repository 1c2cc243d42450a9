"""The packet index: every frame's presentation time and the keyframes, read by demuxing alone."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidfit.io._types import VideoDecodeError, VideoMetadata


@dataclass(frozen=True)
class PacketIndex:
    """Presentation-order timing of one video stream.

    Attributes:
        pts: Presentation timestamps of the frames, sorted, in `time_base` units (int64).
        keyframe_pts: Timestamps of the keyframes, sorted (int64).
        time_base: Seconds per timestamp unit.
        last_duration: Duration of the last frame in `time_base` units.
    """

    pts: np.ndarray
    keyframe_pts: np.ndarray
    time_base: Fraction
    last_duration: int

    @property
    def pts_seconds(self) -> np.ndarray:
        return self.pts.astype(np.float64) * float(self.time_base)

    def keyframe_at_or_before(self, frame_index: int) -> int:
        """Index of the last keyframe whose time is not after the frame's: where a seek for it lands."""
        target = self.pts[frame_index]
        position = int(np.searchsorted(self.keyframe_pts, target, side="right")) - 1
        return int(np.searchsorted(self.pts, self.keyframe_pts[max(position, 0)]))


def open_container(path: Path) -> av.container.InputContainer:
    """Opens a file for demuxing, turning FFmpeg's failures into errors that name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise VideoDecodeError(f"{path}: cannot open as a video: {error}") from error
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{path}: has no video stream")
    return container


def read_packet_index(container: av.container.InputContainer, path: Path) -> PacketIndex:
    """Demuxes the first video stream without decoding and indexes its frames."""
    stream = container.streams.video[0]
    pts: list[int] = []
    keyframes: list[int] = []
    durations: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            # Some raw streams carry no pts; their decode order is their presentation order.
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                stamp = pts[-1] + (durations[-1] or 1) if pts else 0
            pts.append(stamp)
            durations.append(packet.duration or 0)
            if packet.is_keyframe:
                keyframes.append(stamp)
    except av.FFmpegError as error:
        raise VideoDecodeError(f"{path}: demuxing failed after {len(pts)} packets: {error}") from error
    if not pts:
        raise VideoDecodeError(f"{path}: the video stream holds no frames")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    key = np.unique(np.asarray(keyframes or [sorted_pts[0]], dtype=np.int64))
    time_base = stream.time_base or Fraction(1, 1000)
    return PacketIndex(sorted_pts, key, time_base, _last_duration(sorted_pts, durations[order[-1]], stream))


def _last_duration(sorted_pts: np.ndarray, packet_duration: int, stream: av.video.stream.VideoStream) -> int:
    if packet_duration > 0:
        return packet_duration
    if len(sorted_pts) > 1:
        return int(np.median(np.diff(sorted_pts)))
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base or Fraction(1, 1000)
    return max(1, round(1 / (rate * time_base))) if rate else 1


def build_metadata(path: Path, container: av.container.InputContainer, index: PacketIndex) -> VideoMetadata:
    """Metadata from the packet index; the header's frame count and rate are not trusted."""
    stream = container.streams.video[0]
    span = float((index.pts[-1] - index.pts[0] + index.last_duration) * index.time_base)
    num_frames = len(index.pts)
    stat = path.stat()
    return VideoMetadata(
        path=path,
        num_frames=num_frames,
        fps=num_frames / span,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        duration_seconds=span,
        begin_seconds=float(index.pts[0] * index.time_base),
        codec=stream.codec_context.name,
        size_bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )
