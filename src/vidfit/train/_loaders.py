"""The loaders of every task: a split checked to have videos, and this rank's shard of a dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sized
from typing import Any, cast

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vidfit.config import Config, ConfigError, DataConfig
from vidfit.data import make_loader


def require_split(data: DataConfig, *, split_counts: Counter[str | None], split: str) -> None:
    """Refuses a split without videos, naming the config key that asked for it and the splits there are."""
    if split_counts[split]:
        return
    field = next(f"data.{k}" for k in ("train_split", "val_split", "test_split") if getattr(data, k) == split)
    found = {name: count for name, count in sorted(split_counts.items(), key=str) if name is not None}
    raise ConfigError(f"{data.manifest}: {field}={split!r} has no videos; the manifest's splits: {found}")


def sharded_loader(
    dataset: Dataset[Any], config: Config, trainer: L.Trainer | None, *, batch_size: int, train: bool
) -> DataLoader[Any]:
    """`make_loader` with the config's loader settings and, under DDP, this rank's shard of `dataset`.

    Each rank loads its shard through a DistributedSampler, which Lightning keeps and reshuffles every
    epoch; whether a last incomplete batch is dropped depends on the shard's length, not the dataset's.
    """
    data = config.data
    world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    shard_length = -(-len(cast(Sized, dataset)) // world_size)
    return make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=data.num_workers,
        seed=config.experiment.seed,
        pin_memory=data.pin_memory,
        persistent_workers=data.persistent_workers and data.num_workers > 0,
        prefetch_factor=data.prefetch_factor,
        drop_last=train and shard_length > batch_size,
        num_replicas=world_size,
        rank=rank,
    )
