"""Config files written for other training scripts: renamed keys read with a notice, loaded and trained unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_overrides
from vidfit.cli import main
from vidfit.config import (
    ConfigError,
    DataConfig,
    TrainerConfig,
    config_from_dict,
    load_config,
    resolve_precision,
    save_config,
)
from vidfit.config._aliases import KEY_ALIASES
from vidfit.config._parse import section_keys
from vidfit.tasks.action._config import ActionModelConfig, ActionTrainConfig
from vidfit.train import fit

FIXTURES = Path(__file__).parent / "fixtures"
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="16-bit precision falls back to 32 only without a GPU")


def _notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "vidfit"]


def test_a_json_config_with_comments_and_other_section_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vidfit"):
        config = load_config(FIXTURES / "rtx5080_16gb.json", ["data.manifest=m.yaml"])
    assert (config.data.image_size, config.data.num_frames) == (160, 40)  # an int: the short side
    assert (config.data.batch_size, config.data.num_workers, config.trainer.precision) == (12, 4, "16-mixed")
    notices = _notices(caplog)
    assert any("dataset.image_size is read as data.image_size" in line for line in notices)
    assert any("training.batch_size is read as data.batch_size" in line for line in notices)
    assert any("training.precision is read as trainer.precision" in line for line in notices)


def test_a_yaml_config_with_renamed_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vidfit"):
        config = load_config(FIXTURES / "config_chunked_loading.yaml", ["data.manifest=m.yaml"])
    assert config.experiment.name == "view_multi_3dcnn_chunked"
    assert (config.model.backbone, config.data.image_size, config.trainer.precision) == (
        "r3d_34",
        (224, 224),
        "16-mixed",
    )
    assert (config.data.max_video_frames, config.train.accumulate_grad_batches) == (1000, 4)
    notices = _notices(caplog)
    assert any("experiment: 'view_multi_3dcnn_chunked' is read as experiment.name" in line for line in notices)
    assert any("data.img_size is read as data.image_size" in line for line in notices)
    assert any("model.backbone: 'resnet34' is read as 'r3d_34'" in line for line in notices)


def test_flat_settings_and_their_values_are_read_as_sections() -> None:
    config = load_config(FIXTURES / "espcn_settings.yaml", ["data.manifest=m.yaml"])
    assert (config.data.batch_size, config.data.prefetch_factor, config.trainer.max_epochs) == (16, 2, 2000)
    assert (config.trainer.precision, config.train.lr, config.train.milestones) == ("16-mixed", 0.01, [300, 2400])
    assert (config.train.accumulate_grad_batches, config.trainer.check_val_every_n_epoch) == (2, 5)


def test_overrides_win_over_a_files_renamed_key_in_either_spelling() -> None:
    path = FIXTURES / "config_chunked_loading.yaml"
    assert load_config(path, ["data.manifest=m", "data.image_size=[112, 112]"]).data.image_size == (112, 112)
    assert load_config(path, ["data.manifest=m", "data.img_size=96"]).data.image_size == 96


def test_every_problem_is_reported_at_once() -> None:
    document = {
        "dataset": {"manifest": "m", "img_size": 3, "image_size": 4, "augment": {"sclae": [0.5, 1]}},
        "optim": {},
        "trainer": {"precision": "fp8"},
    }
    with pytest.raises(ConfigError) as raised:
        config_from_dict(document, source="run.json")
    message = str(raised.value)
    assert message.startswith("run.json: ")
    for part in (
        "and data.image_size are both given: keep data.image_size",
        "unknown section 'optim'",
        r"data.augment.sclae: unknown key (allowed: enabled, scale",
        "trainer.precision='fp8' is not one of",
    ):
        assert part in message


def test_int_limits_stay_counts_and_floats_stay_fractions() -> None:
    config = config_from_dict({"data": {"manifest": "m"}, "trainer": {"limit_val_batches": 1}})
    assert config.trainer.limit_val_batches == 1 and isinstance(config.trainer.limit_val_batches, int)
    config = config_from_dict({"data": {"manifest": "m"}, "trainer": {"limit_val_batches": 0.5}})
    assert config.trainer.limit_val_batches == 0.5


@NO_GPU
def test_explicit_16_bit_precision_without_a_gpu_runs_in_32_with_a_notice(caplog: pytest.LogCaptureFixture) -> None:
    config = config_from_dict({"data": {"manifest": "m"}, "trainer": {"precision": "bf16-mixed"}})
    with caplog.at_level(logging.INFO, logger="vidfit"):
        assert resolve_precision(config) == "32"
    assert any("trainer.precision='bf16-mixed' runs in 32-bit precision" in line for line in _notices(caplog))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("rtx5080_16gb.json", ["data.image_size=32"]),
        ("config_chunked_loading.yaml", ["data.img_size=[32, 32]"]),
        ("gpu_8gb_combined.yaml", []),
        # The file names 5 classes; the test data has 4, which the file's key (given again) must say.
        ("chunk_inference.yaml", ["model.model_class_num=4", "train.chunk_infer_size=4"]),
        ("espcn_settings.yaml", []),
    ],
)
def test_the_files_train_a_step_with_only_a_manifest_added(
    name: str, extra: list[str], tiny_manifest: Path, tmp_path: Path
) -> None:
    # Tiny settings (the tiny model, 4-frame clips, 2 steps) on top of the file, as overrides.
    config = load_config(FIXTURES / name, [*tiny_overrides(tiny_manifest, tmp_path), *extra])
    result = fit(config)
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()


def test_a_class_count_that_differs_from_the_manifests_is_refused(tiny_manifest: Path, tmp_path: Path) -> None:
    config = load_config(FIXTURES / "chunk_inference.yaml", tiny_overrides(tiny_manifest, tmp_path))
    with pytest.raises(ConfigError, match=r"model\.num_classes=5 but the manifest has 4 labels"):
        fit(config)


@pytest.mark.parametrize(
    ("document", "given", "where", "value"),
    [
        ({"trainer": {"precision": "fp32"}}, "trainer.precision: 'fp32' is read as '32'", "trainer.precision", "32"),
        ({"training": {"precision": "fp16"}}, "trainer.precision: 'fp16' is read as '16-mixed'", "trainer.precision",
         "16-mixed"),
        ({"patience": 100}, "patience is read as train.early_stopping_patience", "train.early_stopping_patience", 100),
        ({"train": {"patience": 7}}, "train.patience is read as train.early_stopping_patience",
         "train.early_stopping_patience", 7),
        ({"training": {"nworkers": 4}}, "training.nworkers is read as data.num_workers", "data.num_workers", 4),
        ({"nworkers": 2}, "nworkers is read as data.num_workers", "data.num_workers", 2),
        ({"use_amp": True}, "use_amp is read as trainer.precision", "trainer.precision", "16-mixed"),
        ({"train": {"use_amp": False}}, "train.use_amp is read as trainer.precision", "trainer.precision", "32"),
        ({"trainer": {"use_amp": True}}, "trainer.use_amp is read as trainer.precision", "trainer.precision",
         "16-mixed"),
        ({"model": {"backbone": "resnet34"}}, "model.backbone: 'resnet34' is read as 'r3d_34'", "model.backbone",
         "r3d_34"),
    ],
)  # fmt: skip
def test_the_notes_spellings_are_read_with_a_notice(
    document: dict, given: str, where: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vidfit"):
        config = config_from_dict({"data": {"manifest": "m"}, **document}, source="notes.yaml")
    section, key = where.split(".")
    assert getattr(getattr(config, section), key) == value
    assert f"notes.yaml: {given}" in " ".join(_notices(caplog))


def test_no_notice_names_a_key_vidfit_does_not_have(caplog: pytest.LogCaptureFixture) -> None:
    sections = {"data": DataConfig, "train": ActionTrainConfig, "trainer": TrainerConfig, "model": ActionModelConfig}
    for (section, _), (target_section, target_key) in KEY_ALIASES.items():
        assert target_key in section_keys(sections[target_section]), (section, target_section, target_key)
    with caplog.at_level(logging.INFO, logger="vidfit"), pytest.raises(ConfigError, match=r"data\.bogus: unknown key"):
        config_from_dict({"dataset": {"manifest": "m", "bogus": 1, "num_frames": 8}}, source="run.json")
    notices = " ".join(_notices(caplog))
    assert "dataset.num_frames is read as data.num_frames" in notices and "bogus" not in notices


def test_the_saved_config_holds_vidfits_names(tmp_path: Path) -> None:
    config = config_from_dict({"data": {"manifest": "m"}, "model": {"backbone": "resnet34"}, "use_amp": True})
    saved = yaml.safe_load(save_config(config, tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert (saved["model"]["backbone"], saved["trainer"]["precision"]) == ("r3d_34", "16-mixed")


def test_the_use_amp_flag_is_read_as_its_override(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  manifest: m.yaml\n  batch_size: 0\n", encoding="utf-8")
    # The flag stands after a bad precision, so its override wins: the one problem left is the batch size.
    with caplog.at_level(logging.INFO, logger="vidfit"):
        code = main(["fit", "--config", str(path), "--set", "trainer.precision=fp8", "--use-amp"])
    assert code == 2
    assert "--use-amp is read as --set trainer.precision=16-mixed" in " ".join(_notices(caplog))
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {path}: data.batch_size=0 must be >= 1"
