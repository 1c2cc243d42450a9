"""The GPU acceptance suite's smoke mode: every section runs its code on the CPU and lands in the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = (
    "cuda_tests", "decode", "loader", "train", "infer", "extract", "temporal", "plan", "autofit", "oom_guard", "sr",
    "encoders",
)  # fmt: skip


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
    encoders = run["sections"]["encoders"]["rows"]
    assert len(encoders) == 5 and all(row["figures"]["measured"] == "no GPU" for row in encoders)
    oom = run["sections"]["oom_guard"]["rows"][0]
    assert oom["passed"] is True and oom["figures"]["oom_retries"] >= 1
    markdown = (tmp_path / "out" / "gpu-results.md").read_text()
    assert all(f"### {name} " in markdown for name in SECTIONS)


# The suite as `make bench-gpu` runs it, on a Python without PyAV (as the GPU image is before the bundle).
_WITHOUT_AV = """
import runpy, sys
sys.modules["av"] = None  # import av fails, as where it is not installed
sys.path.insert(0, sys.argv[1])
sys.argv = ["gpu_suite.py", "--bundle", sys.argv[2], "--out", sys.argv[3]]
runpy.run_path(sys.path[0] + "/gpu_suite.py", run_name="__main__")
"""


def test_without_a_bundle_the_suite_says_to_make_one(tmp_path: Path) -> None:
    benchmarks = ROOT / "benchmarks"
    command = [sys.executable, "-c", _WITHOUT_AV, str(benchmarks), str(tmp_path / "no-bundle"), str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: this Python") and "cannot import av and there is no bundle at " in line, line
    assert "`make gpu-bundle`" in line and not (tmp_path / "out").exists()
