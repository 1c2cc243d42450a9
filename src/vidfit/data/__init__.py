"""Datasets of long multi-view videos: manifest, chunk index, synchronized loading, transcoding."""

from vidfit.data._augment import AugmentConfig, KeypointUnits, augment_clips
from vidfit.data._batch import TensorBatch, VideoBatch
from vidfit.data._chunks import ChunkIndex, build_chunk_index, chunk_spans
from vidfit.data._dataset import VideoDataset, VideoDatasetConfig, decode_size
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._import_formats import import_kinetics, import_multiview, import_video_folders, import_video_list
from vidfit.data._import_result import ImportNote, ImportResult
from vidfit.data._import_segments import import_segments
from vidfit.data._import_splits import import_hmdb51, import_ucf101
from vidfit.data._importers import import_activitynet, import_frame_labels, import_thumos14
from vidfit.data._keypoints import load_video_keypoints
from vidfit.data._loader import collate_samples, make_loader
from vidfit.data._manifest import Manifest, Segment, Timeline, VideoEntry, load_manifest, save_manifest
from vidfit.data._prepare import prepare_manifest
from vidfit.data._sampling import (
    IGNORE_LABEL,
    WorkerLocal,
    clip_frame_range,
    clip_multi_hot,
    frame_labels,
    frame_multi_hot,
    match_views,
)

__all__ = [
    "IGNORE_LABEL",
    "AugmentConfig",
    "ChunkIndex",
    "ImportNote",
    "ImportResult",
    "KeypointUnits",
    "Manifest",
    "ManifestError",
    "Problem",
    "Segment",
    "TensorBatch",
    "Timeline",
    "VideoBatch",
    "VideoDataset",
    "VideoDatasetConfig",
    "VideoEntry",
    "WorkerLocal",
    "augment_clips",
    "build_chunk_index",
    "chunk_spans",
    "clip_frame_range",
    "clip_multi_hot",
    "collate_samples",
    "decode_size",
    "frame_labels",
    "frame_multi_hot",
    "import_activitynet",
    "import_frame_labels",
    "import_hmdb51",
    "import_kinetics",
    "import_multiview",
    "import_segments",
    "import_thumos14",
    "import_ucf101",
    "import_video_folders",
    "import_video_list",
    "load_manifest",
    "load_video_keypoints",
    "make_loader",
    "match_views",
    "prepare_manifest",
    "save_manifest",
]
