"""`predict`: a trained checkpoint over video files, folders or manifests, streamed window by window."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidfit.config import ConfigError, config_from_dict, resolve_precision
from vidfit.data import IGNORE_LABEL, Timeline, VideoDatasetConfig
from vidfit.data._dataset import decode_size
from vidfit.data._keypoints import load_video_keypoints
from vidfit.data._sampling import frame_labels, frame_midpoints, match_view_frames
from vidfit.infer import (
    CheckpointState,
    ChunkedPredictor,
    VideoPrediction,
    detection_map,
    expand_inputs,
    frame_accuracy,
    segment_f1,
    write_predictions,
)
from vidfit.infer._detection import DetectionMAP
from vidfit.infer._engines import Engine, Work
from vidfit.infer._inputs import VideoFile, first_duplicate
from vidfit.infer._ranks import Ranks, broadcast_from_rank_zero, gather_to_rank_zero, join_launch
from vidfit.infer._results import Segment as TimedSegment
from vidfit.infer._results import frames_to_segments
from vidfit.infer._shards import Shard, write_shard_record
from vidfit.io import VideoReader
from vidfit.io._atomic import check_writable
from vidfit.models import VideoClassifier
from vidfit.tasks.action._config import ActionConfig
from vidfit.tasks.action._model import build_model, chunked_predictor

# Views are matched by time as training matched them: `VideoDataset`'s default tolerance.
SYNC_TOLERANCE_SECONDS = VideoDatasetConfig.sync_tolerance_seconds


@dataclass(frozen=True)
class PredictResult:
    """What `predict` produced.

    Attributes:
        predictions: Per video id, what the model found.
        failures: Per video id (or input path), why it could not be predicted.
        json_path: ActivityNet-style results with vidfit's video-level section.
        csv_path: One row per frame.
        frame_accuracy: Over every labelled frame, when the inputs carry timelines.
        segment_f1: Mean segment F1 (IoU 0.5) over the videos whose timelines label some frame.
        detection: ActivityNet-style mAP of the predicted segments at tIoU 0.3:0.1:0.7, over the same videos.
    """

    predictions: dict[str, VideoPrediction]
    failures: dict[str, str]
    json_path: Path
    csv_path: Path
    frame_accuracy: float | None
    segment_f1: float | None
    detection: DetectionMAP | None = None

    def report_lines(self) -> list[str]:
        """What the command line prints of the run (failures apart)."""
        lines = [f"{len(self.predictions)} videos -> {self.json_path}, {self.csv_path}"]
        if self.frame_accuracy is not None:
            lines.append(f"frame accuracy {self.frame_accuracy:.3f}, segment F1@0.5 {self.segment_f1:.3f}")
        if self.detection is not None:
            found = self.detection
            at = ", ".join(f"{t:.1f}: {m:.3f}" for t, m in zip(found.tiou_thresholds, found.map_per_tiou, strict=True))
            lines.append(f"detection mAP {found.average_map:.3f} (at tIoU {at})")
        return lines


@dataclass(frozen=True)
class _Job:
    video_id: str
    views: Mapping[str, Path | str]
    timeline: Timeline | None = None
    keypoints: dict[str, Path] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)


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
    out = out if shard is None else shard.output_path(out)
    # The output place is checked before any video is decoded: a full run must not end in a refused write.
    paths = (check_writable(out), check_writable(Path(out).with_suffix(".csv")))
    jobs, failures = _collect_jobs(inputs, views=views, split=split)
    all_ids = [job.video_id for job in jobs]
    if shard is not None:
        jobs = [job for job in jobs if job.video_id in shard.video_ids(all_ids)]
    with join_launch() as ranks:
        share, shown = jobs[ranks.rank :: ranks.world_size], progress and ranks.rank == 0
        mine = (engine or Engine()).run(
            share, _work(checkpoint, config, ranks, views=views, labels=labels), progress=shown
        )
        parts = gather_to_rank_zero(mine)
        predictions, summary = mine[0], _Summary({}, None, None, None)
        if parts is not None:
            predictions, summary = _write_results(parts, jobs=jobs, paths=paths, labels=labels)
            if shard is not None:
                failed = {**failures, **summary.failures}
                write_shard_record(paths[0], shard=shard, kind="predictions", video_ids=all_ids, failures=failed)
        # The other ranks return once rank 0 has written the files, with its failures and scores.
        summary = broadcast_from_rank_zero(summary)
    return PredictResult(
        predictions, {**failures, **summary.failures}, *paths, summary.accuracy, summary.f1, summary.detection
    )


@dataclass(frozen=True)
class _Summary:
    """What rank 0 tells every rank: the failures of every video, and the scores."""

    failures: dict[str, str]
    accuracy: float | None
    f1: float | None
    detection: DetectionMAP | None


def _write_results(
    parts: list[tuple[dict[str, VideoPrediction], dict[str, str]]],
    *,
    jobs: list[_Job],
    paths: tuple[Path, Path],
    labels: tuple[str, ...],
) -> tuple[dict[str, VideoPrediction], _Summary]:
    """Every rank's results merged in input order, written to the JSON and CSV files, and scored."""
    predictions, failures = _in_job_order(jobs, parts)
    write_predictions(predictions, json_path=paths[0], csv_path=paths[1], label_names=labels)
    return predictions, _Summary(failures, *_scores(predictions, jobs, labels))


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
    model.load_state_dict(checkpoint.weights)
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
        view_frames = _match_views(job.video_id, readers)
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
        )  # fmt: skip


def _match_views(video_id: str, readers: list[VideoReader]) -> np.ndarray:
    """Each view's frame (V, T) on screen at each frame of the first view, as `VideoDataset` matches them."""
    reference = np.arange(len(readers[0]))
    times = frame_midpoints(readers[0], reference)
    return np.stack(
        [reference]
        + [
            match_view_frames(reader, times, video_id=video_id, tolerance_seconds=SYNC_TOLERANCE_SECONDS)
            for reader in readers[1:]
        ]
    )


def _scores(
    predictions: dict[str, VideoPrediction], jobs: list[_Job], labels: tuple[str, ...]
) -> tuple[float | None, float | None, DetectionMAP | None]:
    """Frame accuracy over all labelled frames, mean segment F1 and detection mAP of the videos with labelled frames.

    A timeline that labels no frame of its video has nothing to detect: it is left out of the mean
    rather than counted as 0 (or 1).
    """
    scores = {
        job.video_id: score
        for job in jobs
        if job.timeline is not None and job.video_id in predictions
        for score in [_score(predictions[job.video_id], job.timeline, labels)]
        if score is not None
    }
    if not scores:
        return None, None, None
    values = scores.values()
    correct, counted = sum(s.accuracy * s.num_labelled for s in values), sum(s.num_labelled for s in values)
    detection = detection_map(
        {video_id: predictions[video_id].segments() for video_id in scores},
        {video_id: score.true_segments for video_id, score in scores.items()},
    )
    return correct / counted, float(np.mean([s.f1 for s in values])), detection


@dataclass(frozen=True)
class _VideoScore:
    accuracy: float
    num_labelled: int
    f1: float
    true_segments: list[TimedSegment]


def _score(prediction: VideoPrediction, timeline: Timeline, labels: tuple[str, ...]) -> _VideoScore | None:
    """Frame accuracy, labelled frame count, segment F1 and true segments of one video; None without labels."""
    pts = prediction.pts_seconds
    assert pts is not None  # predict_readers gives every frame's time, from the first frame as timelines count
    truth = torch.from_numpy(
        frame_labels(timeline, labels=labels, frame_indices=np.arange(len(pts)), times_seconds=pts.numpy())
    )
    labelled = int((truth != IGNORE_LABEL).sum())
    if labelled == 0:
        return None
    accuracy = frame_accuracy(prediction.frame_labels, truth)
    true_segments = frames_to_segments(truth, pts_seconds=pts)
    return _VideoScore(accuracy, labelled, segment_f1(prediction.segments(), true_segments), true_segments)


def _collect_jobs(
    inputs: Sequence[str | os.PathLike[str]], *, views: list[str], split: str | None
) -> tuple[list[_Job], dict[str, str]]:
    """The videos to predict, and why some inputs gave none; raises ConfigError when two videos share an id."""
    videos, failures = expand_inputs(inputs, split=split)
    jobs: list[_Job] = []
    for video in videos:
        if not isinstance(video, VideoFile):
            jobs.append(_Job(video.id, video.views, video.timeline, video.keypoints, video.streams))
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
