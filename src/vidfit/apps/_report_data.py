"""What the report reads of a predictions JSON: each video's true and predicted segments, labels and scores.

The document is read defensively: a video's record may lack its evaluation (no labels), its segments (a model
whose frame head was never trained), or carry several labels (a multi-label model). The report shows what is
there and leaves the rest out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidfit.infer import evaluation_metrics
from vidfit.infer._scores import scores_from_document

# Largest predictions JSON read: about 10 million segments. (`vidfit merge` reads them whole too.)
MAX_PREDICTIONS_BYTES = 2 * 2**30
# Predicted segments above which the report does not recompute detection mAP (its matching grows with the product
# of predicted and true segments per class; `vidfit predict` printed it): the other figures are still shown.
MAX_DETECTION_SEGMENTS = 50_000

Segment = tuple[int, int, int, float]  # start frame, stop frame, class index, score in [0, 1]


@dataclass
class VideoRecord:
    """One predicted video, as the report draws and counts it.

    Attributes:
        video_id: The video's id.
        frames: The frames predicted ``[start, stop)``.
        predicted: Predicted segments; empty for a model that predicts whole videos only.
        true: True segments of its timeline; empty without one.
        label: Its true video-level class (or classes, multi-label), empty without a label.
        predicted_label: The predicted video-level class (or classes).
        labelled_frames: Frames its timeline labels (0 without a timeline).
        correct_frames: Labelled frames predicted right.
        segment_f1: F1 of its predicted segments at tIoU 0.5, None without a timeline.
        seconds: (first frame, seconds) and (last frame, seconds) of the boundaries seen, for the player's clock.
    """

    video_id: str
    frames: tuple[int, int]
    predicted: list[Segment] = field(default_factory=list)
    true: list[Segment] = field(default_factory=list)
    label: tuple[int, ...] = ()
    predicted_label: tuple[int, ...] = ()
    labelled_frames: int = 0
    correct_frames: int = 0
    segment_f1: float | None = None
    seconds: list[tuple[int, float]] = field(default_factory=list)

    @property
    def error(self) -> float | None:
        """Share of its labelled frames predicted wrong; without a timeline, 1 when its video label is wrong;
        None when it has neither (unscored videos sort last)."""
        if self.labelled_frames:
            return 1 - self.correct_frames / self.labelled_frames
        if self.label:
            return float(set(self.label) != set(self.predicted_label))
        return None


@dataclass(frozen=True)
class Predictions:
    """A predictions document as the report uses it.

    Attributes:
        path: The JSON file.
        label_names: Class names by index: those of the videos' scores, then any other a segment names.
        videos: By video, in the document's order.
        multi_label: Written by a multi-label model (segments may overlap, a video may have several classes).
        metrics: The figures `predict` and `validate` report, by their logged names, recomputed from the
            videos' records (empty when the document keeps none, or keeps them in a form this version cannot read).
    """

    path: Path
    label_names: list[str]
    videos: list[VideoRecord]
    multi_label: bool
    metrics: dict[str, float]


def read_predictions(path: Path) -> Predictions:
    """Reads a predictions JSON written by `vidfit predict` (or `vidfit merge`).

    Raises:
        ValueError: The file is not such a document; the message names the file and what is wrong.
    """
    if path.stat().st_size > MAX_PREDICTIONS_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes is more than the {MAX_PREDICTIONS_BYTES:,} read")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: not a vidfit predictions JSON (nested too deep)") from None
    except ValueError as error:  # json.JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{path}: not a vidfit predictions JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise ValueError(f"{path}: not a vidfit predictions JSON (it has no 'results' mapping of videos)")
    results: Mapping[str, Any] = document["results"]
    extra = document.get("vidfit")
    records: Mapping[str, Any] = extra if isinstance(extra, dict) else {}
    names = _label_names(results, records)
    index = {name: position for position, name in enumerate(names)}
    videos = [
        _video(str(video_id), items, records.get(video_id) or {}, index, path=path)
        for video_id, items in results.items()
    ]
    multi = any(isinstance(record, dict) and record.get("multi_label") for record in records.values())
    return Predictions(path, names, videos, multi, _metrics(document, len(names)) if not multi else {})


def _label_names(results: Mapping[str, Any], records: Mapping[str, Any]) -> list[str]:
    names: dict[str, None] = {}
    for record in records.values():
        if isinstance(record, dict) and isinstance(record.get("scores"), dict):
            names.update(dict.fromkeys(map(str, record["scores"])))
    for items in results.values():
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and "label" in item:
                names.setdefault(str(item["label"]))
    return list(names)


def _video(
    video_id: str, items: Any, record: Mapping[str, Any], index: Mapping[str, int], *, path: Path
) -> VideoRecord:
    where = f"{path}: results[{video_id!r}]"
    predicted = [_segment(item, index, where=where) for item in _list(items, where) if "frames" in item]
    evaluation = record.get("evaluation") or {}
    frames = evaluation.get("frames") or {}
    true = [_segment(item, index, where=where) for item in _list(frames.get("true_segments", []), where)]
    span = record.get("frames")
    if isinstance(span, list) and len(span) == 2:
        first, stop = int(span[0]), int(span[1])
    else:  # older documents: the span the segments cover
        first = min((s[0] for s in predicted + true), default=0)
        stop = max((s[1] for s in predicted + true), default=first)
    video = VideoRecord(video_id, (first, stop), predicted, true)
    video.label = _classes(evaluation.get("labels", evaluation.get("label")), index)
    video.predicted_label = _classes(record.get("labels", record.get("label")), index)
    video.labelled_frames, video.correct_frames = int(frames.get("labelled", 0)), int(frames.get("correct", 0))
    video.segment_f1 = float(frames["segment_f1"]) if "segment_f1" in frames else None
    video.seconds = _clock([*items, *frames.get("true_segments", [])])
    return video


def _list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{where}: expected a list of segments ({{'label', 'score', 'segment', 'frames'}})")
    return value


def _segment(item: Mapping[str, Any], index: Mapping[str, int], *, where: str) -> Segment:
    try:
        start, stop = item["frames"]
        return int(start), int(stop), index[str(item["label"])], float(item.get("score", 1.0))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: a segment needs 'label' and 'frames': [start, stop], got {item!r:.200}") from error


def _classes(value: Any, index: Mapping[str, int]) -> tuple[int, ...]:
    values = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(index[str(name)] for name in values if str(name) in index)


def _clock(items: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """The first and last (frame, seconds) pairs the segments give: the player's time of any frame between."""
    pairs = [
        (int(item["frames"][k]), float(item["segment"][k]))
        for item in items
        if isinstance(item.get("frames"), list) and isinstance(item.get("segment"), list)
        for k in (0, 1)
    ]
    return [min(pairs), max(pairs)] if pairs else []


def _metrics(document: Mapping[str, Any], num_classes: int) -> dict[str, float]:
    """The figures of the documented records, as `vidfit predict` printed them (`evaluation_metrics`)."""
    try:
        scores, _ = scores_from_document(document)
        if not scores or num_classes < 2:
            return {}
        framed = [s.frames for s in scores if s.frames is not None]
        if sum(len(f.predicted) for f in framed) <= MAX_DETECTION_SEGMENTS:
            logged = evaluation_metrics(scores, num_classes=num_classes).logged("predict")
        else:  # the video-level figures; the frame figures are sums of the records
            unframed = [dataclasses.replace(s, frames=None) for s in scores]
            logged = evaluation_metrics(unframed, num_classes=num_classes).logged("predict")
            logged["predict/frame_acc"] = sum(f.num_correct for f in framed) / sum(f.num_labelled for f in framed)
            logged["predict/f1@0.5"] = sum(f.segment_f1 for f in framed) / len(framed)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):  # another version's records
        return {}
    return {name.removeprefix("predict/"): value for name, value in logged.items()}


def video_order(videos: Sequence[VideoRecord]) -> list[VideoRecord]:
    """Worst first: by share of frames wrong (or a wrong video label), then lowest segment F1; unscored last."""
    return sorted(
        videos,
        key=lambda v: (v.error is None, -(v.error or 0.0), v.segment_f1 if v.segment_f1 is not None else 1.0),
    )
