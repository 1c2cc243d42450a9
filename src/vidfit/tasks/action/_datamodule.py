"""The LightningDataModule: clip datasets for training, whole chunks for evaluation."""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader

from vidfit.config import ConfigError
from vidfit.data import VideoDataset
from vidfit.tasks.action._config import ActionConfig
from vidfit.train._loaders import STAGE_SPLITS, check_splits, load_training_manifest, require_split, sharded_loader


class VideoDataModule(L.LightningDataModule):
    """Builds `VideoDataset`s for each split from the config's `data` section.

    Training draws `num_frames`-frame clips inside chunks of at most `max_video_frames`; evaluation
    takes whole chunks (one per batch, since chunks differ in length), which the module runs
    through chunked inference when they are longer than `train.chunk_infer_size`.
    """

    def __init__(self, config: ActionConfig) -> None:
        super().__init__()
        self.config = config
        manifest = load_training_manifest(config.data)
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

    def check(self, stage: str) -> None:
        """Builds the datasets `stage` reads (``fit``: train and val), raising once with every problem found."""
        modes = {"train_split": "clip", "val_split": "chunk", "test_split": "chunk"}
        check_splits(
            [
                functools.partial(self._dataset, getattr(self.config.data, key), modes[key])  # type: ignore[arg-type]
                for key in STAGE_SPLITS[stage]
            ]
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.train_split, "clip"), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.val_split, "chunk"), train=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._dataset(self.config.data.test_split, "chunk"), train=False)

    def teardown(self, stage: str) -> None:
        for dataset in self._datasets.values():
            dataset.close()
