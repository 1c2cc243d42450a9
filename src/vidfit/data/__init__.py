"""Datasets of long multi-view videos: manifest, chunk index, synchronized loading, transcoding."""

from vidfit.data._chunks import ChunkIndex, ChunkRef, IndexedVideo, OnError, Tail, build_chunk_index, chunk_spans
from vidfit.data._dataset import VideoDataset, VideoDatasetConfig
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._importers import import_activitynet, import_frame_labels
from vidfit.data._keypoints import KeypointSource, load_video_keypoints
from vidfit.data._loader import collate_samples, make_loader, seed_worker
from vidfit.data._manifest import Manifest, Segment, Timeline, VideoEntry, load_manifest, save_manifest
from vidfit.data._prepare import prepare_manifest
from vidfit.data._sampling import frame_labels, frame_midpoints, match_view_frames
from vidfit.data._sr_patches import SRPatchConfig, SRPatchDataset, cut_patch, downsample_bicubic

__all__ = [
    "ChunkIndex",
    "ChunkRef",
    "IndexedVideo",
    "KeypointSource",
    "Manifest",
    "ManifestError",
    "OnError",
    "Problem",
    "SRPatchConfig",
    "SRPatchDataset",
    "Segment",
    "Tail",
    "Timeline",
    "VideoDataset",
    "VideoDatasetConfig",
    "VideoEntry",
    "build_chunk_index",
    "chunk_spans",
    "collate_samples",
    "cut_patch",
    "downsample_bicubic",
    "frame_labels",
    "frame_midpoints",
    "import_activitynet",
    "import_frame_labels",
    "load_manifest",
    "load_video_keypoints",
    "make_loader",
    "match_view_frames",
    "prepare_manifest",
    "save_manifest",
    "seed_worker",
]
