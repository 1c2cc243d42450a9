"""Whole-video context: a temporal model over each video's window features (``experiment.task: temporal``).

`vidfit extract` writes the features of every window of every video; this task trains MS-TCN (dense per-frame
classes) or an ActionFormer-style detector (scored segments) over whole videos of them (docs/TEMPORAL.md). It
uses only the public names of vidfit's layers, as a task of another package would.
"""

from vidfit.config import TaskSpec, register_task
from vidfit.tasks.temporal._config import (
    DEFAULTS,
    MONITORS,
    TemporalDataConfig,
    TemporalModelConfig,
    TemporalTrainConfig,
    temporal_problems,
)
from vidfit.tasks.temporal._data import BucketBatchSampler, FeatureBatch, FeatureSequences, collate_sequences
from vidfit.tasks.temporal._datamodule import TemporalDataModule
from vidfit.tasks.temporal._evaluation import TemporalMetrics, TemporalScore, temporal_metrics
from vidfit.tasks.temporal._metrics import (
    F1_OVERLAPS,
    SegmentationMetrics,
    SegmentationScore,
    edit_score,
    label_runs,
    score_segmentation,
    segmentation_metrics,
)
from vidfit.tasks.temporal._module import TemporalModule
from vidfit.tasks.temporal._predict import TemporalPredictResult, predict
from vidfit.tasks.temporal._run import data_and_module, load_module

TASK = register_task(
    TaskSpec(
        name="temporal",
        model_section=TemporalModelConfig,
        data_section=TemporalDataConfig,
        train_section=TemporalTrainConfig,
        monitors=MONITORS,
        defaults=DEFAULTS,
        path_keys=(("data", "features"),),
        problems=temporal_problems,
        data_and_module=data_and_module,
        predict=predict,
        predict_options=("features",),
    )
)

__all__ = [
    "F1_OVERLAPS",
    "BucketBatchSampler",
    "FeatureBatch",
    "FeatureSequences",
    "SegmentationMetrics",
    "SegmentationScore",
    "TemporalDataModule",
    "TemporalMetrics",
    "TemporalModule",
    "TemporalPredictResult",
    "TemporalScore",
    "collate_sequences",
    "edit_score",
    "label_runs",
    "load_module",
    "predict",
    "score_segmentation",
    "segmentation_metrics",
    "temporal_metrics",
]
