"""The command line over installed tasks: their options (``--option``), their errors blamed on them, broken ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.plugins import fresh_registry, install_plugin
from vidfit.cli import main

# A task whose predict reports what reached it; a negative level is a bug of its own.
TOY = """
from dataclasses import dataclass

from vidfit.config import DataConfig, TaskSpec, TrainConfig, register_task


@dataclass
class Model:
    width: int = 1


@dataclass(frozen=True)
class Outcome:
    failures: dict
    lines: list

    def report_lines(self):
        return self.lines


def data_and_module(config, *, checkpoint, load):
    raise NotImplementedError


def predict(checkpoint, inputs, *, out="toy.json", overrides, split, progress, engine, shard, codec="x", level=1):
    if level < 0:
        raise RuntimeError("a negative level")
    return Outcome({}, [f"codec={codec} level={level!r} engine={engine.name} shard={shard} inputs={list(inputs)}"])


register_task(TaskSpec(
    name="toy", model_section=Model, data_section=DataConfig, train_section=TrainConfig, monitors=("val/loss",),
    data_and_module=data_and_module, predict=predict, predict_options=("codec", "level"),
))
"""


@pytest.fixture
def toy_checkpoint(tmp_path: Path) -> Iterator[Path]:
    """A checkpoint of the installed task ``toy``, its site on ``sys.path`` for the test."""
    site = install_plugin(
        tmp_path / "site", distribution="vidfit-toy", module="vidfit_toy", source=TOY, entry_point="toy = vidfit_toy"
    )
    path = tmp_path / "toy.ckpt"
    torch.save({"hyper_parameters": {"config": {"experiment": {"task": "toy"}}}, "state_dict": {}}, path)
    with fresh_registry(site):
        yield path


def _predict(checkpoint: Path, *options: str) -> int:
    return main(["predict", "clip.mp4", "--checkpoint", str(checkpoint), *options])


def test_options_of_any_task_reach_its_predict(toy_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _predict(toy_checkpoint, "--option", "level=3", "--option", "codec=libx264rgb", "--shard", "1/2") == 0
    assert capsys.readouterr().out == "codec=libx264rgb level=3 engine=local shard=1/2 inputs=['clip.mp4']\n"
    assert _predict(toy_checkpoint, "--codec", "libx264rgb") == 0  # --codec spells --option codec=
    assert capsys.readouterr().out.startswith("codec=libx264rgb level=1 ")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--option", "depth=2"], r"the options depth do not apply to a checkpoint of experiment\.task 'toy' "
                                  r"\(its options: codec, level\)"),
        (["--option", "level"], r"--option 'level': expected key=value, e.g\. codec=libx264rgb"),
        (["--codec", "libx264", "--option", "codec=libx264rgb"], r"--codec libx264 and --option codec=libx264rgb"),
    ],
)  # fmt: skip
def test_bad_options_are_one_error_line(
    toy_checkpoint: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert _predict(toy_checkpoint, *options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err


def test_an_error_in_a_tasks_code_is_blamed_on_its_package(
    toy_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _predict(toy_checkpoint, "--option", "level=-1") == 1
    assert capsys.readouterr().err == (
        "error: RuntimeError: a negative level (raised in the code of task 'toy' of the package vidfit-toy 0.1.0 "
        "(entry point 'toy = vidfit_toy'): run again with --debug and report the traceback to the authors of "
        "vidfit-toy)\n"
    )


@pytest.mark.slow
def test_a_broken_plugin_is_one_warning_and_the_builtin_tasks_work(
    tiny_manifest: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    site = install_plugin(
        tmp_path / "site", distribution="vidfit-broken", module="vidfit_broken",
        source="raise ImportError('built for another vidfit')\n", entry_point="broken = vidfit_broken",
    )  # fmt: skip
    out = tmp_path / "predictions.json"
    command = ["predict", str(tiny_manifest), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--split", "val"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "vidfit.cli", *command], capture_output=True, text=True, env=environment, timeout=300
    )
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        "warning: task 'broken' of the package vidfit-broken 0.1.0 (entry point 'broken = vidfit_broken') is not "
        "loaded: ImportError: built for another vidfit; the other tasks work (fix or uninstall vidfit-broken)"
    ]
    assert out.is_file() and "videos -> " in run.stdout
