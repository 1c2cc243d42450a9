"""Streaming super-resolution of a whole video: chunks in, every frame upscaled, H.264 out at the input's times."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from vidfit.infer import autocast, check_precision, resolve_device
from vidfit.io import Chunk, VideoReader, VideoWriter
from vidfit.memory import Precision, retry_on_oom

# Frames decoded at a time by default: memory is O(chunk), and longer chunks barely speed the model up.
DEFAULT_SR_CHUNK_FRAMES = 32


class SuperResolutionModel(Protocol):
    """The model contract, e.g. `vidfit.models.ESPCN`: the centre of `num_frames` frames, upscaled by `scale`.

    Called with uint8 frames (B, num_frames, 3, h, w); returns float (B, 3, h * scale, w * scale) in [0, 1].
    """

    num_frames: int
    scale: int

    def __call__(self, frames: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class UpscaleResult:
    """A video written by `upscale_video`.

    Attributes:
        source: The input video.
        path: The upscaled video.
        num_frames: Frames written, as many as the input has.
        fps: Frame rate of the output, the input's average rate.
        width: Output width in pixels.
        height: Output height in pixels.
        dropped_audio: The input has audio streams, which the output does not carry.
    """

    source: Path
    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    dropped_audio: bool = False


def upscale_video(
    model: SuperResolutionModel,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    chunk_num_frames: int = DEFAULT_SR_CHUNK_FRAMES,
    batch_size: int = 4,
    precision: Precision = "32",
    device: torch.device | str | None = None,
    codec: str = "libx264",
    crf: int | None = 18,
) -> UpscaleResult:
    """Upscales every frame of `source` into `target`, streaming it chunk by chunk (memory is O(chunk)).

    Every frame is upscaled with its neighbours (the first and last repeat past the ends) and keeps its time
    from the input's first frame: the output starts at 0, a variable frame rate stays. Audio is not copied.
    The output appears at `target` once complete. Put the model in eval mode first.

    Args:
        model: See `SuperResolutionModel`.
        source: Any video PyAV reads.
        target: The output file; its extension chooses the container.
        chunk_num_frames: Frames decoded per chunk, at least the model's `num_frames`.
        batch_size: Output frames per forward pass, halved after an out-of-memory error.
        precision: ``"32"``, or autocast to ``"16-mixed"`` or ``"bf16-mixed"``.
        device: Where the model runs; the device of its first parameter when None.
        codec: ``"libx264"`` (H.264 in 4:2:0: even sizes only), ``"libx264rgb"`` (RGB, any size) or another encoder.
        crf: x264 constant rate factor (18: visually lossless, 0: lossless); the encoder's default when None.
    """
    check_precision(precision)
    if chunk_num_frames < model.num_frames:
        raise ValueError(f"chunk_num_frames={chunk_num_frames!r} must be >= the model's num_frames={model.num_frames}")
    runner = _Runner(model, resolve_device(model, device), precision=precision, batch_size=batch_size)
    with VideoReader(source) as reader:
        meta = reader.metadata
        width, height = meta.width * model.scale, meta.height * model.scale
        with VideoWriter(target, fps=meta.fps, width=width, height=height, codec=codec, crf=crf) as writer:
            _write_upscaled(reader, writer, runner, chunk_num_frames=chunk_num_frames)
    return UpscaleResult(
        Path(source), writer.path, writer.num_frames, meta.fps, width, height, meta.num_audio_streams > 0
    )


def _write_upscaled(reader: VideoReader, writer: VideoWriter, runner: _Runner, *, chunk_num_frames: int) -> None:
    """Every frame of `reader`, upscaled, into `writer` at its time from the first frame."""
    radius = runner.model.num_frames // 2
    for chunk in reader.iter_chunks(chunk_num_frames=chunk_num_frames, overlap_num_frames=2 * radius):
        frames, pts_seconds = _padded(chunk, radius=radius, num_frames=len(reader))
        writer.write(runner(frames), pts_seconds=pts_seconds - reader.metadata.begin_seconds)
    if writer.num_frames != len(reader):
        # Raising inside the writer's block drops the partial file.
        raise RuntimeError(f"{reader.path}: wrote {writer.num_frames} frames of {len(reader)}")


def _padded(chunk: Chunk, *, radius: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk's frames padded for its windows, and the times of the frames those windows are centred on.

    Frames are padded with `radius` copies of the video's first or last frame where the chunk holds it.
    Chunks overlap by ``2 * radius``, so the windows of the padded chunk are centred on exactly the frames
    no earlier chunk gave an output for: ``[start + radius, stop - radius)``, from the video's first frame
    in the first chunk and to its last in the last.
    """
    left = radius if chunk.start_frame == 0 else 0
    right = radius if chunk.stop_frame == num_frames else 0
    positions = torch.arange(-left, len(chunk) + right).clamp_(0, len(chunk) - 1)
    return chunk.data[positions], chunk.pts_seconds[radius - left : len(chunk) - radius + right]


class _Runner:
    """Upscales the centre of every window of a padded chunk, a batch of windows at a time."""

    def __init__(self, model: SuperResolutionModel, device: torch.device, *, precision: str, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be >= 1")
        self.model, self.device, self.precision, self.batch_size = model, device, precision, batch_size

    @torch.inference_mode()
    def __call__(self, padded: torch.Tensor) -> torch.Tensor:
        """uint8 (n + 2 radius, 3, h, w) in, uint8 (n, 3, h * scale, w * scale) out, on the CPU."""
        span = self.model.num_frames
        # Each frame crosses to the device once; the windows are views of the frames there.
        frames = padded.to(self.device, non_blocking=True)
        outputs, start, count = [], 0, len(frames) - span + 1
        while start < count:
            # A smaller batch is kept for the rest of the video: memory use rarely shrinks.
            upscale = functools.partial(self._upscale, frames, start=start, count=count)
            outcome = retry_on_oom(upscale, self.batch_size, shrink=_halve, advice=_one_frame_advice)
            self.batch_size = outcome.setting
            outputs.append(outcome.result.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8).cpu())
            start += len(outcome.result)
        return torch.cat(outputs)

    def _upscale(self, frames: torch.Tensor, batch_size: int, *, start: int, count: int) -> torch.Tensor:
        """The model's output for up to `batch_size` windows from the one centred on frame `start` + radius."""
        span = self.model.num_frames
        stop = min(start + batch_size, count)
        windows = frames[start : stop + span - 1].unfold(0, span, 1).permute(0, 4, 1, 2, 3)
        with autocast(self.device, self.precision):
            return self.model(windows)


def _halve(batch_size: int) -> int | None:
    return batch_size // 2 if batch_size > 1 else None


def _one_frame_advice(batch_size: int) -> str:
    return (
        "out of memory upscaling one frame at a time (batch_size=1): lower chunk_num_frames or the frame size, "
        "or use precision '16-mixed' or 'bf16-mixed'"
    )
