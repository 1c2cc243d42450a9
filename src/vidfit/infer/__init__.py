"""Inference without the trainer: sliding windows over arbitrarily long videos, checkpoints, per-video jobs."""

from vidfit.infer._checkpoint import CheckpointState, read_checkpoint
from vidfit.infer._detection import DETECTION_TIOU_THRESHOLDS, DetectionMAP, detection_map
from vidfit.infer._engines import ENGINE_NAMES, Engine, EngineName, Work
from vidfit.infer._inputs import VIDEO_SUFFIXES, VideoFile, expand_inputs, first_duplicate
from vidfit.infer._jobs import run_jobs
from vidfit.infer._predictor import ChunkedPredictor, ModelOutput, VideoModel
from vidfit.infer._ranks import Ranks, broadcast_from_rank_zero, gather_to_rank_zero, is_rank_zero, join_launch
from vidfit.infer._results import (
    VideoPrediction,
    frame_accuracy,
    frames_to_segments,
    segment_f1,
    write_frame_csv,
    write_predictions,
    write_predictions_json,
)
from vidfit.infer._shards import Shard, ShardRecord, read_shard_record, write_shard_record
from vidfit.infer._windows import Window, plan_windows

__all__ = [
    "DETECTION_TIOU_THRESHOLDS",
    "ENGINE_NAMES",
    "VIDEO_SUFFIXES",
    "CheckpointState",
    "ChunkedPredictor",
    "DetectionMAP",
    "Engine",
    "EngineName",
    "ModelOutput",
    "Ranks",
    "Shard",
    "ShardRecord",
    "VideoFile",
    "VideoModel",
    "VideoPrediction",
    "Window",
    "Work",
    "broadcast_from_rank_zero",
    "detection_map",
    "expand_inputs",
    "first_duplicate",
    "frame_accuracy",
    "frames_to_segments",
    "gather_to_rank_zero",
    "is_rank_zero",
    "join_launch",
    "plan_windows",
    "read_checkpoint",
    "read_shard_record",
    "run_jobs",
    "segment_f1",
    "write_frame_csv",
    "write_predictions",
    "write_predictions_json",
    "write_shard_record",
]
