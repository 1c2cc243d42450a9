"""DataLoader settings for `VideoDataset`: per-worker seeds and thread caps, and a collate into `VideoBatch`."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Sequence
from multiprocessing import util
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from vidfit.data._batch import VideoBatch
from vidfit.data._dataset import VideoDataset
from vidfit.data._sampling import WorkerLocal

# The tensors of a `VideoDataset` sample, as `VideoBatch` names them.
_SAMPLE_TENSORS = ("video", "label", "frame_labels", "keypoints", "keypoint_mask")


def collate_samples(samples: Sequence[dict[str, Any]]) -> VideoBatch:
    """Stacks `VideoDataset` samples into a `VideoBatch`; ``meta`` stays a list of dicts.

    Tensors keep their dtype (video stays uint8). Samples of different lengths (``"chunk"`` mode
    with a short last chunk) cannot be stacked: use ``batch_size=1`` or ``tail="merge"``/``"drop"``.
    """
    fields: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        if key == "meta":
            continue
        if key not in _SAMPLE_TENSORS:
            raise ValueError(f"a sample's {key!r} is not one of {', '.join(map(repr, _SAMPLE_TENSORS))} or 'meta'")
        shapes = {tuple(sample[key].shape) for sample in samples}
        if len(shapes) > 1:
            raise ValueError(
                f"cannot batch {key!r} of shapes {sorted(shapes)}: samples differ in length "
                "(chunk mode with a short last chunk?); use batch_size=1 or tail='merge' or 'drop'"
            )
        fields[key] = _stack([sample[key] for sample in samples])
    return VideoBatch(**fields, meta=[sample["meta"] for sample in samples])


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """`torch.stack` that keeps a channels-last layout: videos stay (V, 3, T, H, W) views of packed frames.

    Videos that `VideoDataset.__getitems__` decoded into one buffer already are the batch: its view is
    returned and nothing is copied.
    """
    first = tensors[0]
    if first.ndim != 5 or first.is_contiguous() or not first.permute(0, 2, 3, 4, 1).is_contiguous():
        return torch.stack(tensors)
    if _adjacent_in_storage(tensors):
        return first.as_strided((len(tensors), *first.shape), (first.numel(), *first.stride()))
    return torch.stack([tensor.permute(0, 2, 3, 4, 1) for tensor in tensors]).permute(0, 1, 5, 2, 3, 4)


def _adjacent_in_storage(tensors: list[torch.Tensor]) -> bool:
    """Whether dense tensors of one shape and layout lie one after another in one storage."""
    first = tensors[0]
    storage = first.untyped_storage().data_ptr()
    return all(
        tensor.untyped_storage().data_ptr() == storage
        and tensor.shape == first.shape
        and tensor.stride() == first.stride()
        and tensor.storage_offset() == first.storage_offset() + position * first.numel()
        for position, tensor in enumerate(tensors)
    )


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
    collate_fn: Callable[[list[Any]], Any] = collate_samples,
) -> DataLoader[Any]:
    """A DataLoader of uint8 batches, reproducible from `seed` with or without workers.

    Args:
        dataset, batch_size, shuffle, num_workers, drop_last, prefetch_factor, sampler: As in DataLoader.
        seed: Seeds the shuffling and the clip sampling of each worker (or of the main process without
            workers), offset by `rank` so that ranks draw different clips.
        pin_memory: Page-locked batches for fast copies to the GPU, when CUDA is available.
        persistent_workers: Keep workers and their open readers between epochs; default True with workers.
        num_replicas, rank: DDP's world size and rank; above 1, this rank loads its `DistributedSampler` shard.
        collate_fn: Makes a batch of samples; `collate_samples` (a `VideoBatch`) suits `VideoDataset`.
    """
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"need batch_size >= 1 and num_workers >= 0, got {batch_size!r} and {num_workers!r}")
    sampler = _sampler(dataset, sampler=sampler, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        collate_fn=collate_fn,
        pin_memory=pin_memory and torch.cuda.is_available(),
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed + rank),
        **_workers(dataset, num_workers, seed=seed + rank, persistent=persistent_workers, prefetch=prefetch_factor),
    )


def _sampler(
    dataset: Dataset[Any], *, sampler: Sampler[Any] | None, shuffle: bool, seed: int, num_replicas: int, rank: int
) -> Sampler[Any] | None:
    """`sampler`, or this rank's `DistributedSampler` when the dataset is shared by several replicas."""
    if not 0 <= rank < num_replicas:
        raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank!r} and num_replicas={num_replicas!r}")
    if num_replicas == 1:
        return sampler
    if sampler is not None:
        raise ValueError(f"give a sampler or num_replicas={num_replicas!r} (a DistributedSampler), not both")
    return DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)


def _workers(
    dataset: Dataset[Any], num_workers: int, *, seed: int, persistent: bool | None, prefetch: int | None
) -> dict[str, Any]:
    """DataLoader's worker arguments; without workers, sets up the main process's readers and sampling instead.

    FFmpeg threads per reader: the config's `num_threads`, else the cores shared among the workers.
    """
    configured = dataset.config.num_threads if isinstance(dataset, VideoDataset) else None
    threads = configured if configured is not None else max(1, (os.cpu_count() or 1) // max(num_workers, 1))
    if num_workers == 0:
        if isinstance(dataset, VideoDataset):
            dataset.reader_threads = threads
        if isinstance(dataset, WorkerLocal):
            dataset.seed_main_process(seed)
        return {"num_workers": 0, "worker_init_fn": None, "persistent_workers": False, "prefetch_factor": None}
    return {
        "num_workers": num_workers,
        "worker_init_fn": functools.partial(seed_worker, reader_threads=threads),
        "persistent_workers": True if persistent is None else persistent,
        "prefetch_factor": prefetch,
    }
