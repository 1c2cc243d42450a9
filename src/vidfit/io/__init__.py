"""Frame-accurate, streaming video decoding with bounded memory, and files written whole or not at all."""

from vidfit.io._atomic import check_writable, write_files_atomic
from vidfit.io._checkpoint import CheckpointError, read_checkpoint
from vidfit.io._documents import DocumentError, DocumentForm, DocumentLimits, load_document, read_document, shorten
from vidfit.io._http import RemoteChangedError, RemoteError
from vidfit.io._reader import VideoReader, probe
from vidfit.io._signals import Terminated, sigterm_as_interrupt
from vidfit.io._types import Chunk, FrameBatch, StreamInfo, VideoDecodeError, VideoMetadata
from vidfit.io._writer import VideoWriter, write_video

__all__ = [
    "CheckpointError",
    "Chunk",
    "DocumentError",
    "DocumentForm",
    "DocumentLimits",
    "FrameBatch",
    "RemoteChangedError",
    "RemoteError",
    "StreamInfo",
    "Terminated",
    "VideoDecodeError",
    "VideoMetadata",
    "VideoReader",
    "VideoWriter",
    "check_writable",
    "load_document",
    "probe",
    "read_checkpoint",
    "read_document",
    "shorten",
    "sigterm_as_interrupt",
    "write_files_atomic",
    "write_video",
]
