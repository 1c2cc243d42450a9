"""The data module every task derives: a dataset per split and mode, checked before any run, loaded in shards."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vidfit.config import Config, ConfigError, Stage
from vidfit.data import collate_samples
from vidfit.train._loaders import STAGE_SPLITS, check_splits, load_training_manifest, require_split, sharded_loader

# What a split's dataset is for: random training samples, or the fixed ones evaluation scores.
DatasetMode = Literal["train", "evaluate"]
_SPLIT_MODES: dict[str, DatasetMode] = {"train_split": "train", "val_split": "evaluate", "test_split": "evaluate"}
_Dataset = TypeVar("_Dataset", bound=Dataset[Any])


class TaskDataModule(L.LightningDataModule, Generic[_Dataset]):
    """A task's LightningDataModule: it builds a split's dataset, vidfit does the rest (`vidfit.config.TaskData`).

    A task writes `build_dataset`; this module reads ``data.manifest`` once (refused without videos), builds
    each (split, mode) dataset once, refuses a split without videos naming the key that asked for it, checks
    every split a stage reads before any run folder exists (`check`), and loads with the config's loader
    settings, each DDP rank its shard. ``data.val_split`` may equal ``data.train_split``: validation still
    gets its own evaluation dataset. Override the ``*_dataloader`` methods for other batches (evaluation
    of whole videos); `collate_fn` stacks samples (`vidfit.data.collate_samples`: `VideoDataset`'s).

    Args:
        config: The run.

    Attributes:
        manifest: The run's manifest.
        views: The camera views the model takes: ``data.views``, else the first video's.
        label_names: The manifest's labels, in label-index order.
        split_counts: Videos of each split of the manifest.
        batch_size: Training samples per batch: ``data.batch_size``; None until auto-fit sets it.
        evaluation_batch_size: Samples per validation and test batch; None: ``data.batch_size`` (set 1 for
            samples of differing lengths, such as whole chunks).
        collate_fn: Stacks a batch's samples (a module-level function: workers receive it pickled).
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.manifest = load_training_manifest(config.data)
        self.views: list[str] = list(config.data.views or self.manifest.videos[0].views)
        self.label_names: list[str] = list(self.manifest.labels)
        self.batch_size: int | None = None if config.data.batch_size == "auto" else int(config.data.batch_size)
        self.evaluation_batch_size: int | None = None
        self.collate_fn: Callable[[list[Any]], Any] = collate_samples
        self.split_counts = Counter(video.split for video in self.manifest.videos)
        self._datasets: dict[tuple[str, DatasetMode], _Dataset] = {}

    def build_dataset(self, split: str, mode: DatasetMode) -> _Dataset:
        """The task's dataset of `split` for `mode` (called once per pair, for a split with videos)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_dataset(split, mode)")

    def dataset(self, split: str, mode: DatasetMode) -> _Dataset:
        """The dataset of `split` for `mode`, built once; `ConfigError` naming the key for a split without videos."""
        if (split, mode) not in self._datasets:
            require_split(self.config.data, split_counts=self.split_counts, split=split)
            self._datasets[split, mode] = self.build_dataset(split, mode)
        return self._datasets[split, mode]

    def split_dataset(self, key: str) -> _Dataset:
        """The dataset of the split ``data.<key>`` names (``train_split``, ``val_split`` or ``test_split``), in the
        mode that key reads it: ``"train"`` for the training split, ``"evaluate"`` for the others."""
        return self.dataset(getattr(self.config.data, key), _SPLIT_MODES[key])

    def check(self, stage: Stage) -> None:
        """Builds the datasets `stage` reads (``fit``: train and val), raising once with every problem found."""
        check_splits([functools.partial(self.split_dataset, key) for key in STAGE_SPLITS[stage]])

    def loader(self, dataset: Dataset[Any], *, train: bool, batch_size: int | None = None) -> DataLoader[Any]:
        """`dataset` loaded with the config's settings (shuffled when `train`); under DDP this rank's shard.

        Args:
            dataset: A dataset of this module.
            train: Shuffle and drop the last incomplete batch (training).
            batch_size: Samples per batch; None: `batch_size`.
        """
        size = self.batch_size if batch_size is None else batch_size
        if size is None:
            raise ConfigError("data.batch_size: auto is only resolved inside `vidfit.train.fit` (its AutoFit callback)")
        # Outside a Trainer (`trainer` None) the whole dataset.
        return sharded_loader(
            dataset, self.config, self.trainer, batch_size=size, train=train, collate_fn=self.collate_fn
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self.loader(self.split_dataset("train_split"), train=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self.loader(self.split_dataset("val_split"), train=False, batch_size=self.evaluation_batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return self.loader(self.split_dataset("test_split"), train=False, batch_size=self.evaluation_batch_size)

    def teardown(self, stage: str) -> None:
        for dataset in self._datasets.values():
            close = getattr(dataset, "close", None)
            if callable(close):
                close()
