"""Run folders claimed with an exclusive create, and CSV logs that a resumed run appends to.

Any number of runs may start at once with one ``experiment.output_dir``: each takes the first free
``version_N`` by creating it (``mkdir`` fails if another run got there first), never by listing alone.
The ranks of one DDP run share rank 0's folder: the processes Lightning launches inherit it through the
environment, and torchrun's ranks read the claim rank 0 leaves under the job's id.
"""

from __future__ import annotations

import csv
import os
import re
import time
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from vidfit.io._atomic import write_text_atomic

# Rank 0 records its run folder here for the processes Lightning's launcher starts from it.
RUN_DIR_VARIABLE = "VIDFIT_RUN_DIR"
_CLAIMS = ".claims"
_CLAIM_WAIT_SECONDS = 600.0


def claim_run_dir(output_dir: str | os.PathLike[str], name: str) -> Path:
    """A new run folder ``output_dir/name/version_N``, created by this run alone (or rank 0's, on other ranks)."""
    root = Path(output_dir) / name
    inherited = os.environ.get(RUN_DIR_VARIABLE)
    if inherited and _environment_rank("LOCAL_RANK") > 0 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return Path(inherited)
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    if job is not None and _environment_rank("RANK") > 0:
        return _wait_for_claim(root / _CLAIMS / job)
    root.mkdir(parents=True, exist_ok=True)
    number = _next_version(root)
    while True:
        try:
            (root / f"version_{number}").mkdir()
            break
        except FileExistsError:  # another run created it between the listing and here
            number += 1
    run_dir = root / f"version_{number}"
    if job is not None:
        write_text_atomic(root / _CLAIMS / job, str(run_dir))
    os.environ[RUN_DIR_VARIABLE] = str(run_dir)
    return run_dir


def _next_version(root: Path) -> int:
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"version_(\d+)", p.name))]
    return max(numbers, default=-1) + 1


def _wait_for_claim(claim: Path) -> Path:
    deadline = time.monotonic() + _CLAIM_WAIT_SECONDS
    while not claim.is_file():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{claim}: rank 0 did not claim a run folder within {_CLAIM_WAIT_SECONDS:.0f} s")
        time.sleep(0.1)
    return Path(claim.read_text(encoding="utf-8"))


def _environment_rank(name: str) -> int:
    text = os.environ.get(name, "0")
    return int(text) if text.isdigit() else 0


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer that keeps the rows of an earlier session up to `keep_until_step`.

    Lightning's writer deletes ``metrics.csv`` when its folder is not empty; a resumed run keeps the
    history instead, minus the rows logged after the checkpoint it resumes from (logged again now).
    """

    def __init__(self, log_dir: str, *, keep_until_step: int) -> None:
        self._keep_until_step = keep_until_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if _step(row) <= self._keep_until_step]
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        self.metrics_keys = sorted(header)


def _step(row: dict[str, str]) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` that appends to the run's ``metrics.csv`` when resuming from step `resume_step`."""

    def __init__(self, save_dir: str, *, name: str, version: str, resume_step: int | None) -> None:
        super().__init__(save_dir, name=name, version=version)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            if self._resume_step is None:
                return super().experiment
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, keep_until_step=self._resume_step)
        return self._experiment  # type: ignore[return-value]
