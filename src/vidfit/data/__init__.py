"""Datasets of long multi-view videos: manifest, chunk index, synchronized loading, transcoding."""

from vidfit.data._augment import AugmentConfig, augment_clips
from vidfit.data._batch import VideoBatch
from vidfit.data._dataset import VideoDataset, VideoDatasetConfig
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._import_formats import (
    import_hmdb51,
    import_kinetics,
    import_multiview,
    import_segments,
    import_thumos14,
    import_ucf101,
)
from vidfit.data._importers import import_activitynet, import_frame_labels
from vidfit.data._loader import collate_samples, make_loader
from vidfit.data._manifest import Manifest, Segment, Timeline, VideoEntry, load_manifest, save_manifest
from vidfit.data._prepare import prepare_manifest
from vidfit.data._sampling import IGNORE_LABEL

__all__ = [
    "IGNORE_LABEL",
    "AugmentConfig",
    "Manifest",
    "ManifestError",
    "Problem",
    "Segment",
    "Timeline",
    "VideoBatch",
    "VideoDataset",
    "VideoDatasetConfig",
    "VideoEntry",
    "augment_clips",
    "collate_samples",
    "import_activitynet",
    "import_frame_labels",
    "import_hmdb51",
    "import_kinetics",
    "import_multiview",
    "import_segments",
    "import_thumos14",
    "import_ucf101",
    "load_manifest",
    "make_loader",
    "prepare_manifest",
    "save_manifest",
]
