"""The packet index: every frame's presentation time and the keyframes, read by demuxing alone; stream choice."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, cast

import av
import numpy as np

from vidfit.io._opened import OpenedSource
from vidfit.io._types import StreamInfo, VideoDecodeError, VideoMetadata

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


def open_container(source: OpenedSource) -> av.container.InputContainer:
    """Opens a source for demuxing, turning FFmpeg's failures into errors that name it."""
    try:
        container = av.open(source.reopen(), mode="r")
    except av.FFmpegError as error:
        source.check()
        raise VideoDecodeError(f"{source.name}: cannot open as a video: {error}") from error
    if source.failure is not None:
        container.close()
        source.check()
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{source.name}: has no video stream")
    return container


def choose_stream(
    container: av.container.InputContainer, stream_index: int | None, *, name: Path | str
) -> av.video.stream.VideoStream:
    """The video stream at `stream_index` (among all streams), or FFmpeg's best one when None.

    FFmpeg's choice (``av_find_best_stream``) prefers the default disposition, then the most
    decodable frames and the highest bit rate: a thumbnail stream placed first is not picked.
    """
    videos = container.streams.video
    if stream_index is None:
        best = container.streams.best("video")
        return best if isinstance(best, av.video.stream.VideoStream) else videos[0]
    for stream in videos:
        if stream.index == stream_index:
            return stream
    raise ValueError(
        f"{name}: stream_index={stream_index!r} is not one of its video streams {[s.index for s in videos]}"
    )


def stream_infos(container: av.container.InputContainer) -> tuple[StreamInfo, ...]:
    """What the header says of every video stream."""
    return tuple(
        StreamInfo(
            index=stream.index,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(stream.average_rate or 0.0),
            num_frames=int(stream.frames or 0),
            codec=stream.codec_context.name,
        )
        for stream in container.streams.video
    )


def read_packet_index(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, *, source: OpenedSource
) -> PacketIndex:
    """Demuxes `stream` without decoding and indexes its frames.

    Remote files and file objects with a sample table (MP4, MOV) are demuxed with their sample
    payloads read as zeros: timing and keyframes come from the table, so indexing fetches the
    table alone instead of the whole file.
    """
    time_base = stream.time_base or Fraction(1, 1000)
    nominal_duration = _nominal_duration(stream, time_base)
    packets = None if source.is_local else _demux_from_sample_table(stream, source, nominal_duration)
    if packets is None:
        packets = _demux(container, stream, source=source, nominal_duration=nominal_duration)
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


def _demux_from_sample_table(
    stream: av.video.stream.VideoStream, source: OpenedSource, nominal_duration: int
) -> _Packets | None:
    """`_demux` over a copy of the file whose sample payloads read as zeros; None without a full table."""
    entries = list(stream.index_entries)
    if not entries or len(entries) != stream.frames:
        return None  # Matroska and friends index keyframes only; their packets must be read
    skipper = PayloadSkipper(source, [(e.pos, e.pos + e.size) for e in entries])
    try:
        with av.open(skipper, mode="r") as container:
            copy = cast(av.video.stream.VideoStream, container.streams[stream.index])
            packets = _demux(container, copy, source=source, nominal_duration=nominal_duration)
    except (av.FFmpegError, VideoDecodeError):
        source.check()
        return None
    # Keyframes come from the table: FFmpeg's parser, which flags them from the payload, saw zeros.
    # A parser that changed the timing would show in the dts, so then the packets are read for real.
    if packets.dts != [entry.timestamp for entry in entries]:
        return None
    packets.keyframes = [position for position, entry in enumerate(entries) if entry.is_keyframe]
    return packets


def _demux(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    source: OpenedSource,
    nominal_duration: int,
) -> _Packets:
    """The packets' timing; a failed read (which FFmpeg saw as the end of the file) is raised."""
    packets, name = _Packets(), source.name
    try:
        for packet in container.demux(stream):
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
        source.check()
        raise VideoDecodeError(f"{name}: demuxing failed after {len(packets.stamps)} packets: {error}") from error
    source.check()
    if not packets.stamps:
        raise VideoDecodeError(f"{name}: the video stream holds no frames")
    return packets


def _nominal_duration(stream: av.video.stream.VideoStream, time_base: Fraction) -> int:
    """One frame at the stream's declared rate, in `time_base` units (1 when it declares none)."""
    rate = stream.average_rate or stream.guessed_rate
    return max(1, round(1 / (rate * time_base))) if rate else 1


def build_metadata(
    index: PacketIndex,
    *,
    source: OpenedSource,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
) -> VideoMetadata:
    """Metadata from the packet index; the header's frame count and rate are not trusted."""
    span = float((index.pts[-1] - index.pts[0] + index.last_duration) * index.time_base)
    num_frames = len(index.pts)
    return VideoMetadata(
        path=source.name,
        num_frames=num_frames,
        fps=num_frames / span,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        duration_seconds=span,
        begin_seconds=float(index.pts[0] * index.time_base),
        codec=stream.codec_context.name,
        size_bytes=source.size_bytes,
        mtime_ns=int(source.version) if source.is_local else 0,
        stream_index=stream.index,
        streams=stream_infos(container),
        num_audio_streams=len(container.streams.audio),
    )


class PayloadSkipper(io.RawIOBase):
    """A read-only view of `source` in which the byte ranges `payloads` read as zeros, unfetched.

    A failed read of `source` is recorded on it (see `SourceView`) and reads as the end of the file.

    Args:
        source: An opened file object source.
        payloads: Half-open ``(start, stop)`` byte ranges, in any order.
    """

    def __init__(self, source: OpenedSource, payloads: list[tuple[int, int]]) -> None:
        super().__init__()
        merged: list[list[int]] = []
        for start, stop in sorted(payloads):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], stop)
            else:
                merged.append([start, stop])
        self._starts = np.asarray([m[0] for m in merged], dtype=np.int64)
        self._stops = np.asarray([m[1] for m in merged], dtype=np.int64)
        self._source, self._file = source, cast(IO[bytes], source.reopen())
        self._size, self._position = source.size_bytes, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        try:
            filled = self._fill(memoryview(buffer).cast("B"))
        except BaseException as error:  # raised through FFmpeg it would be lost (see `SourceView`)
            self._source.fail(error)
            return 0
        self._position += filled
        return filled

    def _fill(self, view: memoryview) -> int:
        """Copies from the current position into `view`; fewer bytes where the file ends (or a read failed)."""
        start = self._position
        stop = min(start + len(view), self._size)
        position = start
        while position < stop:
            k = int(np.searchsorted(self._stops, position, side="right"))  # first payload ending after position
            payload_start = int(self._starts[k]) if k < len(self._starts) else stop
            if payload_start <= position:  # inside a payload: zeros up to its end
                end = min(int(self._stops[k]), stop)
                view[position - start : end - start] = bytes(end - position)
            else:  # container structure: read it
                end = min(payload_start, stop)
                self._file.seek(position)
                data = self._file.read(end - position)
                view[position - start : position - start + len(data)] = data
                if len(data) < end - position:  # the file ended early, or a read failed
                    return position + len(data) - start
            position = end
        return max(stop - start, 0)
