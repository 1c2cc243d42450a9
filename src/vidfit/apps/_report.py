"""`report`: one self-contained HTML page of a run or of its predictions, to see where a model fails.

The page holds a summary (config highlights, the figures of `predict` and `validate`, the data), the training
curves of ``metrics.csv``, confusion matrices and per-class precision, recall and F1, a timeline strip per video
(true segments above, predicted below) with its local video beside it, and for super-resolution runs PSNR and
SSIM per video against bicubic. Everything is inline: it opens from disk with no network.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidfit.apps._report_data import Predictions, read_predictions
from vidfit.apps._report_page import render, videos_section
from vidfit.apps._report_run import RunFolder, is_run_folder, local_views, read_run, setting
from vidfit.apps._report_sections import classes_section, sr_section, summary_section, training_section
from vidfit.apps._report_sr import evaluate_sr
from vidfit.apps._report_svg import class_colours
from vidfit.apps._report_videos import PAGE_SIZE, videos_payload
from vidfit.io import check_writable
from vidfit.io._atomic import write_text_atomic

REPORT_NAME = "report.html"
PREDICTIONS_NAME = "predictions.json"


@dataclass(frozen=True)
class ReportResult:
    """What `write_report` wrote.

    Attributes:
        path: The HTML page.
        size_bytes: Its size.
        num_videos: Videos with a timeline strip.
        sections: The anchors of its sections, in order (``summary``, ``training``, ``classes``, ``videos``, ``sr``).
    """

    path: Path
    size_bytes: int
    num_videos: int
    sections: tuple[str, ...]


def report_path(predictions_json: str | os.PathLike[str]) -> Path:
    """Where `vidfit predict` writes the report of `predictions_json`: beside it, as ``<stem>.html``."""
    return Path(predictions_json).with_suffix(".html")


def write_report(
    source: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    inputs: Sequence[str | os.PathLike[str]] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> ReportResult:
    """Writes the report of a run folder or of a predictions JSON as one HTML file (atomically).

    Args:
        source: A run folder (``output_dir/name/version_N``: its config, ``metrics.csv``, and its
            ``predictions.json`` when there is one), or a predictions JSON written by `vidfit predict`.
        out: The page; default ``report.html`` in the run folder, or ``<stem>.html`` beside the JSON.
        inputs: Where the videos are, as `vidfit predict` takes them (manifests, folders, files), for the players;
            default the run's manifest (``data.manifest``).
        run_dir: The training run of the predictions (its config and curves); default the JSON's folder when it
            is a run folder.

    Raises:
        ValueError: `source` is neither a run folder nor a predictions JSON, or cannot be read.
    """
    path = Path(source)
    run, json_path, target = _sources(path, out=out, run_dir=run_dir)
    check_writable(target)
    predictions = read_predictions(json_path) if json_path is not None else None
    if inputs is None and run is not None and setting(run.config, "data.manifest"):
        inputs = [str(setting(run.config, "data.manifest"))]
    html, sections, count = _page(path, run, predictions, inputs=inputs or (), target=target)
    written = write_text_atomic(target, html)
    return ReportResult(written, written.stat().st_size, count, sections)


def _sources(
    path: Path, *, out: str | os.PathLike[str] | None, run_dir: str | os.PathLike[str] | None
) -> tuple[RunFolder | None, Path | None, Path]:
    """The run folder, the predictions JSON and the page of a `write_report` call."""
    if is_run_folder(path):
        json_path = path / PREDICTIONS_NAME if (path / PREDICTIONS_NAME).is_file() else None
        return read_run(path), json_path, Path(out) if out is not None else path / REPORT_NAME
    if path.is_file():
        folder = Path(run_dir) if run_dir is not None else path.parent
        run = read_run(folder) if is_run_folder(folder) else None
        return run, path, Path(out) if out is not None else report_path(path)
    raise ValueError(
        f"{path}: not a run folder (with config.yaml or metrics.csv) nor a predictions JSON file"
        + ("" if path.exists() else ": no such file or folder")
    )


def _page(
    source: Path,
    run: RunFolder | None,
    predictions: Predictions | None,
    *,
    inputs: Sequence[str | os.PathLike[str]],
    target: Path,
) -> tuple[str, tuple[str, ...], int]:
    names = predictions.label_names if predictions is not None else []
    colours = class_colours(len(names))
    sections = [("summary", "Summary", summary_section(run, predictions))]
    if run is not None and run.curves:
        sections.append(("training", "Training curves", training_section(run)))
    videos: list = []
    if predictions is not None:
        if classes := classes_section(predictions, colours):
            sections.append(("classes", "Classes", classes))
        views = local_views(inputs) if inputs else {}
        videos = videos_payload(predictions.videos, label_names=names, views=views, out_dir=target.parent)
        sections.append(("videos", "Videos", videos_section(len(videos), names, colours)))
    if run is not None and run.task == "super_resolution" and (found := evaluate_sr(run)) is not None:
        png = base64.b64encode(found.crop_png).decode("ascii") if found.crop_png else None
        sections.append(("sr", "Super-resolution", sr_section(found, png)))
    name = str(setting(run.config, "experiment.name") or run.path.name) if run is not None else source.stem
    data = {"classes": names, "colours": colours, "pageSize": PAGE_SIZE, "videos": videos}
    html = render(title=f"vidfit report: {name}", source=str(source), sections=sections, data=data)
    return html, tuple(anchor for anchor, _, _ in sections), len(videos)
