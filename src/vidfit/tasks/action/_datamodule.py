"""The LightningDataModule: clip datasets for training, whole videos (as `predict` reads them) for evaluation."""

from __future__ import annotations

from typing import Any, Literal

from torch.utils.data import DataLoader, Dataset

from vidfit.config import ConfigError, Stage
from vidfit.data import VideoDataset, make_loader
from vidfit.tasks.action._config import ActionConfig
from vidfit.tasks.action._evaluation import monitor_problem
from vidfit.tasks.action._multilabel import check_manifest_agrees, class_thresholds
from vidfit.tasks.action._predict import _Job, job_from_entry
from vidfit.train import DatasetMode, TaskDataModule

# `VideoDataset`'s mode of each: clips sampled inside chunks for training, whole chunks for evaluation.
_DATASET_MODES: dict[DatasetMode, Literal["clip", "chunk"]] = {"train": "clip", "evaluate": "chunk"}


class VideoDataModule(TaskDataModule[VideoDataset]):
    """Builds `VideoDataset`s for each split from the config's `data` section.

    Training draws `num_frames`-frame clips inside chunks of at most `max_video_frames`. Evaluation takes
    whole videos, one per batch, which the module streams through the predictor `predict` uses; the split's
    chunk index is still built, to check its videos and leave out those ``data.on_error: skip`` skips.
    """

    config: ActionConfig

    def __init__(self, config: ActionConfig) -> None:
        super().__init__(config)
        check_manifest_agrees(config, self.manifest)
        class_thresholds(config.model.thresholds, self.manifest.labels)  # one per class, or one for all
        self._entries = self.manifest.videos
        # The frame head learns only from timelines: checkpoints record whether the training split had any.
        self.frame_labels = any(v.timeline is not None for v in self._entries if v.split == config.data.train_split)

    def build_dataset(self, split: str, mode: DatasetMode) -> VideoDataset:
        settings = {"views": tuple(self.views), "seed": self.config.experiment.seed}
        return VideoDataset(
            self.config.data.dataset_config(
                split=split, mode=_DATASET_MODES[mode], multi_label=self.config.model.multi_label, **settings
            )
        )

    def _evaluation_loader(self, split: str) -> DataLoader[Any]:
        """The split's usable videos in manifest order, one per batch; under DDP this rank's share of them."""
        indexed = self.dataset(split, "evaluate").index.videos
        jobs = [job_from_entry(entry) for entry in self._entries if entry.split == split and entry.id in indexed]
        trainer = self.trainer
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return make_loader(
            _Videos(jobs), batch_size=1, shuffle=False, num_workers=0, seed=self.config.experiment.seed,
            pin_memory=False, num_replicas=world_size, rank=rank, collate_fn=EvaluationBatch,
        )  # fmt: skip

    def keypoint_shape(self) -> tuple[int, int]:
        """(K, D) of the keypoints: of the training split, else the first split with videos (its dataset is kept)."""
        data = self.config.data
        splits: list[tuple[str, DatasetMode]] = [
            (data.train_split, "train"), (data.val_split, "evaluate"), (data.test_split, "evaluate")
        ]  # fmt: skip
        split, mode = next(((s, m) for s, m in splits if self.split_counts[s]), splits[0])
        return self.dataset(split, mode).keypoint_shape

    def check(self, stage: Stage) -> None:
        """Builds the datasets `stage` reads (``fit``: train and val), raising once with every problem found.

        Fitting also refuses a ``train.monitor`` that validation on this data can never log.
        """
        super().check(stage)
        split = self.config.data.val_split
        val = [entry for entry in self._entries if entry.split == split]
        problem = monitor_problem(
            self.config.train.monitor, video_labels=any(entry.label is not None for entry in val),
            frame_labels=self.frame_labels and any(entry.timeline is not None for entry in val),
            num_classes=len(self.label_names), split_key=f"data.val_split={split!r}",
        )  # fmt: skip
        if stage == "fit" and problem is not None:
            raise ConfigError(problem)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._evaluation_loader(self.config.data.val_split)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._evaluation_loader(self.config.data.test_split)


class _Videos(Dataset[tuple[int, _Job]]):
    """The videos of a split, each with its place in the split."""

    def __init__(self, jobs: list[_Job]) -> None:
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, position: int) -> tuple[int, _Job]:
        return position, self.jobs[position]


class EvaluationBatch:
    """Videos to evaluate with their places in the split: no tensors, so the trainer hands it on as it is."""

    def __init__(self, items: list[tuple[int, _Job]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)
