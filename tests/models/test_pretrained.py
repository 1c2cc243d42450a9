"""Kinetics-400 weights through torchvision's weights API: the hub cache, the offline error, normalization.

No test touches the network: every download is replaced, and weights are state dicts of freshly built
models placed in a temporary torch hub cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
import torch
from torchvision.models import video as tv_video

from tests.zipbomb import checkpoint_bomb
from vidfit.io import CheckpointError
from vidfit.models import PretrainedWeightsUnavailableError, build_backbone, build_classifier
from vidfit.models._classifier import classifier_problems
from vidfit.models._pretrained import (
    KINETICS_MEAN,
    PRETRAINED_WEIGHTS,
    backbones_with_weights,
    cached_weights_path,
    normalization,
    pretrained_weights,
)

TORCHVISION_BACKBONES = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, with downloads failing as they do offline."""

    def offline(url: str, *_args: Any, **_kwargs: Any) -> None:
        raise URLError(f"offline: {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _r3d_18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return tv_video.r3d_18(weights=None).state_dict()


def test_every_torchvision_video_backbone_has_kinetics400_weights() -> None:
    assert PRETRAINED_WEIGHTS == {"kinetics400": "KINETICS400_V1"}
    assert backbones_with_weights("kinetics400") == TORCHVISION_BACKBONES


def test_cached_weights_are_loaded(hub_cache: Path) -> None:
    weights = pretrained_weights(backbone="r3d_18", pretrained="kinetics400")
    assert cached_weights_path(weights) == hub_cache / "r3d_18-b3b3357e.pth"
    hub_cache.mkdir(parents=True)
    state = _r3d_18_state()
    torch.save(state, hub_cache / "r3d_18-b3b3357e.pth")
    backbone = build_backbone(name="r3d_18", pretrained="kinetics400")
    loaded = backbone.net.state_dict()
    assert loaded.keys() == {k for k in state if not k.startswith("fc.")}  # the classifier is dropped
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], msg=key)


def test_missing_weights_are_downloaded_into_the_cache(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, hash_prefix, progress))
        torch.save(_r3d_18_state(seed=1), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    classifier = build_classifier(backbone="r3d_18", num_classes=3, pretrained="kinetics400")
    # The file name's hash is checked by the download (torch.hub), and the file stays in the cache.
    assert calls == [("https://download.pytorch.org/models/r3d_18-b3b3357e.pth", "b3b3357e", False)]
    assert (hub_cache / "r3d_18-b3b3357e.pth").is_file()
    stem = classifier.state_dict()["rgb.backbone.net.stem.0.weight"]
    torch.testing.assert_close(stem, _r3d_18_state(seed=1)["stem.0.weight"])


def test_offline_and_not_cached_names_the_file_and_the_folder(hub_cache: Path) -> None:
    with pytest.raises(PretrainedWeightsUnavailableError) as caught:
        build_backbone(name="r3d_18", pretrained="kinetics400")
    message = str(caught.value)
    assert "R3D_18_Weights.KINETICS400_V1 are not in the torch hub cache" in message
    assert f"put r3d_18-b3b3357e.pth in {hub_cache}" in message
    assert "https://download.pytorch.org/models/r3d_18-b3b3357e.pth" in message
    assert isinstance(caught.value, FileNotFoundError)
    assert not hub_cache.exists() or not any(hub_cache.iterdir())  # nothing half-written


def test_cached_file_of_another_network_is_rejected(hub_cache: Path) -> None:
    hub_cache.mkdir(parents=True)
    torch.save({"stem.0.weight": torch.zeros(1)}, hub_cache / "r3d_18-b3b3357e.pth")
    with pytest.raises(ValueError, match=r"pretrained='kinetics400' \(https://.*\) does not fit backbone 'r3d_18'"):
        build_backbone(name="r3d_18", pretrained="kinetics400")


@pytest.mark.parametrize(("backbone", "named"), [("r3d_34", "r3d_34"), ("resnet34", "r3d_34"), ("r3d_50", "r3d_50")])
def test_backbones_without_torchvision_weights_are_refused(backbone: str, named: str) -> None:
    message = (
        rf"pretrained='kinetics400': torchvision has no such weights for backbone={named!r}; "
        r"backbones with them: 'r3d_18', 'mc3_18', 'r2plus1d_18', 's3d', 'mvit_v2_s', 'swin3d_t'"
    )
    with pytest.raises(ValueError, match=message):
        build_backbone(name=backbone, pretrained="kinetics400")


def test_classifier_problems_name_the_config_keys() -> None:
    common: dict[str, Any] = {"view_fusion": "late", "input_type": "rgb", "num_keypoints": 0, "keypoint_dims": 0}
    problems = classifier_problems(
        backbone="r3d_18", dropout=0.0, pretrained="imagenet", pretrained_path="w.pt", prefix="model.", **common
    )
    assert problems == [
        "model.pretrained='imagenet' is not one of 'kinetics400' (or null for none)",
        "model.pretrained and model.pretrained_path are both set: give one of them",
    ]
    assert classifier_problems(backbone="resnet34", dropout=0.0, pretrained=None, **common) == []
    assert classifier_problems(backbone="r3d_18", dropout=0.0, pretrained="kinetics400", **common) == []


def test_normalization_is_that_of_the_weights_transforms() -> None:
    assert normalization(backbone="r3d_18", pretrained=None) == (KINETICS_MEAN, (0.22803, 0.22145, 0.216989))
    assert normalization(backbone="r3d_18", pretrained="kinetics400")[0] == KINETICS_MEAN
    # swin3d_t's Kinetics weights were trained on ImageNet-normalized input.
    mean, std = normalization(backbone="swin3d_t", pretrained="kinetics400")
    assert mean == (0.485, 0.456, 0.406) and std == (0.229, 0.224, 0.225)


def test_a_model_rebuilt_without_reading_the_weights_normalizes_as_the_trained_one(hub_cache: Path) -> None:
    # A checkpoint's model is built with load_pretrained=False: no file is read, the normalization is the same.
    model = build_classifier(backbone="swin3d_t", num_classes=2, pretrained="kinetics400", load_pretrained=False)
    assert model.spec.pretrained == "kinetics400"
    assert model.rgb is not None
    expected = torch.tensor([0.485, 0.456, 0.406]).mul(255)
    torch.testing.assert_close(model.rgb.mean.flatten(), expected)
    video = torch.full((1, 1, 3, 2, 8, 8), 124, dtype=torch.uint8)  # 124 ~ 0.485 * 255 for red
    assert model.rgb.normalize(video)[0, 0, 0].abs().max() < 0.01


class _Payload:
    """Unpickling this would run a command: the safe loader must refuse it first."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("touch pwned",))


def _whole_network(path: Path) -> None:
    torch.save(build_backbone(name="tiny").net, path)


def _bomb(path: Path) -> None:
    checkpoint_bomb(path, declared_bytes=2 << 30)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_whole_network, r"holds objects other than tensors .*GLOBAL torch\.nn\..*Sequential.*save the network's"),
        (lambda path: torch.save({"w": _Payload()}, path), r"holds objects other than tensors .*posix\.system"),
        (lambda path: path.write_text("epoch: 3\n" * 20), r"not a PyTorch checkpoint \(truncated or not a zip"),
        (_bomb, r"its zip entries declare 2\.0 GiB uncompressed, .* refused as a zip bomb"),
    ],
    ids=["whole pickled network", "payload", "text", "zip bomb"],
)
def test_pretrained_path_goes_through_the_checkpoint_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Any, reason: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "weights.pt"
    make(path)
    with pytest.raises(CheckpointError, match=rf"^pretrained_path='{path}': {reason}") as caught:
        build_backbone(name="tiny", pretrained_path=path)
    message = str(caught.value)
    assert "weights_only` set to `False`" not in message and "add_safe_globals" not in message
    assert "\n" not in message and not (tmp_path / "pwned").exists()
