"""Temporal action detection mAP as ActivityNet reports it.

torchmetrics has no temporal detection metric (its ``MeanAveragePrecision`` is COCO's, for boxes: 101-point
interpolation, per-image matching, area ranges), so this is a faithful port of the official ActivityNet
evaluation (``Evaluation/eval_detection.py`` of github.com/activitynet/ActivityNet:
``compute_average_precision_detection``, ``interpolated_prec_rec``, ``segment_iou``), without pandas:

- per class, the predictions of every video are taken by decreasing score; at each tIoU threshold a
  prediction is a true positive when, going through the true segments of its video and class by decreasing
  tIoU, the first one not matched yet has tIoU >= the threshold (it is then matched); otherwise a false
  positive, as is any prediction in a video without true segments of its class;
- AP is the area under the precision/recall curve with precision made monotone (each point takes the
  highest precision at any higher recall), as in VOC 2010+;
- mAP at a threshold is the mean AP over the classes that have true segments (predictions of other
  classes are left out, as the official code has no index for them), and the reported figure is the mean
  mAP over the thresholds, 0.3:0.1:0.7 by default (THUMOS-style; ActivityNet's own challenge uses 0.5:0.05:0.95).

Segments are compared in seconds, ``[start_seconds, stop_seconds)``. Equal scores keep the order given
(a stable sort; the official code's argsort leaves their order unspecified).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from vidfit.infer._results import Segment

# tIoU thresholds 0.3:0.1:0.7, those temporal action detection on long recordings is usually reported at.
DETECTION_TIOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class DetectionMAP:
    """Mean average precision of predicted segments against true ones.

    Attributes:
        average_map: Mean of `map_per_tiou`: the figure to report.
        map_per_tiou: mAP at each threshold of `tiou_thresholds`.
        ap_per_class: AP at each threshold, by class index (the classes with true segments).
        tiou_thresholds: The temporal IoU thresholds.
    """

    average_map: float
    map_per_tiou: tuple[float, ...]
    ap_per_class: dict[int, tuple[float, ...]]
    tiou_thresholds: tuple[float, ...]

    def figures(self) -> dict[str, float]:
        """The figures by the names every task logs them under: ``mAP`` and ``mAP@0.3`` ... ``mAP@0.7``."""
        at = {f"mAP@{t:.1f}": m for t, m in zip(self.tiou_thresholds, self.map_per_tiou, strict=True)}
        return {"mAP": self.average_map, **at}


def detection_map(
    predicted: Mapping[str, Sequence[Segment]],
    target: Mapping[str, Sequence[Segment]],
    *,
    tiou_thresholds: Sequence[float] = DETECTION_TIOU_THRESHOLDS,
) -> DetectionMAP:
    """ActivityNet-style detection mAP (see the module's docstring for the exact rules).

    Args:
        predicted: Predicted segments with their scores, by video id.
        target: True segments, by video id (their scores are not used).
        tiou_thresholds: Thresholds in (0, 1].

    Raises:
        ValueError: No true segment at all, or a threshold outside (0, 1].
    """
    thresholds = tuple(float(t) for t in tiou_thresholds)
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"tiou_thresholds={list(thresholds)!r} must be one or more values in (0, 1]")
    classes = sorted({s.label for segments in target.values() for s in segments})
    if not classes:
        raise ValueError("no true segment to score predictions against")
    ap_per_class = {
        label: _class_ap(
            [(video, s) for video, segments in predicted.items() for s in segments if s.label == label],
            {video: [s for s in segments if s.label == label] for video, segments in target.items()},
            thresholds,
        )
        for label in classes
    }
    map_per_tiou = tuple(sum(ap[i] for ap in ap_per_class.values()) / len(classes) for i in range(len(thresholds)))
    return DetectionMAP(
        average_map=sum(map_per_tiou) / len(map_per_tiou),
        map_per_tiou=map_per_tiou,
        ap_per_class=ap_per_class,
        tiou_thresholds=thresholds,
    )


def segment_tiou(a: Segment, b: Segment) -> float:
    """Temporal IoU of two segments in seconds (0 when they do not overlap)."""
    intersection = max(0.0, min(a.stop_seconds, b.stop_seconds) - max(a.start_seconds, b.start_seconds))
    union = (a.stop_seconds - a.start_seconds) + (b.stop_seconds - b.start_seconds) - intersection
    return intersection / union if union > 0 else 0.0


def _class_ap(
    predicted: list[tuple[str, Segment]], target: Mapping[str, list[Segment]], thresholds: tuple[float, ...]
) -> tuple[float, ...]:
    """AP of one class at each threshold (``compute_average_precision_detection``)."""
    num_true = sum(len(segments) for segments in target.values())
    ranked = sorted(predicted, key=lambda item: -item[1].score)
    hits = [[False] * len(ranked) for _ in thresholds]
    matched: list[set[tuple[str, int]]] = [set() for _ in thresholds]
    for rank, (video, segment) in enumerate(ranked):
        truths = target.get(video, [])
        tious = [segment_tiou(segment, truth) for truth in truths]
        by_tiou = sorted(range(len(truths)), key=lambda j: -tious[j])
        for t, threshold in enumerate(thresholds):
            for j in by_tiou:
                if tious[j] < threshold:
                    break
                if (video, j) not in matched[t]:
                    matched[t].add((video, j))
                    hits[t][rank] = True
                    break
    return tuple(_interpolated_ap(row, num_true) for row in hits)


def _interpolated_ap(hits: list[bool], num_true: int) -> float:
    """Area under the monotone precision/recall curve of ranked hits (``interpolated_prec_rec``)."""
    true_positives = list(accumulate(int(hit) for hit in hits))
    precision = [tp / (rank + 1) for rank, tp in enumerate(true_positives)]
    recall = [tp / num_true for tp in true_positives]
    area, best_precision, previous_recall = 0.0, 0.0, 1.0
    # From the highest recall down, each recall step is weighted by the best precision at or after it.
    for p, r in zip(reversed([0.0, *precision]), reversed([0.0, *recall]), strict=True):
        area += (previous_recall - r) * best_precision
        best_precision, previous_recall = max(best_precision, p), r
    return area
