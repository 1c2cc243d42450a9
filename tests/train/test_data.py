"""`TaskDataModule`: a dataset per split and mode, the stage's splits checked at once, loaders sharded per rank."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import tiny_overrides
from vidfit.config import ConfigError, load_config
from vidfit.data import VideoDataset
from vidfit.tasks.action import VideoDataModule
from vidfit.train import DatasetMode, TaskDataModule


class _Clips(TaskDataModule[VideoDataset]):
    def build_dataset(self, split: str, mode: DatasetMode) -> VideoDataset:
        self.built.append((split, mode))
        chunks = "clip" if mode == "train" else "chunk"
        return VideoDataset(self.config.data.dataset_config(split=split, mode=chunks, views=tuple(self.views)))

    built: list[tuple[str, DatasetMode]]


def _data(manifest: Path, tmp_path: Path, *extra: str) -> _Clips:
    data = _Clips(load_config(None, tiny_overrides(manifest, tmp_path, *extra)))
    data.built = []
    return data


def test_what_train_asks_of_a_data_module(tiny_manifest: Path, tmp_path: Path) -> None:
    data = _data(tiny_manifest, tmp_path, "data.batch_size=3")
    assert (data.views, data.label_names, data.batch_size) == (["front", "left"], ["idle", "left", "right", "jump"], 3)
    assert _data(tiny_manifest, tmp_path, "data.views=[left]").views == ["left"]


def test_validation_on_the_training_split_gets_its_own_evaluation_dataset(tiny_manifest: Path, tmp_path: Path) -> None:
    data = _data(tiny_manifest, tmp_path, "data.val_split=train")
    data.check("fit")
    assert data.built == [("train", "train"), ("train", "evaluate")]
    train, val = data.split_dataset("train_split"), data.split_dataset("val_split")
    assert (train.config.mode, val.config.mode) == ("clip", "chunk")
    data.check("fit")
    assert len(data.built) == 2  # each (split, mode) built once


def test_the_action_data_module_evaluates_the_training_split_in_chunks(tiny_manifest: Path, tmp_path: Path) -> None:
    data = VideoDataModule(load_config(None, tiny_overrides(tiny_manifest, tmp_path, "data.val_split=train")))
    data.check("fit")
    assert data.dataset("train", "train").config.mode == "clip"
    assert data.dataset("train", "evaluate").config.mode == "chunk"


def test_every_split_of_the_stage_is_checked_and_a_missing_one_named(tiny_manifest: Path, tmp_path: Path) -> None:
    data = _data(tiny_manifest, tmp_path, "data.val_split=holdout", "data.test_split=val")
    with pytest.raises(ConfigError, match=r"data\.val_split='holdout' has no videos; the manifest's splits: "):
        data.check("fit")
    assert data.built == [("train", "train")]
    data.check("test")  # the stage's own splits only
    assert data.built == [("train", "train"), ("val", "evaluate")]


def test_loaders_shard_per_rank_and_need_a_resolved_batch_size(tiny_manifest: Path, tmp_path: Path) -> None:
    data = _data(tiny_manifest, tmp_path, "data.batch_size=1")
    whole = len(data.train_dataloader())
    data.trainer = SimpleNamespace(world_size=2, global_rank=1)  # type: ignore[assignment]
    assert len(data.train_dataloader()) == whole // 2
    data.evaluation_batch_size = 2
    assert len(data.val_dataloader()) == -(-len(data.split_dataset("val_split")) // 4)
    data.batch_size = None  # data.batch_size: auto, before AutoFit
    with pytest.raises(ConfigError, match=r"data\.batch_size: auto is only resolved inside"):
        data.train_dataloader()
