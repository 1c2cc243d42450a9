"""The temporal task's data module: the feature folder's videos of each split, bucketed by length for training."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from vidfit.config import ConfigError
from vidfit.infer import FeatureIndex, load_feature_index
from vidfit.tasks.temporal._config import TemporalConfig
from vidfit.tasks.temporal._data import BucketBatchSampler, FeatureSequences, collate_sequences
from vidfit.train import DatasetMode, TaskDataModule


def frames_per_step(index: FeatureIndex) -> int:
    """Video frames between two windows of the feature folder: the stride, in frames the model saw."""
    return int(index.settings["stride"]) * int(index.settings.get("frame_stride", 1))


class TemporalDataModule(TaskDataModule[FeatureSequences]):
    """Feature sequences of each split from ``data.features`` and the manifest's timelines.

    Training batches whole videos (or the long windows ``data.max_video_frames`` cuts), padded and masked, in
    buckets of similar lengths; evaluation takes one whole video per batch.

    Attributes:
        index: The feature folder's index.
    """

    def __init__(self, config: TemporalConfig) -> None:
        super().__init__(config)
        if self.manifest.multi_label:
            raise ConfigError(
                f"data.manifest={config.data.manifest!r} is multi-label (segments overlap): experiment.task temporal "
                "takes one class per frame; import it with --overlap longest (or first)"
            )
        self.config: TemporalConfig = config
        self.index = load_feature_index(config.data.features)
        self.collate_fn = collate_sequences

    def build_dataset(self, split: str, mode: DatasetMode) -> FeatureSequences:
        data = self.config.data
        entries = [video for video in self.manifest.videos if video.split == split]
        missing = [video.id for video in entries if video.id not in self.index.videos]
        if missing:
            reasons = "; ".join(f"{i}: {self.index.failures.get(i, 'not extracted')}" for i in missing[:5])
            raise ConfigError(
                f"data.features={data.features!r} has no features of {len(missing)} videos of split {split!r} "
                f"({reasons}): run vidfit extract {data.manifest} --out {data.features} with its settings"
            )
        step = frames_per_step(self.index)
        max_steps = None if data.max_video_frames is None else max(1, data.max_video_frames // step)
        return FeatureSequences(
            self.index, entries, labels=tuple(self.label_names), evaluate=mode == "evaluate", max_steps=max_steps,
            overlap_steps=data.chunk_overlap_frames // step, frames_per_step=step,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader[Any]:
        dataset = self.split_dataset("train_split")
        if self.batch_size is None:
            raise ConfigError("data.batch_size must be a number for experiment.task: temporal")
        seed = self.config.experiment.seed
        order = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        # Under DDP, Lightning rebuilds the sampler around its DistributedSampler: each rank buckets its share.
        batches = BucketBatchSampler(order, self.batch_size, False, lengths=dataset.lengths, seed=seed)
        data = self.config.data
        return DataLoader(
            dataset, batch_sampler=batches, collate_fn=collate_sequences, num_workers=data.num_workers,
            persistent_workers=data.persistent_workers and data.num_workers > 0,
            pin_memory=data.pin_memory and torch.cuda.is_available(),
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader[Any]:
        return self.loader(self.split_dataset("val_split"), train=False, batch_size=1)

    def test_dataloader(self) -> DataLoader[Any]:
        return self.loader(self.split_dataset("test_split"), train=False, batch_size=1)
