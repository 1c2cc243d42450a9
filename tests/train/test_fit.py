"""Training end to end on tiny generated videos: model kinds, monitors, accumulation, resume, interrupts."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.train import ConfigError, MemoryMonitor, check_checkpoint, fit, load_config, validate


@pytest.mark.parametrize(
    ("input_type", "fusion"), [("rgb", "late"), ("rgb", "early"), ("kpt", "late"), ("rgb_kpt", "early")]
)
def test_each_input_type_and_fusion_trains(tiny_manifest: Path, tmp_path: Path, input_type: str, fusion: str) -> None:
    extra = [f"model.input_type={input_type}", f"model.view_fusion={fusion}", "train.chunk_infer_size=8"]
    if input_type != "rgb":
        extra += ["data.load_kpt=true", "model.num_keypoints=5", "model.keypoint_dims=2"]
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    assert (result.run_dir / "config.yaml").is_file()
    assert {"train/loss", "train/acc", "train/frame_acc", "val/acc", "val/frame_acc", "val/loss"} <= set(result.metrics)


def test_monitors_log_their_figures(tiny_manifest: Path, tmp_path: Path) -> None:
    result = fit(
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=8", "trainer.max_epochs=4"))
    )
    columns = set(next(csv.DictReader((result.run_dir / "metrics.csv").open())).keys())
    assert {"memory/process_rss_gib", "perf/clips_per_second", "perf/data_fraction"} <= columns
    with pytest.raises(ValueError, match="every_n_steps=0"):
        MemoryMonitor(every_n_steps=0)


def test_accumulation_steps_the_optimizer_every_n_batches(tiny_manifest: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=-1", "train.accumulate_grad_batches=2")
    result = fit(load_config(None, overrides))
    state = torch.load(result.last_checkpoint, weights_only=True)
    batches = 4 // 2  # 4 training videos in batches of 2 (the last one dropped only when incomplete)
    assert state["global_step"] == batches // 2


def test_resume_continues_the_same_run(tiny_manifest: Path, tmp_path: Path) -> None:
    first = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=-1")))
    before = torch.load(first.last_checkpoint, weights_only=True)
    resumed = fit(
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=-1", "trainer.max_epochs=2")),
        resume_from=first.last_checkpoint,
    )
    assert resumed.run_dir == first.run_dir
    after = torch.load(resumed.last_checkpoint, weights_only=True)
    assert after["global_step"] == 2 * before["global_step"] > 0
    adam_steps = [s["step"] for s in after["optimizer_states"][0]["state"].values()]
    assert all(float(step) == after["global_step"] for step in adam_steps)


def test_ctrl_c_saves_a_resumable_checkpoint(tiny_manifest: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Interrupt(L.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            raise KeyboardInterrupt

    from vidfit.train import _run

    original = _run._trainer
    monkeypatch.setattr(_run, "_trainer", lambda config, **kw: _add_callback(original(config, **kw), Interrupt()))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path)))
    assert list(tmp_path.glob("vidfit/version_0/checkpoints/interrupted.ckpt"))
    assert signal.getsignal(signal.SIGINT) is handler


def _add_callback(trainer: L.Trainer, callback: L.Callback) -> L.Trainer:
    trainer.callbacks.append(callback)
    return trainer


def test_checkpoint_of_another_model_or_label_set_is_refused(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, "model.backbone=r3d_18"))
    with pytest.raises(ConfigError, match=r"model\.backbone: checkpoint 'tiny' vs config 'r3d_18'"):
        validate(config, checkpoint=tiny_checkpoint)
    matching = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    with pytest.raises(ConfigError, match=r"trained on labels \['idle', 'left', 'right', 'jump'\]"):
        check_checkpoint(tiny_checkpoint, matching, ["idle", "left"])
    assert set(validate(matching, checkpoint=tiny_checkpoint)) >= {"val/acc", "val/frame_acc"}


class _LayoutProbe(L.Callback):
    """Records, at the first training batch, whether the 3D convolutions' weights are channels_last_3d."""

    def __init__(self) -> None:
        self.channels_last: list[bool] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        if not self.channels_last:
            weights = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv3d)]
            self.channels_last = [w.is_contiguous(memory_format=torch.channels_last_3d) for w in weights]


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_cuda_training_runs_in_mixed_precision_and_channels_last_3d(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    from vidfit.train import _run

    probe, original = _LayoutProbe(), _run._trainer
    monkeypatch.setattr(_run, "_trainer", lambda config, **kw: _add_callback(original(config, **kw), probe))
    extra = ("trainer.accelerator=gpu", "trainer.devices=1", f"trainer.precision={precision}")
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
    assert probe.channels_last and all(probe.channels_last)
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"])) and result.last_checkpoint is not None
