"""docs/PLUGINS.md's example task, installed through its entry point and run by the command line as a user would.

The example is one folder, `examples/vidfit-motion`: the docs show its files (checked here to be the same)
and the test installs it with pip into a temporary site folder, then runs `fit`, `validate`, `predict` on
the local and Ray engines, and two shards with `merge`, in a process whose ``PYTHONPATH`` holds that folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_public_api import private_imports

REPO = Path(__file__).parents[1]
EXAMPLE = REPO / "examples" / "vidfit-motion"
PLUGINS_MD = REPO / "docs" / "PLUGINS.md"
_FILE_BLOCK = re.compile(r"^#### `examples/vidfit-motion/([^`]+)`\n\n.*?\n\n```[a-z]*\n(.*?)```$", re.M | re.S)

# Runs the CLI commands given as JSON in one process (each import of vidfit costs seconds), stopping at the
# first that fails; the plugin is found on PYTHONPATH, as `pip install` would put it on the path.
_DRIVER = """
import json, sys
from vidfit.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    print(f"rc={code}: {' '.join(argv[:1])}", flush=True)
    if code != 0:
        sys.exit(code)
"""


def test_the_docs_show_the_example_files_as_they_are() -> None:
    shown = dict(_FILE_BLOCK.findall(PLUGINS_MD.read_text(encoding="utf-8")))
    files = {
        path.relative_to(EXAMPLE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(EXAMPLE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert len(files) == 6 and shown == files


def test_the_example_imports_no_private_name() -> None:
    assert [line for path in sorted(EXAMPLE.rglob("*.py")) for line in private_imports(path)] == []
    for path in EXAMPLE.rglob("*.py"):  # nor any private name of a public module
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"from vidfit[.\w]* import [^\n]*\b_[a-z]", text), path


@pytest.mark.slow
def test_mypy_checks_the_example_against_the_task_contract(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    arguments = ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(REPO / ".mypy_cache")]
    stdout, _, status = api.run([*arguments, str(EXAMPLE / "vidfit_motion")])
    assert status == 0, stdout
    # A predict written to the contract's old description (no engine, no shard) is caught where it is registered.
    broken = shutil.copytree(EXAMPLE / "vidfit_motion", tmp_path / "vidfit_motion")
    source = broken / "_predict.py"
    text = source.read_text(encoding="utf-8")
    text = text.replace("    engine: Engine | None = None,\n    shard: Shard | None = None,\n", "")
    source.write_text(text, encoding="utf-8")
    stdout, _, status = api.run([*arguments, str(broken)])
    assert status == 1 and re.search(r'__init__\.py:\d+: error: Argument "predict" to "TaskSpec"', stdout), stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed by pip into a folder of its own (from a copy: building leaves files beside it)."""
    folder = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(EXAMPLE, folder / "source", ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*command, "--target", str(folder / "site"), str(source)], check=True, timeout=300)
    assert (folder / "site" / "vidfit_motion-0.1.0.dist-info" / "entry_points.txt").is_file()
    return folder / "site"


def _config(tmp_path: Path, manifest: Path) -> Path:
    path = tmp_path / "motion.yaml"
    settings = {
        "experiment": {"task": "motion", "name": "motion", "output_dir": str(tmp_path / "runs")},
        "model": {"channels": 4},
        "data": {"manifest": str(manifest), "batch_size": 4, "num_workers": 0, "num_frames": 8},
        "train": {"lr": 0.01, "chunk_infer_size": 16, "chunk_overlap": 4},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
    }
    path.write_text(json.dumps(settings), encoding="utf-8")  # JSON is YAML
    return path


@pytest.mark.slow
def test_the_example_trains_validates_predicts_on_ray_and_in_merged_shards(site: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from vidfit._synthetic import make_demo_dataset

    manifest = make_demo_dataset(tmp_path / "demo", num_videos_per_class=3, num_frames=24, size=(32, 32)).manifest_path
    config = _config(tmp_path, manifest)
    checkpoint = tmp_path / "runs" / "motion" / "version_0" / "checkpoints" / "last.ckpt"
    out = tmp_path / "out"
    predict = ["predict", str(manifest), "--checkpoint", str(checkpoint), "--split", "val"]
    commands = [
        ["fit", "--config", str(config)],
        ["validate", "--config", str(config), "--checkpoint", str(checkpoint)],
        [*predict, "--out", str(out / "local.json"), "--option", "threshold=0.6"],
        [*predict, "--out", str(out / "ray.json"), "--option", "threshold=0.6", "--engine", "ray"],
        [*predict, "--out", str(out / "sharded.json"), "--option", "threshold=0.6", "--shard", "0/2"],
        [*predict, "--out", str(out / "sharded.json"), "--option", "threshold=0.6", "--shard", "1/2"],
        ["merge", str(out / "sharded.json")],
    ]
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(commands)], capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": path, "RAY_DEDUP_LOGS": "0"}, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert [line for line in run.stdout.splitlines() if line.startswith("rc=")] == [
        f"rc=0: {argv[0]}" for argv in commands
    ]
    printed = re.search(r"^\{\n(?:  .*\n)+\}$", run.stdout, re.M)  # what validate prints: the scores
    assert printed is not None, run.stdout
    scores = json.loads(printed.group(0))
    assert set(scores) == {"val/loss", "val/frame_acc"} and 0 <= scores["val/frame_acc"] <= 1
    local = json.loads((out / "local.json").read_text(encoding="utf-8"))
    labels = {segment["label"] for segments in local["results"].values() for segment in segments}
    assert len(local["results"]) == 4 and labels <= {"idle", "motion"}
    for name in ("ray", "sharded"):  # the Ray engine and the merged shards write what the local run wrote
        assert (out / f"{name}.json").read_bytes() == (out / "local.json").read_bytes(), name
        assert (out / f"{name}.csv").read_bytes() == (out / "local.csv").read_bytes(), name
