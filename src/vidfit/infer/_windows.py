"""Windows over a long video, and turning per-window outputs into per-video and per-frame results."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, get_args

import torch

Aggregation = Literal["mean", "max", "last", "prob"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` of a video, run through the model in one pass."""

    start: int
    stop: int

    @property
    def num_frames(self) -> int:
        return self.stop - self.start


def check_aggregation(chunk_aggregation: str) -> None:
    """Raises ValueError naming the value when it is not one of `AGGREGATIONS`."""
    if chunk_aggregation not in AGGREGATIONS:
        allowed = ", ".join(map(repr, AGGREGATIONS))
        raise ValueError(f"chunk_aggregation={chunk_aggregation!r} is not one of {allowed}")


def check_window_settings(*, chunk_infer_size: int, chunk_overlap: int) -> None:
    """Raises ValueError naming the value unless ``chunk_infer_size`` is -1 or >= 1 and the overlap fits in it."""
    if chunk_infer_size != -1 and chunk_infer_size < 1:
        raise ValueError(f"chunk_infer_size={chunk_infer_size!r} must be -1 (whole video) or >= 1")
    if chunk_overlap < 0:
        raise ValueError(f"chunk_overlap={chunk_overlap!r} must be >= 0")
    if chunk_infer_size != -1 and chunk_overlap >= chunk_infer_size:
        raise ValueError(f"chunk_overlap={chunk_overlap!r} must be < chunk_infer_size={chunk_infer_size!r}")


def plan_windows(num_frames: int, *, chunk_infer_size: int, chunk_overlap: int = 0) -> list[Window]:
    """The windows `VideoReader.iter_chunks` produces for the same settings.

    Window ``k`` starts at ``k * (chunk_infer_size - chunk_overlap)``. The last window ends at the
    video's end and may be shorter than the others; no window is made once one has reached the end,
    so every window holds at least one frame not seen before. A video no longer than one window,
    and any video with ``chunk_infer_size=-1``, is a single window.

    Args:
        num_frames: Frames in the video, >= 1.
        chunk_infer_size: Frames per window, or -1 for the whole video.
        chunk_overlap: Frames each window shares with the one before it.

    Returns:
        Windows in order, covering ``[0, num_frames)``.
    """
    check_window_settings(chunk_infer_size=chunk_infer_size, chunk_overlap=chunk_overlap)
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames!r} must be >= 1")
    if chunk_infer_size == -1 or num_frames <= chunk_infer_size:
        return [Window(0, num_frames)]
    stride = chunk_infer_size - chunk_overlap
    last_start = stride * -(-(num_frames - chunk_infer_size) // stride)  # first start whose window reaches the end
    return [Window(start, min(start + chunk_infer_size, num_frames)) for start in range(0, last_start + 1, stride)]


def aggregate(window_logits: torch.Tensor, *, chunk_aggregation: Aggregation) -> torch.Tensor:
    """Video-level scores (C,) from the clip logits of each window (W, C).

    ``mean`` and ``max`` reduce the logits over windows and ``last`` keeps the last window's, so
    the scores are logits; ``prob`` returns the mean of the windows' softmax probabilities, so the
    scores sum to 1. The video's prediction is the argmax of the scores in every case.
    """
    check_aggregation(chunk_aggregation)
    if window_logits.ndim != 2 or len(window_logits) == 0:
        raise ValueError(f"window_logits must be (W, C) with W >= 1, got {tuple(window_logits.shape)}")
    if chunk_aggregation == "mean":
        return window_logits.mean(dim=0)
    if chunk_aggregation == "max":
        return window_logits.max(dim=0).values
    if chunk_aggregation == "last":
        return window_logits[-1]
    return window_logits.softmax(dim=-1).mean(dim=0)


def merge_frame_logits(windows: list[Window], frame_logits: list[torch.Tensor], *, num_frames: int) -> torch.Tensor:
    """Per-frame logits (T, C) of the video from each window's (t, C); frames in several windows get the mean.

    Raises:
        ValueError: A window's logits do not have one row per frame, or a frame is in no window.
    """
    total = torch.zeros(num_frames, frame_logits[0].shape[-1], dtype=torch.float32)
    count = torch.zeros(num_frames, 1)
    for window, logits in zip(windows, frame_logits, strict=True):
        if len(logits) != window.num_frames or window.stop > num_frames:
            raise ValueError(
                f"window [{window.start}, {window.stop}) of a {num_frames}-frame video "
                f"got {len(logits)} rows of frame logits, one per frame expected"
            )
        total[window.start : window.stop] += logits.float()
        count[window.start : window.stop] += 1
    if bool((count == 0).any()):
        missing = int((count[:, 0] == 0).nonzero()[0])
        raise ValueError(f"the windows leave frame {missing} of {num_frames} uncovered")
    return total / count


class WindowOutputs:
    """Every window's logits, copied into two tensors allocated once.

    Keeping each window's small output tensors instead would scatter long-lived allocations between
    the large blocks that each forward pass frees, and glibc's heap could then never shrink: on a
    10,000-frame video on the CPU, host memory grew by about 11 KiB per frame that way.
    """

    def __init__(self, windows: list[Window]) -> None:
        self._windows = windows
        self._clips: torch.Tensor | None = None
        self._frames: torch.Tensor | None = None
        self._count = self._offset = 0

    def add(self, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for clip, frames in outputs:
            if self._clips is None or self._frames is None:
                total = sum(w.num_frames for w in self._windows)
                self._clips = clip.new_empty((len(self._windows), *clip.shape))
                self._frames = frames.new_empty((total, *frames.shape[1:]))
            self._clips[self._count] = clip
            self._frames[self._offset : self._offset + len(frames)] = frames
            self._count, self._offset = self._count + 1, self._offset + len(frames)

    def outputs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views of the stored logits, one (clip, frames) pair per window in order."""
        if self._clips is None or self._frames is None:
            return []
        starts = itertools.accumulate((w.num_frames for w in self._windows), initial=0)
        return [
            (self._clips[i], self._frames[start : start + w.num_frames])
            for i, (w, start) in enumerate(zip(self._windows, starts, strict=False))
        ]


@dataclass
class WindowInput:
    """One window of one video: uint8 video (V, 3, t, H, W) and optional keypoints (V, t, K, D), mask (V, t)."""

    window: Window
    video: torch.Tensor
    keypoints: torch.Tensor | None
    keypoint_mask: torch.Tensor | None


def window_input(
    *, window: Window, video: torch.Tensor, keypoints: torch.Tensor | None, keypoint_mask: torch.Tensor | None
) -> WindowInput:
    """The window's frames with its slice of the whole video's keypoints (V, T, ...) and mask."""
    span = slice(window.start, window.stop)
    return WindowInput(
        window,
        video,
        None if keypoints is None else keypoints[:, span],
        None if keypoint_mask is None else keypoint_mask[:, span],
    )


def pad_window(item: WindowInput, num_frames: int) -> WindowInput:
    """The window repeated on its last frame up to `num_frames` frames (time is dim 2 of video, 1 of keypoints)."""
    missing = num_frames - item.window.num_frames
    if missing <= 0:
        return item

    def extend(tensor: torch.Tensor | None, dim: int) -> torch.Tensor | None:
        if tensor is None:
            return None
        last = tensor.narrow(dim, tensor.shape[dim] - 1, 1)
        return torch.cat([tensor, last.expand(*[missing if d == dim else -1 for d in range(tensor.ndim)])], dim)

    video = extend(item.video, 2)
    assert video is not None
    return WindowInput(item.window, video, extend(item.keypoints, 1), extend(item.keypoint_mask, 1))


def check_keypoints(
    keypoints: torch.Tensor | None, keypoint_mask: torch.Tensor | None, *, views: int, num_frames: int
) -> None:
    if keypoints is not None and (keypoints.ndim != 4 or tuple(keypoints.shape[:2]) != (views, num_frames)):
        raise ValueError(f"keypoints must be ({views}, {num_frames}, K, D), got {tuple(keypoints.shape)}")
    if keypoint_mask is not None and (keypoints is None or tuple(keypoint_mask.shape) != (views, num_frames)):
        raise ValueError(f"keypoint_mask must be ({views}, {num_frames}) and come with keypoints")
