"""The fine-tuning recipe: predict samples as evaluation does, augmentation on the device, Kinetics weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
import torch
import torchvision.models.video as tv_video

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.cli import main
from vidfit.config import load_config
from vidfit.data import VideoDataset, collate_samples
from vidfit.data._dataset import decode_size
from vidfit.tasks.action import load_module
from vidfit.train import fit


@pytest.fixture(scope="module")
def strided_checkpoint(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier trained on every second frame, with augmentation on, evaluated in 4-frame windows."""
    output = tmp_path_factory.mktemp("strided")
    extra = ["data.frame_stride=2", "data.sampling=consecutive", "data.augment={enabled: true}"]
    result = fit(load_config(None, tiny_overrides(tiny_manifest, output, *extra, "train.chunk_infer_size=4")))
    assert result.last_checkpoint is not None
    return result.last_checkpoint


def test_predict_scores_the_frames_evaluation_samples_with_the_same_logits(
    strided_checkpoint: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    result = predict(strided_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", progress=False)
    module = load_module(strided_checkpoint).eval()
    config = module.config
    dataset = VideoDataset(config.data.dataset_config(split="val", mode="chunk", views=tuple(module.hparams["views"])))
    for position in range(len(dataset)):
        batch = collate_samples([dataset[position]])
        assert batch.video is not None
        frame_logits = module.chunked_predictor(device=torch.device("cpu")).predict_tensor(batch.video[0]).frame_logits
        prediction = result.predictions[batch.meta[0]["video_id"]]
        assert len(prediction.frame_logits) == 16  # one row per input frame, of which 8 were sampled
        torch.testing.assert_close(prediction.frame_logits[::2], frame_logits, atol=1e-4, rtol=1e-4)
        # Frames between two sampled ones get the mean of their neighbours' logits.
        middle = (prediction.frame_logits[0] + prediction.frame_logits[2]) / 2
        torch.testing.assert_close(prediction.frame_logits[1], middle)
    assert result.detection is not None and len(result.detection.map_per_tiou) == 5
    assert any(line.startswith("detection mAP") for line in result.report_lines())


def test_an_int_image_size_is_the_short_side() -> None:
    assert decode_size(160, height=160, width=210) == (160, 210)
    assert decode_size(32, height=48, width=64) == (32, 42)
    assert decode_size(32, height=64, width=48) == (42, 32)
    assert decode_size((20, 30), height=64, width=48) == (20, 30) and decode_size(None, height=1, width=2) is None


def test_the_dataset_decodes_at_the_short_side_and_applies_the_transform(tiny_manifest: Path) -> None:
    config = load_config(None, [f"data.manifest={tiny_manifest}", "data.image_size=16", "data.num_frames=4"])
    calls: list[tuple[int, ...]] = []

    def transform(frames: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(frames.shape))
        return frames.flip(-1)

    plain = VideoDataset(config.data.dataset_config(split="val", mode="chunk"))
    flipped = VideoDataset(config.data.dataset_config(split="val", mode="chunk", transform=transform))
    sample, transformed = plain[0], flipped[0]
    assert sample["video"].shape[-2:] == (16, 16)  # 32x32 videos, short side 16
    assert calls == [(16, 3, 16, 16)] * 2  # once per view, on the whole chunk's frames
    torch.testing.assert_close(transformed["video"], sample["video"].flip(-1))


def test_training_batches_are_augmented_on_their_device_and_evaluation_never(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(tiny_manifest, tmp_path, "data.augment={enabled: true, views: independent}")
    module = load_module(fit(load_config(None, overrides)).last_checkpoint)  # type: ignore[arg-type]
    dataset = VideoDataset(module.config.data.dataset_config(split="train", mode="clip", views=("front", "left")))
    batch = collate_samples([dataset[0], dataset[1]])

    class _Stage:
        training, global_rank = True, 0

    module._trainer = _Stage()  # type: ignore[assignment]
    video, augmented = batch.video, module.on_after_batch_transfer(batch, 0).video
    assert video is not None and augmented is not None
    assert augmented.dtype == torch.uint8 and augmented.shape == video.shape and not torch.equal(augmented, video)
    _Stage.training = False
    assert module.on_after_batch_transfer(batch, 0) is batch


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache under a temporary TORCH_HOME, with downloads failing as they do offline."""

    def offline(url: str, *_args: Any, **_kwargs: Any) -> None:
        raise URLError(f"offline: {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_kinetics_weights_offline_and_not_cached_are_one_error_line(
    offline_hub: Path, tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "fine_tune.yaml"
    config.write_text("model:\n  backbone: r3d_18\n  pretrained: kinetics400\n")
    overrides = tiny_overrides(tiny_manifest, tmp_path, "model.backbone=r3d_18")
    code = main(["fit", "--config", str(config), *[arg for item in overrides for arg in ("--set", item)]])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith("error: ") and "r3d_18-b3b3357e.pth" in errors[0] and str(offline_hub) in errors[0]


def test_cached_kinetics_weights_start_the_backbone_and_set_the_normalization(
    offline_hub: Path, tiny_manifest: Path, tmp_path: Path
) -> None:
    offline_hub.mkdir(parents=True)
    torch.manual_seed(0)
    state = tv_video.r3d_18(weights=None).state_dict()
    torch.save(state, offline_hub / "r3d_18-b3b3357e.pth")
    extra = ("model.backbone=r3d_18", "model.pretrained=kinetics400", "trainer.max_steps=1", "data.image_size=[32, 32]")
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra))
    _, module = config.task.data_and_module(config, checkpoint=None, load=False)
    backbone = module.model.rgb.backbone.net.state_dict()
    torch.testing.assert_close(backbone["stem.0.weight"], state["stem.0.weight"])
