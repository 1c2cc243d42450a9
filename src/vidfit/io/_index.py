"""The packet index: every frame's presentation time and the keyframes, read by demuxing alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidfit.io._types import VideoDecodeError, VideoMetadata

# Keyframes before the wanted one whose dts is tried when a seek keeps landing after it.
_SEEK_STEP_BACK_KEYFRAMES = 3


@dataclass(frozen=True)
class PacketIndex:
    """Presentation-order timing of one video stream.

    Attributes:
        pts: Presentation timestamps of the frames, sorted, in `time_base` units (int64).
        decode_positions: Place of each frame (in presentation order) in the demuxed packet order.
        keyframes: Presentation-order indices of the keyframes, sorted.
        keyframe_dts: Decode timestamp of each keyframe (its pts where the demuxer gave none).
        time_base: Seconds per timestamp unit.
        last_duration: Duration of the last frame in `time_base` units.
        has_stamps: False for raw streams whose packets carry no timestamps (``.h264``): their
            `pts` are made up at the stream's frame rate, and frames can only be counted.
    """

    pts: np.ndarray
    decode_positions: np.ndarray
    keyframes: np.ndarray
    keyframe_dts: np.ndarray
    time_base: Fraction
    last_duration: int
    has_stamps: bool

    @property
    def pts_seconds(self) -> np.ndarray:
        return self.pts.astype(np.float64) * float(self.time_base)

    def keyframe_at_or_before(self, frame_index: int) -> int:
        """The last keyframe not after `frame_index` in presentation order (the first keyframe if none)."""
        position = int(np.searchsorted(self.keyframes, frame_index, side="right")) - 1
        return int(self.keyframes[max(position, 0)])

    def frame_at_pts(self, stamp: int | None) -> int | None:
        """Index of the frame presented at `stamp`, or None when no packet carries that timestamp."""
        if stamp is None:
            return None
        position = int(np.searchsorted(self.pts, stamp))
        return position if position < len(self.pts) and self.pts[position] == stamp else None

    def seek_stamps(self, keyframe: int) -> list[int]:
        """Timestamps to seek by to reach `keyframe`, best first.

        Its pts comes first; its dts next, for demuxers that seek by dts (MPEG-TS lands after a
        B-frame stream's keyframe when given its pts); then the dts of a few earlier keyframes.
        """
        position = int(np.searchsorted(self.keyframes, keyframe))
        earlier = self.keyframe_dts[max(position - _SEEK_STEP_BACK_KEYFRAMES, 0) : position][::-1]
        stamps = [int(self.pts[keyframe]), int(self.keyframe_dts[position]), *map(int, earlier)]
        return list(dict.fromkeys(stamps))


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


def read_packet_index(container: av.container.InputContainer, *, path: Path) -> PacketIndex:
    """Demuxes the first video stream without decoding and indexes its frames."""
    stream = container.streams.video[0]
    time_base = stream.time_base or Fraction(1, 1000)
    nominal_duration = _nominal_duration(stream, time_base)
    packets = _demux(container, path=path, nominal_duration=nominal_duration)
    stamps = np.asarray(packets.stamps, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    presentation = np.empty_like(order)
    presentation[order] = np.arange(len(order))
    key_decode = np.asarray(packets.keyframes or [0], dtype=np.int64)
    key_order = np.argsort(presentation[key_decode], kind="stable")
    sorted_pts = stamps[order]
    if packets.durations[order[-1]] > 0:
        last_duration = packets.durations[order[-1]]
    else:
        last_duration = int(np.median(np.diff(sorted_pts))) if len(sorted_pts) > 1 else nominal_duration
    return PacketIndex(
        pts=sorted_pts,
        decode_positions=order,
        keyframes=presentation[key_decode][key_order],
        keyframe_dts=np.asarray(packets.dts, dtype=np.int64)[key_decode][key_order],
        time_base=time_base,
        last_duration=last_duration,
        has_stamps=packets.has_stamps,
    )


@dataclass
class _Packets:
    """Timing of the demuxed packets, in decode order; `keyframes` holds decode positions."""

    stamps: list[int] = field(default_factory=list)
    dts: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    has_stamps: bool = True


def _demux(container: av.container.InputContainer, *, path: Path, nominal_duration: int) -> _Packets:
    packets = _Packets()
    try:
        for packet in container.demux(container.streams.video[0]):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                # Raw streams carry no timestamps: these made-up ones keep decode order, which is not
                # presentation order with B-frames, so such streams are decoded by counting frames.
                packets.has_stamps = False
                stamp = packets.stamps[-1] + (packets.durations[-1] or nominal_duration) if packets.stamps else 0
            if packet.is_keyframe:
                packets.keyframes.append(len(packets.stamps))
            packets.stamps.append(stamp)
            packets.dts.append(packet.dts if packet.dts is not None else stamp)
            packets.durations.append(packet.duration or 0)
    except av.FFmpegError as error:
        raise VideoDecodeError(f"{path}: demuxing failed after {len(packets.stamps)} packets: {error}") from error
    if not packets.stamps:
        raise VideoDecodeError(f"{path}: the video stream holds no frames")
    return packets


def _nominal_duration(stream: av.video.stream.VideoStream, time_base: Fraction) -> int:
    """One frame at the stream's declared rate, in `time_base` units (1 when it declares none)."""
    rate = stream.average_rate or stream.guessed_rate
    return max(1, round(1 / (rate * time_base))) if rate else 1


def build_metadata(index: PacketIndex, *, path: Path, container: av.container.InputContainer) -> VideoMetadata:
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
