"""Fine-tuning a Hugging Face video transformer: full, frozen, LoRA and token drop; resume, predict, plan, OOM."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from tests.hf_models import hf_models
from vidfit.apps import predict
from vidfit.cli import main
from vidfit.config import load_config
from vidfit.data import load_manifest
from vidfit.models import VideoClassifier
from vidfit.train import choose_batch_size, fit, plan_memory

transformers = pytest.importorskip("transformers")
__all__ = ["hf_models"]

MODES = {
    "full": (),
    "frozen": ("model.freeze=first:1",),
    "lora": ("model.lora={rank: 4}",),
    "token_drop": ("train.token_drop=0.5",),
}
# The first block's query weights: trained in full fine-tuning and with token drop, left as they are otherwise.
_FIRST_QUERY = {
    "videomae": "encoder.layer.0.attention.attention.query.weight",
    "timesformer": "encoder.layer.0.attention.attention.qkv.weight",
}


def _overrides(manifest: Path, out: Path, folder: Path, *extra: str) -> list[str]:
    backbone = (f"model.backbone=hf:{folder}", "data.image_size=[32,32]", "train.chunk_infer_size=4", "train.lr=0.01")
    return tiny_overrides(manifest, out, *backbone, *extra)


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    prefix = "model.rgb.backbone.net."
    return {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["videomae", "timesformer"])
@pytest.mark.parametrize("mode", list(MODES))
def test_each_way_of_fine_tuning_trains_what_it_should_resumes_and_predicts(
    hf_models: dict[str, Path],
    tiny_manifest: Path,
    tmp_path: Path,
    family: str,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = hf_models[family]
    overrides = _overrides(tiny_manifest, tmp_path, folder, *MODES[mode], "trainer.max_steps=-1")
    with caplog.at_level(logging.INFO, logger="vidfit"):
        first = fit(load_config(None, overrides))
    assert first.last_checkpoint is not None
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("trainable param")]
    assert len(lines) == 1
    trainable, total = (int(part.replace(",", "")) for part in lines[0].split(": ")[1].split(" (")[0].split(" of "))
    assert (trainable == total) == (mode in ("full", "token_drop"))
    base = transformers.AutoModel.from_pretrained(folder).state_dict()[_FIRST_QUERY[family]]
    saved = _weights(first.last_checkpoint)
    if mode == "lora":  # the checkpoint holds the adapters and no base weights
        assert saved and all(".lora_" in key for key in saved)
    else:
        assert torch.equal(saved[_FIRST_QUERY[family]], base) == (mode == "frozen")
    steps = torch.load(first.last_checkpoint, weights_only=True)["global_step"]
    resumed = fit(load_config(None, [*overrides, "trainer.max_epochs=2"]), resume_from=first.last_checkpoint)
    assert resumed.last_checkpoint is not None and resumed.run_dir == first.run_dir
    assert torch.load(resumed.last_checkpoint, weights_only=True)["global_step"] == 2 * steps > 0
    merged: list[bool] = []
    merge = VideoClassifier.merge_lora

    def recording(self: VideoClassifier) -> None:
        merge(self)
        merged.append(not any(".lora_" in name for name, _ in self.named_parameters()))

    monkeypatch.setattr(VideoClassifier, "merge_lora", recording)
    result = predict(resumed.last_checkpoint, [tiny_manifest], out=tmp_path / "p.json", split="val", progress=False)
    val = [video.id for video in load_manifest(tiny_manifest).videos if video.split == "val"]
    assert result.failures == {} and sorted(result.predictions) == val
    assert merged == [True]  # predict runs the merged model (adapters folded in, none left)


def test_an_out_of_memory_batch_of_an_hf_backbone_is_redone_in_micro_batches(
    hf_models: dict[str, Path], tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward = VideoClassifier.forward

    def small_memory(self: VideoClassifier, video: torch.Tensor | None, *args: object, **kwargs: object) -> object:
        if self.training and video is not None and len(video) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(self, video, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(VideoClassifier, "forward", small_memory)
    extra = ("model.lora={rank: 4}", "train.token_drop=0.5", "trainer.max_steps=1", "trainer.limit_val_batches=0")
    with pytest.warns(UserWarning, match="as 2 micro-batches"):
        result = fit(load_config(None, _overrides(tiny_manifest, tmp_path, hf_models["videomae"], *extra)))
    assert result.last_checkpoint is not None
    assert torch.load(result.last_checkpoint, weights_only=True)["vidfit_micro_batches"] == 2


def test_auto_fit_estimates_an_hf_backbone_and_fits_the_effective_batch(
    hf_models: dict[str, Path], tiny_manifest: Path, tmp_path: Path
) -> None:
    auto = ("data.batch_size=auto", "train.memory_budget=1GiB", "train.effective_batch_size=4")
    config = load_config(None, _overrides(tiny_manifest, tmp_path, hf_models["vjepa2"], "model.lora={rank: 4}", *auto))
    chosen = choose_batch_size(config, views=("front", "left"), num_classes=2, precision="32", measure=False)
    assert (chosen.batch_size, chosen.accumulate_grad_batches) == (4, 1) and not chosen.measured
    assert chosen.peak_bytes is not None and 0 < chosen.peak_bytes < 2**30


@pytest.mark.slow
def test_the_plan_has_rows_for_each_way_of_fine_tuning(
    hf_models: dict[str, Path], tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(None, _overrides(tiny_manifest, tmp_path, hf_models["videomae"]))
    variants = [MODES["frozen"], MODES["lora"], MODES["token_drop"], (*MODES["lora"], *MODES["token_drop"])]
    plan = plan_memory(
        config, budget="16GiB", batch=[2], precision=["bf16-mixed"], checkpointing=[False, True], variants=variants,
        measure=False,
    )  # fmt: skip
    peaks = {(row.variant, row.activation_checkpointing): row.peak_bytes or 0 for row in plan.rows}
    assert len(plan.rows) == 10 and all(row.verdict == "safe" for row in plan.rows)
    full = peaks[("", False)]
    for variant in ("model.freeze=first:1", "model.lora={rank: 4}", "train.token_drop=0.5"):
        assert peaks[(variant, False)] < full
    assert peaks[("model.lora={rank: 4} + train.token_drop=0.5", False)] < peaks[("model.lora={rank: 4}", False)]
    assert peaks[("", True)] < full
    table = plan.table()
    assert "| variant | num_frames |" in table and "| model.lora={rank: 4} + train.token_drop=0.5 | 4 | 2 |" in table
    config_path = tmp_path / "config.yaml"
    config_path.write_text("{}")
    options = _overrides(tiny_manifest, tmp_path, hf_models["timesformer"])
    overrides = [item for option in options for item in ("--set", option)]
    code = main([
        "plan", "--config", str(config_path), "--budget", "16GiB", "--batch", "1", "--precision", "16-mixed",
        "--vary", "model.lora={rank: 4} + train.token_drop=0.5", "--out", str(tmp_path / "plan.json"), *overrides,
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "| as configured | 4 | 1 | 16-mixed | off |" in printed
    assert "| model.lora={rank: 4} + train.token_drop=0.5 | 4 | 1 | 16-mixed | off |" in printed
