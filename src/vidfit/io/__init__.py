"""Frame-accurate, streaming video decoding with bounded memory, and files written whole or not at all."""

from vidfit.io._atomic import OutputError, check_writable, resolve_inside, write_files_atomic, write_text_atomic
from vidfit.io._checkpoint import CheckpointError, read_checkpoint, read_checkpoint_header
from vidfit.io._decoders import Backend
from vidfit.io._reader import VideoReader, probe
from vidfit.io._sources import (
    Source,
    as_location,
    is_inside,
    is_url,
    join_location,
    location_parent,
    open_text,
    relative_location,
    source_stamp,
)
from vidfit.io._types import Chunk, FrameBatch, StreamInfo, VideoDecodeError, VideoMetadata
from vidfit.io._writer import VideoWriter, write_video

__all__ = [
    "Backend",
    "CheckpointError",
    "Chunk",
    "FrameBatch",
    "OutputError",
    "Source",
    "StreamInfo",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "VideoWriter",
    "as_location",
    "check_writable",
    "is_inside",
    "is_url",
    "join_location",
    "location_parent",
    "open_text",
    "probe",
    "read_checkpoint",
    "read_checkpoint_header",
    "relative_location",
    "resolve_inside",
    "source_stamp",
    "write_files_atomic",
    "write_text_atomic",
    "write_video",
]
