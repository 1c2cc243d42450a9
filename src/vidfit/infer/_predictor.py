"""`ChunkedPredictor`: a model over a video of any length, window by window, within a memory bound."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from vidfit.infer._device import autocast, check_precision, resolve_device
from vidfit.infer._results import VideoPrediction
from vidfit.infer._views import check_views, windows_in_step
from vidfit.infer._windows import (
    Aggregation,
    Window,
    WindowInput,
    WindowOutputs,
    aggregate,
    check_aggregation,
    check_keypoints,
    check_window_settings,
    merge_frame_logits,
    pad_window,
    plan_windows,
    window_input,
)
from vidfit.io import VideoReader
from vidfit.memory import retry_on_oom
from vidfit.memory._step import Precision


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


# Yields the inputs of the given windows in order; called again from the start after an OOM backoff.
_WindowSource = Callable[[list[Window]], Iterator[WindowInput]]


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
        min_window_frames: Fewest frames the model takes (its backbone's minimum). A shorter window (a
            video's tail, or a whole short video) is padded by repeating its last frame, and only its
            own frames' outputs are kept; its clip logits then see the repeated frame more than once.
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
        min_window_frames: int = 1,
    ) -> None:
        check_aggregation(chunk_aggregation)
        check_precision(precision)
        check_window_settings(chunk_infer_size=chunk_infer_size, chunk_overlap=chunk_overlap)
        if video_batch_size < 1:
            raise ValueError(f"video_batch_size={video_batch_size!r} must be >= 1")
        if min_window_frames < 1:
            raise ValueError(f"min_window_frames={min_window_frames!r} must be >= 1")
        self.min_window_frames = min_window_frames
        self.model = model
        self.chunk_infer_size, self.chunk_overlap = chunk_infer_size, chunk_overlap
        self.chunk_aggregation: Aggregation = chunk_aggregation
        self.video_batch_size, self.precision = video_batch_size, precision
        self.device = resolve_device(model, device)

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
            video: uint8 frames (V, 3, T, H, W), on any device; windows are cut where it is.
            keypoints: Float keypoints (V, T, K, D), windowed with the frames.
            keypoint_mask: Which keypoints are present (V, T).
            pts_seconds: Time of each frame (T,), needed for segments and the output files.
        """
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"video must be uint8 (V, 3, T, H, W), got {video.dtype} {tuple(video.shape)}")
        views, num_frames = int(video.shape[0]), int(video.shape[2])
        check_keypoints(keypoints, keypoint_mask, views=views, num_frames=num_frames)
        if pts_seconds is not None and pts_seconds.shape != (num_frames,):
            raise ValueError(f"pts_seconds must be ({num_frames},), got {tuple(pts_seconds.shape)}")

        def source(windows: list[Window]) -> Iterator[WindowInput]:
            for w in windows:
                clip = video[:, :, w.start : w.stop]
                yield window_input(window=w, video=clip, keypoints=keypoints, keypoint_mask=keypoint_mask)

        return self._predict(source, num_frames, pts_seconds)

    def predict_readers(
        self,
        readers: Sequence[VideoReader],
        *,
        size: tuple[int, int] | None = None,
        view_frames: np.ndarray | None = None,
        keypoints: torch.Tensor | None = None,
        keypoint_mask: torch.Tensor | None = None,
        frame_stride: int = 1,
        frames: range | None = None,
    ) -> VideoPrediction:
        """Streams one video seen by several cameras, one reader per view, window by window.

        The first reader is the reference view: windows are planned over its frames, and the frame
        times of the result are its presentation times counted from its first frame (as manifest
        timelines and ActivityNet results count them). Every other view gives, for each reference
        frame, the frame `view_frames` matches to it, e.g. by time as `VideoDataset` does. A view
        whose matched frames run in step with the reference's streams through `iter_chunks`, each
        frame decoded once; any other view is decoded window by window at its matched frames.
        Host memory holds one window per view at a time.

        Args:
            readers: Open readers, one per view, in the order the model expects views.
            size: ``(height, width)`` to decode at; the native size when None (the views must then share it).
            view_frames: Frame index of each view under each reference frame (V, T), non-decreasing in
                each row; None reads every view frame for frame, which needs views of equal length.
            keypoints: Float keypoints (V, T, K, D) on the reference's frames, windowed with the frames.
            keypoint_mask: Which keypoints are present (V, T).
            frame_stride: The model sees every `frame_stride`-th frame from the first, as it was trained and
                evaluated (``data.frame_stride``); windows count those frames. Every frame still gets logits,
                interpolated between the sampled frames around it.
            frames: Only these reference frames, a range of step 1 (a manifest entry's clip range); None: every
                frame. `view_frames`, `keypoints` and `keypoint_mask` then hold these T frames, and the result
                counts them from the range's start (`VideoPrediction.first_frame`), their times still from the
                video's first frame.
        """
        reference = readers[0]
        matched = check_views(readers, view_frames=view_frames, size=size, frames=frames)
        span = frames if frames is not None else range(len(reference))
        check_keypoints(keypoints, keypoint_mask, views=len(readers), num_frames=len(span))
        if frame_stride < 1:
            raise ValueError(f"frame_stride={frame_stride!r} must be >= 1")
        sampled = matched[:, ::frame_stride]
        keypoints = None if keypoints is None else keypoints[:, ::frame_stride]
        keypoint_mask = None if keypoint_mask is None else keypoint_mask[:, ::frame_stride]

        def source(windows: list[Window]) -> Iterator[WindowInput]:
            videos = windows_in_step(readers, view_frames=sampled, windows=windows, size=size)
            for window, video in zip(windows, videos, strict=True):
                yield window_input(window=window, video=video, keypoints=keypoints, keypoint_mask=keypoint_mask)

        pts_seconds = torch.from_numpy(reference.pts_seconds[span.start : span.stop] - reference.metadata.begin_seconds)
        prediction = self._predict(source, sampled.shape[1], pts_seconds[::frame_stride])
        spread = spread_to_frames(prediction, frame_stride=frame_stride, pts_seconds=pts_seconds)
        return dataclasses.replace(spread, first_frame=span.start)

    def _predict(self, source: _WindowSource, num_frames: int, pts_seconds: torch.Tensor | None) -> VideoPrediction:
        def plan(size: _PassSize) -> list[Window]:
            return plan_windows(num_frames, chunk_infer_size=size.chunk_infer_size, chunk_overlap=self.chunk_overlap)

        def run(size: _PassSize) -> tuple[list[Window], list[tuple[torch.Tensor, torch.Tensor]]]:
            windows = plan(size)
            return windows, self._run(source(windows), windows, size.video_batch_size)

        # Each retry restarts the video, so a result never mixes windows of two lengths.
        outcome = retry_on_oom(
            run,
            _PassSize(self.chunk_infer_size, self.video_batch_size),
            shrink=lambda size: _back_off(size, windows=plan(size), overlap=self.chunk_overlap),
            advice=lambda size: _floor_advice(plan(size), overlap=self.chunk_overlap),
        )
        windows, outputs = outcome.result
        window_logits = torch.stack([clip for clip, _ in outputs])
        scores = aggregate(window_logits, chunk_aggregation=self.chunk_aggregation)
        return VideoPrediction(
            scores=scores,
            label=int(scores.argmax()),
            windows=windows,
            window_logits=window_logits,
            frame_logits=merge_frame_logits(windows, [frames for _, frames in outputs], num_frames=num_frames),
            pts_seconds=pts_seconds,
            chunk_aggregation=self.chunk_aggregation,
            chunk_overlap=self.chunk_overlap,
            precision=self.precision,
            used_chunk_infer_size=outcome.setting.chunk_infer_size,
            used_video_batch_size=outcome.setting.video_batch_size,
            oom_retries=outcome.oom_retries,
        )

    @torch.inference_mode()
    def _run(
        self, inputs: Iterator[WindowInput], windows: list[Window], batch_size: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        store = WindowOutputs(windows)
        pending: list[WindowInput] = []
        for item in inputs:
            # Only windows of one length share a pass: a short tail window runs alone, unpadded.
            if pending and (len(pending) == batch_size or item.window.num_frames != pending[0].window.num_frames):
                store.add(self._forward(pending))
                pending = []
            pending.append(pad_window(item, self.min_window_frames))
        store.add(self._forward(pending))
        return store.outputs()

    def _forward(self, batch: list[WindowInput]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        video = self._to_device([item.video for item in batch])
        keypoints = [item.keypoints for item in batch if item.keypoints is not None]
        masks = [item.keypoint_mask for item in batch if item.keypoint_mask is not None]
        with autocast(self.device, self.precision):
            output = self.model(
                video,
                keypoints=self._to_device(keypoints) if keypoints else None,
                keypoint_mask=self._to_device(masks) if masks else None,
            )
        logits, frames = output.logits.float().cpu(), output.frame_logits.float().cpu()
        return [(logits[i], frames[i, : item.window.num_frames]) for i, item in enumerate(batch)]

    def _to_device(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Stacks into a batch on the model's device.

        Host windows bound for CUDA are stacked into pinned memory so that the copy is async; windows
        already on a GPU (validation batches) are stacked where they are.
        """
        if tensors[0].device.type != "cpu" or self.device.type != "cuda":
            return torch.stack(tensors).to(self.device)
        batch = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype, pin_memory=True)
        torch.stack(tensors, out=batch)
        return batch.to(self.device, non_blocking=True)


def spread_to_frames(prediction: VideoPrediction, *, frame_stride: int, pts_seconds: torch.Tensor) -> VideoPrediction:
    """A prediction over every `frame_stride`-th frame, spread back over all T frames of `pts_seconds`.

    Frame ``i`` gets the logits of the sampled frames around it, weighted by distance (the model's frame
    head also stretches its features linearly over time); frames after the last sampled one get its logits.
    Windows are given in frames of the video: sampled window ``[a, b)`` covers frames ``[a*s, (b-1)*s + 1)``.
    """
    if frame_stride == 1:
        return prediction
    num_frames = len(pts_seconds)
    sampled = prediction.frame_logits
    position = torch.arange(num_frames, dtype=torch.float64) / frame_stride
    below = position.floor().long().clamp(max=len(sampled) - 1)
    above = (below + 1).clamp(max=len(sampled) - 1)
    weight = (position - below).clamp(0, 1).to(sampled.dtype)[:, None]
    frame_logits = sampled[below] * (1 - weight) + sampled[above] * weight
    windows = [
        Window(w.start * frame_stride, min((w.stop - 1) * frame_stride + 1, num_frames)) for w in prediction.windows
    ]
    return dataclasses.replace(prediction, windows=windows, frame_logits=frame_logits, pts_seconds=pts_seconds)


@dataclass(frozen=True)
class _PassSize:
    """Window length (-1: the whole video) and windows per forward pass."""

    chunk_infer_size: int
    video_batch_size: int


def _back_off(size: _PassSize, *, windows: list[Window], overlap: int) -> _PassSize | None:
    """Halves the windows per pass first, then the window length, which must stay above the overlap.

    Args:
        size: The pass size that failed.
        windows: Its plan.
        overlap: Frames shared by neighbouring windows.

    Returns:
        The smaller pass size, None when single windows cannot be halved.
    """
    batch_size = min(size.video_batch_size, len(windows))
    if batch_size > 1:
        return _PassSize(size.chunk_infer_size, batch_size // 2)
    length = windows[0].num_frames
    if length // 2 <= overlap:
        return None
    return _PassSize(length // 2, batch_size)


def _floor_advice(windows: list[Window], *, overlap: int) -> str:
    return (
        f"out of memory even with video_batch_size=1 and chunk_infer_size={windows[0].num_frames} "
        f"(chunk_overlap={overlap}): lower chunk_overlap, the frame size, or use a smaller model or precision"
    )
