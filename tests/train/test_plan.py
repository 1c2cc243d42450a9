"""`vidfit plan` and auto-fit: grids, estimates against a budget, verdicts, advice, the batch auto-fit picks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_overrides
from vidfit.cli import main
from vidfit.train import ConfigError, choose_batch_size, fit, load_config, parse_grid, plan_memory
from vidfit.train._plan_step import PlanStep

MiB = 2**20


def test_grid_text_is_parsed_and_bad_values_are_named() -> None:
    grid = parse_grid("30,40", "8, 12", "32,bf16,16", "off,on")
    assert (grid.frames, grid.batches) == ([30, 40], [8, 12])
    assert (grid.precisions, grid.checkpointing) == (["32", "bf16-mixed", "16-mixed"], [False, True])
    assert parse_grid() == parse_grid(None, None, None, None)
    with pytest.raises(ValueError, match="frames: 'x' is not a whole number"):
        parse_grid(frames="16,x")
    with pytest.raises(ValueError, match="precisions: 'fp8' is not one of"):
        parse_grid(precisions="fp8")
    with pytest.raises(ValueError, match="checkpointing: 'maybe' is not one of 'off', 'on'"):
        parse_grid(checkpointing="maybe")
    with pytest.raises(ValueError, match="must be a comma-separated list"):
        parse_grid(batches="8,,16")


def test_estimated_plan_grows_with_frames_and_batch_and_recommends_the_largest_safe(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    loose = plan_memory(config, budget_bytes=2**40, frames=[4, 8], batches=[1, 2], precisions=["32"], measure=False)
    peaks = {(row.num_frames, row.batch_size): row.peak_bytes for row in loose.rows}
    assert not loose.measured and all(row.verdict == "safe" for row in loose.rows)
    assert peaks[(4, 1)] < peaks[(4, 2)] < peaks[(8, 2)] and peaks[(4, 1)] < peaks[(8, 1)] < peaks[(8, 2)]
    assert loose.recommendation is not None and loose.recommendation.batch_size * loose.recommendation.num_frames == 16
    budget = (peaks[(4, 2)] + peaks[(8, 2)]) // 2  # 4x2 safe or tight, 8x2 over
    middle = plan_memory(config, budget_bytes=budget, frames=[4, 8], batches=[2], precisions=["32"], measure=False)
    assert [row.verdict for row in middle.rows][1] == "oom" and middle.advice is None
    starved = plan_memory(config, budget_bytes=1024, precisions=["32"], checkpointing=[False], measure=False)
    assert starved.recommendation is None
    assert starved.advice is not None and "model.activation_checkpointing: true" in starved.advice


def test_plan_command_prints_the_estimate_and_writes_json_and_chart(
    tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{manifest: {tiny_manifest}, image_size: [32, 32]}}\nmodel: {{backbone: tiny}}\n")
    out = tmp_path / "plan" / "plan.json"
    code = main(
        ["plan", "--config", str(config), "--budget", "1GiB", "--frames", "4,8", "--batch", "2", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ESTIMATED" in printed and "| 8 | 2 |" in printed and "recommended: data.num_frames=8" in printed
    assert len(json.loads(out.read_text())["rows"]) == 2 and out.with_suffix(".png").stat().st_size > 0
    assert main(["plan", "--config", str(config), "--budget", "lots"]) == 2
    assert "memory size 'lots'" in capsys.readouterr().err


def _fake_peaks(monkeypatch: pytest.MonkeyPatch, bytes_per_clip: int) -> list[int]:
    asked: list[int] = []

    def estimate(self: PlanStep, num_frames: int, batch_size: int, *args: object) -> tuple[int, None]:
        asked.append(batch_size)
        return batch_size * bytes_per_clip, None

    monkeypatch.setattr(PlanStep, "estimate", estimate)
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
    with pytest.raises(ConfigError, match=r"not even one clip of 4 frames fits .* it needs 2\.00 GiB"):
        choose_batch_size(config, views=("front",), num_classes=4, precision="32", measure=False)


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
