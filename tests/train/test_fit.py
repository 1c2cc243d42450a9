"""Training end to end on tiny generated videos: model kinds, monitors, accumulation, resume, interrupts."""

from __future__ import annotations

import csv
import logging
import signal
import types
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.config import ConfigError, config_from_dict, load_config
from vidfit.infer import read_checkpoint
from vidfit.tasks.action import VideoClassificationModule, check_checkpoint, load_module
from vidfit.train import fit, validate
from vidfit.train._callbacks import MemoryMonitor


@pytest.mark.parametrize(
    ("input_type", "fusion"),
    [("rgb", "late"), ("rgb", "early"), ("kpt", "late"), ("kpt", "early"), ("rgb_kpt", "early"), ("rgb_kpt", "late")],
)
def test_each_input_type_and_fusion_trains(tiny_manifest: Path, tmp_path: Path, input_type: str, fusion: str) -> None:
    extra = [f"model.input_type={input_type}", f"model.view_fusion={fusion}", "train.chunk_infer_size=8"]
    if input_type != "rgb":
        extra += ["data.load_kpt=true", "model.num_keypoints=5", "model.keypoint_dims=2"]
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    assert (result.run_dir / "config.yaml").is_file()
    assert {"train/loss", "train/acc", "train/frame_acc", "val/acc", "val/frame_acc", "val/loss"} <= set(result.metrics)


def test_monitors_log_their_figures(tiny_manifest: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = fit(
            load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=8", "trainer.max_epochs=4"))
        )
    box = next(record.getMessage() for record in caplog.records if "Memory use" in record.getMessage())
    assert box.startswith("╔") and box.endswith("╝") and "Process RSS:" in box
    columns = set(next(csv.DictReader((result.run_dir / "metrics.csv").open())).keys())
    perf = {"perf/clips_per_second", "perf/data_fraction", "perf/data_time", "perf/batch_time"}
    assert {"memory/process_rss_gib", *perf} <= columns
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
    # The cosine of the first run (one epoch) ended at zero; the added epoch follows a two-epoch cosine instead.
    rates = [row for row in csv.DictReader((first.run_dir / "metrics.csv").open()) if row.get("lr-AdamW")]
    lr = load_config(None, tiny_overrides(tiny_manifest, tmp_path)).train.lr
    assert [float(row["lr-AdamW"]) for row in rates] == pytest.approx([lr, lr / 2])


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
    interrupted = tmp_path / "vidfit/version_0/checkpoints/interrupted.ckpt"
    assert interrupted.is_file()
    assert signal.getsignal(signal.SIGINT) is handler
    monkeypatch.undo()
    resumed = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path)), resume_from=interrupted)
    assert torch.load(resumed.last_checkpoint, weights_only=True)["global_step"] == 2


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
        check_checkpoint(tiny_checkpoint, config=matching, label_names=["idle", "left"], views=["front"])
    assert set(validate(matching, checkpoint=tiny_checkpoint)) >= {"val/acc", "val/frame_acc"}


def test_samples_longer_than_chunk_infer_size_are_validated_window_by_window(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidfit.infer import ChunkedPredictor

    windows: list[list[tuple[int, int]]] = []
    predict_readers = ChunkedPredictor.predict_readers

    def spy(self: ChunkedPredictor, readers: Any, **kwargs: Any) -> Any:
        prediction = predict_readers(self, readers, **kwargs)
        windows.append([(w.start, w.stop) for w in prediction.windows])
        return prediction

    monkeypatch.setattr(ChunkedPredictor, "predict_readers", spy)
    extra = ("train.chunk_infer_size=8", "train.chunk_overlap=2")
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
    # Validation streams each whole 16-frame video as predict does: windows of 8 frames overlapping by 2.
    assert windows and all(w == [(0, 8), (6, 14), (12, 16)] for w in windows)
    assert {"val/acc", "val/frame_acc", "val/loss"} <= set(result.metrics)


def test_last_checkpoint_is_the_end_of_every_epoch_and_of_training(tiny_manifest: Path, tmp_path: Path) -> None:
    # Validation accuracy need not improve after the first epoch; last.ckpt must follow anyway.
    for max_steps, (epoch, step) in ((-1, (2, 6)), (3, (1, 3))):
        extra = (f"trainer.max_steps={max_steps}", "trainer.max_epochs=3", f"experiment.name=steps{max_steps}")
        result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
        assert result.last_checkpoint == result.run_dir / "checkpoints" / "last.ckpt"
        state = torch.load(result.last_checkpoint, weights_only=True)
        assert (state["epoch"], state["global_step"]) == (epoch, step)


def test_loading_a_checkpoint_does_not_read_the_pretrained_weights(tiny_manifest: Path, tmp_path: Path) -> None:
    from vidfit.models import build_backbone

    weights = tmp_path / "tiny.pt"
    torch.save(build_backbone(name="tiny").net.state_dict(), weights)
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, f"model.pretrained_path={weights}"))
    result = fit(config)
    weights.unlink()
    assert load_module(result.last_checkpoint).config.model.pretrained_path == str(weights)
    assert set(validate(config, checkpoint=result.last_checkpoint)) >= {"val/acc"}
    resumed = fit(config, resume_from=result.last_checkpoint)
    assert resumed.run_dir == result.run_dir


def test_checkpoint_views_and_task_are_checked(tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    labels = read_checkpoint(tiny_checkpoint, weights=False).hyper_parameters["label_names"]
    views = read_checkpoint(tiny_checkpoint, weights=False).hyper_parameters["views"]
    with pytest.raises(ConfigError, match=rf"trained on views \[{views[0]!r}, {views[1]!r}\] \(in this order\), but"):
        check_checkpoint(tiny_checkpoint, config=config, label_names=labels, views=views[::-1])
    sr = tmp_path / "sr.ckpt"
    torch.save({"hyper_parameters": {"config": {"experiment": {"task": "super_resolution"}}}}, sr)
    with pytest.raises(ConfigError, match=r"experiment\.task 'super_resolution', but the config's .* is 'action'"):
        check_checkpoint(sr, config=config, label_names=labels, views=views)
    # Neither changes the weights: a checkpoint trained without them is the same model.
    extra = ("model.dropout=0.2", "model.activation_checkpointing=true")
    free = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra))
    check_checkpoint(tiny_checkpoint, config=free, label_names=labels, views=views)


def test_auto_batch_runs_evaluate_and_save_the_chosen_batch(tiny_manifest: Path, tmp_path: Path) -> None:
    auto = ("data.batch_size=auto", "train.memory_budget=8GiB", "train.effective_batch_size=2")
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *auto))
    result = fit(config)
    saved = load_config(result.run_dir / "config.yaml")
    assert (saved.data.batch_size, saved.train.accumulate_grad_batches) == (2, 1)
    for evaluated in (config, saved):
        assert set(validate(evaluated, checkpoint=result.last_checkpoint)) >= {"val/acc"}


def test_throughput_warning_names_the_fixes_that_apply_and_leaves_out_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidfit.train import _callbacks
    from vidfit.train._callbacks import ThroughputReport

    clock = [0.0]
    monkeypatch.setattr(_callbacks, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monitor = ThroughputReport(num_workers=0, decode_backend="pyav", every_n_steps=2, warmup_steps=0)
    trainer, module, batch = L.Trainer(logger=False), L.LightningModule(), {"video": torch.zeros(2, 1)}
    logged: list[dict[str, float]] = []
    module.log_dict = lambda figures, **_: logged.append(figures)  # type: ignore[method-assign]

    def step(data_seconds: float) -> None:
        clock[0] += data_seconds
        monitor.on_train_batch_start(trainer, module, batch, 0)
        clock[0] += 0.1
        monitor.on_train_batch_end(trainer, module, None, batch, 0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor.on_train_epoch_start(trainer, module)
        step(0.01)
        clock[0] += 5.0  # a validation in the middle of the epoch
        monitor.on_validation_end(trainer, module)
        step(0.01)
        step(0.01)
    assert not [w for w in caught if "waiting for data" in str(w.message)]
    with pytest.warns(UserWarning, match=r"raise data\.num_workers=0 \(there are \d+ CPUs\); transcode") as slow:
        step(0.5)
        step(0.5)
    assert "nvdec" not in str(next(w for w in slow if "waiting for data" in str(w.message)).message)
    # Seconds a step over the last window: 0.5 s waiting for data, 0.6 s in all.
    assert logged[-1]["perf/data_time"] == pytest.approx(0.5) and logged[-1]["perf/batch_time"] == pytest.approx(0.6)


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


def test_evaluation_pads_a_short_tail_window_to_what_the_backbone_takes() -> None:
    settings = {
        "model": {"backbone": "s3d"},
        "data": {"manifest": "unused.yaml", "num_frames": 8, "image_size": [32, 32]},
        "train": {"chunk_infer_size": 12},
    }
    config = config_from_dict(settings, source="test")
    module = VideoClassificationModule(config=config.to_dict(), label_names=["a", "b"], views=["front"]).eval()
    predictor = module.chunked_predictor(device=torch.device("cpu"))
    assert predictor.min_window_frames == 8  # s3d refuses fewer frames
    video = torch.randint(0, 256, (1, 3, 16, 32, 32), dtype=torch.uint8)
    prediction = predictor.predict_tensor(video)  # windows of 12 and 4 frames; the 4 run as 8
    assert [(w.start, w.stop) for w in prediction.windows] == [(0, 12), (12, 16)]
    assert prediction.frame_logits.shape == (16, 2)


def test_a_checkpoint_from_before_newer_model_keys_is_the_same_model(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    # A checkpoint written before `model.multi_label`, `thresholds`, ... existed holds none of them: the
    # loader gives them their defaults, so the model still matches a config that leaves them out.
    state = torch.load(tiny_checkpoint, weights_only=True)
    model = state["hyper_parameters"]["config"]["model"]
    newer = [key for key in ("multi_label", "thresholds", "freeze", "lora") if key in model]
    assert newer, "the checkpoint should hold the newer keys this test removes"
    for key in newer:
        del model[key]
    older = tmp_path / "older.ckpt"
    torch.save(state, older)
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    labels, views = state["hyper_parameters"]["label_names"], state["hyper_parameters"]["views"]
    check_checkpoint(older, config=config, label_names=labels, views=views)
    with pytest.raises(ConfigError, match=r"model\.multi_label: checkpoint False vs config True"):
        multi = load_config(None, tiny_overrides(tiny_manifest, tmp_path, "model.multi_label=true"))
        check_checkpoint(older, config=multi, label_names=labels, views=views)
