"""The GPU acceptance suite's smoke mode: every section runs its code on the CPU and lands in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("cuda_tests", "decode", "loader", "train", "infer", "plan", "autofit", "oom_guard", "sr")


def test_the_smoke_run_writes_every_section_with_its_rows(tmp_path: Path) -> None:
    env = {**os.environ, "VIDFIT_BENCH_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--smoke", "--out", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads((tmp_path / "out" / "gpu-results.json").read_text())["runs"]
    assert run["smoke"] is True
    assert tuple(run["sections"]) == SECTIONS
    for name, section in run["sections"].items():
        assert section["status"] == "ok", (name, section["status"], done.stdout)
        assert section["rows"], name
    oom = run["sections"]["oom_guard"]["rows"][0]
    assert oom["passed"] is True and oom["figures"]["oom_retries"] >= 1
    markdown = (tmp_path / "out" / "gpu-results.md").read_text()
    assert all(f"### {name} " in markdown for name in SECTIONS)
