"""Inference without the trainer: sliding windows over arbitrarily long videos, checkpoints, per-video jobs."""

from vidfit.infer._checkpoint import CheckpointState, read_checkpoint
from vidfit.infer._detection import detection_map
from vidfit.infer._inputs import expand_inputs
from vidfit.infer._jobs import run_jobs
from vidfit.infer._predictor import ChunkedPredictor, ModelOutput
from vidfit.infer._results import VideoPrediction, frame_accuracy, segment_f1, write_predictions
from vidfit.infer._windows import plan_windows

__all__ = [
    "CheckpointState",
    "ChunkedPredictor",
    "ModelOutput",
    "VideoPrediction",
    "detection_map",
    "expand_inputs",
    "frame_accuracy",
    "plan_windows",
    "read_checkpoint",
    "run_jobs",
    "segment_f1",
    "write_predictions",
]
