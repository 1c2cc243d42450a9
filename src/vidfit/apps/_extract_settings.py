"""What `vidfit extract` runs with: the videos, the model and the settings its files record, and which files of an
earlier run are whole and can stay."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidfit.config import ConfigError, config_from_dict, load_config, resolve_precision
from vidfit.data import VideoEntry
from vidfit.infer import expand_inputs, file_sha256, first_duplicate, read_checkpoint
from vidfit.infer._features import (
    FEATURES_FORMAT,
    FeatureEntry,
    FeatureFileError,
    feature_file_name,
    load_feature_index,
    read_video_features,
)
from vidfit.infer._inputs import VideoFile
from vidfit.models._backbone_recipes import build_backbone


@dataclass(frozen=True)
class ExtractJob:
    """One video to extract: its views (those the model reads, in order), streams and clip range."""

    video_id: str
    views: dict[str, Path | str]
    streams: dict[str, int] = field(default_factory=dict)
    start_seconds: float | None = None
    end_seconds: float | None = None

    @property
    def view_names(self) -> list[str]:
        return list(self.views)


@dataclass(frozen=True)
class Extractor:
    """The model `extract` builds in every worker, and the settings every file and the index record.

    Attributes:
        config: The action config of the model (a checkpoint's, or the one given).
        settings: Plain data: backbone, pretrained, checkpoint and its SHA-256, window, stride, frame_stride,
            image_size, views, fused, feature_dim, precision.
        weights: The checkpoint's weights; None: the backbone's ``model.pretrained`` weights.
        num_classes: Classes of the checkpoint's heads (not used, but the state dict has them).
    """

    config: Any
    settings: dict[str, Any]
    weights: dict[str, torch.Tensor] | None
    num_classes: int

    @property
    def model_views(self) -> list[str]:
        return list(self.settings["views"])


def load_extractor(
    videos: Sequence[VideoEntry | VideoFile],
    *,
    checkpoint: str | os.PathLike[str] | None,
    config: str | os.PathLike[str] | None,
    overrides: Sequence[str],
    window: int,
    stride: int,
    fused: bool,
) -> Extractor:
    """The model of `checkpoint` (its views) or of `config` (``data.views``, else the first manifest video's)."""
    if checkpoint is not None:
        state = read_checkpoint(checkpoint, key="--checkpoint")
        if state.task != "action":
            raise ConfigError(
                f"--checkpoint {checkpoint}: a checkpoint of experiment.task {state.task!r}, not 'action'"
            )
        loaded = config_from_dict(state.config, source=str(checkpoint), overrides=tuple(overrides))
        views, num_classes = list(state.hyper_parameters["views"]), len(state.hyper_parameters["label_names"])
        weights, digest = state.weights, file_sha256(checkpoint)
    else:
        assert config is not None
        loaded = load_config(config, list(overrides))
        model = loaded.model
        if loaded.experiment.task == "action" and model.pretrained is None and model.pretrained_path is None:
            raise ConfigError(
                f"--config {config}: model.pretrained is null and no model.pretrained_path is given: an untrained "
                "backbone's features mean nothing; set model.pretrained: kinetics400, or extract with --checkpoint"
            )
        first = next((v for v in videos if isinstance(v, VideoEntry)), None)
        views = list(loaded.data.views or (first.views if first is not None else ["front"]))
        num_classes, weights, digest = 1, None, None
    if loaded.experiment.task != "action":
        raise ConfigError(
            f"vidfit extract takes an action model's backbone, not experiment.task {loaded.experiment.task!r}"
        )
    with torch.device("meta"):
        channels = build_backbone(name=loaded.model.backbone).feature_dim
    model = loaded.model
    settings = {
        "backbone": model.backbone, "pretrained": model.pretrained if weights is None else None,
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()), "checkpoint_sha256": digest,
        "window": window, "stride": stride, "frame_stride": loaded.data.frame_stride,
        "image_size": loaded.data.image_size, "views": views, "fused": fused,
        "feature_dim": channels if fused else channels * len(views),
        "precision": resolve_precision(loaded) if torch.cuda.is_available() else "32",
    }  # fmt: skip
    # Through JSON, as the files' meta and the YAML index read them back: tuples become lists.
    return Extractor(loaded, json.loads(json.dumps(settings)), weights, num_classes)


def collect_jobs(
    videos: Sequence[VideoEntry | VideoFile], *, views: list[str], failures: dict[str, str]
) -> list[ExtractJob]:
    """The videos as jobs over the model's `views`; a video without them is a failure. Unique ids."""
    jobs = []
    for video in videos:
        if isinstance(video, VideoFile):
            if len(views) != 1:
                failures[str(video.path)] = f"the model takes the views {views}: give a manifest naming each view"
                continue
            jobs.append(ExtractJob(video.id, {views[0]: video.path}))
            continue
        missing = [view for view in views if view not in video.views]
        if missing:
            failures[video.id] = f"has no view {missing[0]!r} (its views: {list(video.views)})"
            continue
        streams = {view: video.streams[view] for view in views if view in video.streams}
        jobs.append(
            ExtractJob(video.id, {v: video.views[v] for v in views}, streams, video.start_seconds, video.end_seconds)
        )
    duplicate = first_duplicate((job.video_id, next(iter(job.views.values()))) for job in jobs)
    if duplicate is not None:
        raise ConfigError(
            f"video id {duplicate[0]!r} is given twice, by {duplicate[1]} and {duplicate[2]}: ids name files"
        )
    return jobs


def expand(inputs: Sequence[str | os.PathLike[str]], *, split: str | None) -> tuple[list[Any], dict[str, str]]:
    """The videos of `inputs` (`vidfit.infer.expand_inputs`) and why some inputs gave none."""
    return expand_inputs(inputs, split=split)


def file_meta(job: ExtractJob, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What a video's file records besides its arrays: whose features, from which sources, made how."""
    return {
        "format": FEATURES_FORMAT,
        "video_id": job.video_id,
        "sources": {view: str(path) for view, path in job.views.items()},
        "clip": [job.start_seconds, job.end_seconds],
        "settings": dict(settings),
    }


def existing_entries(
    folder: Path, jobs: Sequence[ExtractJob], settings: Mapping[str, Any], index_path: Path
) -> dict[str, FeatureEntry | None]:
    """Per job, the entry of its file when an earlier run left it whole, made alike and as the index lists it."""
    try:
        listed = load_feature_index(index_path).videos if index_path.is_file() else {}
    except FeatureFileError:
        listed = {}
    return {job.video_id: _existing(folder, job, settings, listed.get(job.video_id)) for job in jobs}


def _existing(
    folder: Path, job: ExtractJob, settings: Mapping[str, Any], listed: FeatureEntry | None
) -> FeatureEntry | None:
    path = folder / feature_file_name(job.video_id)
    if not path.is_file():
        return None
    try:
        features, meta = read_video_features(path)  # every member's checksum is checked: a cut file is refused
    except FeatureFileError:
        return None
    expected = file_meta(job, settings)
    if any(meta.get(key) != value for key, value in expected.items()):
        return None
    digest = file_sha256(path)
    if listed is not None and listed.sha256 != digest:
        return None
    return FeatureEntry(path.name, features.num_frames, features.num_windows, float(meta["fps"]), digest)


def remove_stale_index(index_path: Path, settings: Mapping[str, Any]) -> None:
    """Removes an index of other settings (or unreadable) before its files are replaced, so none looks whole."""
    if not index_path.is_file():
        return
    try:
        stale = load_feature_index(index_path).settings != dict(settings)
    except FeatureFileError:
        stale = True
    if stale:
        index_path.unlink()


def remove_partial_files(folder: Path, jobs: Sequence[ExtractJob]) -> None:
    """Removes what a writer killed outright left of these videos' files (``.<id>.<token>.tmp.npz``).

    Only the videos this process is about to extract: shards in the same folder never touch each other's.
    """
    for job in jobs:
        stem = feature_file_name(job.video_id).removesuffix(".npz")
        for temp in folder.glob(f".{glob.escape(stem)}.*.tmp.npz"):
            temp.unlink(missing_ok=True)
