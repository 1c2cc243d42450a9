"""Frame-accurate, streaming video decoding with bounded memory."""

from vidfit.io._reader import VideoReader, probe
from vidfit.io._types import Chunk, FrameBatch, VideoDecodeError, VideoMetadata
from vidfit.io._writer import VideoWriter, write_video

__all__ = [
    "Chunk",
    "FrameBatch",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "VideoWriter",
    "probe",
    "write_video",
]
