"""Frame-accurate, streaming video decoding with bounded memory, and files written whole or not at all."""

from vidfit.io._atomic import write_files_atomic
from vidfit.io._reader import VideoReader, probe
from vidfit.io._types import Chunk, FrameBatch, StreamInfo, VideoDecodeError, VideoMetadata
from vidfit.io._writer import VideoWriter, write_video

__all__ = [
    "Chunk",
    "FrameBatch",
    "StreamInfo",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "VideoWriter",
    "probe",
    "write_files_atomic",
    "write_video",
]
