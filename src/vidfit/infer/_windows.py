"""Windows over a long video, and turning per-window outputs into per-video and per-frame results."""

from __future__ import annotations

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


def check_chunking(*, chunk_infer_size: int, chunk_overlap: int, chunk_aggregation: str) -> None:
    """Validates the chunked-inference settings, naming the value and what is allowed."""
    if chunk_aggregation not in AGGREGATIONS:
        allowed = ", ".join(map(repr, AGGREGATIONS))
        raise ValueError(f"chunk_aggregation={chunk_aggregation!r} is not one of {allowed}")
    if chunk_infer_size != -1 and chunk_infer_size < 1:
        raise ValueError(f"chunk_infer_size={chunk_infer_size!r} must be -1 (whole video) or >= 1")
    if chunk_overlap < 0 or (chunk_infer_size != -1 and chunk_overlap >= chunk_infer_size):
        raise ValueError(f"chunk_overlap={chunk_overlap!r} must be >= 0 and < chunk_infer_size={chunk_infer_size!r}")


def plan_windows(num_frames: int, *, chunk_infer_size: int, chunk_overlap: int = 0) -> list[Window]:
    """The windows `VideoReader.iter_chunks` produces for the same settings.

    Window ``k`` starts at ``k * (chunk_infer_size - chunk_overlap)``; the last one ends at the
    video's end and may be shorter, and no window is made that holds only frames already seen.
    With ``chunk_infer_size=-1`` the whole video is one window.
    """
    check_chunking(chunk_infer_size=chunk_infer_size, chunk_overlap=chunk_overlap, chunk_aggregation="mean")
    if num_frames < 1:
        raise ValueError(f"num_frames={num_frames!r} must be >= 1")
    if chunk_infer_size == -1 or num_frames <= chunk_infer_size:
        return [Window(0, num_frames)]
    stride = chunk_infer_size - chunk_overlap
    windows = []
    for start in range(0, num_frames, stride):
        windows.append(Window(start, min(start + chunk_infer_size, num_frames)))
        if start + chunk_infer_size >= num_frames:
            break
    return windows


def aggregate(window_logits: torch.Tensor, *, chunk_aggregation: Aggregation) -> torch.Tensor:
    """Video-level scores from per-window logits (W, C).

    ``mean`` and ``max`` reduce the logits, ``last`` keeps the last window's logits, ``prob``
    returns the mean of the windows' softmax probabilities. The prediction is the argmax in every case.
    """
    check_chunking(chunk_infer_size=-1, chunk_overlap=0, chunk_aggregation=chunk_aggregation)
    if chunk_aggregation == "mean":
        return window_logits.mean(dim=0)
    if chunk_aggregation == "max":
        return window_logits.max(dim=0).values
    if chunk_aggregation == "last":
        return window_logits[-1]
    return window_logits.softmax(dim=-1).mean(dim=0)


def merge_frame_logits(windows: list[Window], frame_logits: list[torch.Tensor], num_frames: int) -> torch.Tensor:
    """Per-frame logits (T, C) of the video: frames covered by several windows get their mean."""
    total = torch.zeros(num_frames, frame_logits[0].shape[-1], dtype=torch.float32)
    count = torch.zeros(num_frames, 1)
    for window, logits in zip(windows, frame_logits, strict=True):
        total[window.start : window.stop] += logits.float()
        count[window.start : window.stop] += 1
    if bool((count == 0).any()):
        missing = int((count[:, 0] == 0).nonzero()[0])
        raise ValueError(f"the windows leave frame {missing} of {num_frames} uncovered")
    return total / count
