"""Frame sources behind `VideoReader`: PyAV on the CPU, PyAV's cuvid decoders (nvdec), torchcodec."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Protocol, cast

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.codeccontext import VideoCodecContext

from vidfit.io._index import PacketIndex
from vidfit.io._types import VideoDecodeError

Backend = Literal["pyav", "nvdec", "torchcodec"]
BACKENDS: tuple[Backend, ...] = ("pyav", "nvdec", "torchcodec")
# A seek flushes the decoder, and with frame threads refilling its pipeline costs about as much as
# decoding a few frames: seek only when that skips more frames than this.
_SEEK_MIN_SKIPPED_FRAMES = 8
# torchcodec returns whole batches; this many frames are asked for at once when streaming.
_TORCHCODEC_BATCH = 32


class DecodedFrame(Protocol):
    """A decoded frame that writes itself, as packed RGB, into a uint8 array of shape (H, W, 3)."""

    def copy_to(self, out: np.ndarray) -> None: ...


class FrameSource(Protocol):
    """Decodes chosen frames in order; copying each into its place in a batch is left to the caller."""

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[tuple[int, DecodedFrame]]: ...


class _PackedFrame:
    """A PyAV frame converted (and resized) to packed RGB in FFmpeg's scaler, copied once into place.

    Packed rgb24, not planar gbrp: swscale's yuv420p -> gbrp path is wrong for widths that are not
    a multiple of 16 (210, say), while its rgb24 path matches FFmpeg's reference conversion.
    """

    def __init__(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> None:
        self._frame, self._size = frame, size

    def copy_to(self, out: np.ndarray) -> None:
        height, width = self._size if self._size is not None else (None, None)
        plane = self._frame.reformat(width=width, height=height, format="rgb24").planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(plane.height, plane.line_size)
        out[...] = rows[:, : plane.width * 3].reshape(plane.height, plane.width, 3)


class _ArrayFrame:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def copy_to(self, out: np.ndarray) -> None:
        out[...] = self._array


class PyAVSource:
    """Decodes with PyAV, seeking to the last keyframe before each run of targets.

    Args:
        path: The video file (named in errors).
        container: An open input container, owned by the caller.
        index: The stream's packet index.
        num_threads: FFmpeg decoding threads, 0 lets FFmpeg choose.
        decoder_name: A specific FFmpeg decoder (``"h264_cuvid"``), or None for the stream's default.
    """

    def __init__(
        self,
        path: Path,
        container: av.container.InputContainer,
        index: PacketIndex,
        *,
        num_threads: int,
        decoder_name: str | None = None,
    ) -> None:
        self._path, self._container, self._index = path, container, index
        self._stream = container.streams.video[0]
        if decoder_name is None:
            self._decoder = self._stream.codec_context
            self._stream.thread_type = "AUTO"
            self._decoder.thread_count = num_threads
        else:
            self._decoder = cast(VideoCodecContext, av.CodecContext.create(decoder_name, "r"))
            self._decoder.extradata = self._stream.codec_context.extradata

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[tuple[int, DecodedFrame]]:
        position = 0
        decoded: Iterator[tuple[int, av.VideoFrame]] | None = None
        current = -1
        while position < len(targets):
            target = int(targets[position])
            keyframe = self._index.keyframe_at_or_before(target)
            if decoded is None or current >= target or keyframe - current > _SEEK_MIN_SKIPPED_FRAMES:
                decoded, current = self._decode_from(keyframe), -1
            for current, frame in decoded:  # noqa: B007 (the frame reached is used after the loop)
                if current >= target:
                    break
            else:
                current = len(self._index.pts)
            if current != target:
                raise VideoDecodeError(f"{self._path}: the stream breaks before frame {target}: it was never decoded")
            if frame.is_corrupt:
                raise VideoDecodeError(f"{self._path}: frame {target} is corrupt")
            packed = _PackedFrame(frame, size)
            while position < len(targets) and targets[position] == target:
                yield target, packed
                position += 1

    def _decode_from(self, keyframe: int) -> Iterator[tuple[int, av.VideoFrame]]:
        try:
            self._container.seek(int(self._index.pts[keyframe]), stream=self._stream, backward=True)
            self._decoder.flush_buffers()
            for packet in self._container.demux(self._stream):
                for frame in self._decoder.decode(packet):
                    if frame.pts is not None:
                        yield int(np.searchsorted(self._index.pts, frame.pts)), frame
        except av.FFmpegError as error:
            raise VideoDecodeError(f"{self._path}: decoding failed: {error}") from error


class TorchCodecSource:
    """Decodes with torchcodec (an optional extra), resizing on the tensor when asked to."""

    def __init__(self, path: Path, *, num_threads: int) -> None:
        try:
            decoders = importlib.import_module("torchcodec.decoders")
        except ImportError as error:
            raise ImportError(
                "backend='torchcodec' needs torchcodec: pip install 'vidfit[torchcodec]' (or pip install torchcodec)"
            ) from error
        self._path = path
        self._decoder = decoders.VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=num_threads)

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[tuple[int, DecodedFrame]]:
        for start in range(0, len(targets), _TORCHCODEC_BATCH):
            batch = [int(i) for i in targets[start : start + _TORCHCODEC_BATCH]]
            try:
                data = self._decoder.get_frames_at(indices=batch).data
            except RuntimeError as error:
                raise VideoDecodeError(f"{self._path}: decoding failed near frame {batch[0]}: {error}") from error
            if size is not None:
                data = F.interpolate(data.float(), size=size, mode="bilinear", antialias=True).round().byte()
            yield from zip(batch, map(_ArrayFrame, data.permute(0, 2, 3, 1).numpy()), strict=True)


def make_source(
    backend: Backend, path: Path, container: av.container.InputContainer, index: PacketIndex, num_threads: int
) -> FrameSource:
    """The frame source for `backend`; nvdec falls back to PyAV with a warning where it cannot run."""
    if backend == "torchcodec":
        return TorchCodecSource(path, num_threads=num_threads)
    if backend == "nvdec":
        decoder_name = f"{container.streams.video[0].codec_context.name}_cuvid"
        reason = _nvdec_unavailable(decoder_name)
        if reason is None:
            try:
                return PyAVSource(path, container, index, num_threads=num_threads, decoder_name=decoder_name)
            except av.FFmpegError as error:
                reason = f"{decoder_name} failed to open: {error}"
        warnings.warn(f"{path}: backend='nvdec' unavailable ({reason}); decoding with 'pyav'", stacklevel=3)
    return PyAVSource(path, container, index, num_threads=num_threads)


def _nvdec_unavailable(decoder_name: str) -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    if decoder_name not in av.codecs_available:
        return f"this FFmpeg build has no {decoder_name} decoder"
    return None
