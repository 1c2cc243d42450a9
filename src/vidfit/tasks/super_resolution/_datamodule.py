"""The LightningDataModule of super-resolution, and the module and data of a super-resolution run."""

from __future__ import annotations

import functools
import os
from collections import Counter
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from vidfit.tasks.super_resolution._config import SRConfig
from vidfit.tasks.super_resolution._module import (
    SuperResolutionModule,
    check_sr_checkpoint,
    load_sr_module,
    load_teacher,
)
from vidfit.tasks.super_resolution._patches import SRPatchConfig, SRPatchDataset, collate_patches
from vidfit.train._loaders import STAGE_SPLITS, check_splits, load_training_manifest, require_split, sharded_loader


class SuperResolutionDataModule(L.LightningDataModule):
    """`SRPatchDataset`s for each split from the config's `data` section.

    Training cuts random patches, new every epoch; evaluation cuts fixed ones, the same in every
    epoch and run, so that scores compare. Every split batches `data.batch_size` patches.
    """

    def __init__(self, config: SRConfig) -> None:
        super().__init__()
        self.config = config
        manifest = load_training_manifest(config.data)
        self._split_counts = Counter(video.split for video in manifest.videos)
        self._datasets: dict[str, SRPatchDataset] = {}

    def _dataset(self, split: str, *, train: bool) -> SRPatchDataset:
        if split not in self._datasets:
            data = self.config.data
            require_split(data, split_counts=self._split_counts, split=split)
            self._datasets[split] = SRPatchDataset(
                SRPatchConfig(
                    manifest=data.manifest, scale=self.config.model.scale, split=split, num_frames=data.num_frames,
                    patch_size=data.patch_size, patches_per_chunk=data.patches_per_chunk,
                    sampling="random" if train else "fixed",
                    max_video_frames=data.max_video_frames, chunk_overlap_frames=data.chunk_overlap_frames,
                    views=tuple(data.views) if data.views else None, image_size=data.image_size,  # type: ignore[arg-type]  # an int is refused by sr_problems
                    seed=self.config.experiment.seed, cache_dir=data.cache_dir,
                )
            )  # fmt: skip
        return self._datasets[split]

    def _loader(self, dataset: SRPatchDataset, *, train: bool) -> DataLoader[Any]:
        batch_size = int(self.config.data.batch_size)
        return sharded_loader(
            dataset, self.config, self.trainer, batch_size=batch_size, train=train, collate_fn=collate_patches
        )

    def check(self, stage: str) -> None:
        """Builds the datasets `stage` reads (``fit``: train and val), raising once with every problem found."""
        keys = STAGE_SPLITS[stage]
        check_splits(
            [
                functools.partial(self._dataset, getattr(self.config.data, key), train=key == "train_split")
                for key in keys
            ]
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.train_split, train=True), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.val_split, train=False), train=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.test_split, train=False), train=False)

    def teardown(self, stage: str) -> None:
        for dataset in self._datasets.values():
            dataset.close()


def data_and_module(
    config: SRConfig, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[SuperResolutionDataModule, SuperResolutionModule]:
    """The data module and module of a super-resolution run.

    Args:
        config: A config with ``experiment.task: super_resolution``.
        checkpoint: Checked against the config when given (resume, validate, test).
        load: Load the module's weights from `checkpoint` (validate, test); otherwise a new module, with
            `train.teacher` loaded and frozen when the config names one (training).
    """
    data = SuperResolutionDataModule(config)
    if checkpoint is not None:
        check_sr_checkpoint(checkpoint, config)
    if load:
        if checkpoint is None:
            raise ValueError("load=True needs a checkpoint")
        return data, load_sr_module(checkpoint)
    module = SuperResolutionModule(config=config.to_dict())
    if config.train.teacher is not None:
        module.set_teacher(load_teacher(config.train.teacher, config=config))
    return data, module
