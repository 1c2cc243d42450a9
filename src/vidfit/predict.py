"""`predict`: a trained checkpoint over video files, folders or manifests, streamed window by window."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from vidfit.data import ManifestError, Timeline, frame_labels, load_manifest, load_video_keypoints
from vidfit.infer import (
    ChunkedPredictor,
    VideoPrediction,
    frame_accuracy,
    frames_to_segments,
    segment_f1,
    write_frame_csv,
    write_predictions_json,
)
from vidfit.io import VideoDecodeError, VideoReader
from vidfit.train import (
    Config,
    Ranks,
    VideoClassificationModule,
    broadcast_from_rank_zero,
    config_from_dict,
    gather_to_rank_zero,
    join_launch,
    load_module,
    resolve_precision,
)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class PredictResult:
    """What `predict` produced.

    Attributes:
        predictions: Per video id, what the model found.
        failures: Per video id (or input path), why it could not be predicted.
        json_path: ActivityNet-style results with vidfit's video-level section.
        csv_path: One row per frame.
        frame_accuracy: Over every labelled frame, when the inputs carry timelines.
        segment_f1: Mean segment F1 (IoU 0.5) over the videos with timelines.
    """

    predictions: dict[str, VideoPrediction]
    failures: dict[str, str]
    json_path: Path
    csv_path: Path
    frame_accuracy: float | None
    segment_f1: float | None


@dataclass(frozen=True)
class _Job:
    video_id: str
    views: dict[str, Path]
    timeline: Timeline | None = None
    keypoints: dict[str, Path] = field(default_factory=dict)


def predict(
    checkpoint: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "predictions.json",
    overrides: Sequence[str] = (),
    split: str | None = None,
    progress: bool = True,
) -> PredictResult:
    """Predicts every video of `inputs` (files, folders of videos, or manifests for multi-view videos).

    Args:
        checkpoint: A checkpoint written by `vidfit fit`.
        inputs: Video files, folders (their video files), or manifests (their videos, all views).
        out: The JSON results; the per-frame CSV goes beside it with the suffix ``.csv``.
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``train.chunk_infer_size=64``.
        split: Only the manifest videos of this split.
        progress: Show a progress bar.

    A video that cannot be read is reported in `failures` and the others still complete.

    Launched by torchrun with ``WORLD_SIZE > 1``, each rank predicts a disjoint share of the videos
    and rank 0 writes the files once, exactly as a single process would. Every rank returns the
    failures and scores of all videos; `predictions` holds all videos on rank 0 and the rank's own
    share elsewhere (so that only rank 0 holds every video's frame logits).
    """
    module = load_module(checkpoint)
    config = config_from_dict(module.hparams["config"], source=str(checkpoint), overrides=tuple(overrides))
    views, labels = list(module.hparams["views"]), list(module.hparams["label_names"])
    json_path, csv_path = Path(out), Path(out).with_suffix(".csv")
    with join_launch() as ranks:
        predictor = _predictor(module, config, ranks)
        jobs, failures = _collect_jobs(inputs, views, split)
        # Under torchrun each rank predicts every world_size-th video; rank 0 gathers, scores and writes them once.
        share, shown = jobs[ranks.rank :: ranks.world_size], progress and ranks.rank == 0
        predictions, job_failures = _predict_jobs(predictor, share, views, config, progress=shown)
        parts = gather_to_rank_zero((predictions, job_failures))
        summary: tuple[dict[str, str], float | None, float | None] = ({}, None, None)
        if parts is not None:
            predictions, job_failures = _in_job_order(jobs, parts)
            write_predictions_json(predictions, json_path, label_names=labels)
            write_frame_csv(predictions, csv_path, label_names=labels)
            summary = (job_failures, *_scores(predictions, jobs, tuple(labels)))
        # The other ranks return once rank 0 has written the files, with its failures and scores.
        job_failures, accuracy, f1 = broadcast_from_rank_zero(summary)
    return PredictResult(predictions, {**failures, **job_failures}, json_path, csv_path, accuracy, f1)


def _predictor(module: VideoClassificationModule, config: Config, ranks: Ranks) -> ChunkedPredictor:
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
    return ChunkedPredictor(
        module.model.eval().to(device),
        chunk_infer_size=config.train.chunk_infer_size,
        chunk_overlap=config.train.chunk_overlap,
        chunk_aggregation=config.train.chunk_aggregation,
        video_batch_size=config.train.video_batch_size,
        precision=resolve_precision(config) if device.type == "cuda" else "32",  # type: ignore[arg-type]
        device=device,
    )


def _predict_jobs(
    predictor: ChunkedPredictor, jobs: list[_Job], views: list[str], config: Config, *, progress: bool
) -> tuple[dict[str, VideoPrediction], dict[str, str]]:
    """Predictions of the videos of `jobs`, and why the others could not be predicted."""
    predictions: dict[str, VideoPrediction] = {}
    failures: dict[str, str] = {}
    for job in track(jobs, description="predicting", disable=not progress):
        try:
            predictions[job.video_id] = _predict_job(predictor, job, views, config)
        except (FileNotFoundError, VideoDecodeError, ValueError, KeyError) as error:
            failures[job.video_id] = str(error)
    return predictions, failures


def _in_job_order(
    jobs: list[_Job], parts: list[tuple[dict[str, VideoPrediction], dict[str, str]]]
) -> tuple[dict[str, VideoPrediction], dict[str, str]]:
    """The ranks' predictions and failures merged, in the order of `jobs`, as a single process lists them."""
    found = {video_id: p for predictions, _ in parts for video_id, p in predictions.items()}
    failed = {video_id: reason for _, failures in parts for video_id, reason in failures.items()}
    order = [job.video_id for job in jobs]
    return {i: found[i] for i in order if i in found}, {i: failed[i] for i in order if i in failed}


def _scores(
    predictions: dict[str, VideoPrediction], jobs: list[_Job], labels: tuple[str, ...]
) -> tuple[float | None, float | None]:
    """Frame accuracy over all labelled frames and mean segment F1 of the predicted videos with timelines."""
    scores = [
        _score(predictions[job.video_id], job.timeline, labels)
        for job in jobs
        if job.timeline is not None and job.video_id in predictions
    ]
    correct, counted = sum(s[0] * s[1] for s in scores), sum(s[1] for s in scores)
    accuracy = correct / counted if counted else None
    return accuracy, float(np.mean([s[2] for s in scores])) if scores else None


def _predict_job(predictor: ChunkedPredictor, job: _Job, views: list[str], config: Config) -> VideoPrediction:
    """One video through the predictor, with its keypoints when the model takes them."""
    with ExitStack() as stack:
        readers = [stack.enter_context(VideoReader(job.views[view])) for view in views]
        if config.model.input_type == "rgb":
            return predictor.predict_readers(readers, size=config.data.image_size)
        if not job.keypoints:
            raise ValueError(
                f"the model takes keypoints (model.input_type={config.model.input_type!r}): "
                "give a manifest whose videos list their keypoints"
            )
        points, mask = load_video_keypoints(job.video_id, job.keypoints, views=views, num_frames=len(readers[0]))
        return predictor.predict_readers(readers, size=config.data.image_size, keypoints=points, keypoint_mask=mask)


def _score(prediction: VideoPrediction, timeline: Timeline, labels: tuple[str, ...]) -> tuple[float, int, float]:
    """Frame accuracy, labelled frame count and segment F1 of one video against its timeline."""
    pts = prediction.pts_seconds if prediction.pts_seconds is not None else torch.arange(len(prediction.frame_logits))
    seconds = (pts - pts[0]).numpy()
    truth = torch.from_numpy(frame_labels(timeline, labels, np.arange(len(seconds)), seconds))
    labelled = int((truth != -1).sum())
    if labelled == 0:
        return 0.0, 0, 0.0
    accuracy = frame_accuracy(prediction.frame_labels, truth)
    return accuracy, labelled, segment_f1(prediction.segments(), frames_to_segments(truth, pts_seconds=pts.double()))


def _collect_jobs(
    inputs: Sequence[str | os.PathLike[str]], views: list[str], split: str | None
) -> tuple[list[_Job], dict[str, str]]:
    jobs: list[_Job] = []
    failures: dict[str, str] = {}
    for item in map(Path, inputs):
        if item.suffix.lower() in MANIFEST_SUFFIXES:
            try:
                manifest = load_manifest(item)
            except (ManifestError, FileNotFoundError) as error:
                failures[str(item)] = str(error)
                continue
            jobs += [
                _Job(v.id, v.views, v.timeline, v.keypoints)
                for v in manifest.videos
                if split is None or v.split == split
            ]
            continue
        files = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if item.is_dir() else [item]
        for file in files:
            if len(views) != 1:
                failures[str(file)] = f"the model takes the views {views}: give a manifest that names each view's file"
            else:
                jobs.append(_Job(file.stem if item.is_dir() else str(file), {views[0]: file}))
    return jobs, failures
