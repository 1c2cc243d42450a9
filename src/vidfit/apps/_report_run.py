"""What the report reads of a training run folder: its config, its `metrics.csv` curves, and where its videos are."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidfit.config._load import CONFIG_LIMITS
from vidfit.data import ManifestError
from vidfit.infer import expand_inputs
from vidfit.infer._inputs import VideoFile
from vidfit.io import read_document

# Points kept of each curve: about the pixels of a chart; longer runs are thinned evenly, keeping the last.
MAX_CURVE_POINTS = 1000
# The config keys a reader looks for first, in this order; those the run's config lacks are left out.
HIGHLIGHT_KEYS = (
    "experiment.name", "experiment.task", "model.backbone", "model.pretrained", "model.view_fusion",
    "model.input_type", "model.multi_label", "model.scale", "data.manifest", "data.num_frames", "data.frame_stride",
    "data.image_size", "data.batch_size", "data.patch_size", "train.optimizer", "train.lr", "train.scheduler",
    "train.weight_decay", "train.accumulate_grad_batches", "train.chunk_infer_size", "train.chunk_overlap",
    "train.chunk_aggregation", "trainer.max_epochs", "trainer.precision", "trainer.devices",
)  # fmt: skip
# Charts of the training curves: title, and whether a metrics.csv column belongs to it.
CURVE_CHARTS: tuple[tuple[str, Any], ...] = (
    ("loss", lambda name: name.endswith("loss")),
    ("accuracy", lambda name: any(k in name for k in ("acc", "top1", "top5", "f1@")) or name.endswith("/mAP")),
    ("PSNR (dB)", lambda name: name.endswith("psnr")),
    ("SSIM", lambda name: name.endswith("ssim")),
    ("learning rate", lambda name: name.startswith("lr-")),
    ("data-time fraction", lambda name: name.endswith("data_fraction")),
    ("peak memory (GiB)", lambda name: name.endswith("peak_gib")),
)


@dataclass(frozen=True)
class RunFolder:
    """A training run folder (``output_dir/name/version_N``) as the report uses it.

    Attributes:
        path: The folder.
        config: Its ``config.yaml`` as plain data (empty when it has none).
        curves: Per metrics.csv column, its (step, value) points, thinned to `MAX_CURVE_POINTS`.
        last_validation: Per ``val/...`` column, its last value: the last validation of the run.
    """

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    last_validation: dict[str, float] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The run's ``experiment.task`` (action unless its config says otherwise)."""
        return str(setting(self.config, "experiment.task") or "action")

    def highlights(self) -> list[tuple[str, str]]:
        """The `HIGHLIGHT_KEYS` its config sets, with their values as text."""
        found = [(key, setting(self.config, key)) for key in HIGHLIGHT_KEYS]
        return [(key, str(value)) for key, value in found if value is not None]


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a training run folder: it holds the config or the metrics a run writes."""
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "metrics.csv").is_file())


def read_run(path: Path) -> RunFolder:
    """Reads a run folder's ``config.yaml`` and ``metrics.csv`` (each optional)."""
    config_path = path / "config.yaml"
    config = {}
    if config_path.is_file():
        document = read_document(config_path, form="yaml", source=str(config_path), limits=CONFIG_LIMITS)
        config = document if isinstance(document, dict) else {}
    curves = read_curves(path / "metrics.csv") if (path / "metrics.csv").is_file() else {}
    last = {name: points[-1][1] for name, points in curves.items() if name.startswith("val/") and points}
    return RunFolder(path, config, curves, last)


def setting(config: Mapping[str, Any], key: str) -> Any:
    """The value of a dotted `key` (``data.num_frames``) in a config's plain data, None where absent."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Each numeric column of a Lightning ``metrics.csv`` as (step, value) points, thinned to `MAX_CURVE_POINTS`.

    Rows log some columns each (training steps, validation epochs, the learning rate): a column's points are
    the rows where it has a finite value.
    """
    points: dict[str, list[tuple[float, float]]] = {}
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            step = _number(row.get("step"))
            if step is None:
                continue
            for name, text in row.items():
                value = _number(text)
                if name not in (None, "step", "epoch") and value is not None:
                    points.setdefault(str(name), []).append((step, value))
    return {name: thin(values, MAX_CURVE_POINTS) for name, values in sorted(points.items())}


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def thin(points: Sequence[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most `limit` of `points`, evenly spaced, the last always kept."""
    if len(points) <= limit:
        return list(points)
    stride = math.ceil(len(points) / limit)
    kept = list(points[::stride])
    return kept if kept[-1] == points[-1] else [*kept[:-1], points[-1]]


def curve_charts(curves: Mapping[str, list[tuple[float, float]]]) -> list[tuple[str, dict[str, list]]]:
    """The curves grouped into `CURVE_CHARTS` (each column in the first chart that takes it), empty ones left out."""
    charts: list[tuple[str, dict[str, list]]] = []
    taken: set[str] = set()
    for title, takes in CURVE_CHARTS:
        series = {name: values for name, values in curves.items() if name not in taken and takes(name)}
        taken.update(series)
        if series:
            charts.append((title, series))
    return charts


def local_views(inputs: Sequence[str | os.PathLike[str]], *, split: str | None = None) -> dict[str, dict[str, Path]]:
    """Per video id, its local view files (``{view: path}``) among `inputs` (manifests, folders, video files), as
    `vidfit predict` names the videos; remote files and inputs that cannot be read are left out."""
    try:
        videos, _ = expand_inputs(inputs, split=split)
    except (ManifestError, OSError, ValueError):
        return {}
    found: dict[str, dict[str, Path]] = {}
    for video in videos:
        views = {"video": video.path} if isinstance(video, VideoFile) else dict(video.views)
        local = {name: Path(p) for name, p in views.items() if isinstance(p, Path) and p.is_file()}
        if local:
            found.setdefault(video.id, local)
    return found
