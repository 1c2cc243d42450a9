"""The ActionFormer-style detector: its pyramid, target assignment, losses and decoding."""

from __future__ import annotations

import math

import pytest
import torch

from vidfit.tasks.temporal._actionformer import ActionDetector, PyramidOutput, pyramid_geometry
from vidfit.tasks.temporal._detect import (
    StepSegment,
    assign_targets,
    decode,
    detection_loss,
    diou_loss,
    step_segments,
)


def _detector(levels: int = 3) -> ActionDetector:
    torch.manual_seed(0)
    return ActionDetector(in_channels=4, num_classes=3, channels=8, num_levels=levels, dropout=0.0)


def test_levels_halve_and_padding_is_masked() -> None:
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    geometry = pyramid_geometry(mask, num_levels=3)
    # 10 steps padded to 12 (a multiple of 4): levels of 12, 6 and 3 steps.
    assert geometry.strides.tolist() == [1.0] * 12 + [2.0] * 6 + [4.0] * 3
    assert geometry.positions[12:18].tolist() == [0, 2, 4, 6, 8, 10]
    assert int(geometry.mask[0].sum()) == 10 + 5 + 3
    assert int(geometry.mask[1].sum()) == 7 + 4 + 2
    output = _detector()(torch.randn(2, 4, 10), mask)
    assert output.class_logits.shape == (2, 21, 3) and output.offsets.shape == (2, 21, 2)
    assert bool((output.offsets >= 0).all())


def test_true_segments_are_runs_of_action_steps() -> None:
    labels = torch.tensor([0, 1, 1, 1, 0, -1, 2, 2])
    assert step_segments(labels, background=0) == [StepSegment(0.5, 3.5, 1), StepSegment(5.5, 7.5, 2)]


def test_targets_near_the_centre_at_the_level_of_the_segments_length() -> None:
    model = _detector(levels=3)
    labels = torch.zeros(1, 24, dtype=torch.long)
    labels[0, 4:7] = 1  # 3 steps long: regressed by level 0 (distances below 4)
    labels[0, 12:22] = 2  # [11.5, 21.5]: a step's farther end 4 to 8 away is level 1's, 8 or more level 2's
    geometry = pyramid_geometry(torch.ones(1, 24, dtype=torch.bool), num_levels=3)
    targets = assign_targets(model, geometry, labels, num_classes=3, background=0)
    positive = targets.positive[0]
    strides, positions = geometry.strides[positive], geometry.positions[positive]
    classes = targets.classes[0, positive].argmax(dim=1)
    found = sorted(zip(classes.tolist(), strides.tolist(), positions.tolist(), strict=True))
    # Class 1: level 0 within 1.5 steps of its centre 5. Class 2 (centre 16.5): level 1 within 3 steps, at 14, 16
    # and 18 (farther ends 7.5, 5.5, 6.5 away); level 2 within 6, at 12 and 20 (9.5, 8.5) but not 16 (5.5).
    assert found == [(1, 1.0, 4.0), (1, 1.0, 5.0), (1, 1.0, 6.0), (2, 2.0, 14.0), (2, 2.0, 16.0), (2, 2.0, 18.0),
                     (2, 4.0, 12.0), (2, 4.0, 20.0)]  # fmt: skip
    # Distances in strides back to the segment's ends: step 5 of [3.5, 6.5] is 1.5 from each.
    at_five = (geometry.positions == 5) & (geometry.strides == 1)
    assert targets.offsets[0, at_five].tolist() == [[1.5, 1.5]]
    assert not bool(targets.classes[0, ~positive].any())


def test_distance_iou_loss() -> None:
    perfect = diou_loss(torch.tensor([[2.0, 3.0]]), torch.tensor([[2.0, 3.0]]))
    assert float(perfect) == pytest.approx(0.0)
    # Prediction [-1, 1] against truth [-2, 2]: IoU 1/2, same centre.
    assert float(diou_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]]))) == pytest.approx(0.5)
    # [0, 2] against [-2, 0]... from the same point: touching, IoU 0, centres 2 apart in a hull of 4.
    assert float(diou_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 0.0]]))) == pytest.approx(1 + 0.25)


def test_loss_trains_the_detector_towards_its_targets() -> None:
    model = _detector()
    features = torch.randn(2, 4, 16)
    mask = torch.ones(2, 16, dtype=torch.bool)
    labels = torch.zeros(2, 16, dtype=torch.long)
    labels[0, 3:6], labels[1, 8:14] = 1, 2
    actions = torch.tensor([False, True, True])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        output = model(features, mask)
        targets = assign_targets(model, output.geometry, labels, num_classes=3, background=0)
        loss = detection_loss(output, targets, action_classes=actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    found = decode(model(features, mask), index=1, num_steps=16, action_classes=actions)
    best = found[0]
    assert best.label == 2 and abs(best.start - 7.5) < 1.5 and abs(best.end - 13.5) < 1.5


def _output(rows: list[tuple[float, float, float, int, float]], num_steps: int = 16) -> PyramidOutput:
    """A level-0-only output with, at each row's position, one class's logit and distances."""
    geometry = pyramid_geometry(torch.ones(1, num_steps, dtype=torch.bool), num_levels=1)
    logits = torch.full((1, num_steps, 3), -20.0)
    offsets = torch.zeros(1, num_steps, 2)
    for position, left, right, label, score in rows:
        logits[0, int(position), label] = math.log(score / (1 - score))
        offsets[0, int(position)] = torch.tensor([left, right])
    return PyramidOutput(logits, offsets, geometry)


def test_decoding_keeps_the_best_of_overlapping_segments_per_class() -> None:
    output = _output([(5, 2, 3, 1, 0.9), (6, 3, 2, 1, 0.6), (6, 3, 2, 2, 0.7), (12, 1, 1, 1, 0.8)])
    found = decode(output, index=0, num_steps=16, action_classes=torch.tensor([False, True, True]))
    assert [(s.start, s.end, s.label, round(s.score, 3)) for s in found] == [
        (3.0, 8.0, 1, 0.9), (11.0, 13.0, 1, 0.8), (3.0, 8.0, 2, 0.7),
    ]  # fmt: skip


def test_decoding_clips_to_the_video_and_never_returns_background() -> None:
    output = _output([(1, 5, 2, 1, 0.9), (14, 1, 6, 1, 0.8), (8, 1, 1, 0, 0.99)])
    found = decode(output, index=0, num_steps=16, action_classes=torch.tensor([False, True, True]))
    assert [(s.start, s.end) for s in found] == [(-0.5, 3.0), (13.0, 15.5)]
