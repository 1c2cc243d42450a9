"""Action recognition's evaluation: each whole video scored as `predict` scores it, gathered from every rank.

Validation and test run every video of their split through the `ChunkedPredictor` that `predict` uses (the same
windows over the whole video, views matched by time, aggregation) and score it with `video_score`, which `predict`
calls too; `vidfit.infer.evaluation_metrics` combines the records of both. So `validate` and `predict` report
the same figures for the same checkpoint and videos, whatever `data.max_video_frames` cuts training chunks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch

from vidfit.data import IGNORE_LABEL, Timeline, frame_labels
from vidfit.infer import VideoPrediction, VideoScore, gather_objects, metric_names, score_video


def frame_truth(
    prediction: VideoPrediction, *, timeline: Timeline | None, label_names: Sequence[str]
) -> torch.Tensor | None:
    """True class of each of the prediction's frames (T,) from `timeline`, `IGNORE_LABEL` where unlabelled.

    None without a timeline. Frames are placed by their index and by their time from the first frame, as
    timelines count them.
    """
    pts = prediction.pts_seconds
    if timeline is None or pts is None:
        return None
    # A clip range's prediction starts at its first frame; timelines count the video's frames.
    frames = prediction.first_frame + np.arange(len(pts))
    labels = frame_labels(timeline, labels=tuple(label_names), frame_indices=frames, times_seconds=pts.numpy())
    return torch.from_numpy(labels)


def video_score(
    prediction: VideoPrediction,
    *,
    video_id: str,
    label: str | None,
    truth: torch.Tensor | None,
    label_names: Sequence[str],
    frame_head_trained: bool,
) -> VideoScore:
    """The record `validate`, `test` and `predict` score a video by.

    Args:
        prediction: The predictor's output over the whole video.
        video_id: The video.
        label: Its manifest label, None when it has none.
        truth: `frame_truth` of the video.
        label_names: The model's classes.
        frame_head_trained: Whether the checkpoint's frame head was trained (its training data had timelines);
            an untrained head's frames are not scored.
    """
    index = IGNORE_LABEL if label is None else list(label_names).index(label)
    return score_video(prediction, video_id=video_id, label=index, frame_labels=truth if frame_head_trained else None)


def unknown_label_problem(
    video_id: str, *, label: str | None, timeline: Timeline | None, label_names: Sequence[str]
) -> str | None:
    """Why a video cannot be scored against the model's classes (a label the model does not have), or None."""
    names = set(label_names)
    found = {label} if label is not None else set()
    found |= {segment.label for segment in timeline.segments} if timeline is not None else set()
    unknown = sorted(found - names)
    if not unknown:
        return None
    return f"video {video_id!r} is labelled {unknown}, which are not classes of the model ({list(label_names)})"


@dataclass(frozen=True)
class EvaluatedVideo:
    """What one rank found in one video of the split.

    Attributes:
        position: The video's place in the split (manifest order).
        score: Its record for the figures.
        loss: Its clip loss plus the weighted frame loss, over every frame.
    """

    position: int
    score: VideoScore
    loss: float


class _Placed(Protocol):
    @property
    def position(self) -> int: ...


_V = TypeVar("_V", bound=_Placed)


def gather_videos(videos: Sequence[_V]) -> list[_V]:
    """Every rank's videos, each once, in split order: what one process evaluating the whole split holds.

    `DistributedSampler` evens out the ranks' shares by repeating videos; a repeat is dropped. A collective
    under DDP; the sorted `videos` otherwise. Any record with the video's `position` in the split will do
    (`EvaluatedVideo`, or a multi-label model's).
    """
    unique: dict[int, _V] = {}
    for video in gather_objects(videos):
        unique.setdefault(video.position, video)
    return [unique[position] for position in sorted(unique)]


def evaluation_names(stage: str) -> tuple[str, ...]:
    """Every figure evaluation may log for `stage`: loss, accuracy (``acc``, top-1's earlier name), the rest."""
    return (f"{stage}/loss", f"{stage}/acc", *metric_names(stage))


def monitor_problem(
    monitor: str, *, video_labels: bool, frame_labels: bool, num_classes: int, split_key: str
) -> str | None:
    """Why single-label validation on this data can never log `monitor`, or None when it can.

    Args:
        monitor: ``train.monitor``.
        video_labels: Some video of the validation split has a label.
        frame_labels: Some video of it has a timeline, and the frame head is trained (the training split has some).
        num_classes: Classes of the model.
        split_key: Names the split in the message (``data.val_split='val'``).
    """
    video_figures = {"val/acc", "val/top1", "val/top5", "val/mean_class_acc"}
    if monitor not in evaluation_names("val"):  # another model's figure (a multi-label one's): its own rules
        return None
    if monitor in video_figures and not video_labels:
        need = f"videos with a label in {split_key}"
    elif monitor not in video_figures | {"val/loss"} and not frame_labels:
        need = f"timelines in both the training split and {split_key}"
    elif monitor == "val/top5" and monitor not in metric_names("val", num_classes=num_classes):
        need = f"at least 5 classes, the data has {num_classes}"
    else:
        return None
    return f"train.monitor={monitor!r} needs {need}: monitor val/loss or a figure this data has"
