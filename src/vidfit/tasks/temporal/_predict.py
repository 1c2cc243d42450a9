"""`predict` of a temporal checkpoint: each video's features through the model, to ActivityNet-style JSON and a
per-frame CSV (as the action task writes them), scored where the manifest has timelines."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfit.config import config_from_dict
from vidfit.data import VideoEntry, frame_labels
from vidfit.infer import (
    CheckpointState,
    Engine,
    FeatureIndex,
    Shard,
    Work,
    expand_inputs,
    file_sha256,
    load_feature_index,
    write_shard_record,
)
from vidfit.io import check_writable
from vidfit.tasks.temporal._config import TemporalConfig
from vidfit.tasks.temporal._datamodule import frames_per_step
from vidfit.tasks.temporal._evaluation import (
    TemporalMetrics,
    TemporalScore,
    evaluation_record,
    score_temporal,
    temporal_metrics,
)
from vidfit.tasks.temporal._frames import StepTimes
from vidfit.tasks.temporal._model import FrameResult, TemporalNet
from vidfit.tasks.temporal._results import write_temporal_results
from vidfit.tasks.temporal._run import check_features, require_temporal


@dataclass(frozen=True)
class TemporalPredictResult:
    """What `predict` produced.

    Attributes:
        results: Per video id, the model's reading at every frame.
        failures: Per video id (or input), why it could not be predicted.
        json_path: ActivityNet-style segments with vidfit's per-video section.
        csv_path: One row per frame.
        metrics: The figures of the videos with timelines; None without any.
        written: Whether the files were written (not when no video could be predicted).
        report_path: The HTML report written beside them (by `vidfit.apps.predict`), None without one.
    """

    results: dict[str, FrameResult]
    failures: dict[str, str]
    json_path: Path
    csv_path: Path
    metrics: TemporalMetrics | None = None
    written: bool = True
    report_path: Path | None = None

    def report_lines(self) -> list[str]:
        """What the command line prints of the run (failures apart)."""
        if not self.written:
            return [f"no video could be predicted: {self.json_path} and {self.csv_path} not written"]
        lines = [f"{len(self.results)} videos -> {self.json_path}, {self.csv_path}"]
        lines += [] if self.metrics is None else self.metrics.report_lines()
        return lines + ([] if self.report_path is None else [f"report: {self.report_path}"])


@dataclass(frozen=True)
class _Job:
    video_id: str
    position: int
    entry: VideoEntry | None


@dataclass(frozen=True)
class _Predicted:
    result: FrameResult
    times: StepTimes
    score: TemporalScore | None


def predict(
    checkpoint: CheckpointState,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "predictions.json",
    overrides: Sequence[str] = (),
    split: str | None = None,
    progress: bool = True,
    engine: Engine | None = None,
    shard: Shard | None = None,
    features: str | os.PathLike[str] | None = None,
) -> TemporalPredictResult:
    """Predicts every video of `inputs` (manifests, or video files named by their stem) from its features.

    Args:
        checkpoint: A temporal checkpoint.
        inputs: Manifests (their timelines score the results), video files or folders: their ids find their
            features.
        out: The JSON results; the per-frame CSV goes beside with the suffix ``.csv``.
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``model.score_threshold=0.5``.
        split: Only the manifest videos of this split.
        progress: Show a progress bar.
        engine: Where the videos are predicted (this process, or Ray actors).
        shard: Only this shard's videos, for `vidfit merge`.
        features: The feature folder (``vidfit predict --option features=DIR``); default the checkpoint's
            ``data.features``. Its settings must be those the model was trained on.
    """
    require_temporal(checkpoint)
    config: TemporalConfig = config_from_dict(
        checkpoint.config, source=str(checkpoint.path), overrides=tuple(overrides)
    )
    index = load_feature_index(features if features is not None else config.data.features)
    check_features(checkpoint, index.settings, where=f"features={str(index.folder)!r}")
    out = out if shard is None else shard.output_path(out)
    paths = (check_writable(out), check_writable(Path(out).with_suffix(".csv")))
    videos, failures = expand_inputs(inputs, split=split)
    jobs = [_Job(v.id, p, v if isinstance(v, VideoEntry) else None) for p, v in enumerate(videos)]
    all_ids = [job.video_id for job in jobs]
    if shard is not None:
        jobs = [job for job in jobs if job.video_id in shard.video_ids(all_ids)]
    labels = list(checkpoint.hyper_parameters["label_names"])
    work = Work(
        functools.partial(_predict_video, index=index, labels=tuple(labels)),
        key=_video_id, description="predicting",
        load=functools.partial(_load_net, config, checkpoint.weights, int(checkpoint.hyper_parameters["feature_dim"]),
                               labels),
    )  # fmt: skip
    predicted, failed = (engine or Engine()).run(jobs, work, progress=progress)
    failures.update(failed)
    if not predicted and failures:
        return TemporalPredictResult({}, failures, *paths, written=False)
    write_temporal_results(
        {k: (v.result, v.times) for k, v in predicted.items()}, json_path=paths[0], csv_path=paths[1],
        label_names=labels, head=config.model.head, evaluations=_evaluations(predicted, labels),
    )  # fmt: skip
    if shard is not None:
        settings = {"checkpoint_sha256": file_sha256(checkpoint.path), "overrides": list(overrides), "split": split,
                    "features": str(index.folder)}  # fmt: skip
        write_shard_record(paths[0], shard=shard, kind="predictions", video_ids=all_ids, failures=failures,
                           settings=settings)  # fmt: skip
    scores = [v.score for v in predicted.values() if v.score is not None]
    metrics = temporal_metrics(scores) if scores else None
    return TemporalPredictResult({k: v.result for k, v in predicted.items()}, failures, *paths, metrics)


def _evaluations(predicted: dict[str, _Predicted], labels: list[str]) -> dict[str, dict[str, Any]]:
    """The scoring record of each video with a timeline, as the results JSON keeps it."""
    records = {
        video_id: evaluation_record(found.score, class_scores=found.result.class_scores.tolist(), label_names=labels)
        for video_id, found in predicted.items()
        if found.score is not None
    }
    return {video_id: record for video_id, record in records.items() if record is not None}


def _video_id(job: _Job) -> str:
    return job.video_id


def _load_net(config: TemporalConfig, weights: dict[str, torch.Tensor], feature_dim: int, labels: list[str]
              ) -> TemporalNet:  # fmt: skip
    net = TemporalNet(config.model, in_channels=feature_dim, label_names=labels)
    net.load_state_dict(weights)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return net.eval().to(device)


@torch.inference_mode()
def _predict_video(net: TemporalNet, job: _Job, *, index: FeatureIndex, labels: tuple[str, ...]) -> _Predicted:
    """One video's features through the model, read at its frames, scored against its timeline when it has one."""
    video = index.read(job.video_id)
    device = net.action_classes.device
    sequence = torch.from_numpy(video.sequence())[None].to(device)
    output = net(sequence, torch.ones((1, video.num_windows), dtype=torch.bool, device=device))
    times = StepTimes(video.centre_frames, video.pts_seconds, video.first_frame, float(frames_per_step(index)))
    result = net.frame_result(output, 0, num_steps=video.num_windows, times=times)
    score = None
    if job.entry is not None and job.entry.timeline is not None:
        frames = video.first_frame + np.arange(video.num_frames)
        truth = frame_labels(job.entry.timeline, labels=labels, frame_indices=frames, times_seconds=video.pts_seconds)
        score = score_temporal(result, truth, times, video_id=job.video_id, position=job.position,
                               background=net.background)  # fmt: skip
    return _Predicted(result, times, score)
