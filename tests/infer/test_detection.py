"""ActivityNet-style detection mAP, on cases small enough to work out by hand."""

from __future__ import annotations

import pytest

from vidfit.infer._detection import DETECTION_TIOU_THRESHOLDS, detection_map, segment_tiou
from vidfit.infer._results import Segment


def seg(start: float, stop: float, label: int = 0, score: float = 1.0) -> Segment:
    """A segment in seconds (its frames are not used by the mAP)."""
    return Segment(0, 0, start, stop, label, score)


def test_thresholds_are_point_three_to_point_seven() -> None:
    assert DETECTION_TIOU_THRESHOLDS == (0.3, 0.4, 0.5, 0.6, 0.7)


def test_segment_tiou() -> None:
    assert segment_tiou(seg(0, 10), seg(5, 15)) == pytest.approx(5 / 15)
    assert segment_tiou(seg(0, 10), seg(0, 5)) == 0.5
    assert segment_tiou(seg(0, 1), seg(2, 3)) == 0.0


def test_perfect_predictions_score_one() -> None:
    truth = {"a": [seg(0, 4), seg(6, 9, label=1)], "b": [seg(1, 2, label=1)]}
    result = detection_map(truth, truth)
    assert result.average_map == 1.0
    assert result.map_per_tiou == (1.0,) * 5
    assert result.ap_per_class == {0: (1.0,) * 5, 1: (1.0,) * 5}


def test_tiou_exactly_at_a_threshold_is_a_hit() -> None:
    result = detection_map({"a": [seg(0, 5)]}, {"a": [seg(0, 10)]})  # tIoU 0.5
    assert result.map_per_tiou == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert result.average_map == pytest.approx(0.6)


def test_a_duplicate_is_a_false_positive_and_rank_matters() -> None:
    # A (tIoU 1/3) outranks B (tIoU 1). At 0.3, A matches and B is a duplicate: precision 1, 1/2 at recall 1,
    # so AP 1. From 0.4, A misses and B matches: precision 0, 1/2, so AP 1/2.
    predicted = {"a": [seg(5, 15, score=0.9), seg(0, 10, score=0.8)]}
    result = detection_map(predicted, {"a": [seg(0, 10)]})
    assert result.map_per_tiou == (1.0, 0.5, 0.5, 0.5, 0.5)
    assert result.average_map == pytest.approx(0.6)


def test_precision_is_made_monotone_before_the_area() -> None:
    # Ranked hit, miss, hit over 2 true segments: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Monotone: 1 up to recall 1/2, then 2/3: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    predicted = {"a": [seg(0, 2, score=0.9), seg(20, 22, score=0.8), seg(10, 12, score=0.7)]}
    result = detection_map(predicted, {"a": [seg(0, 2), seg(10, 12)]}, tiou_thresholds=[0.5])
    assert result.map_per_tiou == pytest.approx((5 / 6,))


def test_recall_short_of_one_caps_the_area() -> None:
    result = detection_map({"a": [seg(0, 2)]}, {"a": [seg(0, 2), seg(5, 6)]}, tiou_thresholds=[0.5])
    assert result.average_map == 0.5


def test_a_matched_truth_passes_the_prediction_to_the_next_best_one() -> None:
    # Both predictions overlap truth X most; the second is matched to truth Y (tIoU 0.6), as the official code does.
    truths = [seg(0, 10), seg(2, 12)]
    predicted = {"a": [seg(0, 10, score=0.9), seg(0, 10, score=0.8)]}
    assert segment_tiou(predicted["a"][1], truths[1]) == pytest.approx(8 / 12)
    result = detection_map(predicted, {"a": truths}, tiou_thresholds=[0.5, 0.7])
    assert result.map_per_tiou == (1.0, 0.5)


def test_classes_are_averaged_and_wrong_videos_or_absent_classes_do_not_help() -> None:
    truth = {"a": [seg(0, 2, label=0)], "b": [seg(0, 2, label=1)]}
    predicted = {
        "a": [seg(0, 2, label=0), seg(0, 2, label=1, score=0.5)],  # class 1 in the wrong video: a false positive
        "b": [seg(0, 2, label=2)],  # class 2 has no true segment: left out of the mean
        "c": [seg(0, 2, label=0, score=0.1)],  # a video without true segments: a false positive, ranked last
    }
    result = detection_map(predicted, truth)
    assert result.ap_per_class == {0: (1.0,) * 5, 1: (0.0,) * 5}
    assert result.average_map == 0.5


def test_nothing_predicted_scores_zero_and_nothing_true_is_an_error() -> None:
    assert detection_map({}, {"a": [seg(0, 1)]}).average_map == 0.0
    with pytest.raises(ValueError, match="no true segment to score predictions against"):
        detection_map({"a": [seg(0, 1)]}, {"a": []})
    with pytest.raises(ValueError, match=r"tiou_thresholds=\[0\.0\] must be one or more values in \(0, 1\]"):
        detection_map({}, {"a": [seg(0, 1)]}, tiou_thresholds=[0.0])
