"""Windows, aggregation and per-frame merging, against hand computations and `VideoReader.iter_chunks`."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import MakeVideo
from vidfit.infer import plan_windows
from vidfit.infer._windows import Window, aggregate, merge_frame_logits
from vidfit.io import VideoReader


def test_windows_match_the_seed_example_and_the_tail_rule() -> None:
    assert plan_windows(1000, chunk_infer_size=-1) == [Window(0, 1000)]
    assert plan_windows(200, chunk_infer_size=64, chunk_overlap=32)[:3] == [
        Window(0, 64),
        Window(32, 96),
        Window(64, 128),
    ]
    assert plan_windows(100, chunk_infer_size=40, chunk_overlap=8) == [Window(0, 40), Window(32, 72), Window(64, 100)]
    assert plan_windows(28, chunk_infer_size=16, chunk_overlap=4) == [Window(0, 16), Window(12, 28)]
    assert plan_windows(29, chunk_infer_size=16, chunk_overlap=4) == [Window(0, 16), Window(12, 28), Window(24, 29)]
    assert plan_windows(17, chunk_infer_size=16) == [Window(0, 16), Window(16, 17)]
    assert plan_windows(10, chunk_infer_size=64, chunk_overlap=20) == [Window(0, 10)]


@given(num_frames=st.integers(1, 500), size=st.integers(1, 80), overlap_fraction=st.floats(0, 0.99))
def test_windows_cover_every_frame_with_exact_overlaps(num_frames: int, size: int, overlap_fraction: float) -> None:
    overlap = min(int(size * overlap_fraction), size - 1)
    windows = plan_windows(num_frames, chunk_infer_size=size, chunk_overlap=overlap)
    assert windows[0].start == 0 and windows[-1].stop == num_frames
    assert all(1 <= w.num_frames <= size for w in windows)
    for before, after in itertools.pairwise(windows):
        assert before.num_frames == size  # only the last window may be short
        assert after.start == before.start + size - overlap
        assert after.stop > before.stop  # each window brings frames not seen before


@pytest.mark.parametrize(("size", "overlap"), [(6, 0), (6, 2), (7, 3), (20, 5), (32, 0), (1, 0)])
def test_windows_are_those_iter_chunks_streams(make_video: MakeVideo, size: int, overlap: int) -> None:
    path, _ = make_video(num_frames=20, height=16, width=16)
    with VideoReader(path) as reader:
        streamed = [
            Window(c.start_frame, c.stop_frame)
            for c in reader.iter_chunks(chunk_num_frames=size, overlap_num_frames=overlap)
        ]
    assert plan_windows(20, chunk_infer_size=size, chunk_overlap=overlap) == streamed


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (8, 8, "chunk_overlap=8 must be < chunk_infer_size=8"),
        (8, -1, "chunk_overlap=-1 must be >= 0"),
        (0, 0, r"chunk_infer_size=0 must be -1 \(whole video\) or >= 1"),
        (-2, 0, "chunk_infer_size=-2 must be"),
    ],
)
def test_bad_settings_name_the_value(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_windows(100, chunk_infer_size=size, chunk_overlap=overlap)


def test_empty_video_is_refused() -> None:
    with pytest.raises(ValueError, match="num_frames=0 must be >= 1"):
        plan_windows(0, chunk_infer_size=8)


def test_each_aggregation_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 4.0]])
    assert aggregate(logits, chunk_aggregation="mean").tolist() == pytest.approx([4 / 3, 2.0])
    assert aggregate(logits, chunk_aggregation="max").tolist() == [3.0, 4.0]
    assert aggregate(logits, chunk_aggregation="last").tolist() == [0.0, 4.0]
    e = torch.e
    first_class = (1 / (1 + e) + e**3 / (e**3 + 1) + 1 / (1 + e**4)) / 3
    assert aggregate(logits, chunk_aggregation="prob").tolist() == pytest.approx([first_class, 1 - first_class])


def test_aggregation_errors() -> None:
    with pytest.raises(ValueError, match=r"chunk_aggregation='median' is not one of 'mean', 'max', 'last', 'prob'"):
        aggregate(torch.zeros(2, 3), chunk_aggregation="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"window_logits must be \(W, C\) with W >= 1, got \(0, 3\)"):
        aggregate(torch.zeros(0, 3), chunk_aggregation="mean")


def test_overlapping_frames_get_the_mean() -> None:
    windows = [Window(0, 4), Window(2, 6), Window(5, 7)]
    logits = [torch.ones(4, 2), torch.full((4, 2), 3.0), torch.full((2, 2), 8.0)]
    merged = merge_frame_logits(windows, logits, num_frames=7)
    assert merged[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 5.5, 8.0]


def test_merging_refuses_gaps_and_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="frame 6 of 7 uncovered"):
        merge_frame_logits([Window(0, 4), Window(2, 6)], [torch.ones(4, 2), torch.ones(4, 2)], num_frames=7)
    with pytest.raises(ValueError, match=r"window \[2, 6\) of a 6-frame video got 3 rows"):
        merge_frame_logits([Window(0, 4), Window(2, 6)], [torch.ones(4, 2), torch.ones(3, 2)], num_frames=6)
