"""Config loading: the seeds' shape, strict keys and values, overrides, the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfit.config import Config, ConfigError, config_from_dict, load_config, save_config

CONFIGS = Path(__file__).parents[2] / "configs"


def test_yaml_with_overrides_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  manifest: data/m.yaml\n  image_size: [160, 210]\ntrainer:\n  precision: 16\n")
    config = load_config(path, ["train.lr=0.01", "data.views=[front, left]", "train.chunk_infer_size=64"])
    assert config.data.manifest == str(tmp_path / "data/m.yaml")
    assert config.data.image_size == (160, 210)
    assert config.trainer.precision == "16-mixed"  # the seeds' spelling
    assert (config.train.lr, config.data.views, config.train.chunk_infer_size) == (0.01, ("front", "left"), 64)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"optim": {}}, r"unknown section 'optim' \(allowed: experiment, model, data, train, trainer\)"),
        (
            {"data": {"manifest": "m", "batchsize": 2}},
            r"data\.batchsize: unknown key \(allowed: manifest, .*batch_size",
        ),
        (
            {"data": {"manifest": "m"}, "trainer": {"precision": "fp8"}},
            r"trainer\.precision='fp8' is not one of 'auto'",
        ),
        ({"data": {"manifest": "m", "batch_size": "big"}}, r"data\.batch_size='big' must be int or 'auto'"),
        ({"data": {"manifest": "m", "image_size": [160]}}, r"data\.image_size=\[160\] must be"),
        (
            {"data": {"manifest": "m"}, "model": {"backbone": "resnet99"}},
            r"model\.backbone='resnet99' is not one of 'tiny', 'r3d_18'",
        ),
        ({"data": {"manifest": "m"}, "train": {"chunk_infer_size": 8, "chunk_overlap": 8}}, r"chunk_overlap=8 must be"),
        ({"data": {"manifest": "m"}, "train": {"chunk_aggregation": "median"}}, r"'median' is not one of 'mean'"),
        (
            {"data": {"manifest": "m"}, "model": {"input_type": "kpt", "num_keypoints": -1}},
            r"needs model\.num_keypoints",
        ),
        ({}, r"data\.manifest is required"),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(document: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(document, source="run.yaml")


M = "data.manifest=m.yaml"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.dropout=1.0"], r"model\.dropout=1\.0 must be in \[0, 1\)"),
        (["trainer.accelerator=gpux"], r"trainer\.accelerator='gpux' is not one of 'auto', 'gpu', 'cpu', 'cuda'"),
        (["data.frame_stride=0"], r"data\.frame_stride=0 must be >= 1"),
        (["data.max_video_frames=0"], r"data\.max_video_frames=0 must be >= 1 and <= 1000000 or None"),
        (["train.label_smoothing=1"], r"train\.label_smoothing=1\.0 must be in \[0, 1\)"),
        (["trainer.check_val_every_n_epoch=0"], r"trainer\.check_val_every_n_epoch=0 must be >= 1"),
        (["trainer.max_epochs=0", "train.scheduler=none"], r"trainer\.max_epochs=0 must be >= 1, or -1"),
        (["trainer.max_epochs=-1"], r"train\.scheduler: cosine anneals over trainer\.max_epochs"),
        (["train.warmup_epochs=-1"], r"train\.warmup_epochs=-1 must be >= 0"),
        (["train.weight_decay=-1e-4"], r"train\.weight_decay=-0\.0001 must be >= 0"),
        (["train.early_stopping_patience=-1"], r"train\.early_stopping_patience=-1 must be >= 0"),
        (["train.scheduler=multistep"], r"train\.scheduler: multistep needs train\.milestones"),
        (["data.image_size=[0, 16]"], r"data\.image_size=\(0, 16\) must be \(height, width\) of positive integers"),
        (["data.load_rgb=false"], r"model\.input_type='rgb' needs data\.load_rgb: true"),
        (["model.backbone=mvit_v2_s", "data.image_size=[112, 112]"], r"clips of exactly \(T, H, W\)=\(16, 224, 224\)"),
        (
            ["model.backbone=mvit_v2_s", "data.num_frames=16", "data.image_size=[224, 224]"],
            r"model\.backbone='mvit_v2_s' needs inference windows of exactly 16 frames: train\.chunk_infer_size=16",
        ),
        (["model.backbone=s3d", "data.num_frames=4"], r"model\.backbone='s3d' needs data\.num_frames >= 8"),
        (["data.num_workers=-1"], r"data\.num_workers=-1 must be >= 0"),
        (["data.num_frames=0"], r"data\.num_frames=0 must be >= 1"),
        (["train.lr=0"], r"train\.lr=0\.0 must be > 0"),
        (["train.accumulate_grad_batches=0"], r"train\.accumulate_grad_batches=0 must be >= 1"),
        (["train.video_batch_size=0"], r"train\.video_batch_size=0 must be >= 1"),
        (
            ["model.input_type=kpt", "model.num_keypoints=5", "model.keypoint_dims=2", "data.load_kpt=false"],
            r"model\.input_type='kpt' needs data\.load_kpt: true",
        ),
        (["data.tail=cut"], r"data\.tail='cut' is not one of 'keep', 'merge', 'drop'"),
        (["data.on_error=ignore"], r"data\.on_error='ignore' is not one of 'raise', 'skip'"),
        (["data.decode_backend=ffmpeg"], r"data\.decode_backend='ffmpeg' is not one of 'pyav', 'nvdec'"),
        (["data.min_tail_frames=0"], r"data\.min_tail_frames=0 must be >= 1 or null"),
        (["data.sync_tolerance_seconds=-0.5"], r"data\.sync_tolerance_seconds=-0\.5 must be >= 0"),
        (["train.lr=fast"], r"train\.lr='fast' must be float"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [M, *overrides])


def test_floats_written_without_a_dot_are_numbers(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  manifest: m.yaml\ntrain:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    config = load_config(path, ["train.label_smoothing=1e-1"])
    assert (config.train.lr, config.train.weight_decay, config.train.label_smoothing) == (1e-3, 5e-5, 0.1)


def test_dataset_options_reach_the_dataset_config(tmp_path: Path) -> None:
    options = ["data.tail=merge", "data.min_tail_frames=4", "data.sync_tolerance_seconds=0.25", "data.on_error=skip"]
    config = load_config(None, [M, *options, "data.report_path=skipped.json", "data.decode_backend=torchcodec"])
    dataset = config.data.dataset_config(split="val", mode="chunk")
    assert (dataset.tail, dataset.min_tail_frames, dataset.sync_tolerance_seconds) == ("merge", 4, 0.25)
    assert (dataset.on_error, dataset.decode_backend, dataset.split) == ("skip", "torchcodec", "val")
    assert dataset.report_path == str(Path.cwd() / "skipped.json")


def test_saved_config_holds_absolute_paths_and_loads_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    config = load_config(None, ["data.manifest=data/m.yaml", "data.cache_dir=../cache"])
    saved = save_config(config, tmp_path / "runs" / "config.yaml")
    monkeypatch.chdir(tmp_path / "runs")
    again = load_config(saved)
    assert again.data.manifest == str(tmp_path / "project" / "data" / "m.yaml")
    assert again.data.cache_dir == str(tmp_path / "cache")


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


def test_paths_under_a_renamed_section_are_taken_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    path = tmp_path / "project" / "run.yaml"
    path.write_text("dataset:\n  manifest: data/m.yaml\n")
    config = load_config(path)
    assert config.data.manifest == str(tmp_path / "project" / "data" / "m.yaml")
    overridden = load_config(path, ["data.manifest=other.yaml"])
    assert overridden.data.manifest == str(Path.cwd() / "other.yaml")
