"""Scores of predicted videos against their labels: one small record per video, combined into the reported figures.

`vidfit validate` and `vidfit test` score each whole video through the predictor `vidfit predict` uses, and both
combine the records with `evaluation_metrics`, so they report the same figures for the same checkpoint and videos.
The predictions document keeps each video's record (`score_to_json`), from which `vidfit merge` combines the
figures of the shards it joins (`scores_from_document`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchmetrics.functional.classification import multiclass_accuracy

from vidfit.data import IGNORE_LABEL
from vidfit.infer._detection import DETECTION_TIOU_THRESHOLDS, DetectionMAP, detection_map
from vidfit.infer._results import Segment, VideoPrediction, frames_to_segments, segment_f1, segment_to_json

# Top-5 accuracy is reported where the model has at least this many classes (with fewer it is always 1).
TOP5_MIN_CLASSES = 5


@dataclass(frozen=True)
class FrameScore:
    """How the per-frame predictions of one video compare with its timeline.

    Attributes:
        num_labelled: Frames the timeline labels, >= 1.
        num_correct: Labelled frames whose predicted class is right.
        segment_f1: F1 of the predicted segments at tIoU 0.5 (`vidfit.infer.segment_f1`).
        predicted: The predicted segments, with their scores (for detection mAP).
        true: The runs of labelled frames.
    """

    num_labelled: int
    num_correct: int
    segment_f1: float
    predicted: tuple[Segment, ...]
    true: tuple[Segment, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.num_correct <= self.num_labelled or self.num_labelled < 1:
            raise ValueError(
                f"need 0 <= num_correct <= num_labelled and num_labelled >= 1, got {self.num_correct}, "
                f"{self.num_labelled}"
            )


@dataclass(frozen=True)
class VideoScore:
    """What the figures need of one predicted video: small enough to gather from every rank or keep in a file.

    Attributes:
        video_id: The video.
        label: Its true class index, `IGNORE_LABEL` when the video has no label.
        scores: Its video-level class scores (C,), as the prediction ranks the classes.
        frames: Its per-frame comparison; None without labelled frames (or a frame head never trained).
    """

    video_id: str
    label: int
    scores: tuple[float, ...]
    frames: FrameScore | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        if self.label != IGNORE_LABEL and not 0 <= self.label < len(self.scores):
            raise ValueError(f"video {self.video_id!r}: label {self.label} is not a class of {len(self.scores)}")


def score_video(
    prediction: VideoPrediction,
    *,
    video_id: str,
    label: int = IGNORE_LABEL,
    frame_labels: torch.Tensor | None = None,
) -> VideoScore:
    """One video's record.

    Args:
        prediction: What the predictor found in the video, with its frame times.
        video_id: The video.
        label: Its true class index, `IGNORE_LABEL` when it has none.
        frame_labels: True class of each frame (T,), `IGNORE_LABEL` where unlabelled; None leaves the frames
            unscored (no timeline, or a frame head that was never trained).
    """
    scores = tuple(float(s) for s in prediction.scores.tolist())
    if frame_labels is None or not bool((frame_labels != IGNORE_LABEL).any()):
        return VideoScore(video_id, label, scores, None)
    if prediction.pts_seconds is None or frame_labels.shape != prediction.frame_labels.shape:
        raise ValueError(
            f"video {video_id!r}: frame_labels {tuple(frame_labels.shape)} need a prediction with frame times "
            f"and as many frames ({tuple(prediction.frame_labels.shape)})"
        )
    labelled = frame_labels != IGNORE_LABEL
    true = frames_to_segments(frame_labels, pts_seconds=prediction.pts_seconds, first_frame=prediction.first_frame)
    predicted = prediction.segments()
    frames = FrameScore(
        num_labelled=int(labelled.sum()),
        num_correct=int((prediction.frame_labels[labelled] == frame_labels[labelled]).sum()),
        segment_f1=segment_f1(predicted, true),
        predicted=tuple(predicted),
        true=tuple(true),
    )
    return VideoScore(video_id, label, scores, frames)


@dataclass(frozen=True)
class EvaluationMetrics:
    """The figures of a set of scored videos.

    Attributes:
        num_videos: Videos scored.
        num_classes: Classes of the model.
        num_labelled_videos: Videos with a label: those the video-level figures count.
        top1: Share of the labelled videos whose highest score is their class; None without any.
        top5: Share whose class is among the five highest scores; None without labelled videos or with fewer
            than `TOP5_MIN_CLASSES` classes.
        mean_class_accuracy: Mean over the classes that have labelled videos of the share of their videos
            predicted right (top-1); None without labelled videos.
        num_labelled_frames: Frames labelled by the timelines, over every video.
        frame_accuracy: Share of the labelled frames predicted right, all videos together; None without any.
        segment_f1: Mean over the videos with labelled frames of their segment F1 at tIoU 0.5.
        detection: ActivityNet-style detection mAP at tIoU 0.3:0.1:0.7 over the same videos.
    """

    num_videos: int
    num_classes: int
    num_labelled_videos: int
    top1: float | None
    top5: float | None
    mean_class_accuracy: float | None
    num_labelled_frames: int
    frame_accuracy: float | None
    segment_f1: float | None
    detection: DetectionMAP | None

    def logged(self, stage: str) -> dict[str, float]:
        """The figures there are, by the names training logs them under (``val/top1``, ``val/mAP@0.5``, ...)."""
        values = {
            "top1": self.top1, "top5": self.top5, "mean_class_acc": self.mean_class_accuracy,
            "frame_acc": self.frame_accuracy, "f1@0.5": self.segment_f1,
            **({} if self.detection is None else self.detection.figures()),
        }  # fmt: skip
        return {f"{stage}/{name}": value for name, value in values.items() if value is not None}

    def report_lines(self) -> list[str]:
        """What the command line prints: a line for the videos, the frames and detection, each where it applies."""
        lines = []
        if self.top1 is not None:
            top5 = (
                f", top-5 {self.top5:.3f}"
                if self.top5 is not None
                else f" (no top-5 with {self.num_classes} classes < {TOP5_MIN_CLASSES})"
            )
            lines.append(
                f"videos: top-1 {self.top1:.3f}{top5}, mean class accuracy {self.mean_class_accuracy:.3f} "
                f"({self.num_labelled_videos} labelled videos)"
            )
        if self.frame_accuracy is not None:
            lines.append(
                f"frames: accuracy {self.frame_accuracy:.3f}, segment F1@0.5 {self.segment_f1:.3f} "
                f"({self.num_labelled_frames} labelled frames)"
            )
        if self.detection is not None:
            found = self.detection
            at = ", ".join(f"{t:.1f}: {m:.3f}" for t, m in zip(found.tiou_thresholds, found.map_per_tiou, strict=True))
            lines.append(f"detection mAP {found.average_map:.3f} (at tIoU {at})")
        return lines


def metric_names(stage: str, *, num_classes: int | None = None) -> tuple[str, ...]:
    """Every name `EvaluationMetrics.logged` may give, in its order; without top-5 for fewer than 5 `num_classes`."""
    top5 = ("top5",) if num_classes is None or num_classes >= TOP5_MIN_CLASSES else ()
    names = ("top1", *top5, "mean_class_acc", "frame_acc", "f1@0.5", "mAP")
    return tuple(f"{stage}/{n}" for n in names) + tuple(f"{stage}/mAP@{t:.1f}" for t in DETECTION_TIOU_THRESHOLDS)


def evaluation_metrics(scores: Sequence[VideoScore], *, num_classes: int) -> EvaluationMetrics:
    """The figures of `scores` (each video once).

    Video-level accuracies are torchmetrics' multiclass accuracies over the labelled videos' scores: micro
    top-1 and top-5, and per-class top-1 averaged over the classes with videos for the mean class accuracy. Frame
    accuracy is micro over every labelled frame; segment F1 the mean over videos; detection as `detection_map`.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be >= 2")
    wrong = [s.video_id for s in scores if len(s.scores) != num_classes]
    if wrong:
        raise ValueError(f"videos {wrong[:5]} have scores of another number of classes than num_classes={num_classes}")
    labelled = [s for s in scores if s.label != IGNORE_LABEL]
    top1 = top5 = mean_class = None
    if labelled:
        preds, target = torch.tensor([s.scores for s in labelled]), torch.tensor([s.label for s in labelled])
        top1 = float(multiclass_accuracy(preds, target, num_classes, average="micro"))
        # torchmetrics' "macro" also averages in classes that are only predicted (as 0): the mean runs over the
        # classes that have videos, as mean class accuracy is reported.
        per_class = multiclass_accuracy(preds, target, num_classes, average="none")
        mean_class = float(per_class[target.unique()].mean())
        if num_classes >= TOP5_MIN_CLASSES:
            top5 = float(multiclass_accuracy(preds, target, num_classes, average="micro", top_k=5))
    framed = {s.video_id: s.frames for s in scores if s.frames is not None}
    counted = sum(f.num_labelled for f in framed.values())
    return EvaluationMetrics(
        num_videos=len(scores), num_classes=num_classes, num_labelled_videos=len(labelled),
        top1=top1, top5=top5, mean_class_accuracy=mean_class, num_labelled_frames=counted,
        frame_accuracy=sum(f.num_correct for f in framed.values()) / counted if framed else None,
        segment_f1=sum(f.segment_f1 for f in framed.values()) / len(framed) if framed else None,
        detection=detection_map(
            {i: f.predicted for i, f in framed.items()}, {i: f.true for i, f in framed.items()}
        ) if framed else None,
    )  # fmt: skip


def score_to_json(score: VideoScore, label_names: Sequence[str]) -> dict[str, Any]:
    """The part of a video's record the predictions document does not hold already (its predicted segments)."""
    frames = score.frames
    return {
        "label": None if score.label == IGNORE_LABEL else label_names[score.label],
        "frames": None
        if frames is None
        else {
            "labelled": frames.num_labelled, "correct": frames.num_correct, "segment_f1": frames.segment_f1,
            "true_segments": [segment_to_json(s, label_names) for s in frames.true],
        },
    }  # fmt: skip


def scores_from_document(document: Mapping[str, Any]) -> tuple[list[VideoScore], tuple[str, ...]]:
    """The records a predictions document keeps, in its order, with its class names (those of every video's scores).

    Videos predicted without labels keep no record and are left out, as are a multi-label model's (their records
    have their own shape, and these figures are not theirs).
    """
    videos: Mapping[str, Any] = document.get("vidfit", {})
    label_names = tuple(next(iter(videos.values()))["scores"]) if videos else ()
    index = {name: position for position, name in enumerate(label_names)}

    def segment(item: Mapping[str, Any]) -> Segment:
        (start, stop), (first, last) = item["segment"], item["frames"]
        return Segment(int(first), int(last), float(start), float(stop), index[item["label"]], float(item["score"]))

    records = []
    for video_id, entry in videos.items():
        evaluation = entry.get("evaluation")
        if evaluation is None or entry.get("multi_label"):
            continue
        frames, label = evaluation["frames"], evaluation["label"]
        records.append(
            VideoScore(
                video_id, IGNORE_LABEL if label is None else index[label], tuple(map(float, entry["scores"].values())),
                None if frames is None else FrameScore(
                    int(frames["labelled"]), int(frames["correct"]), float(frames["segment_f1"]),
                    tuple(segment(item) for item in document["results"][video_id]),
                    tuple(segment(item) for item in frames["true_segments"]),
                ),
            )
        )  # fmt: skip
    return records, label_names
