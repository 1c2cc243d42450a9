"""Whole videos of features with the label of every step: the temporal task's samples, batches and sampler.

A sample is a video's feature sequence (C, N) from its feature file, with the class of each window taken from
the manifest timeline at the window's centre. Training may cut long videos into long windows with overlap
(`vidfit.data.chunk_spans`, the chunk index's rule, in feature steps); evaluation takes whole videos and
carries each frame's true class for the frame-level figures. Batches pad the videos to the longest and mask
the padding; the bucketed sampler puts videos of similar lengths together so that little is padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from vidfit.data import IGNORE_LABEL, TensorBatch, VideoEntry, chunk_spans, frame_labels
from vidfit.infer import FeatureIndex


@dataclass(frozen=True)
class FeatureBatch(TensorBatch):
    """Feature sequences padded to one length L, with each step's class."""

    features: torch.Tensor
    """float (B, C, L)."""
    mask: torch.Tensor
    """bool (B, L): True for the steps of the videos, False for padding."""
    labels: torch.Tensor
    """int64 (B, L): each step's class, `IGNORE_LABEL` where unlabelled or padded."""
    meta: list[dict[str, Any]] = field(default_factory=list)
    """One dict per sample: ``video_id``, ``span`` and, for evaluation, what the figures need; stays on the host."""

    def __post_init__(self) -> None:
        size, length = self.mask.shape
        if self.features.ndim != 3 or self.features.shape[0] != size or self.features.shape[2] != length:
            raise ValueError(f"features must be (B={size}, C, L={length}), got {tuple(self.features.shape)}")
        if self.labels.shape != self.mask.shape:
            raise ValueError(f"labels must be (B, L)={tuple(self.mask.shape)}, got {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.mask)


def collate_sequences(samples: Sequence[dict[str, Any]]) -> FeatureBatch:
    """Pads samples ``{"features": (C, N), "labels": (N,), "meta"}`` to the longest N."""
    length = max(int(s["labels"].shape[0]) for s in samples)
    channels = int(samples[0]["features"].shape[0])
    features = torch.zeros((len(samples), channels, length), dtype=torch.float32)
    labels = torch.full((len(samples), length), IGNORE_LABEL, dtype=torch.int64)
    mask = torch.zeros((len(samples), length), dtype=torch.bool)
    for row, sample in enumerate(samples):
        count = int(sample["labels"].shape[0])
        features[row, :, :count] = sample["features"]
        labels[row, :count] = sample["labels"]
        mask[row, :count] = True
    return FeatureBatch(features, mask, labels, [s["meta"] for s in samples])


def step_labels(entry: VideoEntry, *, labels: tuple[str, ...], centre_frames: np.ndarray, centre_seconds: np.ndarray
                ) -> np.ndarray:  # fmt: skip
    """The class of each window: the timeline's at the window's centre frame (or time), `IGNORE_LABEL` outside."""
    nearest = np.floor(centre_frames + 0.5).astype(np.int64)
    return frame_labels(entry.timeline, labels=labels, frame_indices=nearest, times_seconds=centre_seconds)


class FeatureSequences(Dataset[dict[str, Any]]):
    """The videos of a split as feature sequences.

    Args:
        index: The feature folder's index.
        entries: The split's manifest videos (those without features are refused by the data module).
        labels: The manifest's labels.
        evaluate: Whole videos, each with its frames' true classes and times in ``meta``.
        max_steps: Training windows of at most this many steps (None: whole videos).
        overlap_steps: Steps shared by consecutive training windows.
        frames_per_step: Video frames between two steps (the extraction's stride), for evaluation.
    """

    def __init__(
        self,
        index: FeatureIndex,
        entries: Sequence[VideoEntry],
        *,
        labels: tuple[str, ...],
        evaluate: bool,
        max_steps: int | None = None,
        overlap_steps: int = 0,
        frames_per_step: int = 1,
    ) -> None:
        self.index, self.entries, self.labels, self.evaluate = index, list(entries), labels, evaluate
        self.frames_per_step = frames_per_step
        self.samples: list[tuple[int, range]] = []
        for position, entry in enumerate(self.entries):
            steps = index.videos[entry.id].num_windows
            spans = [range(steps)] if evaluate else chunk_spans(
                steps, max_video_frames=max_steps, chunk_overlap_frames=min(overlap_steps, max(0, (max_steps or 1) - 1))
            )  # fmt: skip
            self.samples += [(position, span) for span in spans]

    @property
    def lengths(self) -> list[int]:
        """Steps of each sample, from the index alone."""
        return [len(span) for _, span in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int) -> dict[str, Any]:
        position, span = self.samples[item]
        entry = self.entries[position]
        video = self.index.read(entry.id)
        labels = step_labels(entry, labels=self.labels, centre_frames=video.centre_frames,
                             centre_seconds=video.centre_seconds)  # fmt: skip
        meta: dict[str, Any] = {"video_id": entry.id, "position": position, "span": (span.start, span.stop)}
        if self.evaluate:
            frames = video.first_frame + np.arange(video.num_frames)
            truth = frame_labels(
                entry.timeline, labels=self.labels, frame_indices=frames, times_seconds=video.pts_seconds
            )
            meta.update(
                truth=truth if entry.timeline is not None else None, first_frame=video.first_frame,
                frames_per_step=self.frames_per_step,
                pts_seconds=video.pts_seconds, centre_frames=video.centre_frames, centre_seconds=video.centre_seconds,
            )  # fmt: skip
        return {
            "features": torch.from_numpy(video.sequence()[:, span.start : span.stop]),
            "labels": torch.from_numpy(labels[span.start : span.stop]),
            "meta": meta,
        }


class BucketBatchSampler(BatchSampler):
    """Batches of samples of similar lengths: `sampler`'s order cut into pools, each sorted by length and
    batched, the batches of a pool then shuffled.

    Lightning rebuilds it around a `DistributedSampler` under DDP (it keeps these arguments), so each rank
    buckets its own share.

    Args:
        sampler: The order of the samples (random for training).
        batch_size: Samples per batch.
        drop_last: Drop each pool's last batch when it is short.
        lengths: Steps of every sample of the dataset.
        pool_batches: Batches per pool: larger pads less, smaller mixes more.
        seed: Seeds the shuffling of each pool's batches.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        *,
        lengths: Sequence[int] = (),
        pool_batches: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.pool_batches = list(lengths), pool_batches
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(iter(self.sampler))
        pool_size = self.batch_size * self.pool_batches
        for start in range(0, len(indices), pool_size):
            pool = sorted(indices[start : start + pool_size], key=lambda i: self.lengths[i] if self.lengths else 0)
            batches = [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            for order in torch.randperm(len(batches), generator=self.generator).tolist():
                yield batches[order]

    def __len__(self) -> int:
        count = len(self.sampler)  # type: ignore[arg-type]
        pool_size = self.batch_size * self.pool_batches
        full, rest = divmod(count, pool_size)
        per_rest = rest // self.batch_size if self.drop_last else -(-rest // self.batch_size)
        return full * self.pool_batches + per_rest
