"""Segmentation figures: by hand, and against MS-TCN's own evaluation code on random label tracks."""

from __future__ import annotations

import numpy as np
import pytest

from vidfit.data import IGNORE_LABEL
from vidfit.tasks.temporal import label_runs, score_segmentation, segmentation_metrics
from vidfit.tasks.temporal._metrics import edit_score, f1_counts, levenshtein

TRUTH = np.array([0, 0, 1, 1, 1, 1, 0, 2, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 0, 1, 0, 2, 2, 0])


def test_runs_leave_out_background_and_unlabelled_frames() -> None:
    runs = label_runs(np.array([0, 1, 1, IGNORE_LABEL, 2, 0]), background=0)
    assert [(r.label, r.start, r.stop) for r in runs] == [(1, 1, 3), (2, 4, 5)]
    assert [r.label for r in label_runs(np.array([0, 0, 1]), background=None)] == [0, 1]


def test_a_video_scored_by_hand() -> None:
    # Predicted runs: 1 [1,4) IoU 0.4 with the true 1 [2,6); 1 [5,6) IoU 0.25 with it; 2 [7,9) IoU 2/3 with [7,10).
    score = score_segmentation(PREDICTED, TRUTH, video_id="v", background=0)
    assert (score.num_labelled, score.num_correct) == (10, 7)
    # At 0.1 and 0.25 the second run finds its best match taken: a false positive. At 0.5 the first misses too.
    assert score.f1_counts == ((2, 1, 0), (2, 1, 0), (1, 2, 1))
    assert score.edit == pytest.approx(1 - 1 / 3)  # [1, 1, 2] against [1, 2]: one deletion
    metrics = segmentation_metrics([score])
    assert metrics.f1 == pytest.approx((0.8, 0.8, 0.4))
    assert metrics.frame_accuracy == pytest.approx(0.7)
    assert metrics.logged("val")["val/f1@50"] == pytest.approx(0.4)


def test_videos_add_up_their_counts_before_f1() -> None:
    perfect = score_segmentation(TRUTH, TRUTH, video_id="a", background=0)
    empty = score_segmentation(np.zeros(10, dtype=np.int64), TRUTH, video_id="b", background=0)
    metrics = segmentation_metrics([perfect, empty])
    # F1@50 from tp 2, fp 0, fn 2 in all: precision 1, recall 1/2 (not the mean of 1 and 0).
    assert metrics.f1[2] == pytest.approx(2 / 3)
    assert metrics.edit == pytest.approx((1.0 + 0.0) / 2)


def test_unlabelled_frames_do_not_count() -> None:
    truth = np.array([0, IGNORE_LABEL, IGNORE_LABEL, 1])
    score = score_segmentation(np.array([0, 1, 1, 1]), truth, video_id="v", background=0)
    assert (score.num_labelled, score.num_correct) == (2, 2)


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="must be \\(T,\\)"):
        score_segmentation(np.zeros(3), np.zeros(4), video_id="v", background=None)


# MS-TCN's eval.py (github.com/yabufarha/ms-tcn), as published, on label lists with a background class.
def _reference_runs(labels: list[int], bg: list[int]) -> tuple[list[int], list[int], list[int]]:
    names, starts, ends = [], [], []
    last = labels[0]
    if labels[0] not in bg:
        names.append(labels[0])
        starts.append(0)
    for i in range(len(labels)):
        if labels[i] != last:
            if labels[i] not in bg:
                names.append(labels[i])
                starts.append(i)
            if last not in bg:
                ends.append(i)
            last = labels[i]
    if last not in bg:
        ends.append(i + 1)
    return names, starts, ends


def _reference_f_score(recognized: list[int], truth: list[int], overlap: float, bg: list[int]) -> tuple[int, int, int]:
    p_label, p_start, p_end = _reference_runs(recognized, bg)
    y_label, y_start, y_end = _reference_runs(truth, bg)
    tp = fp = 0
    hits = np.zeros(len(y_label))
    for j in range(len(p_label)):
        intersection = np.minimum(p_end[j], y_end) - np.maximum(p_start[j], y_start)
        union = np.maximum(p_end[j], y_end) - np.minimum(p_start[j], y_start)
        iou = (1.0 * intersection / union) * np.array([p_label[j] == y_label[x] for x in range(len(y_label))])
        idx = np.array(iou).argmax()
        if iou[idx] >= overlap and not hits[idx]:
            tp += 1
            hits[idx] = 1
        else:
            fp += 1
    return tp, fp, int(len(y_label) - sum(hits))


def _reference_edit(recognized: list[int], truth: list[int], bg: list[int]) -> float:
    p, y = _reference_runs(recognized, bg)[0], _reference_runs(truth, bg)[0]
    table = np.zeros([len(p) + 1, len(y) + 1])
    table[:, 0], table[0, :] = np.arange(len(p) + 1), np.arange(len(y) + 1)
    for j in range(1, len(y) + 1):
        for i in range(1, len(p) + 1):
            cost = 0 if y[j - 1] == p[i - 1] else 1
            table[i, j] = min(table[i - 1, j] + 1, table[i, j - 1] + 1, table[i - 1, j - 1] + cost)
    return float((1 - table[-1, -1] / max(len(p), len(y))) * 100)


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_ms_tcn_evaluation_code(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Piecewise-constant tracks of 3 classes, so that runs are long enough to overlap in every way.
    truth = np.repeat(rng.integers(0, 3, size=12), rng.integers(1, 9, size=12))
    predicted = truth.copy()
    flips = rng.random(len(truth)) < 0.15
    predicted[flips] = rng.integers(0, 3, size=int(flips.sum()))
    runs, truths = label_runs(predicted, background=0), label_runs(truth, background=0)
    for overlap in (0.1, 0.25, 0.5):
        assert f1_counts(runs, truths, overlap=overlap) == _reference_f_score(
            list(predicted), list(truth), overlap, [0]
        )
    if runs or truths:
        assert edit_score(runs, truths) * 100 == pytest.approx(_reference_edit(list(predicted), list(truth), [0]))


def test_levenshtein() -> None:
    assert levenshtein([1, 2, 3], [1, 3]) == 1
    assert levenshtein([], [4, 5]) == 2
    assert levenshtein([1, 2], [2, 1]) == 2
