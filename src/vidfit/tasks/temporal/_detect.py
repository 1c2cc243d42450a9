"""The detector's training targets and losses, and its decoding into scored segments (see `_actionformer`).

Segments here are in level-0 steps (feature windows), continuous: a run of steps ``[i, j)`` of one label is
the segment ``[i - 0.5, j - 0.5]``, which each step's window centre stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, sigmoid_focal_loss

from vidfit.data import IGNORE_LABEL
from vidfit.tasks.temporal._actionformer import (
    _CENTRE_RADIUS,
    _FOCAL_ALPHA,
    _FOCAL_GAMMA,
    _MAX_SEGMENTS,
    _MIN_SCORE,
    _NMS_IOU,
    _TOP_PER_LEVEL,
    ActionDetector,
    PyramidGeometry,
    PyramidOutput,
)


@dataclass(frozen=True)
class StepSegment:
    """A segment in level-0 steps ``[start, end]`` with its class and score (1.0 for true ones)."""

    start: float
    end: float
    label: int
    score: float = 1.0


def step_segments(labels: torch.Tensor, *, background: int | None) -> list[StepSegment]:
    """The true segments of a step label track (L,): runs of one action label, as ``[i - 0.5, j - 0.5]``."""
    values = labels.tolist()
    segments, start = [], 0
    for index in range(1, len(values) + 1):
        if index < len(values) and values[index] == values[start]:
            continue
        if values[start] not in (IGNORE_LABEL, background):
            segments.append(StepSegment(start - 0.5, index - 0.5, int(values[start])))
        start = index
    return segments


@dataclass(frozen=True)
class DetectionTargets:
    """Each step's targets: one-hot classes (B, P, C), distances in strides (B, P, 2), positives (B, P)."""

    classes: torch.Tensor
    offsets: torch.Tensor
    positive: torch.Tensor


def assign_targets(
    model: ActionDetector, geometry: PyramidGeometry, labels: torch.Tensor, *, num_classes: int,
    background: int | None,
) -> DetectionTargets:  # fmt: skip
    """ActionFormer's label assignment (centre sampling, regression ranges, shortest segment) for each video."""
    low, high = model.regression_ranges(geometry.strides)
    size, num_steps = geometry.mask.shape
    classes = torch.zeros((size, num_steps, num_classes), device=geometry.mask.device)
    offsets = torch.zeros((size, num_steps, 2), device=geometry.mask.device)
    positive = torch.zeros_like(geometry.mask)
    t, stride = geometry.positions[:, None], geometry.strides[:, None]
    for b, track in enumerate(labels):
        truths = step_segments(track.cpu(), background=background)
        if not truths:
            continue
        segments = torch.tensor([[s.start, s.end] for s in truths], device=offsets.device)
        left, right = t - segments[None, :, 0], segments[None, :, 1] - t
        centre = segments.mean(dim=1)[None]
        inside_centre = (
            torch.minimum(
                t - torch.maximum(centre - _CENTRE_RADIUS * stride, segments[None, :, 0]),
                torch.minimum(centre + _CENTRE_RADIUS * stride, segments[None, :, 1]) - t,
            )
            > 0
        )
        reach = torch.maximum(left, right)
        in_range = (reach >= low[:, None]) & (reach <= high[:, None])
        lengths = (segments[:, 1] - segments[:, 0])[None].expand(num_steps, -1)
        lengths = torch.where(inside_centre & in_range, lengths, torch.full_like(lengths, float("inf")))
        shortest, chosen = lengths.min(dim=1)
        hit = torch.isfinite(shortest) & geometry.mask[b]
        label_ids = torch.tensor([s.label for s in truths], device=offsets.device)
        classes[b, hit, label_ids[chosen[hit]]] = 1.0
        offsets[b] = torch.stack([left, right], dim=-1)[torch.arange(num_steps), chosen] / stride
        positive[b] = hit
    return DetectionTargets(classes, offsets, positive)


def diou_loss(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Distance-IoU loss (per row) of (left, right) distances from one point: 1 - IoU + (centre gap / hull)^2."""
    left, right = predicted.unbind(-1)
    true_left, true_right = target.unbind(-1)
    intersection = torch.minimum(left, true_left) + torch.minimum(right, true_right)
    union = left + right + true_left + true_right - intersection
    hull = torch.maximum(left, true_left) + torch.maximum(right, true_right)
    centre_gap = 0.5 * (right - left - true_right + true_left)
    return 1 - intersection / union.clamp(min=eps) + (centre_gap / hull.clamp(min=eps)) ** 2


def detection_loss(
    output: PyramidOutput,
    targets: DetectionTargets,
    *,
    action_classes: torch.Tensor,
    regression_weight: float = 1.0,
    num_positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal loss over valid steps and action classes plus the weighted DIoU loss of the positives.

    Both are sums over the batch's positives (`num_positives`, the whole batch's when given, so that
    micro-batch losses add up).

    Args:
        action_classes: bool (C,), the classes that are actions (background is never scored).
    """
    positives = num_positives if num_positives is not None else targets.positive.sum().clamp(min=1)
    valid = output.geometry.mask
    logits = output.class_logits.float()[valid][:, action_classes]
    focal = sigmoid_focal_loss(
        logits, targets.classes[valid][:, action_classes], alpha=_FOCAL_ALPHA, gamma=_FOCAL_GAMMA, reduction="sum"
    )
    regression = diou_loss(output.offsets.float()[targets.positive], targets.offsets[targets.positive]).sum()
    return (focal + regression_weight * regression) / positives


def decode(output: PyramidOutput, *, index: int, num_steps: int, action_classes: torch.Tensor) -> list[StepSegment]:
    """Video `index`'s scored segments in level-0 steps, clipped to ``[-0.5, num_steps - 0.5]``, after NMS."""
    scores = output.class_logits[index].float().sigmoid() * action_classes.to(output.class_logits.device)
    geometry = output.geometry
    valid = geometry.mask[index]
    kept: list[torch.Tensor] = []
    for stride in geometry.strides.unique():
        level = (geometry.strides == stride) & valid
        level_scores = scores[level].flatten()
        top = level_scores.topk(min(_TOP_PER_LEVEL, len(level_scores)))
        chosen = top.indices[top.values > _MIN_SCORE]
        steps, labels = chosen // scores.shape[1], chosen % scores.shape[1]
        where = geometry.positions[level][steps]
        distances = output.offsets[index][level][steps].float() * stride
        start = (where - distances[:, 0]).clamp(min=-0.5)
        end = (where + distances[:, 1]).clamp(max=num_steps - 0.5)
        rows = torch.stack([start, end, labels.float(), level_scores[chosen]], dim=1)
        kept.append(rows[end - start > 0.05])
    if not kept or not sum(len(k) for k in kept):
        return []
    rows = torch.cat(kept)
    boxes = torch.stack([rows[:, 0], torch.zeros_like(rows[:, 0]), rows[:, 1], torch.ones_like(rows[:, 0])], dim=1)
    # 1-D segments as boxes of height 1: their box IoU is the segments' temporal IoU.
    order = batched_nms(boxes, rows[:, 3], rows[:, 2].long(), _NMS_IOU)[:_MAX_SEGMENTS]
    return [StepSegment(float(r[0]), float(r[1]), int(r[2]), float(r[3])) for r in rows[order].tolist()]
