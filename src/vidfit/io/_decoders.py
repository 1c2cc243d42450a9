"""Frame sources behind `VideoReader`: PyAV on the CPU, PyAV's cuvid decoders (nvdec), torchcodec."""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Iterator
from typing import Literal, Protocol

import av
import numpy as np
import torch
import torch.nn.functional as F

from vidfit.io._index import PacketIndex
from vidfit.io._opened import OpenedSource
from vidfit.io._pyav import DecodedFrame, PyAVSource
from vidfit.io._types import VideoDecodeError

Backend = Literal["pyav", "nvdec", "torchcodec"]
BACKENDS: tuple[Backend, ...] = ("pyav", "nvdec", "torchcodec")
# torchcodec returns whole batches; this many frames are asked for at once when streaming.
_TORCHCODEC_BATCH = 32
# Why nvdec fell back to pyav, each said once in a process (a dataset would say it per video and per worker).
_NVDEC_FALLBACKS_SAID: set[str] = set()


class FrameSource(Protocol):
    """Decodes chosen frames in order; copying each into its place in a batch is left to the caller."""

    @property
    def backend(self) -> Backend:
        """The backend actually decoding (``"pyav"`` where ``"nvdec"`` fell back)."""
        ...

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[DecodedFrame]: ...

    def close(self) -> None: ...


class _ArrayFrame:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def copy_to(self, out: np.ndarray) -> None:
        out[...] = self._array


class TorchCodecSource:
    """Decodes with torchcodec (an optional extra), resizing on the tensor when asked to."""

    backend: Backend = "torchcodec"

    def __init__(self, source: OpenedSource, *, stream_index: int, num_threads: int) -> None:
        try:
            decoders = importlib.import_module("torchcodec.decoders")
        except ImportError as error:
            raise ImportError(
                "backend='torchcodec' needs torchcodec: pip install 'vidfit[torchcodec]' (or pip install torchcodec)"
            ) from error
        self._path, self._source = source.name, source
        try:
            self._decoder = decoders.VideoDecoder(
                source.reopen(), stream_index=stream_index, seek_mode="exact", num_ffmpeg_threads=num_threads
            )
        except (OSError, RuntimeError, ValueError) as error:
            source.close()
            if source.failure is not None:
                raise source.failure from error
            # torchcodec loads FFmpeg's shared libraries at the first decoder, and says so when it cannot.
            if isinstance(error, OSError) or "libtorchcodec" in str(error):
                first_line = str(error).splitlines()[0].removesuffix(" Likely causes:")
                raise ImportError(
                    f"backend='torchcodec': torchcodec cannot load FFmpeg's shared libraries ({first_line}); "
                    f"install FFmpeg {_ffmpeg_versions(str(error))} (apt install ffmpeg) or use backend='pyav'"
                ) from error
            raise VideoDecodeError(f"{source.name}: torchcodec cannot open it: {error}") from error

    def frames(self, targets: np.ndarray, size: tuple[int, int] | None) -> Iterator[DecodedFrame]:
        for start in range(0, len(targets), _TORCHCODEC_BATCH):
            batch = [int(i) for i in targets[start : start + _TORCHCODEC_BATCH]]
            try:
                data = self._decoder.get_frames_at(indices=batch).data
            except RuntimeError as error:
                self._source.check()
                raise VideoDecodeError(f"{self._path}: the stream breaks near frame {batch[0]}: {error}") from error
            self._source.check()
            if size is not None:
                data = F.interpolate(data.float(), size=size, mode="bilinear", antialias=True).round().byte()
            yield from map(_ArrayFrame, data.permute(0, 2, 3, 1).numpy())

    def close(self) -> None:
        """Drops the torchcodec decoder, which closes its file."""
        del self._decoder
        self._source.close()


def make_source(
    backend: Backend,
    *,
    source: OpenedSource,
    container: av.container.InputContainer,
    stream_index: int,
    index: PacketIndex,
    num_threads: int,
) -> FrameSource:
    """The frame source for `backend`, which owns `container` from then on.

    nvdec falls back to PyAV with a warning where it cannot run, its decoder failing to open included.
    """
    if backend == "torchcodec":
        container.close()  # torchcodec reads the file itself
        return TorchCodecSource(source, stream_index=stream_index, num_threads=num_threads)
    path = source.name
    if backend == "nvdec":
        decoder_name = f"{container.streams[stream_index].codec_context.name}_cuvid"
        reason = _nvdec_unavailable(decoder_name)
        if reason is None:
            try:
                return PyAVSource(
                    source, container, index, stream_index=stream_index, num_threads=num_threads,
                    decoder_name=decoder_name,
                )  # fmt: skip
            except av.FFmpegError as error:
                reason = f"{decoder_name} failed to open: {error}"
        if reason not in _NVDEC_FALLBACKS_SAID:  # it applies to every video of the process: said once
            _NVDEC_FALLBACKS_SAID.add(reason)
            warnings.warn(
                f"backend='nvdec' unavailable ({reason}); decoding with 'pyav' ({path} and any other video of this "
                "process)",
                stacklevel=3,
            )
    return PyAVSource(source, container, index, stream_index=stream_index, num_threads=num_threads)


def _ffmpeg_versions(message: str) -> str:
    """The FFmpeg major versions the installed torchcodec supports, from the attempts its error lists."""
    versions = sorted({int(v) for v in re.findall(r"FFmpeg version (\d+):", message)})
    if not versions:
        return "of a version this torchcodec supports (see its README)"
    return ", ".join(map(str, versions[:-1])) + (" or " if len(versions) > 1 else "") + str(versions[-1])


def _nvdec_unavailable(decoder_name: str) -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    if decoder_name not in av.codecs_available:
        return f"this FFmpeg build has no {decoder_name} decoder"
    return None
