"""Inference without the trainer: sliding windows over arbitrarily long videos, checkpoints, per-video jobs."""

from vidfit.infer._checkpoint import CheckpointState, check_weights, read_checkpoint
from vidfit.infer._detection import DetectionMAP, detection_map
from vidfit.infer._device import autocast, check_precision, resolve_device
from vidfit.infer._engines import Engine, EngineName, Work
from vidfit.infer._features import (
    FEATURES_INDEX,
    FeatureEntry,
    FeatureFileError,
    FeatureIndex,
    VideoFeatures,
    load_feature_index,
    read_video_features,
    save_feature_index,
    write_video_features,
)
from vidfit.infer._inputs import VIDEO_SUFFIXES, VideoFile, expand_inputs, file_name, first_duplicate
from vidfit.infer._jobs import run_jobs
from vidfit.infer._predictor import ChunkedPredictor, ModelOutput
from vidfit.infer._ranks import Ranks, broadcast_from_rank_zero, gather_objects, gather_to_rank_zero, join_launch
from vidfit.infer._results import (
    RESULTS_VERSION,
    VideoPrediction,
    frame_accuracy,
    frames_to_segments,
    segment_f1,
    segment_to_json,
    write_predictions,
)
from vidfit.infer._results import Segment as TimedSegment
from vidfit.infer._scores import (
    EvaluationMetrics,
    FrameScore,
    VideoScore,
    evaluation_metrics,
    metric_names,
    score_to_json,
    score_video,
)
from vidfit.infer._shards import Shard, file_sha256, prediction_settings, write_shard_record
from vidfit.infer._windows import plan_windows

__all__ = [
    "FEATURES_INDEX",
    "RESULTS_VERSION",
    "VIDEO_SUFFIXES",
    "CheckpointState",
    "ChunkedPredictor",
    "DetectionMAP",
    "Engine",
    "EngineName",
    "EvaluationMetrics",
    "FeatureEntry",
    "FeatureFileError",
    "FeatureIndex",
    "FrameScore",
    "ModelOutput",
    "Ranks",
    "Shard",
    "TimedSegment",
    "VideoFeatures",
    "VideoFile",
    "VideoPrediction",
    "VideoScore",
    "Work",
    "autocast",
    "broadcast_from_rank_zero",
    "check_precision",
    "check_weights",
    "detection_map",
    "evaluation_metrics",
    "expand_inputs",
    "file_name",
    "file_sha256",
    "first_duplicate",
    "frame_accuracy",
    "frames_to_segments",
    "gather_objects",
    "gather_to_rank_zero",
    "join_launch",
    "load_feature_index",
    "metric_names",
    "plan_windows",
    "prediction_settings",
    "read_checkpoint",
    "read_video_features",
    "resolve_device",
    "run_jobs",
    "save_feature_index",
    "score_to_json",
    "score_video",
    "segment_f1",
    "segment_to_json",
    "write_predictions",
    "write_shard_record",
    "write_video_features",
]
