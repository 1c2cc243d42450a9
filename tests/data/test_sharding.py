"""`make_loader` under DDP: each rank's shard of the chunk index, reshuffled per epoch; no processes needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler, RandomSampler

from vidfit.data import VideoDataset, VideoDatasetConfig, make_loader


@pytest.fixture(scope="module")
def chunked(tiny_manifest: Path) -> VideoDataset:
    """The 4 validation videos of 16 frames in chunks of at most 6 frames: 12 chunks."""
    return VideoDataset(VideoDatasetConfig(tiny_manifest, split="val", mode="chunk", max_video_frames=6))


def _shards(
    dataset: VideoDataset, *, num_replicas: int, shuffle: bool, seed: int = 0, epoch: int = 0
) -> list[list[int]]:
    shards = []
    for rank in range(num_replicas):
        loader = make_loader(
            dataset, batch_size=1, shuffle=shuffle, num_workers=0, seed=seed, num_replicas=num_replicas, rank=rank
        )
        assert isinstance(loader.sampler, DistributedSampler)
        loader.sampler.set_epoch(epoch)
        shards.append(list(loader.sampler))
    return shards


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_take_disjoint_shards_covering_the_chunk_index(chunked: VideoDataset, shuffle: bool) -> None:
    assert len(chunked) == 12
    shards = _shards(chunked, num_replicas=5, shuffle=shuffle)
    # 12 chunks over 5 ranks: 3 each, the 3 places left over filled with chunks from the start of the order.
    assert [len(shard) for shard in shards] == [3] * 5
    flat = [position for shard in shards for position in shard]
    assert sorted(set(flat)) == list(range(12))
    padding = len(flat) - len(set(flat))
    assert padding == 3
    keys = {(chunked.index[p].video_id, chunked.index[p].chunk_index) for p in flat}
    assert len(keys) == 12 and {chunk_index for _, chunk_index in keys} == {0, 1, 2}
    even = _shards(chunked, num_replicas=3, shuffle=shuffle)
    assert sorted(p for shard in even for p in shard) == list(range(12))


def test_each_epoch_reshuffles_one_permutation_drawn_from_the_seed(chunked: VideoDataset) -> None:
    first = _shards(chunked, num_replicas=2, shuffle=True, seed=3, epoch=0)
    assert first == _shards(chunked, num_replicas=2, shuffle=True, seed=3, epoch=0)
    second = _shards(chunked, num_replicas=2, shuffle=True, seed=3, epoch=1)
    assert second != first
    assert sorted(second[0] + second[1]) == list(range(12))
    assert _shards(chunked, num_replicas=2, shuffle=True, seed=4, epoch=0) != first
    assert _shards(chunked, num_replicas=2, shuffle=False) == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]


def test_ranks_seed_their_workers_differently_and_one_process_is_unchanged(chunked: VideoDataset) -> None:
    seeds = []
    for rank in range(2):
        loader = make_loader(chunked, batch_size=2, shuffle=True, num_workers=0, seed=7, num_replicas=2, rank=rank)
        assert loader.generator is not None
        seeds.append(loader.generator.initial_seed())
    assert seeds == [7, 8]
    single = make_loader(chunked, batch_size=2, shuffle=True, num_workers=0, seed=7)
    assert isinstance(single.sampler, RandomSampler) and single.generator is not None
    assert single.generator.initial_seed() == 7


def test_bad_sharding_arguments_are_refused(chunked: VideoDataset) -> None:
    common = {"batch_size": 1, "shuffle": False, "num_workers": 0, "seed": 0}
    with pytest.raises(ValueError, match=r"need 0 <= rank < num_replicas, got rank=2 and num_replicas=2"):
        make_loader(chunked, **common, num_replicas=2, rank=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"need 0 <= rank < num_replicas, got rank=0 and num_replicas=0"):
        make_loader(chunked, **common, num_replicas=0)  # type: ignore[arg-type]
    sampler = RandomSampler(chunked, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"give a sampler or num_replicas=2"):
        make_loader(chunked, **common, sampler=sampler, num_replicas=2)  # type: ignore[arg-type]
