"""From feature steps to frames: interpolation, segments in frames and seconds, painting detections."""

from __future__ import annotations

import numpy as np
import torch

from vidfit.infer import TimedSegment
from vidfit.tasks.temporal._detect import StepSegment
from vidfit.tasks.temporal._frames import (
    StepTimes,
    detections_to_segments,
    paint_segments,
    runs_to_segments,
    spread_to_frames,
)

# 3 steps of 8-frame windows every 4 frames over a 16-frame clip starting at frame 100, at 10 fps.
TIMES = StepTimes(np.array([103.5, 107.5, 111.5]), np.arange(16) / 10 + 10.0, 100, 4.0)


def test_values_are_interpolated_between_centres_and_held_past_the_ends() -> None:
    steps = torch.tensor([[0.0], [4.0], [8.0]])
    frames = spread_to_frames(steps, TIMES)[:, 0]
    assert frames[:4].tolist() == [0.0, 0.0, 0.0, 0.0]  # frames 100..103 lie before the first centre
    assert frames[4].item() == 0.5  # frame 104: half a frame after 103.5
    assert frames[8].item() == 4.5 and frames[15].item() == 8.0


def test_step_positions_map_to_frames_past_the_ends_by_the_stride() -> None:
    assert TIMES.frame_of(np.array([-0.5, 0.0, 1.5, 2.5])).tolist() == [101.5, 103.5, 109.5, 113.5]


def test_detections_become_frame_ranges_with_their_times() -> None:
    (segment,) = detections_to_segments([StepSegment(-0.5, 1.5, 2, 0.8)], TIMES)
    assert (segment.start_frame, segment.stop_frame, segment.label, segment.score) == (102, 110, 2, 0.8)
    assert (segment.start_seconds, segment.stop_seconds) == (10.2, 11.0)
    (late,) = detections_to_segments([StepSegment(2.0, 9.0, 1, 0.5)], TIMES)
    assert (late.start_frame, late.stop_frame) == (112, 116)  # clipped to the clip's last frame
    assert late.stop_seconds == 11.6


def test_runs_of_actions_are_segments_and_background_is_not() -> None:
    labels = np.array([0] * 4 + [1] * 8 + [0] * 4)
    (segment,) = runs_to_segments(labels, np.full(16, 0.5), TIMES, background=0)
    assert (segment.start_frame, segment.stop_frame, segment.label) == (104, 112, 1)
    assert segment.score == 0.5


def test_painting_takes_the_best_segment_above_the_threshold() -> None:
    segments = [TimedSegment(102, 108, 0.0, 0.0, 1, 0.6), TimedSegment(106, 110, 0.0, 0.0, 2, 0.9),
                TimedSegment(112, 114, 0.0, 0.0, 1, 0.2)]  # fmt: skip
    labels, scores = paint_segments(segments, TIMES, background=0, fallback=1, threshold=0.3)
    assert labels.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0]
    assert scores[2] == 0.6 and scores[7] == 0.9
    assert scores[12] == 0.8 and scores[0] == 1.0  # background: 1 - the best score of any segment there
