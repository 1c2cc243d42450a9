"""DataLoader settings for `VideoDataset`: per-worker seeds and thread caps, and a uint8-preserving collate."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Sequence
from multiprocessing import util
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from vidfit.data._dataset import VideoDataset


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stacks every tensor of the samples along a new batch dimension; ``meta`` stays a list of dicts.

    Tensors keep their dtype (video stays uint8). Samples of different lengths (``"chunk"`` mode
    with a short last chunk) cannot be stacked: use ``batch_size=1`` or ``tail="merge"``/``"drop"``.
    """
    batch: dict[str, Any] = {"meta": [sample["meta"] for sample in samples]}
    for key in samples[0]:
        if key == "meta":
            continue
        shapes = {tuple(sample[key].shape) for sample in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"cannot batch {key!r} of shapes {sorted(shapes)}: samples differ in length "
                "(chunk mode with a short last chunk?); use batch_size=1 or tail='merge' or 'drop'"
            )
        batch[key] = torch.stack([sample[key] for sample in samples])
    return batch


def seed_worker(worker_id: int, *, reader_threads: int) -> None:
    """`worker_init_fn`: seeds random, numpy and torch from the worker's seed, caps threads.

    DataLoader gives worker ``i`` the seed ``base_seed + i``, with ``base_seed`` drawn from the
    loader's generator, so seeds are distinct per worker and epoch and reproducible from `seed`.
    """
    info = get_worker_info()
    if info is None:
        raise RuntimeError("seed_worker runs inside DataLoader workers only")
    random.seed(info.seed)
    np.random.seed(info.seed % 2**32)
    torch.manual_seed(info.seed)
    # Workers decode with FFmpeg threads; torch's own pool would only fight them for cores.
    torch.set_num_threads(1)
    dataset = info.dataset
    if isinstance(dataset, VideoDataset):
        dataset.reader_threads = reader_threads
        # Runs when the worker exits (multiprocessing's finalizers), closing its open files.
        util.Finalize(dataset, dataset.close, exitpriority=10)


def make_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    pin_memory: bool = True,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
    drop_last: bool = False,
    sampler: Sampler[Any] | None = None,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader[Any]:
    """A DataLoader shipping uint8 batches, reproducible from `seed`.

    Args:
        dataset: Usually a `VideoDataset`.
        batch_size: Samples per batch.
        shuffle: Shuffle each epoch (ignored when `sampler` is given).
        num_workers: Worker processes; 0 loads in the main process.
        seed: Seeds the shuffling and every worker's random state.
        pin_memory: Page-locked batches for fast, asynchronous copies to the GPU.
        persistent_workers: Keep workers (and their open readers) between epochs; default True with workers.
        prefetch_factor: Batches each worker prepares ahead; DataLoader's default (2) when None.
        drop_last: Drop the last incomplete batch.
        sampler: Custom sampler, e.g. a DistributedSampler.
        num_replicas: Ranks sharing the dataset (DDP's world size); above 1 this rank loads only its shard.
        rank: This process's rank, in ``[0, num_replicas)``.

    With ``num_replicas > 1`` the sampler is a `DistributedSampler`: every rank takes its slice of one
    permutation of the dataset drawn from `seed` and the epoch (`set_epoch`, which Lightning calls), and
    shards are padded with repeated samples to equal length. Lightning leaves such a sampler in place.
    """
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size!r} and {num_workers!r}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank!r} and num_replicas={num_replicas!r}")
    if num_replicas > 1:
        if sampler is not None:
            raise ValueError(f"give a sampler or num_replicas={num_replicas!r} (a DistributedSampler), not both")
        sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
    configured = dataset.config.num_threads if isinstance(dataset, VideoDataset) else None
    threads = configured if configured is not None else max(1, (os.cpu_count() or 1) // max(num_workers, 1))
    if isinstance(dataset, VideoDataset) and num_workers == 0:
        dataset.reader_threads = threads
    generator = torch.Generator()
    # Workers take their seeds from this generator: offset by rank, so that ranks draw different clips.
    generator.manual_seed(seed + rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_samples,
        pin_memory=pin_memory and torch.cuda.is_available(),
        drop_last=drop_last,
        worker_init_fn=functools.partial(seed_worker, reader_threads=threads) if num_workers else None,
        persistent_workers=(num_workers > 0) if persistent_workers is None else persistent_workers and num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers else None,
        generator=generator,
    )
