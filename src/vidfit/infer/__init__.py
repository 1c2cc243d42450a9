"""Sliding-window inference of arbitrarily long videos, per-video and per-frame outputs."""

from vidfit.infer._predictor import ChunkedPredictor, Precision
from vidfit.infer._results import (
    Segment,
    VideoPrediction,
    frame_accuracy,
    segment_f1,
    segments_from_labels,
    write_frame_csv,
    write_predictions_json,
)
from vidfit.infer._windows import AGGREGATIONS, Aggregation, Window, aggregate, merge_frame_logits, plan_windows

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "ChunkedPredictor",
    "Precision",
    "Segment",
    "VideoPrediction",
    "Window",
    "aggregate",
    "frame_accuracy",
    "merge_frame_logits",
    "plan_windows",
    "segment_f1",
    "segments_from_labels",
    "write_frame_csv",
    "write_predictions_json",
]
