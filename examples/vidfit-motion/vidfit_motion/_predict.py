"""`vidfit predict` of a motion checkpoint: each video's frames labelled idle or motion, in the JSON and CSV of
`vidfit.infer.write_predictions` (which `vidfit merge` joins), on any engine and shard."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch

from vidfit.config import ConfigError, config_from_dict, resolve_precision
from vidfit.data import decode_size
from vidfit.infer import (
    CheckpointState,
    ChunkedPredictor,
    Engine,
    Shard,
    VideoFile,
    VideoPrediction,
    Work,
    check_weights,
    expand_inputs,
    prediction_settings,
    write_predictions,
    write_shard_record,
)
from vidfit.io import VideoReader, check_writable
from vidfit.memory import Precision
from vidfit_motion._model import LABELS, MotionConfig, MotionNet


@dataclass(frozen=True)
class MotionRun:
    """What `predict` wrote (`vidfit.config.PredictOutcome`).

    Attributes:
        predictions: Per video id, its frames' logits of `LABELS`.
        failures: Per video id (or input), why it could not be predicted.
        json_path: The results: segments of each label, and each video's frame range.
        csv_path: One row per frame.
    """

    predictions: dict[str, VideoPrediction]
    failures: dict[str, str]
    json_path: Path
    csv_path: Path

    def report_lines(self) -> list[str]:
        return [f"{len(self.predictions)} videos -> {self.json_path}, {self.csv_path}"]


def predict(
    checkpoint: CheckpointState,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "motion.json",
    overrides: Sequence[str] = (),
    split: str | None = None,
    progress: bool = True,
    engine: Engine | None = None,
    shard: Shard | None = None,
    threshold: float = 0.5,
) -> MotionRun:
    """Labels every frame of every video of `inputs` idle or motion (`vidfit.config.PredictFunction`).

    Args:
        threshold: A frame is motion when its probability of motion is at least this (``--option threshold=``).
    """
    checkpoint.require_task("motion")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold={threshold!r} must be between 0 and 1 (exclusive)")
    config: MotionConfig = config_from_dict(checkpoint.config, source=str(checkpoint.path), overrides=tuple(overrides))
    with torch.device("meta"):  # the weights fit the model, checked before any video is read
        check_weights(MotionNet(channels=config.model.channels), checkpoint)
    target = Path(out) if shard is None else shard.output_path(out)
    paths = (check_writable(target), check_writable(target.with_suffix(".csv")))
    jobs, failures = _jobs(inputs, view=checkpoint.hyper_parameters["view"], split=split)
    all_ids = [video_id for video_id, _ in jobs]
    if shard is not None:
        jobs = [job for job in jobs if job[0] in shard.video_ids(all_ids)]
    work = Work(
        functools.partial(_predict_video, image_size=config.data.image_size, threshold=threshold),
        key=_video_id,
        description="motion",
        load=functools.partial(_predictor, checkpoint, config),
    )
    predictions, failed = (engine or Engine()).run(jobs, work, progress=progress)
    failures.update(failed)
    if predictions or not failures:  # a run that predicted nothing leaves earlier results as they were
        write_predictions(predictions, json_path=paths[0], csv_path=paths[1], label_names=LABELS)
        if shard is not None:
            settings = prediction_settings(checkpoint.path, overrides=overrides, split=split)
            write_shard_record(
                paths[0], shard=shard, kind="predictions", video_ids=all_ids, failures=failures, settings=settings
            )
    return MotionRun(predictions, failures, *paths)


def _jobs(
    inputs: Sequence[str | os.PathLike[str]], *, view: str, split: str | None
) -> tuple[list[tuple[str, Path | str]], dict[str, str]]:
    """(video id, file of the model's view) of every input video, and why some inputs gave none."""
    videos, failures = expand_inputs(inputs, split=split)
    jobs: list[tuple[str, Path | str]] = []
    for video in videos:
        if isinstance(video, VideoFile):
            jobs.append((video.id, video.path))
        elif view in video.views:
            jobs.append((video.id, video.views[view]))
        else:
            failures[video.id] = f"no view {view!r}, the one the model was trained on"
    return jobs, failures


def _predictor(checkpoint: CheckpointState, config: MotionConfig) -> ChunkedPredictor:
    """The model on this worker's device behind windows of ``train.chunk_infer_size`` frames; once per worker."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = MotionNet(channels=config.model.channels)
    model.load_state_dict(checkpoint.weights)
    precision = cast(Precision, resolve_precision(config)) if device.type == "cuda" else "32"
    train = config.train
    return ChunkedPredictor(
        model.eval().to(device), chunk_infer_size=train.chunk_infer_size, chunk_overlap=train.chunk_overlap,
        chunk_aggregation=train.chunk_aggregation, precision=precision, device=device, min_window_frames=2,
    )  # fmt: skip


def _predict_video(
    predictor: ChunkedPredictor,
    job: tuple[str, Path | str],
    *,
    image_size: int | tuple[int, int] | None,
    threshold: float,
) -> VideoPrediction:
    """One video's frames through the predictor, the motion logits shifted by the threshold's log-odds."""
    with VideoReader(job[1]) as reader:
        meta = reader.metadata
        size = decode_size(image_size, height=meta.height, width=meta.width)
        prediction = predictor.predict_readers([reader], size=size)
    shift = torch.tensor([0.0, math.log(threshold / (1 - threshold))])
    return dataclasses.replace(prediction, frame_logits=prediction.frame_logits - shift.to(prediction.frame_logits))


def _video_id(job: tuple[str, Path | str]) -> str:
    return job[0]
