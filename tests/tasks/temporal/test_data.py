"""Feature sequences: padded batches with masks, the length-bucketed sampler, long videos cut into windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler

from vidfit.config import ConfigError, config_from_dict
from vidfit.data import IGNORE_LABEL, Manifest, Segment, Timeline, VideoEntry, save_manifest
from vidfit.infer import FeatureEntry, FeatureIndex, VideoFeatures, save_feature_index, write_video_features
from vidfit.memory._oom import split_batch
from vidfit.tasks.temporal import BucketBatchSampler, FeatureSequences, TemporalDataModule, collate_sequences
from vidfit.tasks.temporal._data import step_labels

LABELS = ("background", "wave")


def _sample(length: int, channels: int = 3, *, label: int = 1) -> dict:
    return {
        "features": torch.full((channels, length), float(length)),
        "labels": torch.full((length,), label),
        "meta": {"video_id": f"v{length}"},
    }


def test_collate_pads_to_the_longest_and_masks_the_padding() -> None:
    batch = collate_sequences([_sample(3), _sample(5)])
    assert batch.features.shape == (2, 3, 5)
    assert batch.mask.tolist() == [[True, True, True, False, False], [True] * 5]
    assert batch.labels[0].tolist() == [1, 1, 1, IGNORE_LABEL, IGNORE_LABEL]
    assert float(batch.features[0, :, 3:].abs().sum()) == 0
    halves = split_batch(batch, 2)  # the OOM guard's micro-batches keep the typed batch and its meta
    assert [len(h) for h in halves] == [1, 1] and halves[1].meta == [{"video_id": "v5"}]


def test_bucketed_batches_hold_similar_lengths_and_every_sample_once() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 1000, size=64).tolist()
    order = RandomSampler(range(64), generator=torch.Generator().manual_seed(0))
    batches = list(BucketBatchSampler(order, 4, False, lengths=lengths, pool_batches=16, seed=0))
    assert sorted(i for batch in batches for i in batch) == list(range(64))
    assert len(batches) == len(BucketBatchSampler(order, 4, False, lengths=lengths, pool_batches=16))
    padded = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    shuffled = [list(range(64))[i : i + 4] for i in range(0, 64, 4)]
    unsorted = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in shuffled)
    assert padded < unsorted / 4


def test_bucketed_sampler_drops_only_short_batches_when_asked() -> None:
    batches = list(BucketBatchSampler(range(10), 4, True, lengths=list(range(10)), pool_batches=2))
    assert len(batches) == 2 and all(len(b) == 4 for b in batches)  # a pool of 8, then a short pool of 2 dropped


def test_step_labels_read_the_timeline_at_window_centres() -> None:
    timeline = Timeline("frames", (Segment(0, 10, "background"), Segment(10, 20, "wave")))
    entry = VideoEntry("v", {"front": Path("v.mp4")}, timeline=timeline)
    centres = np.array([1.5, 5.5, 9.5, 13.5, 21.5])
    labels = step_labels(entry, labels=LABELS, centre_frames=centres, centre_seconds=centres / 10)
    assert labels.tolist() == [0, 0, 1, 1, IGNORE_LABEL]  # 9.5 rounds to frame 10, 21.5 is past the timeline


def _folder(tmp_path: Path, lengths: dict[str, int]) -> tuple[FeatureIndex, list[VideoEntry]]:
    settings = {"feature_dim": 2, "stride": 4, "frame_stride": 1}
    videos, entries = {}, []
    for video_id, steps in lengths.items():
        starts = np.arange(steps) * 4
        features = VideoFeatures(
            np.arange(steps * 2, dtype=np.float16).reshape(1, steps, 2), np.stack([starts, starts + 8], 1),
            starts + 3.5, (starts + 3.5) / 10, np.arange(steps * 4 + 4) / 10,
        )  # fmt: skip
        meta = {"format": "vidfit-features-1", "video_id": video_id, "settings": settings}
        digest = write_video_features(tmp_path / f"{video_id}.npz", features, meta=meta)
        videos[video_id] = FeatureEntry(f"{video_id}.npz", steps * 4 + 4, steps, 10.0, digest)
        timeline = Timeline("frames", (Segment(0, steps * 2, "background"), Segment(steps * 2, steps * 4 + 4, "wave")))
        entries.append(VideoEntry(video_id, {"front": tmp_path / f"{video_id}.mp4"}, split="train", timeline=timeline))
    return FeatureIndex(settings, videos, {}, tmp_path), entries


def test_long_videos_are_cut_into_overlapping_windows_for_training(tmp_path: Path) -> None:
    index, entries = _folder(tmp_path, {"short": 5, "long": 23})
    train = FeatureSequences(index, entries, labels=LABELS, evaluate=False, max_steps=10, overlap_steps=2)
    assert [(s, (span.start, span.stop)) for s, span in train.samples] == [
        (0, (0, 5)), (1, (0, 10)), (1, (8, 18)), (1, (16, 23)),
    ]  # fmt: skip
    assert train.lengths == [5, 10, 10, 7]
    sample = train[2]
    assert sample["features"].shape == (2, 10)
    assert sample["features"][:, 0].tolist() == [16.0, 17.0]  # step 8 of the long video
    whole = FeatureSequences(index, entries, labels=LABELS, evaluate=True, max_steps=10, frames_per_step=4)
    assert whole.lengths == [5, 23]
    meta = whole[1]["meta"]
    assert len(meta["truth"]) == 23 * 4 + 4 and meta["frames_per_step"] == 4


def test_a_file_made_otherwise_than_its_index_says_is_refused(tmp_path: Path) -> None:
    index, entries = _folder(tmp_path, {"a": 4})
    other = FeatureIndex({**index.settings, "stride": 2}, index.videos, {}, tmp_path)
    with pytest.raises(ValueError, match="other settings"):
        FeatureSequences(other, entries, labels=LABELS, evaluate=False)[0]


def test_a_multi_label_manifest_is_refused(tmp_path: Path) -> None:
    index, entries = _folder(tmp_path, {"a": 4, "b": 4})
    save_feature_index(index, tmp_path / "features.yaml")
    manifest = save_manifest(Manifest(LABELS, tmp_path, tuple(entries), multi_label=True), tmp_path / "m.yaml")
    config = config_from_dict(
        {"experiment": {"task": "temporal"}, "data": {"manifest": str(manifest), "features": str(tmp_path)}}
    )
    with pytest.raises(ConfigError, match=r"is multi-label .* takes one class per frame.*--overlap longest"):
        TemporalDataModule(config)
