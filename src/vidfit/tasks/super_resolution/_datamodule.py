"""The LightningDataModule of super-resolution, and the module and data of a super-resolution run."""

from __future__ import annotations

import os

from vidfit.tasks.super_resolution._config import SRConfig
from vidfit.tasks.super_resolution._module import (
    SuperResolutionModule,
    check_sr_checkpoint,
    load_sr_module,
    load_teacher,
)
from vidfit.tasks.super_resolution._patches import SRPatchConfig, SRPatchDataset, collate_patches
from vidfit.train import DatasetMode, TaskDataModule


class SuperResolutionDataModule(TaskDataModule[SRPatchDataset]):
    """`SRPatchDataset`s for each split from the config's `data` section.

    Training cuts random patches, new every epoch; evaluation cuts fixed ones, the same in every
    epoch and run, so that scores compare. Every split batches `data.batch_size` patches.
    """

    config: SRConfig

    def __init__(self, config: SRConfig) -> None:
        super().__init__(config)
        self.collate_fn = collate_patches

    def build_dataset(self, split: str, mode: DatasetMode) -> SRPatchDataset:
        data = self.config.data
        return SRPatchDataset(
            SRPatchConfig(
                manifest=data.manifest, scale=self.config.model.scale, split=split, num_frames=data.num_frames,
                patch_size=data.patch_size, patches_per_chunk=data.patches_per_chunk,
                sampling="random" if mode == "train" else "fixed",
                max_video_frames=data.max_video_frames, chunk_overlap_frames=data.chunk_overlap_frames,
                views=tuple(data.views) if data.views else None, image_size=data.image_size,  # type: ignore[arg-type]  # an int is refused by sr_problems
                seed=self.config.experiment.seed, cache_dir=data.cache_dir,
            )
        )  # fmt: skip


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
