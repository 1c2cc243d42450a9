"""Windows, aggregation and per-frame merging, against hand computations."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vidfit.infer import Window, aggregate, merge_frame_logits, plan_windows


def test_windows_match_the_seed_example_and_the_tail_rule() -> None:
    assert plan_windows(1000, chunk_infer_size=-1) == [Window(0, 1000)]
    assert plan_windows(200, chunk_infer_size=64, chunk_overlap=32)[:3] == [
        Window(0, 64),
        Window(32, 96),
        Window(64, 128),
    ]
    assert plan_windows(100, chunk_infer_size=40, chunk_overlap=8) == [Window(0, 40), Window(32, 72), Window(64, 100)]
    assert plan_windows(100, chunk_infer_size=40, chunk_overlap=4) == [Window(0, 40), Window(36, 76), Window(72, 100)]
    assert plan_windows(28, chunk_infer_size=16, chunk_overlap=4) == [Window(0, 16), Window(12, 28)]
    assert plan_windows(10, chunk_infer_size=64) == [Window(0, 10)]


@given(
    num_frames=st.integers(1, 500),
    size=st.integers(1, 80),
    overlap_fraction=st.floats(0, 0.99),
)
def test_windows_cover_every_frame_with_exact_overlaps(num_frames: int, size: int, overlap_fraction: float) -> None:
    overlap = min(int(size * overlap_fraction), size - 1)
    windows = plan_windows(num_frames, chunk_infer_size=size, chunk_overlap=overlap)
    assert windows[0].start == 0 and windows[-1].stop == num_frames
    assert all(1 <= w.num_frames <= size for w in windows)
    for before, after in itertools.pairwise(windows):
        assert after.start == before.start + size - overlap
        assert before.num_frames == size
    assert all(w.stop > before.stop for before, w in itertools.pairwise(windows))


def test_bad_settings_name_the_value() -> None:
    with pytest.raises(ValueError, match="chunk_overlap=8 must be >= 0 and < chunk_infer_size=8"):
        plan_windows(100, chunk_infer_size=8, chunk_overlap=8)
    with pytest.raises(ValueError, match="chunk_infer_size=0"):
        plan_windows(100, chunk_infer_size=0)
    with pytest.raises(ValueError, match=r"chunk_aggregation='median' is not one of 'mean', 'max', 'last', 'prob'"):
        aggregate(torch.zeros(2, 3), chunk_aggregation="median")  # type: ignore[arg-type]


def test_each_aggregation_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 4.0]])
    assert aggregate(logits, chunk_aggregation="mean").tolist() == pytest.approx([4 / 3, 2.0])
    assert aggregate(logits, chunk_aggregation="max").tolist() == [3.0, 4.0]
    assert aggregate(logits, chunk_aggregation="last").tolist() == [0.0, 4.0]
    e = torch.e
    expected = [(1 / (1 + e) + e**3 / (e**3 + 1) + 1 / (1 + e**4)) / 3]
    assert aggregate(logits, chunk_aggregation="prob")[0].item() == pytest.approx(expected[0])
    assert aggregate(logits, chunk_aggregation="prob").sum().item() == pytest.approx(1.0)


def test_overlapping_frames_get_the_mean() -> None:
    windows = [Window(0, 4), Window(2, 6)]
    first, second = torch.ones(4, 2), torch.full((4, 2), 3.0)
    merged = merge_frame_logits(windows, [first, second], 6)
    assert merged[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="frame 6 of 7 uncovered"):
        merge_frame_logits(windows, [first, second], 7)
