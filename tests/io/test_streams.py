"""Files with several video streams: FFmpeg's best one by default, any one by index, all listed."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.videos import frame_ids, pattern_frames
from vidfit.io import VideoReader, probe

NUM_FRAMES = 12
# (height, width, first frame id) per stream: the ids tell which stream a frame came from.
STREAM_SHAPES = ((180, 320, 0), (270, 480, 100))


def write_two_stream_mp4(path: Path) -> Path:
    """An MP4 holding a 320x180 preview stream then the 480x270 main one, flagged default as players expect.

    Each frame is painted with its own id, which tells the streams apart.
    """
    with av.open(str(path), mode="w") as container:
        streams = []
        for height, width, first in STREAM_SHAPES:
            stream = container.add_stream("libx264", rate=Fraction(25))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "18", "g": "6"}
            stream.disposition = av.stream.Disposition.default if first else av.stream.Disposition(0)
            streams.append(stream)
        for stream, (height, width, first) in zip(streams, STREAM_SHAPES, strict=True):
            frames = pattern_frames(NUM_FRAMES, height, width, first_index=first).permute(0, 2, 3, 1).numpy()
            for array in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")))
            container.mux(stream.encode(None))
    return path


def decode_stream(path: Path, stream_index: int) -> torch.Tensor:
    """The reference: PyAV decoding one stream from the start."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams[stream_index])]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


@pytest.fixture
def two_streams(tmp_path: Path) -> Path:
    return write_two_stream_mp4(tmp_path / "two_streams.mp4")


def test_default_is_ffmpegs_best_stream_not_the_first(two_streams: Path) -> None:
    with av.open(str(two_streams)) as container:
        best = container.streams.best("video")
        assert best is not None and best.index == 1  # FFmpeg's own pick, which the reader must follow
    with VideoReader(two_streams) as reader:
        assert reader.metadata.stream_index == 1
        assert (reader.metadata.height, reader.metadata.width) == (270, 480)
        assert torch.equal(reader.get_frames(0, NUM_FRAMES).data, decode_stream(two_streams, 1))
        assert frame_ids(reader.get_frames_at([0, 11]).data)[0] >= 100  # the main stream's ids start at 100


def test_stream_index_reads_that_stream(two_streams: Path) -> None:
    with VideoReader(two_streams, stream_index=0) as reader:
        assert (reader.metadata.height, reader.metadata.width) == (180, 320)
        assert len(reader) == NUM_FRAMES
        reference = decode_stream(two_streams, 0)
        assert torch.equal(reader.get_frames_at([0, 7, 11]).data, reference[[0, 7, 11]])
        chunks = list(reader.iter_chunks(chunk_num_frames=5))
        assert torch.equal(chunks[-1].data, reference[10:])


def test_metadata_lists_every_video_stream(two_streams: Path) -> None:
    meta = probe(two_streams, stream_index=0)
    assert meta.stream_index == 0
    assert [(s.index, s.width, s.height, s.codec) for s in meta.streams] == [
        (0, 320, 180, "h264"),
        (1, 480, 270, "h264"),
    ]
    assert all(s.num_frames == NUM_FRAMES and s.fps == pytest.approx(25.0) for s in meta.streams)


def test_unknown_stream_index_names_the_choices(two_streams: Path) -> None:
    with pytest.raises(ValueError, match=r"stream_index=5 is not one of its video streams \[0, 1\]"):
        VideoReader(two_streams, stream_index=5)
    with pytest.raises(ValueError, match="stream_index='1' must be an int or None"):
        VideoReader(two_streams, stream_index="1")  # type: ignore[arg-type]


def test_torchcodec_reads_the_same_stream(two_streams: Path) -> None:
    try:
        VideoReader(two_streams, backend="torchcodec").close()
    except ImportError as error:
        pytest.skip(f"torchcodec backend unavailable: {error}")
    for stream_index in (None, 0):
        with VideoReader(two_streams, backend="torchcodec", stream_index=stream_index) as codec:
            expected = decode_stream(two_streams, codec.metadata.stream_index)
            assert torch.equal(codec.get_frames_at([0, 5, 11]).data, expected[[0, 5, 11]])
