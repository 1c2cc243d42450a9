"""The task's data: `VideoDataset` clips of the first view for training, whole chunks for evaluation."""

from __future__ import annotations

from vidfit.config import ConfigError
from vidfit.data import VideoDataset
from vidfit.train import DatasetMode, TaskDataModule
from vidfit_motion._model import MotionConfig


class MotionData(TaskDataModule[VideoDataset]):
    """Each split of ``data.manifest`` as `VideoDataset` samples; vidfit checks, caches and shards them."""

    config: MotionConfig

    def __init__(self, config: MotionConfig) -> None:
        super().__init__(config)
        self.views = self.views[:1]  # the model sees one camera
        self.evaluation_batch_size = 1  # whole chunks differ in length
        if config.model.idle_label not in self.label_names:
            raise ConfigError(
                f"model.idle_label={config.model.idle_label!r} is not one of the manifest's labels {self.label_names}"
            )

    def build_dataset(self, split: str, mode: DatasetMode) -> VideoDataset:
        return VideoDataset(
            self.config.data.dataset_config(
                split=split, mode="clip" if mode == "train" else "chunk", views=tuple(self.views),
                seed=self.config.experiment.seed,
            )
        )  # fmt: skip
