"""`vidfit plan --vary`: sets of config changes planned beside the config, each with the whole grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
from vidfit.config import ConfigError, load_config
from vidfit.train import plan_memory
from vidfit.train._plan_grid import parse_grid, parse_variant


def test_each_vary_is_one_variant_of_changes_joined_by_plus() -> None:
    grid = parse_grid(vary=["model.activation_checkpointing=true", "data.num_frames=8 + model.dropout=0.1"])
    assert grid.variants == [("model.activation_checkpointing=true",), ("data.num_frames=8", "model.dropout=0.1")]
    assert parse_grid().variants is None
    with pytest.raises(ValueError, match=r"--vary 'dropout=0\.1': 'dropout=0\.1' is not section\.key=value"):
        parse_variant("dropout=0.1")
    with pytest.raises(ValueError, match=r"'model\.lora=' is not section\.key=value"):
        parse_variant("data.num_frames=8 + model.lora=")


def test_variants_get_the_whole_grid_and_are_named_in_rows_table_and_advice(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path))
    variants = [("model.activation_checkpointing=true",), ("data.image_size=[64,64]",)]
    plan = plan_memory(config, budget="1TiB", batch=[1, 2], precision=["32"], variants=variants, measure=False)
    names = [row.variant for row in plan.rows]
    assert (
        names
        == ["", "", "model.activation_checkpointing=true", "model.activation_checkpointing=true"]
        + ["data.image_size=[64,64]"] * 2
    )
    peaks = {(row.variant, row.batch_size): row.peak_bytes or 0 for row in plan.rows}
    assert peaks[("data.image_size=[64,64]", 2)] > peaks[("", 2)]  # the variant's own frames are planned
    assert plan.image_size == (32, 32)  # the config's own frame size heads the plan
    table = plan.table()
    assert "| variant | num_frames |" in table and "| as configured | 4 | 1 | 32 |" in table
    assert "| data.image_size=[64,64] | 4 | 2 | 32 |" in table
    budget = (peaks[("", 2)] + peaks[("data.image_size=[64,64]", 2)]) // 2
    over = plan_memory(config, budget=budget, batch=[2], precision=["32"], variants=variants[1:], measure=False)
    assert [row.verdict for row in over.rows] != ["oom", "oom"] and over.rows[-1].verdict == "oom"
    assert "- data.image_size=[64,64], 4 frames x 2, 32, checkpointing off: lower" in over.table()
    with pytest.raises(ConfigError, match=r"--vary: .*model\.backbone='nope' is not one of"):
        plan_memory(config, budget="1TiB", variants=[("model.backbone=nope",)], measure=False)
