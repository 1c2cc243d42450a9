"""`vidfit plan` and auto-fit: grids, estimates against a budget, verdicts, advice, the batch auto-fit picks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import MakeVideo, tiny_overrides
from vidfit.cli import main
from vidfit.config import ConfigError, load_config
from vidfit.memory._step import cuda_mixed_precision
from vidfit.tasks.action._plan_step import PlanInputs, PlanStep
from vidfit.train import choose_batch_size, fit, plan_memory
from vidfit.train._autofit import AutoFitResult, describe_fit, indivisible_note
from vidfit.train._plan_grid import PlanGrid, parse_grid

MiB = 2**20


def test_grid_text_is_parsed_and_bad_values_are_named_by_their_option() -> None:
    grid = parse_grid(frames="30,40", batch="8, 12", precision="32,bf16,16", checkpointing="off,on")
    assert (grid.frames, grid.batch) == ([30, 40], [8, 12])
    assert (grid.precision, grid.checkpointing) == (["32", "bf16-mixed", "16-mixed"], [False, True])
    assert parse_grid() == PlanGrid()
    with pytest.raises(ValueError, match="--frames: 'x' is not a whole number"):
        parse_grid(frames="16,x")
    with pytest.raises(ValueError, match="--precision: 'fp8' is not one of"):
        parse_grid(precision="fp8")
    with pytest.raises(ValueError, match="--checkpointing: 'maybe' is not one of 'off', 'on'"):
        parse_grid(checkpointing="maybe")
    with pytest.raises(ValueError, match="--batch '8,,16' must be a comma-separated list"):
        parse_grid(batch="8,,16")


def test_estimated_plan_grows_with_frames_and_batch_and_recommends_the_largest_safe(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    loose = plan_memory(config, budget="1TiB", frames=[4, 8], batch=[1, 2], precision=["32"], measure=False)
    peaks = {(row.num_frames, row.batch_size): row.peak_bytes for row in loose.rows}
    assert not loose.measured and all(row.verdict == "safe" and row.advice is None for row in loose.rows)
    assert peaks[(4, 1)] < peaks[(4, 2)] < peaks[(8, 2)] and peaks[(4, 1)] < peaks[(8, 1)] < peaks[(8, 2)]
    assert loose.recommendation is not None and loose.recommendation.batch_size * loose.recommendation.num_frames == 16
    budget = (peaks[(4, 2)] + peaks[(8, 2)]) // 2  # 4x2 safe or tight, 8x2 over
    middle = plan_memory(config, budget=budget, frames=[4, 8], batch=[2], precision=["32"], measure=False)
    fits, over = middle.rows
    assert over.verdict == "oom" and middle.advice is None and fits.advice is None
    # Every row over the budget says what to change, not only when all are.
    assert over.advice == (
        "lower data.batch_size (2), data.num_frames (8) or data.image_size (32x32), "
        "set model.activation_checkpointing: true, or train in trainer.precision: bf16-mixed (or 16-mixed)"
    )
    assert f"- 8 frames x 2, 32, checkpointing off: {over.advice}" in middle.table()
    starved = plan_memory(config, budget=1024, precision=["32"], checkpointing=[False], measure=False)
    assert starved.recommendation is None
    assert starved.advice is not None and "model.activation_checkpointing: true" in starved.advice


def test_a_fixed_shape_backbone_is_not_advised_other_clip_sizes(tmp_path: Path) -> None:
    extra = ["model.backbone=mvit_v2_s", "data.num_frames=16", "data.image_size=[224,224]", "train.chunk_infer_size=16"]
    config = load_config(None, [f"data.manifest={tmp_path / 'unused.yaml'}", *extra])
    inputs = PlanInputs(views=("front",), num_classes=2, image_size=(224, 224), image_size_source="data.image_size")
    advice = PlanStep(config=config, inputs=inputs).advice(
        num_frames=16, batch_size=4, precision="bf16-mixed", checkpointing=False
    )
    assert advice == "lower data.batch_size (4), or set model.activation_checkpointing: true"


def test_precision_auto_is_the_gpus_mixed_precision(tiny_manifest: Path, tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.precision=auto"))
    plan = plan_memory(config, budget="1GiB", measure=False)
    assert [row.precision for row in plan.rows] == [cuda_mixed_precision()]


def test_plan_command_prints_the_estimate_and_writes_json_and_chart(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{manifest: {tiny_manifest}, image_size: [24, 40]}}\nmodel: {{backbone: tiny}}\n")
    out = tmp_path / "plan" / "plan.json"
    code = main(
        ["plan", "--config", str(config), "--budget", "1GiB", "--frames", "4,8", "--batch", "2", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ESTIMATED" in printed and "| 8 | 2 |" in printed and "recommended: data.num_frames=8" in printed
    assert "clips of num_frames x 24x40" in printed and "Frames of 24x40: data.image_size." in printed
    document = json.loads(out.read_text())
    assert len(document["rows"]) == 2 and document["image_size"] == [24, 40]
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "16"], "--budget '16' has no unit: write e.g. '16GiB'"),
        (["--budget", "lots"], "--budget 'lots' is not"),
        (["--budget", "1GiB", "--batch", "0"], "--batch: 0 is not >= 1"),
        (["--budget", "1GiB", "--precision", "fp8"], "--precision: 'fp8' is not one of"),
    ],
)
def test_plan_command_errors_name_the_option(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{manifest: {tiny_manifest}, image_size: [24, 40]}}\nmodel: {{backbone: tiny}}\n")
    assert main(["plan", "--config", str(config), *argv, "--out", str(tmp_path / "plan.json")]) == 2
    assert message in capsys.readouterr().err


def test_without_image_size_the_plan_takes_the_first_training_videos_native_size(
    make_video: MakeVideo, tmp_path: Path
) -> None:
    val, _ = make_video("val.mkv", num_frames=4, height=16, width=16)
    train, _ = make_video("train.mkv", num_frames=4, height=24, width=40)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        "labels: [a, b]\nvideos:\n"
        f"  - {{id: v0, split: val, label: a, views: {{front: {val.name}}}}}\n"
        f"  - {{id: v1, split: train, label: b, views: {{front: {train.name}}}}}\n"
    )
    config = load_config(None, [f"data.manifest={manifest}", "model.backbone=tiny", "data.num_frames=4"])
    plan = plan_memory(config, budget="1GiB", batch=[1], measure=False)
    assert plan.image_size == (24, 40) and str(train) in plan.image_size_source
    assert "Frames of 24x40: the native size of the first training video" in plan.table()
    sized = plan_memory(config, budget="1GiB", batch=[1], measure=False, num_views=1, num_classes=2)
    assert sized.rows[0].peak_bytes == plan.rows[0].peak_bytes


def test_an_unreadable_manifest_names_the_config_keys_not_python_arguments(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    config = load_config(None, [f"data.manifest={missing}", "model.backbone=tiny"])
    with pytest.raises(
        ValueError, match=r"cannot read the manifest .* native frame size .*data\.image_size is unset"
    ) as info:
        plan_memory(config, budget="1GiB", measure=False)
    assert "num_views" not in str(info.value) and "plan_memory" not in str(info.value)


def _fake_peaks(monkeypatch: pytest.MonkeyPatch, bytes_per_clip: int, *, method: str = "estimate") -> list[int]:
    asked: list[int] = []

    def peak(self: PlanStep, *, batch_size: int, **kwargs: object) -> int | tuple[int, float]:
        asked.append(batch_size)
        return batch_size * bytes_per_clip if method == "estimate" else (batch_size * bytes_per_clip, 1.0)

    monkeypatch.setattr(PlanStep, method, peak)
    return asked


def test_auto_fit_keeps_the_effective_batch_with_the_largest_dividing_micro_batch(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_peaks(monkeypatch, 100 * MiB)
    extra = ("data.batch_size=auto", "train.memory_budget=1GiB", "train.effective_batch_size=12")
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra))
    fit = choose_batch_size(config, views=("front", "left"), num_classes=4, precision="32", measure=False)
    # 1 GiB less 10% holds 9 clips of 100 MiB; the largest divisor of 12 up to 9 is 6.
    assert (fit.largest_fitting, fit.batch_size, fit.accumulate_grad_batches) == (9, 6, 2)
    assert asked[:4] == [1, 2, 4, 8] and fit.peak_bytes == 900 * MiB and not fit.measured
    agreed = choose_batch_size(
        config, views=("front", "left"), num_classes=4, precision="32", measure=False, agree=lambda v: min(v, 5)
    )
    assert (agreed.largest_fitting, agreed.batch_size, agreed.accumulate_grad_batches) == (5, 4, 3)
    _fake_peaks(monkeypatch, 2**31)
    with pytest.raises(ConfigError, match=r"not even one clip of 4 frames fits .* it needs 2\.00 GiB; lower"):
        choose_batch_size(config, views=("front",), num_classes=4, precision="32", measure=False)


def test_auto_fit_log_says_the_effective_batch_is_per_rank() -> None:
    result = AutoFitResult(
        batch_size=6,
        accumulate_grad_batches=2,
        effective_batch_size=12,
        largest_fitting=9,
        peak_bytes=900 * MiB,
        limit_bytes=2**30,
        measured=True,
    )
    assert "= 12 clips per optimizer step; the largest batch that fits is 9 (measured" in describe_fit(
        result, world_size=1
    )
    assert "= 12 clips per optimizer step per rank; 48 clips per optimizer step across 4 ranks;" in describe_fit(
        result, world_size=4
    )


def test_a_prime_effective_batch_trains_in_single_clips_and_says_so(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_peaks(monkeypatch, 100 * MiB)
    extra = ("data.batch_size=auto", "train.memory_budget=1GiB", "train.effective_batch_size=13")
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra))
    fit = choose_batch_size(config, views=("front",), num_classes=4, precision="32", measure=False)
    assert (fit.largest_fitting, fit.batch_size, fit.accumulate_grad_batches) == (9, 1, 13)
    assert indivisible_note(fit) == (
        "auto-fit: train.effective_batch_size=13 has no divisor from 2 to 9 (the largest batch that fits), so each "
        "optimizer step accumulates 13 x 1 clip; a multiple of 9, e.g. 9 or 18, would train in micro-batches of 9"
    )


def test_a_measured_budget_above_the_gpu_is_refused(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_peaks(monkeypatch, 100 * MiB, method="measure")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 512 * MiB))
    extra = ("data.batch_size=auto", "train.memory_budget=1GiB", "train.effective_batch_size=4")
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra))
    message = r"train\.memory_budget='1GiB' \(1\.00 GiB\) is above the total memory of cuda, 512\.00 MiB"
    with pytest.raises(ConfigError, match=message):
        choose_batch_size(config, views=("front",), num_classes=4, precision="32", measure=True)
    assert asked == []


def test_fit_with_batch_size_auto_trains_in_accumulated_micro_batches(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_peaks(monkeypatch, 300 * MiB)
    extra = (
        "data.batch_size=auto", "train.memory_budget=1GiB", "train.effective_batch_size=4", "trainer.max_steps=-1",
    )  # fmt: skip
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *extra)))
    assert result.last_checkpoint is not None
    # Four training clips, micro-batches of 2 (3 fit, 2 divides 4): one optimizer step of two batches.
    assert torch.load(result.last_checkpoint, weights_only=True)["global_step"] == 1


def test_auto_fit_settings_are_checked(tiny_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.batch_size: auto needs train\.memory_budget"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "data.batch_size=auto"))
    with pytest.raises(ConfigError, match=r"train\.memory_budget=.lots. is not a memory size"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "train.memory_budget=lots"))
    with pytest.raises(ConfigError, match=r"train.memory_margin=1.5 must be in \[0, 1\)"):
        load_config(None, tiny_overrides(tiny_manifest, tmp_path, "train.memory_margin=1.5"))
