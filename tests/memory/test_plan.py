import json
import os
import stat
from pathlib import Path

import pytest

from vidfit.memory._plan import PlanRow, plan_verdict, recommend, render_table, write_plan

GIB = 2**30
BUDGET = 16 * GIB


def _row(frames: int, batch: int, peak_gib: float | None, **kwargs: object) -> PlanRow:
    peak = None if peak_gib is None else int(peak_gib * GIB)
    fields: dict[str, object] = {
        "num_frames": frames,
        "batch_size": batch,
        "precision": "16-mixed",
        "activation_checkpointing": False,
        "peak_bytes": peak,
        "clips_per_second": None,
        "measured": False,
        "verdict": plan_verdict(peak, BUDGET),
        **kwargs,
    }
    return PlanRow(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("peak", "verdict"),
    [(None, "oom"), (17 * GIB, "oom"), (16 * GIB, "tight"), (int(14.5 * GIB), "tight"), (14 * GIB, "safe")],
)
def test_verdict(peak: int | None, verdict: str) -> None:
    assert plan_verdict(peak, BUDGET) == verdict


def test_verdict_rejects_fraction() -> None:
    with pytest.raises(ValueError, match=r"tight_fraction=1.5 is not in \(0, 1\]"):
        plan_verdict(1, 2, tight_fraction=1.5)


def test_recommend_fastest_measured_safe_row() -> None:
    rows = [
        _row(40, 8, 8, clips_per_second=120.0, measured=True),
        _row(40, 12, 10, clips_per_second=150.0, measured=True),
        _row(40, 16, 15.5, clips_per_second=200.0, measured=True),  # tight
        _row(60, 12, 12),  # more work, but no throughput
    ]
    assert recommend(rows) is rows[1]


def test_recommend_estimates_by_work_then_no_checkpointing_then_peak() -> None:
    rows = [
        _row(40, 8, 9, activation_checkpointing=True),
        _row(40, 8, 11),
        _row(20, 16, 10),
        _row(30, 10, 6),
        _row(60, 12, None),
    ]
    assert recommend(rows) is rows[2]  # 320 frames per step like rows 0 and 1, no recompute, lower peak
    assert recommend([rows[0], rows[1]]) is rows[1]
    assert recommend([rows[0], rows[3]]) is rows[0]
    assert recommend([rows[4]]) is None


def test_render_table() -> None:
    rows = [
        _row(40, 12, 10, clips_per_second=150.0, measured=True),
        _row(60, 12, None, measured=True, advice="lower data.batch_size (12)"),
    ]
    lines = render_table(rows, budget_bytes=BUDGET, image_size=(160, 210)).splitlines()
    assert lines[0] == "budget: 16.00 GiB; clips of num_frames x 160x210 (T x H x W)"
    assert lines[2] == "| num_frames | batch_size | precision | checkpointing | memory | clips/s | verdict |"
    assert lines[4] == "| 40 | 12 | 16-mixed | off | 10.00 GiB (62%) | 150.0 | safe * |"
    assert lines[5] == "| 60 | 12 | 16-mixed | off | OOM | - | oom |"
    assert lines[7:] == [
        "Over the budget, what to change:",
        "- 60 frames x 12, 16-mixed, checkpointing off: lower data.batch_size (12)",
    ]
    assert "est." in render_table([_row(30, 8, 6)], budget_bytes=BUDGET, image_size=(112, 112))


def _write(rows: list[PlanRow], folder: Path) -> tuple[Path, Path]:
    json_path, png_path = folder / "plan.json", folder / "plan.png"
    write_plan(rows, budget_bytes=BUDGET, image_size=(160, 210), json_path=json_path, png_path=png_path)
    return json_path, png_path


def test_write_plan(tmp_path: Path) -> None:
    rows = [_row(40, 12, 10), _row(60, 12, 15), _row(60, 16, None, measured=True, advice="lower data.num_frames (60)")]
    json_path, png_path = _write(rows, tmp_path / "plan")
    document = json.loads(json_path.read_text())
    assert document["budget_bytes"] == BUDGET and document["recommended"] == 0
    assert document["image_size"] == [160, 210]
    assert [r["verdict"] for r in document["rows"]] == ["safe", "tight", "oom"]
    assert [r["advice"] for r in document["rows"]] == [None, None, "lower data.num_frames (60)"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["plan.json", "plan.png"]


def test_write_plan_files_get_the_umask_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        json_path, png_path = _write([_row(40, 12, 10)], tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(json_path.stat().st_mode) == stat.S_IMODE(png_path.stat().st_mode) == 0o644


def test_a_failed_chart_leaves_the_earlier_plan_alone(tmp_path: Path) -> None:
    json_path, png_path = _write([_row(40, 12, 10)], tmp_path)
    before = json_path.read_text(), png_path.read_bytes()
    with pytest.raises(KeyError):
        _write([_row(40, 12, 10, verdict="unknown")], tmp_path)
    assert (json_path.read_text(), png_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "plan.png"]
