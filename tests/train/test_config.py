"""Config loading: the seeds' shape, strict keys and values, overrides, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfit.train import Config, ConfigError, config_from_dict, load_config, save_config

CONFIGS = Path(__file__).parents[2] / "configs"


def test_yaml_with_overrides_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  manifest: data/m.yaml\n  image_size: [160, 210]\ntrainer:\n  precision: 16\n")
    config = load_config(path, ["train.lr=0.01", "data.views=[front, left]", "train.chunk_infer_size=64"])
    assert config.data.manifest == str(tmp_path / "data/m.yaml")
    assert config.data.image_size == (160, 210)
    assert config.trainer.precision == "16-mixed"  # the seeds' spelling
    assert (config.train.lr, config.data.views, config.train.chunk_infer_size) == (0.01, ["front", "left"], 64)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"optim": {}}, r"unknown section 'optim'; allowed: experiment, model, data, train, trainer"),
        ({"data": {"manifest": "m", "batchsize": 2}}, r"data\.batchsize: unknown key; allowed: manifest, batch_size"),
        (
            {"data": {"manifest": "m"}, "trainer": {"precision": "fp8"}},
            r"trainer\.precision='fp8' is not one of 'auto'",
        ),
        ({"data": {"manifest": "m", "batch_size": "big"}}, r"data\.batch_size='big' must be int or 'auto'"),
        ({"data": {"manifest": "m", "image_size": [160]}}, r"data\.image_size=\[160\] must be"),
        (
            {"data": {"manifest": "m"}, "model": {"backbone": "resnet34"}},
            r"model\.backbone='resnet34' is not one of tiny",
        ),
        ({"data": {"manifest": "m"}, "train": {"chunk_infer_size": 8, "chunk_overlap": 8}}, r"chunk_overlap=8 must be"),
        ({"data": {"manifest": "m"}, "train": {"chunk_aggregation": "median"}}, r"'median' is not one of 'mean'"),
        ({"data": {"manifest": "m"}, "model": {"input_type": "kpt"}}, r"needs model\.num_keypoints"),
        ({}, r"data\.manifest is required"),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(document: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(document, source="run.yaml")


def test_bad_overrides_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        load_config(None, ["lr=0.1"])
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        load_config(listing)


def test_saved_config_loads_back_identically(tmp_path: Path) -> None:
    config = config_from_dict({"data": {"manifest": "/m.yaml", "image_size": [112, 112]}, "train": {"milestones": [3]}})
    assert load_config(save_config(config, tmp_path / "config.yaml")) == config
    assert isinstance(config, Config)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    # Paths in a config are relative to its file: they come back absolute, under the repository.
    assert Path(config.data.manifest).is_absolute() and CONFIGS.parent in Path(config.data.manifest).parents
