"""Datasets of long multi-view videos: manifest, chunk index, synchronized loading, transcoding."""

from vidfit.data._augment import AugmentConfig, AugmentedClips, augment_clips
from vidfit.data._batch import TensorBatch, VideoBatch
from vidfit.data._chunks import ChunkIndex, ChunkRef, IndexedVideo, OnError, Tail, build_chunk_index, chunk_spans
from vidfit.data._dataset import VideoDataset, VideoDatasetConfig, decode_size
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._import_formats import (
    OVERLAP_POLICIES,
    OverlapPolicy,
    import_hmdb51,
    import_kinetics,
    import_multiview,
    import_segments,
    import_thumos14,
    import_ucf101,
)
from vidfit.data._importers import import_activitynet, import_frame_labels
from vidfit.data._keypoints import KeypointSource, load_video_keypoints
from vidfit.data._loader import collate_samples, make_loader, seed_worker
from vidfit.data._manifest import Manifest, Segment, Timeline, VideoEntry, load_manifest, save_manifest
from vidfit.data._prepare import prepare_manifest
from vidfit.data._sampling import IGNORE_LABEL, frame_labels, frame_midpoints, match_view_frames

__all__ = [
    "IGNORE_LABEL",
    "OVERLAP_POLICIES",
    "AugmentConfig",
    "AugmentedClips",
    "ChunkIndex",
    "ChunkRef",
    "IndexedVideo",
    "KeypointSource",
    "Manifest",
    "ManifestError",
    "OnError",
    "OverlapPolicy",
    "Problem",
    "Segment",
    "Tail",
    "TensorBatch",
    "Timeline",
    "VideoBatch",
    "VideoDataset",
    "VideoDatasetConfig",
    "VideoEntry",
    "augment_clips",
    "build_chunk_index",
    "chunk_spans",
    "collate_samples",
    "decode_size",
    "frame_labels",
    "frame_midpoints",
    "import_activitynet",
    "import_frame_labels",
    "import_hmdb51",
    "import_kinetics",
    "import_multiview",
    "import_segments",
    "import_thumos14",
    "import_ucf101",
    "load_manifest",
    "load_video_keypoints",
    "make_loader",
    "match_view_frames",
    "prepare_manifest",
    "save_manifest",
    "seed_worker",
]
