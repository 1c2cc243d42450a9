"""Run folders claimed with an exclusive create, and CSV logs that a resumed run appends to.

Any number of runs may start at once with one ``experiment.output_dir``: each takes the first free
``version_N`` by creating it (``mkdir`` fails if another run got there first), never by listing alone.
The ranks of one DDP run share rank 0's folder: the processes Lightning launches inherit it through the
environment, and torchrun's ranks read the claim rank 0 leaves under the job's id.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    """Lightning's CSV writer that continues the ``metrics.csv`` of the run's earlier sessions.

    Lightning's writer deletes ``metrics.csv`` when its folder is not empty; a resumed run keeps the
    history instead. The rows an earlier session logged after the checkpoint this one resumes from are
    logged again now: they are cut when this session saves its first rows, from the step of the first.
    The loggers' step counts batches, as the history's does; a checkpoint's ``global_step`` counts
    optimizer steps, fewer when gradients accumulate, so it cannot say where the history ends.
    """

    def __init__(self, log_dir: str) -> None:
        self._history: tuple[list[str], list[dict[str, str]]] | None = None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            # Columns in Lightning's order (sorted), which the rows appended to this file follow.
            self.metrics_keys = sorted(reader.fieldnames or [])
            self._history = (self.metrics_keys, list(reader))

    def save(self) -> None:
        if self._history is not None and self.metrics:
            header, rows = self._history
            first = min(_step(metrics) for metrics in self.metrics)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=header)
            writer.writeheader()
            writer.writerows(row for row in rows if _step(row) < first)
            # Whole or not at all: an interrupted rewrite must not lose the history.
            write_text_atomic(self.metrics_file_path, buffer.getvalue())
            self._history = None
        super().save()


def _step(row: Mapping[str, Any]) -> int:
    try:
        return int(float(row.get("step") or 0))
    except ValueError:
        return 0


class ResumableCSVLogger(CSVLogger):
    """`CSVLogger` that continues the run's ``metrics.csv`` when `resuming` (see `_AppendingWriter`)."""

    def __init__(self, save_dir: str, *, name: str, version: str, resuming: bool) -> None:
        super().__init__(save_dir, name=name, version=version)
        self._resuming = resuming

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            if not self._resuming:
                return super().experiment
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir)
        return self._experiment  # type: ignore[return-value]
