"""From feature steps to the video's frames: per-frame classes and scores, and segments in frames and seconds.

A step stands for its window's centre frame; between centres, values are interpolated linearly (as the
action task spreads sampled frames), and before the first and after the last centre they are the end steps'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vidfit.data import IGNORE_LABEL
from vidfit.infer import TimedSegment, frames_to_segments
from vidfit.tasks.temporal._detect import StepSegment


@dataclass(frozen=True)
class StepTimes:
    """Where a video's steps and frames lie.

    Attributes:
        centre_frames: (N,) each step's centre frame in the video.
        pts_seconds: (T,) each frame's time from the video's first frame.
        first_frame: The video's index of the first of those frames.
        frames_per_step: Frames between two steps (the extraction stride).
    """

    centre_frames: np.ndarray
    pts_seconds: np.ndarray
    first_frame: int
    frames_per_step: float

    @property
    def num_frames(self) -> int:
        return len(self.pts_seconds)

    def frame_of(self, steps: np.ndarray) -> np.ndarray:
        """The (fractional) video frame at fractional `steps`, extended past the ends by `frames_per_step`."""
        steps = np.asarray(steps, dtype=np.float64)
        last = len(self.centre_frames) - 1
        inside = np.interp(steps, np.arange(last + 1), self.centre_frames)
        before = self.centre_frames[0] + steps * self.frames_per_step
        after = self.centre_frames[-1] + (steps - last) * self.frames_per_step
        return np.where(steps < 0, before, np.where(steps > last, after, inside))


def spread_to_frames(step_values: torch.Tensor, times: StepTimes) -> torch.Tensor:
    """Values (N, C) of the steps at each of the T frames (T, C), interpolated between step centres."""
    frames = times.first_frame + np.arange(times.num_frames)
    position = np.interp(frames, times.centre_frames, np.arange(len(times.centre_frames)))
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, len(times.centre_frames) - 1)
    weight = torch.from_numpy(position - below).to(step_values.dtype)[:, None]
    return step_values[below] * (1 - weight) + step_values[above] * weight


def runs_to_segments(
    labels: np.ndarray, scores: np.ndarray | None, times: StepTimes, *, background: int | None
) -> list[TimedSegment]:
    """The runs of a frame label track (T,) that are actions, in frames and seconds, scored by their mean score."""
    track = torch.from_numpy(np.where(labels == (IGNORE_LABEL if background is None else background), IGNORE_LABEL,
                                      labels))  # fmt: skip
    return frames_to_segments(
        track, pts_seconds=torch.from_numpy(times.pts_seconds), first_frame=times.first_frame,
        frame_scores=None if scores is None else torch.from_numpy(scores),
    )  # fmt: skip


def detections_to_segments(found: list[StepSegment], times: StepTimes) -> list[TimedSegment]:
    """Detected segments in steps as frame ranges ``[start, stop)`` of the video and their times in seconds."""
    if not found:
        return []
    bounds = times.frame_of(np.array([[s.start, s.end] for s in found]))
    first, last = times.first_frame, times.first_frame + times.num_frames
    frames = np.clip(np.floor(bounds + 0.5).astype(np.int64), first, last)
    ends = _frame_ends(times.pts_seconds)
    segments = []
    for segment, (start, stop) in zip(found, frames, strict=True):
        stop = max(stop, min(start + 1, last))  # a segment covers one frame at least
        start = min(start, stop - 1)
        seconds = (float(times.pts_seconds[start - first]), float(ends[stop - 1 - first]))
        segments.append(TimedSegment(int(start), int(stop), *seconds, segment.label, segment.score))
    return segments


def _frame_ends(pts_seconds: np.ndarray) -> np.ndarray:
    """When each frame stops showing: the next one's time; the last lasts the median frame duration."""
    if len(pts_seconds) < 2:
        return pts_seconds.copy()
    return np.append(pts_seconds[1:], pts_seconds[-1] + np.median(np.diff(pts_seconds)))


def paint_segments(
    segments: list[TimedSegment], times: StepTimes, *, background: int | None, fallback: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frame classes (T,) and scores (T,) from detected segments: each frame takes the best-scoring segment
    covering it that scores at least `threshold`; the other frames are background (scored 1 - the best score of
    any segment there), or the `fallback` class when the labels have no background."""
    labels = np.full(times.num_frames, fallback if background is None else background, dtype=np.int64)
    covered = np.zeros(times.num_frames, dtype=np.float64)
    painted = np.zeros(times.num_frames, dtype=np.float64)
    for segment in sorted(segments, key=lambda s: s.score):
        span = slice(segment.start_frame - times.first_frame, segment.stop_frame - times.first_frame)
        covered[span] = np.maximum(covered[span], segment.score)
        if segment.score >= threshold:
            labels[span], painted[span] = segment.label, segment.score
    scores = np.where(painted > 0, painted, 1.0 - covered)
    return labels, scores
