"""Super-resolution training: Y-channel metrics, distillation, a run that beats bicubic, predict, config errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_overrides
from vidfit.apps import predict
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.infer import read_checkpoint
from vidfit.io import probe, write_video
from vidfit.tasks.action import load_module
from vidfit.tasks.action import predict as predict_actions
from vidfit.tasks.super_resolution import SuperResolutionModule, load_teacher
from vidfit.tasks.super_resolution._module import SRMetrics, distillation_loss, rgb_to_luma
from vidfit.tasks.super_resolution._patches import PatchBatch
from vidfit.train import FitResult, fit, validate
from vidfit.train import (
    test as run_test,
)

SR = ["experiment.task=super_resolution", "model.scale=2", "model.espcn_features=[16, 8]", "data.num_frames=3"]


def _waves(seed: int, *, num_frames: int = 8, size: int = 32) -> torch.Tensor:
    """Moving sums of sinusoids below the low-resolution Nyquist frequency, which bicubic blurs and a network
    learns to restore: the same kind of content in every video, so what training learns holds on new ones."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.full((num_frames, size, size, 3), 128.0)
    for _ in range(6):
        frequency, angle, phase = rng.uniform(0.05, 0.2), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        speed, amplitude = rng.uniform(-0.5, 0.5), rng.uniform(10, 25) * rng.uniform(0.5, 1.0, 3)
        for t in range(num_frames):
            wave = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase + speed * t)
            frames[t] += wave[..., None] * amplitude
    return torch.from_numpy(np.clip(np.rint(frames), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def wave_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four training and two validation videos of `_waves`, lossless, 8 frames of 32x32."""
    root = tmp_path_factory.mktemp("waves")
    videos = []
    for index, split in enumerate(["train"] * 4 + ["val"] * 2):
        write_video(root / f"w{index}.mkv", _waves(index), fps=10.0, codec="libx264rgb", crf=0, gop=4)
        videos.append({"id": f"w{index}", "split": split, "views": {"front": f"w{index}.mkv"}})
    path = root / "manifest.yaml"
    path.write_text(yaml.safe_dump({"labels": [], "root": ".", "videos": videos}), encoding="utf-8")
    return path


def _overrides(manifest: Path, output: Path, *extra: str) -> list[str]:
    return tiny_overrides(manifest, output, *SR, "data.patch_size=16", "data.patches_per_chunk=8", *extra)


@pytest.fixture(scope="module")
def sr_run(wave_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> FitResult:
    """An ESPCN (x2, 3 frames) trained for 100 steps of 16 patches."""
    output = tmp_path_factory.mktemp("sr_runs")
    extra = ["data.batch_size=16", "trainer.max_steps=100", "trainer.max_epochs=1000", "train.lr=0.003"]
    extra += ["train.scheduler=none", "trainer.check_val_every_n_epoch=1000", "trainer.log_every_n_steps=50"]
    result = fit(load_config(None, _overrides(wave_manifest, output, *extra)))
    assert result.last_checkpoint is not None
    return result


def test_luma_and_metrics_match_hand_computed_values() -> None:
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert float(rgb_to_luma(red)) == pytest.approx((16 + 65.481) / 255)
    # Grey images: luma is (16 + 219 v) / 255, so PSNR and SSIM follow from the grey levels alone.
    target = torch.full((2, 3, 16, 16), 0.5)
    prediction = torch.cat([torch.full((1, 3, 16, 16), 0.5 + 0.1), torch.full((1, 3, 16, 16), 0.5 - 0.02)])
    metrics = SRMetrics()
    metrics.update(prediction, target)
    scores = metrics.compute()
    psnr = [-20 * math.log10(219 * offset / 255) for offset in (0.1, 0.02)]
    assert scores["psnr"] == pytest.approx(sum(psnr) / 2, abs=1e-3)  # the mean of each image's PSNR
    luma = [(16 + 219 * v) / 255 for v in (0.5, 0.6, 0.48)]
    c1 = 0.01**2  # constant images have no variance: SSIM is its luminance term alone
    ssim = [(2 * luma[0] * y + c1) / (luma[0] ** 2 + y**2 + c1) for y in luma[1:]]
    # float32 variances of constant images are off by ~1e-7, a 1e-4 error next to SSIM's c2 = 0.03**2.
    assert scores["ssim"] == pytest.approx(sum(ssim) / 2, abs=2e-4)
    metrics.reset()
    metrics.update(torch.full((1, 3, 16, 16), 1.5), torch.ones(1, 3, 16, 16))  # clamped to 1 first
    assert metrics.compute()["psnr"] == math.inf


def test_metrics_are_computed_in_fp32_under_mixed_precision() -> None:
    images = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    noisy = (images + 0.05 * torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    plain, mixed = SRMetrics(), SRMetrics()
    plain.update(noisy, images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed.update(noisy, images)
    assert mixed.compute() == pytest.approx(plain.compute(), abs=1e-6)


def test_distillation_loss_matches_a_hand_computation() -> None:
    prediction = torch.tensor([0.0, 0.5, 1.0])
    target = torch.tensor([0.5, 0.5, 0.5])
    teacher = torch.tensor([0.2, 0.4, 1.0])
    truth = (0.25 + 0.0 + 0.25) / 3
    taught = (0.04 + 0.01 + 0.0) / 3
    loss = distillation_loss(prediction, target, teacher, weight=0.25)
    assert float(loss) == pytest.approx(0.75 * truth + 0.25 * taught)
    assert float(distillation_loss(prediction, target, teacher, weight=0.0)) == pytest.approx(truth)
    with pytest.raises(ValueError, match=r"weight=1\.5 must be in \[0, 1\]"):
        distillation_loss(prediction, target, teacher, weight=1.5)


def test_short_training_beats_bicubic_on_held_out_videos(sr_run: FitResult, wave_manifest: Path) -> None:
    config = load_config(None, _overrides(wave_manifest, sr_run.run_dir, "trainer.limit_val_batches=1.0"))
    scores = validate(config, checkpoint=sr_run.last_checkpoint)
    assert scores["val/psnr"] > scores["val/bicubic_psnr"] + 0.5  # 1.5 dB measured; bicubic is where it starts
    assert scores["val/ssim"] > scores["val/bicubic_ssim"]
    with pytest.raises(ConfigError, match=r"test_split='test' has no videos"):
        run_test(config, checkpoint=sr_run.last_checkpoint)


def test_predict_streams_the_whole_video_at_twice_the_size(sr_run: FitResult, tmp_path: Path) -> None:
    source = write_video(tmp_path / "clip.mp4", _waves(9, num_frames=7, size=24), fps=12.0)
    code = main(["predict", "--checkpoint", str(sr_run.last_checkpoint), str(source), "--out", str(tmp_path / "x.mp4")])
    meta = probe(tmp_path / "x.mp4")
    assert code == 0 and (meta.codec, meta.width, meta.height, meta.num_frames) == ("h264", 48, 48, 7)
    assert meta.fps == pytest.approx(12.0)
    beside = predict(sr_run.last_checkpoint, [source], progress=False)
    assert beside.outputs[str(source)].path == tmp_path / "clip_x2.mp4" and beside.failures == {}
    with pytest.raises(ConfigError, match=r"experiment\.task 'super_resolution'; predict it with vidfit\.predict"):
        predict_actions(read_checkpoint(sr_run.last_checkpoint), [source], progress=False)


def test_distillation_trains_a_smaller_student_from_a_frozen_teacher(
    sr_run: FitResult, wave_manifest: Path, tmp_path: Path
) -> None:
    config = load_config(
        None,
        _overrides(
            wave_manifest, tmp_path, f"train.teacher={sr_run.last_checkpoint}", "model.espcn_features=[8, 4]",
            "train.distill_weight=0.5",
        ),
    )  # fmt: skip
    teacher = load_teacher(sr_run.last_checkpoint, config=config)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    module = SuperResolutionModule(config=config.to_dict())
    module.set_teacher(teacher)
    batch = PatchBatch(
        lr=torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8),
        hr=torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8),
    )
    with torch.no_grad():
        student, taught = module(batch.lr), teacher(batch.lr).clamp(0, 1)
    expected = 0.5 * ((student - batch.hr / 255) ** 2).mean() + 0.5 * ((student - taught) ** 2).mean()
    torch.testing.assert_close(module._loss(batch), expected)
    assert not any("teacher" in key for key in module.state_dict())  # never trained nor saved
    result = fit(config)
    saved = torch.load(result.last_checkpoint, weights_only=True)
    assert saved["state_dict"]["model.body.0.weight"].shape[0] == 8
    assert all(key.startswith(("model.", "metrics.")) for key in saved["state_dict"])


def test_accumulation_schedule_and_early_stopping_run_as_for_action(wave_manifest: Path, tmp_path: Path) -> None:
    extra = ["trainer.max_steps=-1", "trainer.max_epochs=2", "train.accumulate_grad_batches=2", "data.batch_size=4"]
    extra += ["train.scheduler=multistep", "train.milestones=[1]", "train.gamma=0.5", "train.early_stopping_patience=3"]
    result = fit(load_config(None, _overrides(wave_manifest, tmp_path, *extra)))
    state = torch.load(result.last_checkpoint, weights_only=True)
    assert state["global_step"] == 2 * (4 * 8 // 4) // 2  # 4 videos x 8 patches in batches of 4, 2 per step
    assert state["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.001 * 0.5)
    assert {"val/psnr", "val/ssim", "val/bicubic_psnr", "val/loss", "train/loss"} <= set(result.metrics)
    with (result.run_dir / "metrics.csv").open() as file:
        psnr = [float(row["val/psnr"]) for row in csv.DictReader(file) if row.get("val/psnr")]
    assert len(psnr) == 2 and result.best_score == pytest.approx(max(psnr))  # the checkpoint keeps the highest
    extra[1] = "trainer.max_epochs=3"
    resumed = fit(load_config(None, _overrides(wave_manifest, tmp_path, *extra)), resume_from=result.last_checkpoint)
    assert resumed.run_dir == result.run_dir
    assert torch.load(resumed.last_checkpoint, weights_only=True)["global_step"] == 3 * 8 // 2


def test_patches_come_from_any_manifest_here_two_view_action_videos(tiny_manifest: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(tiny_manifest, tmp_path, *SR, "data.patch_size=16", "data.patches_per_chunk=1")
    result = fit(load_config(None, overrides))
    assert {"val/psnr", "val/ssim", "train/loss"} <= set(result.metrics)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["model.scale=5"], r"model\.scale=5 is not one of 2, 3, 4"),
        (["data.num_frames=4"], r"data\.num_frames=4 must be odd for experiment\.task: super_resolution"),
        (["data.patch_size=17"], r"data\.patch_size=17 must be a multiple of model\.scale=2 and >= 16"),
        (["train.distill_weight=1.5"], r"train\.distill_weight=1\.5 must be in \[0, 1\]"),
        (["train.monitor=val/acc"], r"train\.monitor='val/acc' is not one of 'val/psnr', 'val/ssim', 'val/loss'"),
        (
            ["experiment.task=action", "train.teacher=t.ckpt"],
            r"train\.teacher needs experiment\.task: super_resolution",
        ),
        (
            ["experiment.task=segmentation"],
            r"experiment\.task='segmentation' is not one of 'action', 'super_resolution'",
        ),
    ],
)
def test_bad_configs_name_the_key(wave_manifest: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, _overrides(wave_manifest, tmp_path, *extra))


def test_teachers_and_checkpoints_of_another_task_or_shape_are_refused(
    sr_run: FitResult, tiny_checkpoint: Path, wave_manifest: Path, tmp_path: Path
) -> None:
    config = load_config(None, _overrides(wave_manifest, tmp_path))
    with pytest.raises(ConfigError, match=r"train\.teacher='.*' is a checkpoint of experiment\.task 'action'"):
        load_teacher(tiny_checkpoint, config=config)
    with pytest.raises(ConfigError, match=r"train\.teacher='.*nope\.ckpt': no such checkpoint"):
        fit(load_config(None, _overrides(wave_manifest, tmp_path, f"train.teacher={tmp_path / 'nope.ckpt'}")))
    x4 = load_config(None, _overrides(wave_manifest, tmp_path, "model.scale=4"))
    with pytest.raises(ConfigError, match=r"upscales by 2 from 3 frames, but the config by model\.scale=4"):
        load_teacher(sr_run.last_checkpoint, config=x4)
    with pytest.raises(ConfigError, match=r"model\.scale: checkpoint 2 vs config 4"):
        validate(x4, checkpoint=sr_run.last_checkpoint)
    with pytest.raises(ConfigError, match=r"checkpoint='.*' is a checkpoint of experiment\.task 'action'"):
        validate(config, checkpoint=tiny_checkpoint)
    with pytest.raises(ConfigError, match=r"a checkpoint of experiment\.task 'super_resolution'"):
        load_module(sr_run.last_checkpoint)
