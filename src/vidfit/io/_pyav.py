"""`PyAVSource`: frame-exact decoding over PyAV, on the CPU or through a ``*_cuvid`` decoder."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Literal, Protocol, cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from vidfit.io._index import PacketIndex, open_container
from vidfit.io._opened import OpenedSource
from vidfit.io._types import VideoDecodeError

# A seek flushes the decoder, and with frame threads refilling its pipeline costs about as much as
# decoding a few frames: seek only when that skips more frames than this.
_SEEK_MIN_SKIPPED_FRAMES = 8


class DecodedFrame(Protocol):
    """A decoded frame that writes itself, as packed RGB, into a uint8 array of shape (H, W, 3)."""

    def copy_to(self, out: np.ndarray) -> None: ...


class _PackedFrame:
    """A PyAV frame converted (and resized) to packed RGB in FFmpeg's scaler, copied once into place.

    Packed rgb24, not planar gbrp: swscale's yuv420p -> gbrp path is wrong for widths that are not
    a multiple of 16 (210, say), while its rgb24 path matches FFmpeg's reference conversion.
    """

    def __init__(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> None:
        self._frame, self._size = frame, size

    def copy_to(self, out: np.ndarray) -> None:
        height, width = self._size if self._size is not None else (None, None)
        # One scaling thread: PyAV's default (0) gives each conversion a pool of FFmpeg threads, and a loader
        # worker forked from a process that converted frames that way hung in its first conversion. Decoding
        # keeps its own threads; a frame this size converts in well under a millisecond.
        plane = self._frame.reformat(width=width, height=height, format="rgb24", threads=1).planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
        out[...] = rows[:, : plane.width * 3].reshape(plane.height, plane.width, 3)


class PyAVSource:
    """Decodes with PyAV, seeking to the last keyframe before each run of targets.

    Decoded frames are matched to the index by pts and must come in index order, so a stream whose
    stamps are not presentation times (AVI stamps B-frames in decode order) fails loudly instead of
    returning wrong frames. Raw streams carry no stamps at all: their frames are counted from the
    start of the file, and each request decodes from there.

    Args:
        source: The opened file (named in errors); closed with the source.
        container: An open input container; the source owns it and closes it in `close`.
        stream_index: The stream to decode, among the container's streams.
        index: The stream's packet index.
        num_threads: FFmpeg decoding threads, 0 lets FFmpeg choose.
        decoder_name: A specific FFmpeg decoder (``"h264_cuvid"``), or None for the stream's default.

    Raises:
        av.FFmpegError: `decoder_name` cannot open (no GPU, say).
    """

    def __init__(
        self,
        source: OpenedSource,
        container: av.container.InputContainer,
        index: PacketIndex,
        *,
        stream_index: int,
        num_threads: int,
        decoder_name: str | None = None,
    ) -> None:
        self._opened, self._path, self._index, self._num_threads = source, source.name, index, num_threads
        self._stream_index = stream_index
        self._own_decoder: VideoCodecContext | None = None
        self.backend: Literal["pyav", "nvdec"] = "pyav" if decoder_name is None else "nvdec"
        if decoder_name is not None:
            decoder = cast(VideoCodecContext, av.CodecContext.create(decoder_name, "r"))
            decoder.extradata = container.streams[stream_index].codec_context.extradata
            decoder.open()  # now, not at the first packet, so that a failure can fall back to "pyav"
            self._own_decoder = decoder
        self._bind(container)
        if not index.has_stamps:
            warnings.warn(
                f"{self._path}: its packets carry no timestamps, so frames are counted from the start of the file and "
                "every request decodes from there; re-encode it to .mp4 or .mkv for fast random access",
                stacklevel=4,
            )

    def _bind(self, container: av.container.InputContainer) -> None:
        self._container = container
        self._stream = cast(av.video.stream.VideoStream, container.streams[self._stream_index])
        if self._own_decoder is None:
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = self._num_threads
            self._decoder = self._stream.codec_context
        else:
            self._decoder = self._own_decoder

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[DecodedFrame]:
        """Frames at `targets` (sorted), a repeated target yielding the same frame again."""
        run: Iterator[tuple[int, av.VideoFrame]] | None = None
        current = -1
        values, counts = np.unique(targets, return_counts=True)
        for target, count in zip(values.tolist(), counts.tolist(), strict=True):
            keyframe = self._index.keyframe_at_or_before(target) if self._index.has_stamps else 0
            if run is None or keyframe - current > _SEEK_MIN_SKIPPED_FRAMES:
                run = self._decode_from(keyframe)
            frame = self._reach(run, target)
            current = target
            yield from itertools.repeat(_PackedFrame(frame, size), count)

    def _reach(self, run: Iterator[tuple[int, av.VideoFrame]], target: int) -> av.VideoFrame:
        for index, frame in run:
            if index == target:
                if frame.is_corrupt:
                    raise VideoDecodeError(f"{self._path}: the stream breaks at frame {target}: the frame is corrupt")
                return frame
            if index > target:
                break
        raise VideoDecodeError(f"{self._path}: the stream breaks before frame {target}: it was never decoded")

    def _decode_from(self, keyframe: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decodes from `keyframe` on, yielding each frame with its index.

        From `keyframe` on, frames must come in index order without a gap; frames shown before it
        (an open GOP's leading frames) pass unchecked, as no target before `keyframe` seeks to it.
        The decoder hands frames out in presentation order, so a frame whose stamp names the index
        expected next is that frame, whatever follows it; a stamp out of order fails before its
        frame is handed out.
        """
        reached = keyframe  # the frame expected next
        try:
            for packet in self._packets_from(keyframe):
                self._opened.check()  # a failed read ends FFmpeg's file early: no frame of it is handed out
                for frame in self._decoder.decode(packet):
                    index = self._index.frame_at_pts(frame.pts) if self._index.has_stamps else reached
                    if index is None:
                        continue
                    if index >= keyframe:
                        if index != reached:
                            raise VideoDecodeError(
                                f"{self._path}: the stream breaks at frame {reached}: frame {index} was decoded next "
                                "(AVI stamps B-frames in decode order: re-encode such a file to .mp4 or .mkv)"
                            )
                        reached = index + 1
                    yield index, frame
        except av.FFmpegError as error:
            self._opened.check()
            raise VideoDecodeError(f"{self._path}: the stream breaks at frame {reached}: {error}") from error
        self._opened.check()
        if not self._index.has_stamps and reached != len(self._index.pts):
            raise VideoDecodeError(
                f"{self._path}: the stream breaks: it decodes to {reached} frames, not {len(self._index.pts)}"
            )

    def _packets_from(self, keyframe: int) -> Iterator[av.Packet]:
        """Packets from a point at or before `keyframe` in decode order, the decoder flushed."""
        self._decoder.flush_buffers()
        if not self._index.has_stamps:
            # Raw streams cannot seek at all: reopening is the one way back to the start.
            self._container.close()
            self._bind(open_container(self._opened))
            return self._container.demux(self._stream)
        wanted = self._index.decode_positions[keyframe]
        for stamp in self._index.seek_stamps(keyframe):
            self._container.seek(stamp, stream=self._stream, backward=True)
            packets = self._container.demux(self._stream)
            first = next(packets, None)
            landed = self._index.frame_at_pts(first.pts if first is not None else None)
            if landed is None or self._index.decode_positions[landed] <= wanted:
                return itertools.chain([first] if first is not None else [], packets)
        self._opened.check()
        raise VideoDecodeError(
            f"{self._path}: every seek for frame {keyframe} lands after it in the file; remux it to .mkv or .mp4"
        )

    def close(self) -> None:
        """Closes the file and drops the decoder."""
        self._container.close()
        self._opened.close()
        del self._decoder, self._own_decoder, self._stream
