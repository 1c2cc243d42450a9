import json
from pathlib import Path

import pytest

from vidfit.memory import PlanRow, plan_verdict, recommend, render_table, write_plan

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
    rows = [_row(40, 12, 10, clips_per_second=150.0, measured=True), _row(60, 12, None, measured=True)]
    lines = render_table(rows, BUDGET).splitlines()
    assert lines[0] == "budget: 16.00 GiB"
    assert lines[2] == "| num_frames | batch_size | precision | checkpointing | memory | clips/s | verdict |"
    assert lines[4] == "| 40 | 12 | 16-mixed | off | 10.00 GiB (62%) | 150.0 | safe * |"
    assert lines[5] == "| 60 | 12 | 16-mixed | off | OOM | - | oom |"
    assert "est." in render_table([_row(30, 8, 6)], BUDGET)


def test_write_plan(tmp_path: Path) -> None:
    rows = [_row(40, 12, 10), _row(60, 12, 15), _row(60, 16, None, measured=True)]
    json_path, png_path = tmp_path / "plan" / "plan.json", tmp_path / "plan" / "plan.png"
    write_plan(rows, BUDGET, json_path, png_path)
    document = json.loads(json_path.read_text())
    assert document["budget_bytes"] == BUDGET and document["recommended"] == 0
    assert [r["verdict"] for r in document["rows"]] == ["safe", "tight", "oom"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["plan.json", "plan.png"]


def test_write_plan_leaves_no_file_when_drawing_fails(tmp_path: Path) -> None:
    bad = _row(40, 12, 10, verdict="unknown")
    with pytest.raises(KeyError):
        write_plan([bad], BUDGET, tmp_path / "plan.json", tmp_path / "plan.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]
