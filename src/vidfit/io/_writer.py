"""Streaming video writer over PyAV that never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import av
import numpy as np
import torch
from av.video.stream import VideoStream

# Pixel formats that keep RGB exact for the lossless codecs; everything else gets 4:2:0 for compatibility.
_DEFAULT_PIX_FMT = {"libx264rgb": "rgb24", "ffv1": "bgr0", "png": "rgb24"}
_X264 = ("libx264", "libx264rgb")
# Time base for explicit presentation times: 1/90000 is MPEG's clock, exact for 24, 25, 30 and 60 fps.
_PTS_TIME_BASE = Fraction(1, 90000)


class VideoWriter:
    """Encodes uint8 frames into a video file, one batch at a time.

    The file is written under a temporary name beside `path` and renamed into place on a clean
    close, so a crash or an exception never leaves a truncated video at `path`.

    Args:
        path: Output file; the container is chosen from its extension.
        fps: Frame rate of the stream.
        width: Frame width in pixels.
        height: Frame height in pixels.
        codec: FFmpeg encoder, e.g. ``"libx264"``, ``"libx264rgb"`` (lossless RGB), ``"ffv1"``.
        gop: Keyframe interval in frames; FFmpeg's default when None.
        crf: Constant rate factor for x264 (0 is lossless); the encoder's default when None.
        bframes: Maximum consecutive B-frames for x264; the encoder's default when None.
        pix_fmt: Pixel format of the stream; a sensible default per codec when None.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: float,
        width: int,
        height: int,
        codec: str = "libx264",
        gop: int | None = None,
        crf: int | None = None,
        bframes: int | None = None,
        pix_fmt: str | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps={fps!r} must be > 0")
        if width < 1 or height < 1:
            raise ValueError(f"width={width!r} and height={height!r} must be >= 1")
        if gop is not None and gop < 1:
            raise ValueError(f"gop={gop!r} must be >= 1")
        pix_fmt = pix_fmt or _DEFAULT_PIX_FMT.get(codec, "yuv420p")
        if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
            raise ValueError(
                f"{path}: pix_fmt={pix_fmt!r} halves the chroma planes, so width and height must be even, "
                f"got {width}x{height}; use an even size or codec='libx264rgb'"
            )
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}{self.path.suffix}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container: av.container.OutputContainer | None = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(1001000)
        options = _codec_options(codec, crf, bframes)
        self._stream = cast(VideoStream, self._container.add_stream(codec, rate=rate, options=options))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = pix_fmt
        self._stream.codec_context.time_base = _PTS_TIME_BASE
        if gop is not None:
            self._stream.codec_context.gop_size = gop
        self._frame_seconds = 1.0 / float(rate)
        self._next_pts_seconds = 0.0
        self._last_pts: int | None = None  # in _PTS_TIME_BASE units; the next frame must come strictly after it
        self.num_frames = 0

    def write(self, frames: torch.Tensor, *, pts_seconds: torch.Tensor | np.ndarray | None = None) -> None:
        """Encodes frames.

        Args:
            frames: uint8 RGB frames of shape (N, 3, H, W).
            pts_seconds: Presentation time of each frame; consecutive at `fps` when None. Explicit
                times make variable frame rate and streams that do not start at 0.
        """
        expected = (3, self._stream.height, self._stream.width)
        if frames.dtype != torch.uint8 or frames.ndim != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(
                f"{self.path}: frames must be torch.uint8 of shape (N, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {frames.dtype} {tuple(frames.shape)}"
            )
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is closed")
        array = frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        for image, pts in zip(array, self._frame_pts(len(array), pts_seconds), strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            frame.time_base = _PTS_TIME_BASE
            self._container.mux(self._stream.encode(frame))
        self.num_frames += len(array)

    def _frame_pts(self, count: int, pts_seconds: torch.Tensor | np.ndarray | None) -> list[int]:
        """Each frame's pts in `_PTS_TIME_BASE` units, checked to increase strictly across all writes.

        The check is on the rounded values and against the last frame written, not against the nominal
        frame duration: on variable-frame-rate input a frame may follow the previous one much sooner than
        ``1 / fps``, also across the boundary between two calls.
        """
        if pts_seconds is None:
            times = [self._next_pts_seconds + i * self._frame_seconds for i in range(count)]
        else:
            times = [float(t) for t in pts_seconds]
            if len(times) != count:
                raise ValueError(f"{self.path}: pts_seconds has {len(times)} values for {count} frames")
        pts = [round(seconds / _PTS_TIME_BASE) for seconds in times]
        previous = [] if self._last_pts is None else [self._last_pts]
        if any(b <= a for a, b in itertools.pairwise(previous + pts)):
            raise ValueError(
                f"{self.path}: pts_seconds must increase strictly across all written frames "
                f"(by at least {float(_PTS_TIME_BASE):.3g} s)"
            )
        if pts:
            self._last_pts = pts[-1]
            self._next_pts_seconds = times[-1] + self._frame_seconds
        return pts

    def close(self) -> None:
        """Flushes the encoder and moves the finished file into place."""
        container = self._container
        if container is None:
            return
        try:
            container.mux(self._stream.encode(None))
            container.close()
        except BaseException:
            self.abort()
            raise
        self._container = None
        try:
            self._tmp.replace(self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drops the partial file; `path` is left as it was.

        Never raises: it runs while another error is on its way up (a full disk, a file size limit, an
        interrupt), and that error, not the failure to finish a file being thrown away, is the one to see.
        """
        container, self._container = self._container, None
        if container is not None:
            # Closing writes the trailer, which fails again on the disk that made the write fail.
            with contextlib.suppress(Exception):
                container.close()
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError as error:
            warnings.warn(f"{self._tmp}: partial video left behind, remove it by hand: {error}", stacklevel=2)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _codec_options(codec: str, crf: int | None, bframes: int | None) -> dict[str, str]:
    options: dict[str, Any] = {}
    if codec in _X264:
        # x264's macroblock tree makes the same frames encode to different bytes from run to run
        # (measured on 32 to 96 px clips); reproducible files are worth its few percent of bitrate.
        options["x264-params"] = "mbtree=0"
        if crf is not None:
            options["crf"] = str(crf)
        if bframes is not None:
            options["bf"] = str(bframes)
    elif crf is not None or bframes is not None:
        raise ValueError(f"crf and bframes apply to {_X264}, not codec={codec!r}")
    return options


def write_video(
    path: str | os.PathLike[str],
    frames: torch.Tensor,
    *,
    fps: float,
    codec: str = "libx264",
    gop: int | None = None,
    crf: int | None = None,
    bframes: int | None = None,
    pts_seconds: torch.Tensor | np.ndarray | None = None,
) -> Path:
    """Writes a whole clip of uint8 frames (N, 3, H, W) to `path` and returns it.

    See `VideoWriter` for the arguments.
    """
    if frames.ndim != 4:
        raise ValueError(f"{path}: frames must have shape (N, 3, H, W), got {tuple(frames.shape)}")
    height, width = int(frames.shape[2]), int(frames.shape[3])
    with VideoWriter(
        path, fps=fps, width=width, height=height, codec=codec, gop=gop, crf=crf, bframes=bframes
    ) as writer:
        writer.write(frames, pts_seconds=pts_seconds)
    return writer.path
