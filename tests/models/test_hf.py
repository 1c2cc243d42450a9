"""Hugging Face encoders found on disk: local folders, the cache (no network), errors, input sizes, normalization."""

from __future__ import annotations

import importlib
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiny_overrides
from tests.hf_models import hf_models, save_tiny
from vidfit.config import ConfigError, load_config
from vidfit.models import InputConstraints, backbone_constraints, build_classifier
from vidfit.models import _hf as hf_module
from vidfit.models._hf import HfExtraMissingError, HfModelUnavailableError, hf_model, hf_normalization

transformers = pytest.importorskip("transformers")
__all__ = ["hf_models"]


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("vidfit tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _cache(folder: Path, model_id: str, source: Path) -> Path:
    """A Hugging Face cache holding `source`'s files as `model_id` at revision main, as `hf download` lays it out."""
    repo = folder / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    return snapshot


def test_a_model_is_read_from_its_folder_or_the_cache_without_the_network(
    hf_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_network(monkeypatch)
    local = hf_model(f"hf:{hf_models['videomae']}")
    assert local.folder == hf_models["videomae"] and local.config.model_type == "videomae"
    snapshot = _cache(tmp_path / "hub", "org/tiny-timesformer", hf_models["timesformer"])
    monkeypatch.setattr(importlib.import_module("huggingface_hub").constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    cached = hf_model("hf:org/tiny-timesformer")
    assert cached.folder == snapshot and cached.family.processor == "TimesformerVideoProcessor"
    model = build_classifier(backbone="hf:org/tiny-timesformer", num_classes=3)
    assert model.rgb is not None and model.rgb.backbone.feature_dim == 32


def test_a_missing_model_is_one_error_naming_the_id_the_cache_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_network(monkeypatch)
    monkeypatch.setattr(importlib.import_module("huggingface_hub").constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    message = (
        rf"backbone='hf:MCG-NJU/videomae-base' is not a local folder and not in the Hugging Face cache "
        rf"\({tmp_path / 'hub'}\); .* `hf download MCG-NJU/videomae-base`"
    )
    with pytest.raises(HfModelUnavailableError, match=message):
        hf_model("hf:MCG-NJU/videomae-base")
    with pytest.raises(ConfigError, match=r"model\.backbone='hf:MCG-NJU/videomae-base' is not a local folder"):
        load_config(None, ["model.backbone=hf:MCG-NJU/videomae-base", f"data.manifest={tmp_path / 'm.yaml'}"])
    with pytest.raises(HfModelUnavailableError, match=r"no such folder .*missing \(a Hugging Face model id"):
        hf_model(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HfModelUnavailableError, match=r"the folder .*empty holds no config\.json"):
        hf_model(f"hf:{tmp_path / 'empty'}")


def test_without_transformers_the_error_names_the_extra(
    hf_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def without(name: str, *args: Any) -> Any:
        if name.split(".")[0] in ("transformers", "peft"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(hf_module.importlib, "import_module", without)
    hf_module._read_config.cache_clear()
    try:
        with pytest.raises(HfExtraMissingError, match=r"needs the 'transformers' package: pip install 'vidfit\[hf\]'"):
            hf_model(f"hf:{hf_models['vivit']}")
        with pytest.raises(ConfigError, match=r"model\.backbone=.* pip install 'vidfit\[hf\]'"):
            load_config(None, [f"model.backbone=hf:{hf_models['vivit']}", f"data.manifest={tmp_path / 'm.yaml'}"])
    finally:
        hf_module._read_config.cache_clear()


def test_input_sizes_come_from_the_models_config_and_are_checked_with_the_run_config(
    hf_models: dict[str, Path], tiny_manifest: Path, tmp_path: Path
) -> None:
    exact = InputConstraints(exact_shape=(4, 32, 32))
    for family in ("videomae", "timesformer", "vivit"):
        assert backbone_constraints(f"hf:{hf_models[family]}") == exact
    assert backbone_constraints(f"hf:{hf_models['vjepa2']}") == InputConstraints(min_frames=2, exact_size=(32, 32))
    wrong = tiny_overrides(tiny_manifest, tmp_path, f"model.backbone=hf:{hf_models['videomae']}", "data.num_frames=8")
    with pytest.raises(ConfigError, match=r"needs clips of exactly \(T, H, W\)=\(4, 32, 32\): data\.num_frames=4"):
        load_config(None, wrong)
    jepa = f"model.backbone=hf:{hf_models['vjepa2']}"
    with pytest.raises(ConfigError, match=r"needs frames of exactly \(H, W\)=\(32, 32\): data\.image_size=\[32, 32\]"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, jepa, "data.image_size=[32,48]", "data.num_frames=6"))
    fine = tiny_overrides(tiny_manifest, tmp_path, jepa, "data.image_size=[32,32]", "data.num_frames=6")
    assert load_config(None, fine).model.backbone == jepa.partition("=")[2]


def test_normalization_is_the_models_own_processors(hf_models: dict[str, Path], tmp_path: Path) -> None:
    # No processor file: the defaults of the family's transformers processor.
    assert hf_normalization(f"hf:{hf_models['videomae']}") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    # ViViT's processor maps x to x / 127.5 - 1 and then normalizes by 0.5: the same map on [0, 1] values.
    assert hf_normalization(f"hf:{hf_models['vivit']}") == ((0.75, 0.75, 0.75), (0.25, 0.25, 0.25))
    folder = save_tiny("videomae", tmp_path / "with_processor")
    processor = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "rescale_factor": 1 / 255}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    mean, std = hf_normalization(f"hf:{folder}")
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx((0.229, 0.224, 0.225))
    model = build_classifier(backbone=f"hf:{folder}", num_classes=2)
    assert model.rgb is not None
    assert model.rgb.mean.flatten().tolist() == pytest.approx([0.485 * 255, 0.456 * 255, 0.406 * 255])


def test_models_vidfit_cannot_run_are_named(tmp_path: Path) -> None:
    transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match=r"is a 'vit' model; hf: backbones are the encoders of 'videomae', 'vjepa2'"):
        hf_model(f"hf:{tmp_path / 'vit'}")
    save_tiny("timesformer", tmp_path / "space", attention_type="space_only")
    with pytest.raises(ValueError, match=r"attention_type='space_only' has no time axis"):
        hf_model(f"hf:{tmp_path / 'space'}")


def test_hf_settings_are_checked_before_any_run(
    hf_models: dict[str, Path], tiny_manifest: Path, tmp_path: Path
) -> None:
    backbone = f"model.backbone=hf:{hf_models['videomae']}"
    bad = tiny_overrides(
        tiny_manifest, tmp_path, backbone, "data.image_size=[32,32]", "train.chunk_infer_size=4",
        "model.freeze=first:3", "model.lora={rank: 0}", "train.token_drop=0.95", "model.pretrained=kinetics400",
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(None, bad)
    message = str(caught.value)
    assert "model.lora.rank=0 must be a whole number >= 1" in message
    assert "model.freeze='first:3': the encoder has 2 blocks; freeze at most first:2" in message
    assert "train.token_drop=0.95 must be in [0, 0.9]" in message
    assert "brings its own weights: drop model.pretrained" in message
    with pytest.raises(ConfigError, match=r"model\.freeze applies to hf: backbones .* not to model\.backbone='tiny'"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "model.freeze=all"))
    with pytest.raises(ConfigError, match=r"train\.token_drop=0\.5 drops the patch tokens of an hf: backbone"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "train.token_drop=0.5"))
    with pytest.raises(ConfigError, match=r"model\.lora trains adapters in the blocks not frozen"):
        load_config(None, [*bad[:-4], "model.freeze=all", "model.lora={rank: 4}"])
