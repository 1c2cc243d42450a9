"""Sliding-window inference of arbitrarily long videos, per-video and per-frame outputs."""

from vidfit.infer._predictor import ChunkedPredictor, ModelOutput, Precision, VideoModel
from vidfit.infer._results import (
    Segment,
    VideoPrediction,
    frame_accuracy,
    frames_to_segments,
    segment_f1,
    write_frame_csv,
    write_predictions_json,
)
from vidfit.infer._sr import SuperResolutionModel, UpscaleResult, upscale_video
from vidfit.infer._windows import AGGREGATIONS, Aggregation, Window, aggregate, merge_frame_logits, plan_windows

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "ChunkedPredictor",
    "ModelOutput",
    "Precision",
    "Segment",
    "SuperResolutionModel",
    "UpscaleResult",
    "VideoModel",
    "VideoPrediction",
    "Window",
    "aggregate",
    "frame_accuracy",
    "frames_to_segments",
    "merge_frame_logits",
    "plan_windows",
    "segment_f1",
    "upscale_video",
    "write_frame_csv",
    "write_predictions_json",
]
