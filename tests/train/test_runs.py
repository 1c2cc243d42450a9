"""Run folders: simultaneous runs never share one, resumed runs keep their logs, data checked before any folder."""

from __future__ import annotations

import csv
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import yaml

from tests.conftest import tiny_overrides
from vidfit.config import ConfigError, load_config
from vidfit.data import ManifestError
from vidfit.train import fit
from vidfit.train._callbacks import ThroughputReport
from vidfit.train._runs import RUN_DIR_VARIABLE, claim_run_dir


def _claim(barrier: multiprocessing.synchronize.Barrier, output: str, queue: multiprocessing.Queue) -> None:
    os.environ.pop(RUN_DIR_VARIABLE, None)
    barrier.wait()
    queue.put(str(claim_run_dir(output, "race")))


def test_simultaneous_claims_get_distinct_folders(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    count = 6
    barrier, queue = context.Barrier(count), context.Queue()
    processes = [context.Process(target=_claim, args=(barrier, str(tmp_path), queue)) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    claimed = sorted(queue.get(timeout=5) for _ in range(count))
    assert len(set(claimed)) == count
    assert sorted(Path(p).name for p in claimed) == sorted(f"version_{i}" for i in range(count))


# Two `vidfit fit` processes held at one barrier (a file that appears), then both let go at once.
_FIT_AT_BARRIER = """
import sys, time
from pathlib import Path
from vidfit.cli import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
sys.exit(main(["fit", *sys.argv[2:]]))
"""


@pytest.mark.slow
def test_two_fits_started_together_keep_their_own_run(tiny_manifest: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    arguments = [f"--set={item}" for item in tiny_overrides(tiny_manifest, tmp_path)]
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    command = [sys.executable, "-c", _FIT_AT_BARRIER, str(go), "--config", str(config), *arguments]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    time.sleep(5)  # both imported and waiting
    go.touch()
    outputs = [process.communicate(timeout=300)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    runs = sorted((tmp_path / "vidfit").iterdir())
    assert [run.name for run in runs] == ["version_0", "version_1"]
    for run in runs:
        assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
        assert (run / "checkpoints" / "last.ckpt").is_file()


def _steps(metrics: Path) -> list[int]:
    with metrics.open(newline="") as file:
        return [int(float(row["step"])) for row in csv.DictReader(file)]


def test_resume_appends_to_the_run_logs_and_retires_the_interrupt_checkpoint(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    first = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=-1")))
    history = _steps(first.run_dir / "metrics.csv")
    assert history
    # As Ctrl-C leaves it: the run's last checkpoint, under the name a resume retires once it has its own.
    interrupted = first.run_dir / "checkpoints" / "interrupted.ckpt"
    interrupted.write_bytes(first.last_checkpoint.read_bytes())  # type: ignore[union-attr]
    more = tiny_overrides(tiny_manifest, tmp_path, "trainer.max_steps=-1", "trainer.max_epochs=2")
    resumed = fit(load_config(None, more), resume_from=interrupted)
    assert resumed.run_dir == first.run_dir
    steps = _steps(first.run_dir / "metrics.csv")
    assert steps[: len(history)] == history and len(steps) > len(history)
    assert not interrupted.exists()


def _rows(metrics: Path) -> list[dict[str, str]]:
    """The rows of a ``metrics.csv``, each with its filled columns only."""
    with metrics.open(newline="") as file:
        return [{key: value for key, value in row.items() if value} for row in csv.DictReader(file)]


def _trained(row: dict[str, str]) -> dict[str, str]:
    """A row without the columns that time or weigh the run (they differ between runs and restart each session)."""
    return {key: value for key, value in row.items() if not key.startswith(("perf/", "memory/"))}


@pytest.mark.slow
def test_resume_with_accumulation_keeps_the_rows_an_uninterrupted_run_logs(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 batches an epoch, 2 per optimizer step: the loggers' step (batches) runs ahead of global_step.
    settings = ("trainer.max_steps=-1", "trainer.max_epochs=2", "data.batch_size=1", "train.accumulate_grad_batches=2")
    whole = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path / "whole", *settings)))
    expected = _rows(whole.run_dir / "metrics.csv")
    assert {row["step"] for row in expected if "val/loss" in row} == {"3", "7"}
    start_epoch = ThroughputReport.on_train_epoch_start

    def interrupt(report: ThroughputReport, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C as the second epoch starts, last.ckpt holding the first
        start_epoch(report, trainer, module)

    config = load_config(None, tiny_overrides(tiny_manifest, tmp_path / "cut", *settings))
    monkeypatch.setattr(ThroughputReport, "on_train_epoch_start", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(config)
    monkeypatch.undo()
    run = tmp_path / "cut" / "vidfit" / "version_0"
    fit(config, resume_from=run / "checkpoints" / "last.ckpt")
    found = _rows(run / "metrics.csv")
    # Every row of both epochs, the validation rows (the best score) included; the first epoch's values too.
    assert [(row["step"], sorted(_trained(row))) for row in found] == [
        (row["step"], sorted(_trained(row))) for row in expected
    ]
    first_epoch = [_trained(row) for row in expected if int(row["step"]) < 4]
    assert [_trained(row) for row in found][: len(first_epoch)] == first_epoch


def test_fit_checks_every_split_before_it_makes_a_run_folder(tiny_manifest: Path, tmp_path: Path) -> None:
    document = yaml.safe_load(tiny_manifest.read_text())
    document["root"] = str(tiny_manifest.parent)
    first = next(video for video in document["videos"] if video["split"] == "train")
    last = next(video for video in document["videos"] if video["split"] == "val")
    for video in (first, last):
        video["views"][next(iter(video["views"]))] = "missing.mp4"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document))
    with pytest.raises(ManifestError) as caught:
        fit(load_config(None, tiny_overrides(broken, tmp_path / "runs")))
    assert {first["id"], last["id"]} <= {problem.video_id for problem in caught.value.problems}
    assert not (tmp_path / "runs").exists()


def test_a_split_without_videos_is_reported_with_the_other_problems(tiny_manifest: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(tiny_manifest, tmp_path / "runs", "data.val_split=holdout")
    with pytest.raises(ConfigError, match=r"data\.val_split='holdout' has no videos"):
        fit(load_config(None, overrides))
    assert not (tmp_path / "runs").exists()
