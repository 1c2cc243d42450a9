"""The loaders of every task: a split checked to have videos, and this rank's shard of a dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence, Sized
from typing import Any, cast

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vidfit.config import Config, ConfigError, DataConfig
from vidfit.data import Manifest, ManifestError, Problem, collate_samples, load_manifest, make_loader

# The splits each entry point reads, by the name Lightning gives its stage.
STAGE_SPLITS = {"fit": ("train_split", "val_split"), "validate": ("val_split",), "test": ("test_split",)}


def load_training_manifest(data: DataConfig) -> Manifest:
    """``data.manifest``, refused when it lists no videos (nothing to train or evaluate on)."""
    manifest = load_manifest(data.manifest)
    if not manifest.videos:
        raise ConfigError(f"{data.manifest}: the manifest lists no videos (data.manifest)")
    return manifest


def check_splits(builders: Sequence[Callable[[], object]]) -> None:
    """Builds each split's dataset and raises once with every problem of all of them.

    Raises:
        ManifestError: Problems in the videos or the manifest, of every split.
        ConfigError: A split without videos (with the other splits' problems appended).
    """
    problems: list[Problem] = []
    messages: list[str] = []
    for build in builders:
        try:
            build()
        except ManifestError as error:
            problems += [p for p in error.problems if p not in problems]
        except ConfigError as error:
            messages.append(str(error))
    if messages:
        raise ConfigError("; ".join(messages + [str(problem) for problem in problems]))
    if problems:
        raise ManifestError(problems)


def require_split(data: DataConfig, *, split_counts: Counter[str | None], split: str) -> None:
    """Refuses a split without videos, naming the config key that asked for it and the splits there are."""
    if split_counts[split]:
        return
    field = next(f"data.{k}" for k in ("train_split", "val_split", "test_split") if getattr(data, k) == split)
    found = {name: count for name, count in sorted(split_counts.items(), key=str) if name is not None}
    raise ConfigError(f"{data.manifest}: {field}={split!r} has no videos; the manifest's splits: {found}")


def sharded_loader(
    dataset: Dataset[Any],
    config: Config,
    trainer: L.Trainer | None,
    *,
    batch_size: int,
    train: bool,
    collate_fn: Callable[[list[Any]], Any] = collate_samples,
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
        collate_fn=collate_fn,
    )
