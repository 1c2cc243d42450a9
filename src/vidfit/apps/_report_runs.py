"""Timelines of the report as runs of frames: packed into lanes, and resampled to screen resolution.

A video of 100,000 frames whose prediction changes every frame has 100,000 segments; a strip on a screen has
about 2,000 pixels. A lane with more runs than its pixel budget is resampled: each bin of frames takes the class
that covers most of it (unlabelled frames count as a class of their own), so the page stays small and draws in
one pass whatever the video's length. The exact segments stay in the predictions JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bins of a lane drawn at full width: about the pixels of a wide screen.
SCREEN_BINS = 2048
# Fewest bins a resampled lane keeps, however many videos share the page's budget.
MIN_BINS = 128
# Runs kept over every lane of a page: about 12 bytes each once encoded (`encode_lane`), ~2.4 MB in all.
RUN_BUDGET = 200_000
# Lanes of one strip at most: overlapping (multi-label) segments beyond go into the last one.
MAX_LANES = 8
# Confidence is drawn as opacity in steps of 1/ALPHA_LEVELS.
ALPHA_LEVELS = 100


@dataclass(frozen=True)
class Lane:
    """Runs of frames ``[starts[i], stops[i])`` that do not overlap, in order.

    Attributes:
        starts: First frame of each run (int64).
        stops: One past each run's last frame (int64).
        labels: Class index of each run (int64).
        alphas: Confidence of each run as opacity, 0 to `ALPHA_LEVELS` (int64).
    """

    starts: np.ndarray
    stops: np.ndarray
    labels: np.ndarray
    alphas: np.ndarray

    def __post_init__(self) -> None:
        sizes = {len(self.starts), len(self.stops), len(self.labels), len(self.alphas)}
        if len(sizes) != 1:
            raise ValueError(f"starts, stops, labels and alphas must have one length, got {sorted(sizes)}")
        if np.any(self.stops <= self.starts) or np.any(self.starts[1:] < self.stops[:-1]):
            raise ValueError("runs must be non-empty, in order and must not overlap")

    def __len__(self) -> int:
        return len(self.starts)


def pack_lanes(segments: Sequence[tuple[int, int, int, float]]) -> list[Lane]:
    """`segments` (start frame, stop frame, class, score in [0, 1]) as few lanes of runs that do not overlap.

    Single-label timelines fill one lane; overlapping (multi-label) segments take the first lane they fit in,
    and those that fit in none of `MAX_LANES` are clipped into the last (its earlier runs win).
    """
    table = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    table = table[table[:, 1] > table[:, 0]]
    table = table[np.lexsort((table[:, 1], table[:, 0]))]
    starts, stops, labels = (table[:, column].astype(np.int64) for column in range(3))
    alphas = np.round(np.clip(table[:, 3], 0.0, 1.0) * ALPHA_LEVELS).astype(np.int64)
    if not len(table):
        return []
    if np.all(starts[1:] >= stops[:-1]):  # one label a frame: a single lane, without a loop over segments
        return [Lane(starts, stops, labels, alphas)]
    lanes: list[list[tuple[int, int, int, int]]] = []
    for start, stop, label, alpha in zip(
        starts.tolist(), stops.tolist(), labels.tolist(), alphas.tolist(), strict=True
    ):
        fitting = next((lane for lane in lanes if lane[-1][1] <= start), None)
        if fitting is None and len(lanes) < MAX_LANES:
            lanes.append(fitting := [])
        if fitting is None:
            fitting = lanes[-1]
            start = max(start, fitting[-1][1])
            if stop <= start:
                continue
        fitting.append((start, stop, label, alpha))
    return [_lane(runs) for runs in lanes]


def _lane(runs: list[tuple[int, int, int, int]]) -> Lane:
    table = np.asarray(runs, dtype=np.int64).reshape(-1, 4)
    return Lane(table[:, 0], table[:, 1], table[:, 2], table[:, 3])


def lane_bins(num_lanes: int) -> int:
    """Bins each lane gets when `num_lanes` lanes share `RUN_BUDGET`: `SCREEN_BINS` at most, `MIN_BINS` at least."""
    return int(min(SCREEN_BINS, max(MIN_BINS, RUN_BUDGET // max(num_lanes, 1))))


def resample(lane: Lane, *, start: int, stop: int, bins: int) -> Lane:
    """`lane` over frames ``[start, stop)`` in at most `bins` runs, unchanged when it has that few already.

    Each bin of frames takes the class covering most of its frames, unlabelled frames counting as one more
    class (a bin mostly unlabelled stays empty), at the mean confidence of that class's frames in the bin;
    neighbouring bins of one class and confidence join into one run.
    """
    if len(lane) <= bins or stop <= start:
        return lane
    edges = unique_sorted(start + (np.arange(bins + 1, dtype=np.int64) * (stop - start)) // bins)[0]
    bounds = unique_sorted(np.concatenate([lane.starts, lane.stops, edges]))[0]
    bounds = bounds[(bounds >= start) & (bounds <= stop)]
    pieces, lengths = bounds[:-1], np.diff(bounds)
    run = np.searchsorted(lane.starts, pieces, side="right") - 1
    inside = (run >= 0) & (pieces < lane.stops[np.maximum(run, 0)])
    gap = int(lane.labels.max()) + 1  # the class of unlabelled frames
    labels = np.where(inside, lane.labels[np.maximum(run, 0)], gap)
    alphas = np.where(inside, lane.alphas[np.maximum(run, 0)], 0)
    piece_bins = np.searchsorted(edges, pieces, side="right") - 1
    keys, index = unique_sorted(piece_bins * (gap + 1) + labels)
    cover = np.bincount(index, weights=lengths)
    weighted = np.bincount(index, weights=lengths * alphas)
    # Per bin, the class with the most frames: sort by bin, then by coverage, largest first.
    order = np.lexsort((-cover, keys // (gap + 1)))
    first = order[np.r_[True, np.diff((keys // (gap + 1))[order]) != 0]]
    chosen_bins, chosen_labels = keys[first] // (gap + 1), keys[first] % (gap + 1)
    chosen_alphas = np.round(weighted[first] / cover[first]).astype(np.int64)
    keep = chosen_labels != gap
    return _joined(edges[chosen_bins[keep]], edges[chosen_bins[keep] + 1], chosen_labels[keep], chosen_alphas[keep])


def unique_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values and each value's index among them (`np.unique`'s hash tables are slower here)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _joined(starts: np.ndarray, stops: np.ndarray, labels: np.ndarray, alphas: np.ndarray) -> Lane:
    """Runs that touch, of one class and confidence, joined into one."""
    if len(starts) == 0:
        return _lane([])
    same = (starts[1:] == stops[:-1]) & (labels[1:] == labels[:-1]) & (alphas[1:] == alphas[:-1])
    heads = np.r_[True, ~same]
    tails = np.r_[~same, True]
    return Lane(starts[heads], stops[tails], labels[heads], alphas[heads])


def encode_lane(lane: Lane, *, origin: int) -> list[int]:
    """The lane as one flat list for the page: per run, its gap after the previous run (from `origin` for the
    first), its length, class and opacity. Small integers keep the embedded JSON about 12 bytes a run."""
    if not len(lane):
        return []
    gaps = lane.starts - np.r_[origin, lane.stops[:-1]]
    table = np.stack([gaps, lane.stops - lane.starts, lane.labels, lane.alphas], axis=1)
    return [int(value) for value in table.ravel()]


def decode_lane(values: Sequence[int], *, origin: int) -> Lane:
    """The inverse of `encode_lane` (what the page's script does): for tests and tools."""
    table = np.asarray(values, dtype=np.int64).reshape(-1, 4)
    starts = origin + np.cumsum(table[:, 0] + np.r_[0, table[:-1, 1]])
    return Lane(starts, starts + table[:, 1], table[:, 2], table[:, 3])
