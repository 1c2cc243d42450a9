"""Sliding-window inference of arbitrarily long videos, per-video and per-frame outputs."""

from vidfit.infer._inputs import MANIFEST_SUFFIXES, VIDEO_SUFFIXES, VideoFile, expand_inputs, first_duplicate
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
from vidfit.infer._sr import DEFAULT_SR_CHUNK_FRAMES, SuperResolutionModel, UpscaleResult, upscale_video
from vidfit.infer._windows import AGGREGATIONS, Aggregation, Window, aggregate, merge_frame_logits, plan_windows

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_SR_CHUNK_FRAMES",
    "MANIFEST_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Aggregation",
    "ChunkedPredictor",
    "ModelOutput",
    "Precision",
    "Segment",
    "SuperResolutionModel",
    "UpscaleResult",
    "VideoFile",
    "VideoModel",
    "VideoPrediction",
    "Window",
    "aggregate",
    "expand_inputs",
    "first_duplicate",
    "frame_accuracy",
    "frames_to_segments",
    "merge_frame_logits",
    "plan_windows",
    "segment_f1",
    "upscale_video",
    "write_frame_csv",
    "write_predictions_json",
]
