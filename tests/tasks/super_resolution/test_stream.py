"""Streaming super-resolution of whole videos: every frame with its neighbours, any chunking, output files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import MakeVideo
from vidfit.io import VideoReader, probe
from vidfit.models import ESPCN, build_espcn
from vidfit.tasks.super_resolution._stream import upscale_video


def _model(scale: int = 2, num_frames: int = 3) -> ESPCN:
    """An ESPCN whose output depends on every input frame (the zero-initialized last layer is randomized)."""
    torch.manual_seed(0)
    model = build_espcn(num_frames=num_frames, scale=scale, features=(8, 4))
    torch.nn.init.normal_(model.body[-2].weight, std=0.2)
    return model.eval()


def _expected(model: ESPCN, frames: torch.Tensor) -> torch.Tensor:
    """Every frame upscaled in one pass, its neighbours past the ends repeating the first and last frames."""
    radius = model.num_frames // 2
    positions = torch.arange(-radius, len(frames) + radius).clamp(0, len(frames) - 1)
    windows = frames[positions].unfold(0, model.num_frames, 1).permute(0, 4, 1, 2, 3)
    with torch.no_grad():
        return model(windows).clamp(0, 1).mul(255).round().to(torch.uint8)


@pytest.mark.parametrize(("chunk_num_frames", "num_frames"), [(3, 3), (4, 3), (7, 5), (64, 3)])
def test_any_chunking_gives_every_frame_its_neighbours(
    make_video: MakeVideo, tmp_path: Path, chunk_num_frames: int, num_frames: int
) -> None:
    source, frames = make_video(num_frames=11, height=12, width=16)
    model = _model(num_frames=num_frames)
    # Lossless RGB output, so the decoded frames are exactly what the model produced.
    result = upscale_video(
        model, source, tmp_path / "out.mkv", chunk_num_frames=chunk_num_frames, batch_size=2,
        codec="libx264rgb", crf=0,
    )  # fmt: skip
    with VideoReader(result.path) as reader:
        written = reader.get_frames(0, len(reader)).data
    assert torch.equal(written, _expected(model, frames))


def test_output_is_h264_at_the_new_size_with_the_input_frame_rate(make_video: MakeVideo, tmp_path: Path) -> None:
    source, _ = make_video("in.mp4", num_frames=9, height=16, width=24, fps=12.5, codec="libx264", crf=None)
    result = upscale_video(_model(scale=3), source, tmp_path / "out" / "up.mp4")
    meta = probe(result.path)
    assert (meta.codec, meta.width, meta.height, meta.num_frames) == ("h264", 72, 48, 9)
    assert meta.fps == pytest.approx(12.5) and result.fps == pytest.approx(12.5)
    assert (result.width, result.height, result.num_frames) == (72, 48, 9)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["up.mp4"]  # no temporary file left


def test_out_of_memory_halves_the_batch_and_still_writes_every_frame(make_video: MakeVideo, tmp_path: Path) -> None:
    source, frames = make_video(num_frames=10, height=12, width=16)
    model = _model()
    batch_sizes: list[int] = []

    def forward(windows: torch.Tensor) -> torch.Tensor:
        batch_sizes.append(len(windows))
        if len(windows) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return ESPCN.forward(model, windows)

    model.forward = forward  # type: ignore[method-assign]
    result = upscale_video(model, source, tmp_path / "out.mkv", batch_size=8, codec="libx264rgb", crf=0)
    with VideoReader(result.path) as reader:
        assert torch.equal(reader.get_frames(0, len(reader)).data, _expected(_model(), frames))
    assert batch_sizes[:3] == [8, 4, 2] and max(batch_sizes[3:]) == 2


def test_bf16_autocast_stays_close_to_fp32(make_video: MakeVideo, tmp_path: Path) -> None:
    source, frames = make_video(num_frames=5, height=12, width=16)
    model = _model()
    result = upscale_video(model, source, tmp_path / "out.mkv", precision="bf16-mixed", codec="libx264rgb", crf=0)
    with VideoReader(result.path) as reader:
        written = reader.get_frames(0, len(reader)).data
    assert (written.int() - _expected(model, frames).int()).abs().max() <= 8


def test_bad_arguments_and_odd_sizes_are_refused(make_video: MakeVideo, tmp_path: Path) -> None:
    source, _ = make_video(num_frames=4, height=12, width=15)
    model = _model(scale=3)
    with pytest.raises(ValueError, match=r"precision='fp8' is not one of '32', '16-mixed', 'bf16-mixed'"):
        upscale_video(model, source, tmp_path / "out.mp4", precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"chunk_num_frames=2 must be >= the model's num_frames=3"):
        upscale_video(model, source, tmp_path / "out.mp4", chunk_num_frames=2)
    with pytest.raises(ValueError, match=r"out\.mp4: pix_fmt='yuv420p' .* must be even, got 45x36"):
        upscale_video(model, source, tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out*"))


def test_output_frames_keep_the_input_times_from_its_first_frame(make_video: MakeVideo, tmp_path: Path) -> None:
    pts = torch.tensor([5.0, 5.1, 5.15, 5.5, 5.6, 6.4, 6.5], dtype=torch.float64)  # variable rate, from 5 s
    source, _ = make_video("vfr.mp4", num_frames=7, height=16, width=24, codec="libx264", crf=None, pts_seconds=pts)
    result = upscale_video(_model(), source, tmp_path / "up.mp4", chunk_num_frames=4)
    with VideoReader(result.path) as reader:
        assert reader.pts_seconds.tolist() == pytest.approx((pts - 5.0).tolist(), abs=1e-4)


def test_rgb_codec_writes_odd_sizes(make_video: MakeVideo, tmp_path: Path) -> None:
    source, _ = make_video(num_frames=4, height=12, width=15)
    result = upscale_video(_model(scale=3), source, tmp_path / "out.mp4", codec="libx264rgb")
    assert (probe(result.path).width, probe(result.path).height, result.num_frames) == (45, 36, 4)
