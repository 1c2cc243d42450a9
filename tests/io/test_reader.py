"""VideoReader: every access path equals a plain sequential decode, on awkward streams too."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import psutil
import pytest
import torch

from tests.conftest import MakeVideo
from vidfit.io import VideoDecodeError, VideoReader, probe
from vidfit.io._pyav import PyAVSource


def sequential_decode(path: Path) -> torch.Tensor:
    """The reference: PyAV decoding the whole file from the start, in presentation order."""
    with av.open(str(path)) as container:
        arrays = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


# Each case: writer arguments for a stream that makes frame accuracy hard in its own way.
STREAMS = {
    "lossless": {"codec": "libx264rgb"},
    "ffv1": {"codec": "ffv1"},
    "bframes_long_gop": {"name": "lossy.mp4", "codec": "libx264", "crf": 28, "gop": 40, "bframes": 3},
    # MPEG-TS seeks by dts: given a B-frame stream's keyframe pts, it lands after the keyframe.
    "bframes_ts": {"name": "lossy.ts", "codec": "libx264", "crf": 28, "gop": 20, "bframes": 3},
    "bframes_m2ts": {"name": "lossy.m2ts", "codec": "libx264", "crf": 28, "gop": 20, "bframes": 3},
    "odd_size": {"height": 31, "width": 45, "codec": "libx264rgb"},
    # swscale's planar-RGB path is wrong at widths that are not a multiple of 16; rgb24 is right.
    "narrow_yuv420p": {"name": "narrow.mp4", "height": 16, "width": 24, "codec": "libx264", "crf": 20},
    "vfr_offset": {
        "codec": "libx264rgb",
        "pts_seconds": torch.cumsum(torch.tensor([0.5] + [0.02, 0.05, 0.03] * 19 + [0.04, 0.02]), dim=0),
    },
}


@pytest.fixture(params=list(STREAMS))
def stream(request: pytest.FixtureRequest, make_video: MakeVideo) -> tuple[Path, torch.Tensor]:
    arguments = {"num_frames": 60, **STREAMS[request.param]}
    path, _ = make_video(**arguments)
    return path, sequential_decode(path)


def test_all_access_paths_equal_sequential_decode(stream: tuple[Path, torch.Tensor]) -> None:
    path, reference = stream
    with VideoReader(path) as reader:
        assert len(reader) == len(reference)
        assert torch.equal(reader.get_frames(0, len(reader)).data, reference)
        assert torch.equal(reader.get_frames(33, 47).data, reference[33:47])
        assert torch.equal(reader.get_frames(5, 58, step=7).data, reference[5:58:7])
        indices = [0, 3, 3, 29, 30, 59]
        assert torch.equal(reader.get_frames_at(indices).data, reference[indices])
        chunks = list(reader.iter_chunks(chunk_num_frames=16, overlap_num_frames=5))
        for chunk in chunks:
            assert torch.equal(chunk.data, reference[chunk.start_frame : chunk.stop_frame])


def test_frames_played_in_range_are_those_on_screen(stream: tuple[Path, torch.Tensor]) -> None:
    path, reference = stream
    with VideoReader(path) as reader:
        pts = reader.pts_seconds
        end = reader.metadata.begin_seconds + reader.metadata.duration_seconds
        shown_until = [*pts[1:], end]
        start, stop = (pts[10] + pts[11]) / 2, pts[40]
        expected = [i for i in range(len(reader)) if pts[i] < stop and shown_until[i] > start]
        played = reader.get_frames_played_in_range(start, stop)
        assert played.frame_indices.tolist() == expected == list(range(10, 40))
        assert torch.equal(played.data, reference[10:40])
        for instant in (pts[0], start, pts[5], end):
            assert len(reader.get_frames_played_in_range(instant, instant)) == 0
        assert reader.get_frames_played_in_range(pts[-1], end).frame_indices.tolist() == [len(reader) - 1]
        for outside in ((pts[0] - 0.01, pts[3]), (pts[3], end + 0.01), (pts[4], pts[3])):
            with pytest.raises(IndexError, match=r"<= start_seconds <= stop_seconds <="):
                reader.get_frames_played_in_range(*outside)


def test_lossless_frames_equal_what_was_written(make_video: MakeVideo) -> None:
    path, frames = make_video(num_frames=30)
    with VideoReader(path) as reader:
        batch = reader.get_frames(10, 20)
    assert torch.equal(batch.data, frames[10:20])
    assert batch.frame_indices.tolist() == list(range(10, 20))
    assert batch.data.dtype == torch.uint8 and batch.data.is_contiguous(memory_format=torch.channels_last)


def test_iter_chunks_seams_and_tail(make_video: MakeVideo) -> None:
    path, frames = make_video(num_frames=50)
    with VideoReader(path) as reader:
        chunks = list(reader.iter_chunks(chunk_num_frames=16, overlap_num_frames=4))
        stepped = list(reader.iter_chunks(chunk_num_frames=5, step=3, start=2, stop=40))
    assert [(c.start_frame, c.stop_frame) for c in chunks] == [(0, 16), (12, 28), (24, 40), (36, 50)]
    assert all(torch.equal(c.data, frames[c.start_frame : c.stop_frame]) for c in chunks)
    assert [c.frame_indices.tolist() for c in stepped] == [[2, 5, 8, 11, 14], [17, 20, 23, 26, 29], [32, 35, 38]]


def test_iter_chunks_without_fresh_tail_yields_no_duplicate(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=28)
    with VideoReader(path) as reader:
        chunks = list(reader.iter_chunks(chunk_num_frames=16, overlap_num_frames=4))
    assert [(c.start_frame, c.stop_frame) for c in chunks] == [(0, 16), (12, 28)]


@pytest.mark.parametrize("name", ["gop.mp4", "gop.ts"])
def test_mid_file_range_decodes_at_most_two_gops(
    name: str, make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = make_video(num_frames=120, gop=10, codec="libx264", crf=30, bframes=3, name=name)
    decoded: list[int] = []
    original = PyAVSource._decode_from

    def counting(self: PyAVSource, keyframe: int):  # type: ignore[no-untyped-def]
        for index, frame in original(self, keyframe):
            decoded.append(index)
            yield index, frame

    monkeypatch.setattr(PyAVSource, "_decode_from", counting)
    with VideoReader(path) as reader:
        batch = reader.get_frames(85, 95)
    assert torch.equal(batch.data, sequential_decode(path)[85:95])
    assert min(decoded) >= 85 - 2 * 10 and len(decoded) <= 2 * 10 + 10


def test_a_request_decodes_no_frame_past_its_last_target(
    make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One thread and no B-frames: each packet gives one frame at once, so packets read count frames decoded.
    path, _ = make_video(num_frames=40, gop=20, bframes=0)
    packets: list[int] = []
    original = PyAVSource._packets_from

    def counting(self: PyAVSource, keyframe: int):  # type: ignore[no-untyped-def]
        for packet in original(self, keyframe):
            packets.append(packet.pts)
            yield packet

    monkeypatch.setattr(PyAVSource, "_packets_from", counting)
    with VideoReader(path, num_threads=1) as reader:
        batch = reader.get_frames(3, 8)
    assert torch.equal(batch.data, sequential_decode(path)[3:8])
    assert len(packets) == 8


def test_resize_in_decoder(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=10, height=32, width=48)
    with VideoReader(path) as reader:
        batch = reader.get_frames(0, 4, size=(17, 23))
        chunk = next(reader.iter_chunks(chunk_num_frames=3, size=(8, 8)))
    assert batch.data.shape == (4, 3, 17, 23)
    assert chunk.data.shape == (3, 3, 8, 8)


def test_metadata_comes_from_the_packet_index(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=45, fps=15.0, height=30, width=40)
    meta = probe(path)
    assert (meta.num_frames, meta.width, meta.height, meta.codec) == (45, 40, 30, "h264")
    assert meta.fps == pytest.approx(15.0, rel=1e-3)
    assert meta.duration_seconds == pytest.approx(3.0, rel=1e-3)
    assert meta.begin_seconds == 0.0
    assert meta.size_bytes == path.stat().st_size


def test_variable_frame_rate_and_offset_start(make_video: MakeVideo) -> None:
    times = torch.tensor([2.0, 2.1, 2.15, 2.5, 2.51, 3.0])
    path, frames = make_video(num_frames=6, pts_seconds=times)
    with VideoReader(path) as reader:
        assert reader.metadata.begin_seconds == pytest.approx(2.0)
        assert np.allclose(reader.pts_seconds, times.numpy(), atol=1e-3)
        assert reader.index_at_seconds(2.3) == 2 and reader.index_at_seconds(0.0) == 0
        played = reader.get_frames_played_in_range(2.12, 2.51)
    assert played.frame_indices.tolist() == [1, 2, 3]
    assert torch.equal(played.data, frames[1:4])


def test_errors_name_the_problem(tmp_path: Path, make_video: MakeVideo) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4"):
        VideoReader(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    with pytest.raises(VideoDecodeError, match=r"notes\.mp4"):
        VideoReader(text)
    path, _ = make_video(num_frames=10)
    with VideoReader(path) as reader:
        with pytest.raises(IndexError, match=r"\[0, 10\)"):
            reader.get_frames_at([2, 10])
        with pytest.raises(IndexError, match="non-decreasing"):
            reader.get_frames_at([5, 2])
        with pytest.raises(IndexError, match="stop <= 10"):
            reader.get_frames(0, 11)
        with pytest.raises(ValueError, match="step=0"):
            reader.get_frames(0, 5, step=0)
        with pytest.raises(ValueError, match="overlap_num_frames=4"):
            next(reader.iter_chunks(chunk_num_frames=4, overlap_num_frames=4))
        with pytest.raises(ValueError, match=r"size=\(0, 4\)"):
            reader.get_frames(0, 2, size=(0, 4))
    with pytest.raises(ValueError, match="backend='gpu'"):
        VideoReader(path, backend="gpu")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.get_frames(0, 4, step=1.5), r"step=1\.5 must be an int"),
        (lambda r: r.get_frames(2.5, 6), r"start=2\.5 must be an int"),
        (lambda r: r.get_frames(0, True), r"stop=True must be an int"),
        (lambda r: r.get_frames(0, 2, size=(10.5, 4)), r"size=\(10\.5, 4\)"),
        (lambda r: r.get_frames(0, 2, size=(4,)), r"size=\(4,\)"),
        (lambda r: r.get_frames(0, 2, size=5), r"size=5 must be \(height, width\)"),
        (lambda r: r.get_frames(0, 2, size=(True, 4)), r"size=\(True, 4\)"),
        (lambda r: r.get_frames_at([1.9, 2.7]), r"video\.mkv: frame indices must be integers, got dtype float64"),
        (lambda r: next(r.iter_chunks(chunk_num_frames=4.0)), r"chunk_num_frames=4\.0 must be an int"),
    ],
)
def test_arguments_of_the_wrong_type_are_refused(
    call: Callable[[VideoReader], object], message: str, make_video: MakeVideo
) -> None:
    path, _ = make_video(num_frames=10)
    with VideoReader(path) as reader, pytest.raises(ValueError, match=message):
        call(reader)


def test_out_of_range_indices_are_named_briefly(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=10)
    with VideoReader(path) as reader, pytest.raises(IndexError) as caught:
        reader.get_frames_at(list(range(-3, 100_000)))
    assert str(caught.value).endswith(
        "frame indices must lie in [0, 10); 99993 do not, the first: [-3, -2, -1, 10, 11]"
    )


def test_reading_after_close_names_the_reader(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=10)
    reader = VideoReader(path)
    chunks = reader.iter_chunks(chunk_num_frames=4)
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match=r"reader for .*video\.mkv is closed"):
        reader.get_frames(0, 2)
    with pytest.raises(ValueError, match="is closed"):
        next(chunks)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(800) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoDecodeError, match=r"tone\.wav: has no video stream"):
        VideoReader(path)


def test_lossy_stream_breaking_midway_names_the_frame(make_video: MakeVideo) -> None:
    path, _ = make_video(name="lossy.mp4", num_frames=60, height=64, width=64, codec="libx264", crf=23, gop=10)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    data[middle : middle + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    # The bad bytes sit mid-file, so the frame reached is neither the first nor past the end.
    with (
        VideoReader(path) as reader,
        pytest.raises(VideoDecodeError, match=r"lossy\.mp4: the stream breaks at frame ([1-9]|[1-5]\d): "),
    ):
        reader.get_frames(0, len(reader))


def test_avi_with_b_frames_fails_loudly_instead_of_returning_wrong_frames(make_video: MakeVideo) -> None:
    # AVI stamps packets in decode order, so the stamps of B-frames are not their presentation times.
    path, _ = make_video(name="clip.avi", num_frames=30, height=32, width=32, codec="libx264", crf=23, bframes=3)
    with VideoReader(path) as reader:
        for read in (lambda: reader.get_frames(0, len(reader)), lambda: reader.get_frames_at([4, 12])):
            with pytest.raises(VideoDecodeError, match=r"clip\.avi: the stream breaks at frame \d+: .*decode order"):
                read()


def test_raw_stream_without_timestamps_is_counted_from_the_start(make_video: MakeVideo) -> None:
    path, _ = make_video(name="clip.h264", num_frames=40, height=32, width=32, codec="libx264", crf=23, bframes=3)
    reference = sequential_decode(path)
    with pytest.warns(UserWarning, match=r"clip\.h264: its packets carry no timestamps"):
        reader = VideoReader(path)
    with reader:
        # The made-up stamps run at the rate the demuxer declares (FFmpeg's default for raw H.264).
        assert len(reader) == 40 and np.allclose(np.diff(reader.pts_seconds), 1 / reader.metadata.fps)
        assert torch.equal(reader.get_frames(25, 30).data, reference[25:30])
        assert torch.equal(reader.get_frames_at([3, 3, 39]).data, reference[[3, 3, 39]])
        chunks = list(reader.iter_chunks(chunk_num_frames=16, overlap_num_frames=4))
    assert all(torch.equal(c.data, reference[c.start_frame : c.stop_frame]) for c in chunks)


def test_stream_breaking_midway_names_the_frame(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=60, gop=10)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes((b * 7 + 13) % 256 for b in data[middle : middle + 200])
    path.write_bytes(bytes(data))
    with VideoReader(path) as reader, pytest.raises(VideoDecodeError, match=r"video\.mkv: .*frame \d+"):
        reader.get_frames(0, len(reader))


def test_nvdec_without_cuda_falls_back_with_a_warning(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: nvdec is used, not the fallback")
    monkeypatch.setattr("vidfit.io._decoders._NVDEC_FALLBACKS_SAID", set())  # said once a process
    path, frames = make_video(num_frames=8)
    with pytest.warns(UserWarning, match="backend='nvdec' unavailable"), VideoReader(path, backend="nvdec") as reader:
        assert torch.equal(reader.get_frames(0, 8).data, frames)
        assert reader.backend == "pyav"


def test_nvdec_decoder_failing_to_open_falls_back_with_a_warning(
    make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available() or "h264_cuvid" not in av.codecs_available:
        pytest.skip("needs an FFmpeg with h264_cuvid and no GPU, so that opening it fails")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("vidfit.io._decoders._NVDEC_FALLBACKS_SAID", set())  # said once a process
    path, frames = make_video(num_frames=8)
    with (
        pytest.warns(UserWarning, match=r"backend='nvdec' unavailable \(h264_cuvid failed to open: "),
        VideoReader(path, backend="nvdec") as reader,
    ):
        assert reader.backend == "pyav"
        assert torch.equal(reader.get_frames(0, 8).data, frames)


@pytest.mark.cuda
def test_nvdec_matches_pyav_on_lossy_h264(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=40, codec="libx264", crf=23, name="nv.mp4")
    with VideoReader(path, backend="nvdec") as gpu, VideoReader(path) as cpu:
        difference = gpu.get_frames(10, 30).data.float() - cpu.get_frames(10, 30).data.float()
    assert difference.abs().mean() < 2.0


def test_torchcodec_missing_names_the_install(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = make_video(num_frames=4)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    with pytest.raises(ImportError, match="pip install"):
        VideoReader(path, backend="torchcodec")


def _torchcodec_unusable(path: Path) -> str | None:
    """Why torchcodec cannot decode here (not installed, or FFmpeg's libraries missing), or None."""
    try:
        VideoReader(path, backend="torchcodec").close()
    except ImportError as error:
        return str(error)
    return None


@pytest.mark.parametrize("case", ["lossless", "bframes_long_gop", "vfr_offset", "odd_size"])
def test_torchcodec_gives_the_same_frames_as_pyav(make_video: MakeVideo, case: str) -> None:
    path, _ = make_video(**{"num_frames": 60, **STREAMS[case]})
    if (reason := _torchcodec_unusable(path)) is not None:
        pytest.skip(f"torchcodec backend unavailable: {reason}")
    with VideoReader(path, backend="torchcodec") as codec, VideoReader(path) as pyav:
        assert codec.backend == "torchcodec"
        assert torch.equal(codec.get_frames(0, 60).data, pyav.get_frames(0, 60).data)
        assert torch.equal(codec.get_frames_at([3, 3, 41, 59]).data, pyav.get_frames_at([3, 3, 41, 59]).data)
        chunks = [c.data for c in codec.iter_chunks(chunk_num_frames=16, overlap_num_frames=4, start=10)]
        assert torch.equal(torch.cat([chunks[0], *(c[4:] for c in chunks[1:])]), pyav.get_frames(10, 60).data)


def test_open_close_keeps_memory_flat(make_video: MakeVideo) -> None:
    path, _ = make_video(num_frames=6)
    process = psutil.Process()

    def cycle(times: int) -> None:
        for _ in range(times):
            with VideoReader(path) as reader:
                reader.get_frames(2, 4)

    cycle(100)
    before = process.memory_info().rss
    cycle(1000)
    assert process.memory_info().rss - before < 16 * 2**20


def test_streaming_never_seeks_and_sparse_reads_do(make_video: MakeVideo, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = make_video(num_frames=100, gop=10)
    seeks: list[int] = []
    original = PyAVSource._decode_from

    def recording(self: PyAVSource, keyframe: int):  # type: ignore[no-untyped-def]
        seeks.append(keyframe)
        yield from original(self, keyframe)

    monkeypatch.setattr(PyAVSource, "_decode_from", recording)
    with VideoReader(path) as reader:
        list(reader.iter_chunks(chunk_num_frames=16, overlap_num_frames=4))
        assert seeks == [0]
        seeks.clear()
        reader.get_frames_at([5, 42, 43, 95])
    assert seeks == [0, 40, 90]


def test_iter_chunks_reuses_only_buffers_the_caller_dropped(make_video: MakeVideo) -> None:
    path, frames = make_video(num_frames=40)
    with VideoReader(path) as reader:
        kept = list(reader.iter_chunks(chunk_num_frames=8, overlap_num_frames=2))
        pointers = [chunk.data.data_ptr() for chunk in reader.iter_chunks(chunk_num_frames=8, overlap_num_frames=2)]
    assert all(torch.equal(c.data, frames[c.start_frame : c.stop_frame]) for c in kept)
    assert len({c.data.data_ptr() for c in kept}) == len(kept)
    assert len(set(pointers)) < len(pointers)


def test_frames_decode_into_a_given_buffer(make_video) -> None:  # type: ignore[no-untyped-def]
    path, _ = make_video("into.mkv", num_frames=12)
    buffer = torch.zeros((2, 3, 32, 48, 3), dtype=torch.uint8)
    with VideoReader(path) as reader:
        expected = reader.get_frames_at([2, 5, 9]).data
        batch = reader.get_frames_at([2, 5, 9], out=buffer[1])
        assert batch.data.data_ptr() == buffer[1].data_ptr()
        assert torch.equal(buffer[1].permute(0, 3, 1, 2), expected) and not buffer[0].any()
        with pytest.raises(ValueError, match=r"out must be a contiguous uint8 CPU tensor of shape \(3, 32, 48, 3\)"):
            reader.get_frames_at([2, 5, 9], out=torch.zeros((3, 3, 32, 48), dtype=torch.uint8))
