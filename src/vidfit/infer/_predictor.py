"""`ChunkedPredictor`: a model over a video of any length, window by window, within a memory bound."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from vidfit.infer._results import VideoPrediction
from vidfit.infer._windows import Aggregation, Window, aggregate, check_chunking, merge_frame_logits, plan_windows
from vidfit.io import VideoReader

Precision = Literal["32", "16-mixed", "bf16-mixed"]
_AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


class VideoModel(Protocol):
    """What the predictor calls: `vidfit.models.VideoClassifier` and anything shaped like it."""

    def __call__(
        self, video: torch.Tensor, keypoints: torch.Tensor | None = None, keypoint_mask: torch.Tensor | None = None
    ) -> _Output: ...


class _Output(Protocol):
    logits: torch.Tensor
    frame_logits: torch.Tensor


@dataclass
class _WindowInput:
    """One window of one video: uint8 video (V, 3, t, H, W) and optional keypoints (V, t, K, D)."""

    window: Window
    video: torch.Tensor
    keypoints: torch.Tensor | None
    keypoint_mask: torch.Tensor | None


# Yields the inputs of the given windows, in order; called again from the start after an OOM backoff.
WindowSource = Callable[[list[Window]], Iterator[_WindowInput]]


class ChunkedPredictor:
    """Runs a video model over windows of a long video and merges what it says.

    Args:
        model: Takes uint8 video (B, V, 3, T, H, W) and returns clip and per-frame logits.
        chunk_infer_size: Frames per window; -1 runs the whole video in one pass.
        chunk_overlap: Frames shared by neighbouring windows.
        chunk_aggregation: ``"mean"`` of logits, ``"max"``, ``"last"`` window, or ``"prob"`` (mean softmax).
        video_batch_size: Windows per forward pass.
        precision: ``"32"``, ``"16-mixed"`` or ``"bf16-mixed"`` autocast.
        device: Where the model runs; the device of its parameters when None.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        chunk_infer_size: int = -1,
        chunk_overlap: int = 0,
        chunk_aggregation: Aggregation = "mean",
        video_batch_size: int = 1,
        precision: Precision = "32",
        device: torch.device | str | None = None,
    ) -> None:
        check_chunking(
            chunk_infer_size=chunk_infer_size, chunk_overlap=chunk_overlap, chunk_aggregation=chunk_aggregation
        )
        if video_batch_size < 1:
            raise ValueError(f"video_batch_size={video_batch_size!r} must be >= 1")
        if precision not in ("32", *_AUTOCAST_DTYPES):
            raise ValueError(f"precision={precision!r} is not one of '32', '16-mixed', 'bf16-mixed'")
        self.model = model
        self.chunk_infer_size, self.chunk_overlap = chunk_infer_size, chunk_overlap
        self.chunk_aggregation: Aggregation = chunk_aggregation
        self.video_batch_size, self.precision = video_batch_size, precision
        self.device = torch.device(device) if device is not None else next(model.parameters()).device

    def predict_tensor(
        self,
        video: torch.Tensor,
        *,
        keypoints: torch.Tensor | None = None,
        keypoint_mask: torch.Tensor | None = None,
        pts_seconds: torch.Tensor | None = None,
    ) -> VideoPrediction:
        """Predicts a decoded video: uint8 (V, 3, T, H, W), keypoints (V, T, K, D) and mask (V, T)."""
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"video must be uint8 (V, 3, T, H, W), got {video.dtype} {tuple(video.shape)}")
        num_frames = int(video.shape[2])

        def source(windows: list[Window]) -> Iterator[_WindowInput]:
            for w in windows:
                kpt = None if keypoints is None else keypoints[:, w.start : w.stop]
                mask = None if keypoint_mask is None else keypoint_mask[:, w.start : w.stop]
                yield _WindowInput(w, video[:, :, w.start : w.stop], kpt, mask)

        pts = pts_seconds if pts_seconds is not None else torch.arange(num_frames, dtype=torch.float64)
        return self._predict(source, num_frames, pts)

    def predict_readers(
        self, readers: Sequence[VideoReader], *, size: tuple[int, int] | None = None
    ) -> VideoPrediction:
        """Streams one video seen by several cameras (one reader per view), decoding each frame once.

        Views must have the same number of frames (synchronized recordings, as `vidfit prepare` and
        the manifest's checks guarantee); times come from the first view.
        """
        counts = {len(reader) for reader in readers}
        if len(counts) != 1:
            names = ", ".join(f"{r.path} ({len(r)})" for r in readers)
            raise ValueError(f"views must have the same number of frames to be windowed in step: {names}")
        num_frames = counts.pop()

        def source(windows: list[Window]) -> Iterator[_WindowInput]:
            size_per_window = windows[0].num_frames
            overlap = windows[0].stop - windows[1].start if len(windows) > 1 else 0
            chunks = [
                r.iter_chunks(chunk_num_frames=size_per_window, overlap_num_frames=overlap, size=size) for r in readers
            ]
            for window, per_view in zip(windows, zip(*chunks, strict=True), strict=True):
                video = torch.stack([chunk.data.permute(1, 0, 2, 3) for chunk in per_view])
                yield _WindowInput(window, video, None, None)

        return self._predict(source, num_frames, torch.from_numpy(readers[0].pts_seconds))

    def _predict(self, source: WindowSource, num_frames: int, pts_seconds: torch.Tensor) -> VideoPrediction:
        chunk_size, batch_size, retries = self.chunk_infer_size, self.video_batch_size, 0
        while True:
            windows = plan_windows(num_frames, chunk_infer_size=chunk_size, chunk_overlap=self.chunk_overlap)
            try:
                outputs = self._run(source(windows), batch_size)
            except torch.OutOfMemoryError:
                retries += 1
                _free_memory()
                chunk_size, batch_size = _back_off(chunk_size, batch_size, num_frames, self.chunk_overlap)
                continue
            logits = torch.stack([clip for clip, _ in outputs])
            scores = aggregate(logits, chunk_aggregation=self.chunk_aggregation)
            frame_logits = merge_frame_logits(windows, [frames for _, frames in outputs], num_frames)
            return VideoPrediction(
                scores,
                int(scores.argmax()),
                windows,
                logits,
                frame_logits,
                pts_seconds,
                chunk_size,
                batch_size,
                retries,
            )

    @torch.inference_mode()
    def _run(self, inputs: Iterator[_WindowInput], batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Clip logits (C,) and frame logits (t, C) of each window, `batch_size` equal windows a pass."""
        outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        pending: list[_WindowInput] = []
        for item in inputs:
            if pending and (len(pending) == batch_size or item.window.num_frames != pending[0].window.num_frames):
                outputs += self._forward(pending)
                pending = []
            pending.append(item)
        return outputs + self._forward(pending)

    def _forward(self, batch: list[_WindowInput]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        video = torch.stack([item.video for item in batch]).to(self.device, non_blocking=True)
        keypoints = _stack_optional([item.keypoints for item in batch], self.device)
        mask = _stack_optional([item.keypoint_mask for item in batch], self.device)
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            output = self.model(video, keypoints=keypoints, keypoint_mask=mask)
        logits, frames = output.logits.float().cpu(), output.frame_logits.float().cpu()
        return [(logits[i], frames[i]) for i in range(len(batch))]


def _stack_optional(items: list[torch.Tensor | None], device: torch.device) -> torch.Tensor | None:
    if items[0] is None:
        return None
    return torch.stack([item for item in items if item is not None]).to(device, non_blocking=True)


def _back_off(chunk_size: int, batch_size: int, num_frames: int, overlap: int) -> tuple[int, int]:
    """Halves the windows per pass first, then the window length; gives up below one overlap + 1 frame."""
    if batch_size > 1:
        return chunk_size, batch_size // 2
    current = num_frames if chunk_size == -1 else min(chunk_size, num_frames)
    if current // 2 <= overlap:
        raise torch.OutOfMemoryError(
            f"out of memory even with video_batch_size=1 and chunk_infer_size={current} "
            f"(chunk_overlap={overlap}): lower chunk_overlap, image size, or use a smaller model or precision"
        )
    return current // 2, batch_size


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
