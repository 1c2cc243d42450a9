"""`predict`: a trained checkpoint over video files, folders or manifests, streamed window by window."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfit.config import ConfigError, config_from_dict, resolve_precision
from vidfit.data import (
    Timeline,
    VideoDatasetConfig,
    VideoEntry,
    clip_frame_range,
    decode_size,
    load_video_keypoints,
    match_views,
)
from vidfit.infer import (
    CheckpointState,
    ChunkedPredictor,
    DetectionMAP,
    Engine,
    EvaluationMetrics,
    Ranks,
    Shard,
    VideoFile,
    VideoPrediction,
    Work,
    broadcast_from_rank_zero,
    evaluation_metrics,
    expand_inputs,
    file_sha256,
    first_duplicate,
    gather_to_rank_zero,
    join_launch,
    score_to_json,
    write_predictions,
    write_shard_record,
)
from vidfit.io import VideoReader, check_writable
from vidfit.models import VideoClassifier
from vidfit.tasks.action._config import ActionConfig
from vidfit.tasks.action._evaluation import frame_truth, unknown_label_problem, video_score
from vidfit.tasks.action._model import build_model, check_classifier_weights, chunked_predictor
from vidfit.tasks.action._multilabel import class_thresholds
from vidfit.tasks.action._multilabel_output import write_multi_label_results
from vidfit.tasks.action._multilabel_scores import MultiLabelMetrics

# Views are matched by time as training matched them: `VideoDataset`'s default tolerance.
SYNC_TOLERANCE_SECONDS = VideoDatasetConfig.sync_tolerance_seconds


@dataclass(frozen=True)
class PredictResult:
    """What `predict` produced.

    Attributes:
        predictions: Per video id, what the model found.
        failures: Per video id (or input path), why it could not be predicted.
        json_path: ActivityNet-style results with vidfit's video-level section.
        csv_path: One row per frame (one per video for a checkpoint whose frame head was never trained).
        metrics: The figures of the videos with labels or timelines (those `validate` reports), None without any;
            a multi-label model's are `MultiLabelMetrics` (per-frame mAP and F1, video mAP, detection).
        written: Whether the JSON and CSV were written: not when no video could be predicted, so that a run that
            failed leaves the files of an earlier run as they were.
        report_path: The HTML report written beside them (by `vidfit.apps.predict`), None without one.
    """

    predictions: dict[str, VideoPrediction]
    failures: dict[str, str]
    json_path: Path
    csv_path: Path
    metrics: EvaluationMetrics | MultiLabelMetrics | None = None
    written: bool = True
    report_path: Path | None = None

    @property
    def frame_accuracy(self) -> float | None:
        """Over every labelled frame, when the inputs carry timelines (and the frame head was trained)."""
        return self.metrics.frame_accuracy if isinstance(self.metrics, EvaluationMetrics) else None

    @property
    def segment_f1(self) -> float | None:
        """Mean segment F1 (IoU 0.5) over the videos whose timelines label some frame."""
        return None if self.metrics is None else self.metrics.segment_f1

    @property
    def detection(self) -> DetectionMAP | None:
        """ActivityNet-style mAP of the predicted segments at tIoU 0.3:0.1:0.7, over the same videos."""
        return None if self.metrics is None else self.metrics.detection

    def report_lines(self) -> list[str]:
        """What the command line prints of the run (failures apart)."""
        if not self.written:
            return [f"no video could be predicted: {self.json_path} and {self.csv_path} not written"]
        lines = [f"{len(self.predictions)} videos -> {self.json_path}, {self.csv_path}"]
        lines += [] if self.metrics is None else self.metrics.report_lines()
        return lines + ([] if self.report_path is None else [f"report: {self.report_path}"])


@dataclass(frozen=True)
class _Job:
    video_id: str
    views: Mapping[str, Path | str]
    timeline: Timeline | None = None
    keypoints: dict[str, Path] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)
    label: str | None = None
    # The entry's clip range in seconds: only its frames are predicted.
    start_seconds: float | None = None
    end_seconds: float | None = None


def job_from_entry(entry: VideoEntry) -> _Job:
    """The job of a manifest video: what `predict` and evaluation read of it."""
    return _Job(
        entry.id, entry.views, entry.timeline, entry.keypoints, entry.streams, entry.label,
        entry.start_seconds, entry.end_seconds,
    )  # fmt: skip


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
) -> PredictResult:
    """Predicts every video of `inputs`: video files, folders of them, or manifests (multi-view videos).

    Ids are manifest ids, file stems inside folders, paths for files named by themselves; two videos of one
    id are refused before any work. A video that fails is reported in `failures`; the others complete.
    Under torchrun each rank predicts a share and rank 0 writes the files (docs/DISTRIBUTED.md).

    Args:
        checkpoint: A checkpoint written by `vidfit fit` (`vidfit.infer.read_checkpoint`).
        inputs: Video files, folders (their video files), or manifests (their videos, all views).
        out: The JSON results; the per-frame CSV goes beside it with the suffix ``.csv``.
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``train.chunk_infer_size=64``.
        split: Only the manifest videos of this split.
        progress: Show a progress bar.
        engine: Where the videos are predicted: this process (or torchrun's, the default), or Ray actors that each
            load the model.
        shard: Only this shard's videos, written to ``<out stem>.shard-<i>-of-<N>.json`` (and ``.csv``) with a
            record of the whole set beside, for `vidfit merge` (docs/DISTRIBUTED.md).
    """
    if checkpoint.task != "action":
        raise ConfigError(
            f"{checkpoint.path}: a checkpoint of experiment.task {checkpoint.task!r}; predict it with vidfit.predict"
        )
    config = config_from_dict(checkpoint.config, source=str(checkpoint.path), overrides=tuple(overrides))
    views, labels = list(checkpoint.hyper_parameters["views"]), tuple(checkpoint.hyper_parameters["label_names"])
    thresholds = class_thresholds(config.model.thresholds, labels) if config.model.multi_label else None
    check_classifier_weights(checkpoint, config)
    out = out if shard is None else shard.output_path(out)
    # The output place is checked before any video is decoded: a full run must not end in a refused write.
    paths = (check_writable(out), check_writable(Path(out).with_suffix(".csv")))
    jobs, failures = _collect_jobs(inputs, views=views, split=split)
    # Scored after every video is predicted: a label the model lacks is refused before any work instead.
    problems = [unknown_label_problem(j.video_id, label=j.label, timeline=j.timeline, label_names=labels) for j in jobs]
    if any(problems):
        raise ConfigError(f"{next(p for p in problems if p)}: predict with the checkpoint of these classes")
    if not config.model.multi_label:
        _refuse_overlapping_timelines(checkpoint.path, jobs)
    all_ids = [job.video_id for job in jobs]
    if shard is not None:
        jobs = [job for job in jobs if job.video_id in shard.video_ids(all_ids)]
    with join_launch() as ranks:
        # Hashed before any video is read: the shard's record names the weights its predictions came from.
        settings = _shard_settings(checkpoint, overrides, split) if shard is not None and ranks.rank == 0 else {}
        share, shown = jobs[ranks.rank :: ranks.world_size], progress and ranks.rank == 0
        mine = (engine or Engine()).run(
            share, _work(checkpoint, config, ranks, views=views, labels=labels), progress=shown
        )
        parts = gather_to_rank_zero(mine)
        predictions, summary = mine[0], _Summary({}, None)
        if parts is not None:
            per_frame = bool(checkpoint.hyper_parameters.get("frame_head_trained", True))
            predictions, summary = _write_results(
                parts, jobs=jobs, paths=paths, labels=labels, per_frame=per_frame, inputs_failed=bool(failures),
                thresholds=thresholds,
            )  # fmt: skip
            if shard is not None and summary.written:
                failed = {**failures, **summary.failures}
                write_shard_record(
                    paths[0], shard=shard, kind="predictions", video_ids=all_ids, failures=failed, settings=settings
                )
        # The other ranks return once rank 0 has written the files, with its failures and scores.
        summary = broadcast_from_rank_zero(summary)
    return PredictResult(predictions, {**failures, **summary.failures}, *paths, summary.metrics, summary.written)


def _refuse_overlapping_timelines(checkpoint_path: Path, jobs: list[_Job]) -> None:
    """Overlapping segments come only from a multi-label manifest, which a single-label model cannot score."""
    for job in jobs:
        segments = sorted(job.timeline.segments, key=lambda s: s.start) if job.timeline else []
        for before, after in itertools.pairwise(segments):
            if after.start < before.end:
                raise ConfigError(
                    f"video {job.video_id!r}: its timeline's segments [{before.start:g}, {before.end:g}) and "
                    f"[{after.start:g}, {after.end:g}) overlap (a multi_label manifest), but {checkpoint_path} is "
                    "a single-label model (model.multi_label: false): predict it with a multi-label checkpoint"
                )


def _shard_settings(checkpoint: CheckpointState, overrides: Sequence[str], split: str | None) -> dict[str, Any]:
    """What a shard's predictions depend on besides its videos: `vidfit merge` joins only shards that agree."""
    return {"checkpoint_sha256": file_sha256(checkpoint.path), "overrides": list(overrides), "split": split}


@dataclass(frozen=True)
class _Summary:
    """What rank 0 tells every rank: the failures of every video, and the figures."""

    failures: dict[str, str]
    metrics: EvaluationMetrics | MultiLabelMetrics | None
    written: bool = True


def _write_results(
    parts: list[tuple[dict[str, VideoPrediction], dict[str, str]]],
    *,
    jobs: list[_Job],
    paths: tuple[Path, Path],
    labels: tuple[str, ...],
    per_frame: bool,
    inputs_failed: bool = False,
    thresholds: torch.Tensor | None = None,
) -> tuple[dict[str, VideoPrediction], _Summary]:
    """Every rank's results merged in input order, scored, and written to the JSON and CSV files.

    `per_frame` says the checkpoint's frame head was trained: without, no segment nor frame is scored or written.
    When no video could be predicted (they failed, or `inputs_failed` gave none), nothing is written. With
    `thresholds` (a multi-label model's, per class) the results are written and scored as multi-label ones.
    """
    predictions, failures = _in_job_order(jobs, parts)
    if not predictions and (failures or inputs_failed):
        # Nothing could be predicted: empty files would replace the results of an earlier run.
        return predictions, _Summary(failures, None, written=False)
    if thresholds is not None:  # a multi-label model: classes at their thresholds, segments that may overlap
        found = write_multi_label_results(
            predictions, videos=jobs, paths=paths, label_names=labels, thresholds=thresholds, per_frame=per_frame
        )
        return predictions, _Summary(failures, found)
    scored = {
        job.video_id: video_score(
            predictions[job.video_id], video_id=job.video_id, label=job.label, label_names=labels,
            truth=frame_truth(predictions[job.video_id], timeline=job.timeline, label_names=labels),
            frame_head_trained=per_frame,
        )
        for job in jobs
        if job.video_id in predictions and (job.label is not None or job.timeline is not None)
    }  # fmt: skip
    evaluations = {video_id: score_to_json(score, labels) for video_id, score in scored.items()}
    write_predictions(
        predictions, json_path=paths[0], csv_path=paths[1], label_names=labels, per_frame=per_frame,
        evaluations=evaluations,
    )  # fmt: skip
    metrics = evaluation_metrics(list(scored.values()), num_classes=len(labels)) if scored else None
    return predictions, _Summary(failures, metrics)


def _predictor(model: VideoClassifier, config: ActionConfig, ranks: Ranks) -> ChunkedPredictor:
    """The model on this process's device: the GPU of its local rank under torchrun, else the GPU or the CPU."""
    if not torch.cuda.is_available():
        device = torch.device("cpu")
    elif ranks.world_size == 1:
        device = torch.device("cuda")
    elif ranks.local_rank < torch.cuda.device_count():
        device = torch.device("cuda", ranks.local_rank)
    else:
        raise ValueError(
            f"LOCAL_RANK={ranks.local_rank} but {torch.cuda.device_count()} GPU(s) are visible: "
            "launch at most one process per GPU (torchrun --nproc-per-node)"
        )
    model.eval().to(device)
    precision = resolve_precision(config) if device.type == "cuda" else "32"
    return chunked_predictor(model, config, device=device, precision=precision)  # type: ignore[arg-type]


def _work(
    checkpoint: CheckpointState, config: ActionConfig, ranks: Ranks, *, views: list[str], labels: tuple[str, ...]
) -> Work[_Job, ChunkedPredictor, VideoPrediction, str]:
    """Each video through a predictor that every worker (this process, or each Ray actor) loads once.

    Any error of one video is that video's failure, never the run's (`run_jobs`).
    """
    return Work(
        functools.partial(_run_job, views=views, config=config),
        key=_video_id,
        description="predicting",
        load=functools.partial(_load_predictor, checkpoint, config, ranks, labels=labels, views=views),
    )


def _load_predictor(
    checkpoint: CheckpointState, config: ActionConfig, ranks: Ranks, *, labels: tuple[str, ...], views: list[str]
) -> ChunkedPredictor:
    model = build_model(config, label_names=labels, views=views, load_pretrained=False)
    model.load_state_dict(checkpoint.weights)  # LoRA adapters onto their base weights, read from the base model
    model.merge_lora()  # inference at the base model's speed
    return _predictor(model, config, ranks)


def _run_job(predictor: ChunkedPredictor, job: _Job, *, views: list[str], config: ActionConfig) -> VideoPrediction:
    return _predict_job(predictor, job=job, views=views, config=config)


def _video_id(job: _Job) -> str:
    return job.video_id


def _in_job_order(
    jobs: list[_Job], parts: list[tuple[dict[str, VideoPrediction], dict[str, str]]]
) -> tuple[dict[str, VideoPrediction], dict[str, str]]:
    """The ranks' predictions and failures merged, in the order of `jobs`, as a single process lists them."""
    found = {video_id: p for predictions, _ in parts for video_id, p in predictions.items()}
    failed = {video_id: reason for _, failures in parts for video_id, reason in failures.items()}
    order = [job.video_id for job in jobs]
    return {i: found[i] for i in order if i in found}, {i: failed[i] for i in order if i in failed}


def _predict_job(predictor: ChunkedPredictor, *, job: _Job, views: list[str], config: ActionConfig) -> VideoPrediction:
    """One video through the predictor, its views matched by time, with its keypoints when the model takes them."""
    with ExitStack() as stack:
        readers = [
            stack.enter_context(VideoReader(job.views[view], stream_index=job.streams.get(view))) for view in views
        ]
        frames = _clip_frames(job, readers[0])
        view_frames = _match_views(job.video_id, readers, frames)
        keypoints = mask = None
        if config.model.input_type != "rgb":
            if not job.keypoints:
                raise ValueError(
                    f"the model takes keypoints (model.input_type={config.model.input_type!r}): "
                    "give a manifest whose videos list their keypoints"
                )
            keypoints, mask = load_video_keypoints(job.video_id, job.keypoints, views=views, view_frames=view_frames)
        # Frames as evaluation samples them: every data.frame_stride-th, at data.image_size.
        meta = readers[0].metadata
        return predictor.predict_readers(
            readers, size=decode_size(config.data.image_size, height=meta.height, width=meta.width),
            view_frames=view_frames, keypoints=keypoints, keypoint_mask=mask, frame_stride=config.data.frame_stride,
            frames=frames,
        )  # fmt: skip


def _clip_frames(job: _Job, reference: VideoReader) -> range:
    """The reference frames to predict: those of the entry's clip range, as `VideoDataset` samples them."""
    times = reference.pts_seconds - reference.metadata.begin_seconds
    frames = clip_frame_range(times, start_seconds=job.start_seconds, end_seconds=job.end_seconds)
    if not frames:
        clip = f"[{job.start_seconds or 0:g}, {'the end' if job.end_seconds is None else f'{job.end_seconds:g}'})"
        raise ValueError(f"{reference.path}: the clip {clip} s holds no frame of the video")
    return frames


def _match_views(video_id: str, readers: list[VideoReader], frames: range) -> np.ndarray:
    """Each view's frame (V, T) on screen at each of the first view's `frames`, as `VideoDataset` matches them."""
    return match_views(readers, frames, video_id=video_id, tolerance_seconds=SYNC_TOLERANCE_SECONDS)


def _collect_jobs(
    inputs: Sequence[str | os.PathLike[str]], *, views: list[str], split: str | None
) -> tuple[list[_Job], dict[str, str]]:
    """The videos to predict, and why some inputs gave none; raises ConfigError when two videos share an id."""
    videos, failures = expand_inputs(inputs, split=split)
    jobs: list[_Job] = []
    for video in videos:
        if not isinstance(video, VideoFile):
            jobs.append(job_from_entry(video))
        elif len(views) != 1:
            failures[str(video.path)] = (
                f"the model takes the views {views}: give a manifest that names each view's file"
            )
        else:
            jobs.append(_Job(video.id, {views[0]: video.path}))
    duplicate = first_duplicate((job.video_id, next(iter(job.views.values()))) for job in jobs)
    if duplicate is not None:
        video_id, first, second = duplicate
        raise ConfigError(
            f"video id {video_id!r} is given twice, by {first} and {second}: ids name the results, so they "
            "must be unique (a folder's videos are named by file stem: rename one, or predict them separately)"
        )
    return jobs, failures
