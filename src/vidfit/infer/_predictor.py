"""`ChunkedPredictor`: a model over a video of any length, window by window, within a memory bound."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, get_args

import torch

from vidfit.infer._results import VideoPrediction
from vidfit.infer._windows import (
    Aggregation,
    Window,
    WindowOutputs,
    aggregate,
    check_aggregation,
    check_window_settings,
    merge_frame_logits,
    plan_windows,
)
from vidfit.io import VideoReader
from vidfit.memory import Precision, free_memory, is_oom

PRECISIONS: tuple[str, ...] = get_args(Precision)
_AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


class ModelOutput(Protocol):
    """What the model returns, e.g. `vidfit.models.ClassifierOutput`."""

    @property
    def logits(self) -> torch.Tensor: ...

    @property
    def frame_logits(self) -> torch.Tensor: ...


class VideoModel(Protocol):
    """The model contract: uint8 video (B, V, 3, T, H, W), keypoints (B, V, T, K, D), mask (B, V, T)."""

    def __call__(
        self, video: torch.Tensor, *, keypoints: torch.Tensor | None = None, keypoint_mask: torch.Tensor | None = None
    ) -> ModelOutput: ...


@dataclass
class _WindowInput:
    """One window of one video: uint8 video (V, 3, t, H, W) and optional keypoints (V, t, K, D), mask (V, t)."""

    window: Window
    video: torch.Tensor
    keypoints: torch.Tensor | None
    keypoint_mask: torch.Tensor | None


# Yields the inputs of the given windows in order; called again from the start after an OOM backoff.
_WindowSource = Callable[[list[Window]], Iterator[_WindowInput]]


class ChunkedPredictor:
    """Runs a video model over windows of a long video and merges what it says.

    The model is called as it is, so put it in eval mode first. On an out-of-memory error the
    predictor frees memory, halves `video_batch_size`, or once that is 1 halves the window length,
    and restarts the video, so a result never mixes windows of two lengths.

    Args:
        model: Takes uint8 video (B, V, 3, T, H, W) and returns clip logits (B, C) and frame logits (B, T, C).
        chunk_infer_size: Frames per window; -1 runs the whole video in one pass.
        chunk_overlap: Frames shared by neighbouring windows.
        chunk_aggregation: ``"mean"`` of logits, ``"max"``, ``"last"`` window, or ``"prob"`` (mean softmax).
        video_batch_size: Windows of equal length per forward pass.
        precision: ``"32"``, or autocast to ``"16-mixed"`` or ``"bf16-mixed"``.
        device: Where inputs go; the device of the model's first parameter when None (CPU without any).
    """

    def __init__(
        self,
        model: VideoModel,
        *,
        chunk_infer_size: int = -1,
        chunk_overlap: int = 0,
        chunk_aggregation: Aggregation = "mean",
        video_batch_size: int = 1,
        precision: Precision = "32",
        device: torch.device | str | None = None,
    ) -> None:
        check_aggregation(chunk_aggregation)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not one of {', '.join(map(repr, PRECISIONS))}")
        check_window_settings(chunk_infer_size=chunk_infer_size, chunk_overlap=chunk_overlap)
        if video_batch_size < 1:
            raise ValueError(f"video_batch_size={video_batch_size!r} must be >= 1")
        self.model = model
        self.chunk_infer_size, self.chunk_overlap = chunk_infer_size, chunk_overlap
        self.chunk_aggregation: Aggregation = chunk_aggregation
        self.video_batch_size, self.precision = video_batch_size, precision
        self.device = torch.device(device) if device is not None else _model_device(model)

    def predict_tensor(
        self,
        video: torch.Tensor,
        *,
        keypoints: torch.Tensor | None = None,
        keypoint_mask: torch.Tensor | None = None,
        pts_seconds: torch.Tensor | None = None,
    ) -> VideoPrediction:
        """Predicts a decoded video.

        Args:
            video: uint8 frames (V, 3, T, H, W).
            keypoints: Float keypoints (V, T, K, D), windowed with the frames.
            keypoint_mask: Which keypoints are present (V, T).
            pts_seconds: Time of each frame (T,), needed for segments and the output files.
        """
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"video must be uint8 (V, 3, T, H, W), got {video.dtype} {tuple(video.shape)}")
        views, num_frames = int(video.shape[0]), int(video.shape[2])
        _check_keypoints(keypoints, keypoint_mask, views=views, num_frames=num_frames)
        if pts_seconds is not None and pts_seconds.shape != (num_frames,):
            raise ValueError(f"pts_seconds must be ({num_frames},), got {tuple(pts_seconds.shape)}")

        def source(windows: list[Window]) -> Iterator[_WindowInput]:
            for w in windows:
                yield _window_input(w, video[:, :, w.start : w.stop], keypoints, keypoint_mask)

        return self._predict(source, num_frames, pts_seconds)

    def predict_readers(
        self,
        readers: Sequence[VideoReader],
        *,
        size: tuple[int, int] | None = None,
        keypoints: torch.Tensor | None = None,
        keypoint_mask: torch.Tensor | None = None,
    ) -> VideoPrediction:
        """Streams one video seen by several cameras, one reader per view, in windows from `iter_chunks`.

        Host memory holds one window per view at a time. The views must have the same number of
        frames (synchronized recordings, as the data layer checks); frame times come from the first.

        Args:
            readers: Open readers, one per view, in the order the model expects views.
            size: ``(height, width)`` to decode at; the native size when None.
            keypoints: Float keypoints (V, T, K, D) of the whole video, windowed with the frames.
            keypoint_mask: Which keypoints are present (V, T).
        """
        counts = {len(reader) for reader in readers}
        if len(counts) != 1:
            names = ", ".join(f"{r.path} ({len(r)})" for r in readers)
            raise ValueError(f"views must have the same number of frames to be windowed in step: {names}")
        num_frames = counts.pop()
        _check_keypoints(keypoints, keypoint_mask, views=len(readers), num_frames=num_frames)

        def source(windows: list[Window]) -> Iterator[_WindowInput]:
            overlap = windows[0].stop - windows[1].start if len(windows) > 1 else 0
            chunks = [
                r.iter_chunks(chunk_num_frames=windows[0].num_frames, overlap_num_frames=overlap, size=size)
                for r in readers
            ]
            for window, per_view in zip(windows, zip(*chunks, strict=True), strict=True):
                if any((c.start_frame, c.stop_frame) != (window.start, window.stop) for c in per_view):
                    got = ", ".join(f"[{c.start_frame}, {c.stop_frame})" for c in per_view)
                    raise RuntimeError(f"iter_chunks gave {got} where plan_windows planned {window}")
                video = torch.stack([chunk.data.transpose(0, 1) for chunk in per_view])
                yield _window_input(window, video, keypoints, keypoint_mask)

        return self._predict(source, num_frames, torch.from_numpy(readers[0].pts_seconds))

    def _predict(self, source: _WindowSource, num_frames: int, pts_seconds: torch.Tensor | None) -> VideoPrediction:
        chunk_size, batch_size, retries = self.chunk_infer_size, self.video_batch_size, 0
        while True:
            windows = plan_windows(num_frames, chunk_infer_size=chunk_size, chunk_overlap=self.chunk_overlap)
            outputs = self._run_unless_oom(source(windows), windows, batch_size)
            if outputs is not None:
                break
            # Out of the except block, the failed pass's tensors are unreachable and can be freed.
            free_memory()
            retries += 1
            chunk_size, batch_size = _back_off(chunk_size, min(batch_size, len(windows)), windows, self.chunk_overlap)
        window_logits = torch.stack([clip for clip, _ in outputs])
        scores = aggregate(window_logits, chunk_aggregation=self.chunk_aggregation)
        return VideoPrediction(
            scores=scores,
            label=int(scores.argmax()),
            windows=windows,
            window_logits=window_logits,
            frame_logits=merge_frame_logits(windows, [frames for _, frames in outputs], num_frames),
            pts_seconds=pts_seconds,
            chunk_aggregation=self.chunk_aggregation,
            used_chunk_infer_size=chunk_size,
            used_video_batch_size=batch_size,
            oom_retries=retries,
        )

    def _run_unless_oom(
        self, inputs: Iterator[_WindowInput], windows: list[Window], batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Clip logits (C,) and frame logits (t, C) of each window, or None after an out-of-memory error."""
        try:
            return self._run(inputs, windows, batch_size)
        except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
            if not is_oom(error):
                raise
        return None

    @torch.inference_mode()
    def _run(
        self, inputs: Iterator[_WindowInput], windows: list[Window], batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        store = WindowOutputs(windows)
        pending: list[_WindowInput] = []
        for item in inputs:
            # Only windows of one length share a pass: a short tail window runs alone, unpadded.
            if pending and (len(pending) == batch_size or item.window.num_frames != pending[0].window.num_frames):
                store.add(self._forward(pending))
                pending = []
            pending.append(item)
        store.add(self._forward(pending))
        return store.outputs()

    def _forward(self, batch: list[_WindowInput]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        video = self._to_device([item.video for item in batch])
        keypoints = [item.keypoints for item in batch if item.keypoints is not None]
        masks = [item.keypoint_mask for item in batch if item.keypoint_mask is not None]
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            output = self.model(
                video,
                keypoints=self._to_device(keypoints) if keypoints else None,
                keypoint_mask=self._to_device(masks) if masks else None,
            )
        logits, frames = output.logits.float().cpu(), output.frame_logits.float().cpu()
        return [(logits[i], frames[i]) for i in range(len(batch))]

    def _to_device(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Stacks into a batch and copies it to the device; through pinned memory to CUDA so the copy is async."""
        pinned = self.device.type == "cuda"
        batch = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype, pin_memory=pinned)
        torch.stack(tensors, out=batch)
        return batch.to(self.device, non_blocking=pinned)


def _window_input(
    window: Window, video: torch.Tensor, keypoints: torch.Tensor | None, keypoint_mask: torch.Tensor | None
) -> _WindowInput:
    """The window's frames with its slice of the whole video's keypoints (V, T, ...) and mask."""
    span = slice(window.start, window.stop)
    return _WindowInput(
        window,
        video,
        None if keypoints is None else keypoints[:, span],
        None if keypoint_mask is None else keypoint_mask[:, span],
    )


def _check_keypoints(
    keypoints: torch.Tensor | None, keypoint_mask: torch.Tensor | None, *, views: int, num_frames: int
) -> None:
    if keypoints is not None and (keypoints.ndim != 4 or tuple(keypoints.shape[:2]) != (views, num_frames)):
        raise ValueError(f"keypoints must be ({views}, {num_frames}, K, D), got {tuple(keypoints.shape)}")
    if keypoint_mask is not None and (keypoints is None or tuple(keypoint_mask.shape) != (views, num_frames)):
        raise ValueError(f"keypoint_mask must be ({views}, {num_frames}) and come with keypoints")


def _model_device(model: VideoModel) -> torch.device:
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def _back_off(chunk_size: int, batch_size: int, windows: list[Window], overlap: int) -> tuple[int, int]:
    """Halves the windows per pass first, then the window length, which must stay above the overlap.

    Args:
        chunk_size: The window length that failed (-1 = whole video).
        batch_size: Windows per pass that failed, at most the number of windows.
        windows: The failed plan.
        overlap: Frames shared by neighbouring windows.
    """
    if batch_size > 1:
        return chunk_size, batch_size // 2
    length = windows[0].num_frames
    if length // 2 <= overlap:
        raise torch.OutOfMemoryError(
            f"out of memory even with video_batch_size=1 and chunk_infer_size={length} "
            f"(chunk_overlap={overlap}): lower chunk_overlap, the frame size, or use a smaller model or precision"
        )
    return length // 2, batch_size
