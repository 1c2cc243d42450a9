"""The LightningDataModule: clip datasets for training, whole chunks for evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sized
from typing import Any, Literal, cast

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vidfit.data import VideoDataset, load_manifest, make_loader
from vidfit.train._config import Config, ConfigError, DataConfig


class VideoDataModule(L.LightningDataModule):
    """Builds `VideoDataset`s for each split from the config's `data` section.

    Training draws `num_frames`-frame clips inside chunks of at most `max_video_frames`; evaluation
    takes whole chunks (one per batch, since chunks differ in length), which the module runs
    through chunked inference when they are longer than `train.chunk_infer_size`.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        manifest = load_manifest(config.data.manifest)
        self.label_names: list[str] = list(manifest.labels)
        first = manifest.videos[0].views if manifest.videos else {}
        self.views: list[str] = list(config.data.views or first)
        self._split_counts = Counter(video.split for video in manifest.videos)
        # Training clips per batch; `AutoFit` sets it when the config says `data.batch_size: auto`.
        self.batch_size: int | None = None if config.data.batch_size == "auto" else config.data.batch_size
        self._datasets: dict[str, VideoDataset] = {}

    def _dataset(self, split: str, mode: Literal["clip", "chunk"]) -> VideoDataset:
        if split not in self._datasets:
            data = self.config.data
            require_split(data, split_counts=self._split_counts, split=split)
            self._datasets[split] = VideoDataset(
                data.dataset_config(split=split, mode=mode, views=tuple(self.views), seed=self.config.experiment.seed)
            )
        return self._datasets[split]

    def _loader(self, dataset: VideoDataset, *, train: bool) -> DataLoader[Any]:
        # Evaluation takes whole chunks, which differ in length: one per batch, whatever data.batch_size says.
        batch_size = self.batch_size if train else 1
        if batch_size is None:
            raise ConfigError("data.batch_size: auto is only resolved inside `vidfit.train.fit` (its AutoFit callback)")
        return sharded_loader(dataset, self.config, self.trainer, batch_size=batch_size, train=train)

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.train_split, "clip"), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.val_split, "chunk"), train=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.test_split, "chunk"), train=False)

    def teardown(self, stage: str) -> None:
        for dataset in self._datasets.values():
            dataset.close()


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
