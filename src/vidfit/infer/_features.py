"""Feature files: one per video, the features of its windows (what `vidfit extract` writes), and their index.

A feature file ``<video id>.npz`` is a zip of NumPy arrays that `numpy.load` reads (``allow_pickle=False``):

- ``features`` float16 (V, N, C): each window's pooled backbone features, per view (V views) or fused (V = 1);
- ``window_frames`` int64 (N, 2): each window's video frames ``[start, stop)``;
- ``centre_frames``, ``centre_seconds`` float64 (N,): each window's centre, in frames and in seconds from the
  video's first frame;
- ``pts_seconds`` float64 (T,): the time of every frame of the video (``first_frame`` onwards), so that results
  per frame and segments in seconds need not open the video again;
- ``meta``: the settings the file was made with and the video's id and sources, as UTF-8 JSON.

Files are written whole (temp file, then rename) and byte for byte the same for the same inputs: fixed member
order and zip timestamps, no compression. The index ``features.yaml`` beside them names the settings (backbone,
checkpoint hash, window, stride, views) and, per video, the file, its length and its SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from vidfit.io import DocumentLimits, load_document, write_files_atomic
from vidfit.io._atomic import resolve_inside

FEATURES_FORMAT = "vidfit-features-1"
FEATURES_INDEX = "features.yaml"
_ARRAYS = ("features", "window_frames", "centre_frames", "centre_seconds", "pts_seconds", "meta")
# A fixed zip timestamp (the earliest zip can hold): the same inputs give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_INDEX_LIMITS = DocumentLimits(max_bytes=256 << 20, max_depth=16, max_nodes=20_000_000)


def feature_file_name(video_id: str) -> str:
    """The file of a video's features inside the folder: ``<id>.npz`` for an id that is a plain name; for another
    (a video file given by its path is named by it) its last part and a hash of the whole id, so that it stays
    inside the folder and two ids never share a file."""
    plain = video_id not in ("", ".", "..") and not any(c in video_id for c in "/\\\0") and not video_id.startswith(".")
    if plain:
        return f"{video_id}.npz"
    stem = PurePosixPath(video_id.replace("\\", "/")).name.lstrip(".") or "video"
    return f"{stem}-{hashlib.sha256(video_id.encode()).hexdigest()[:12]}.npz"


class FeatureFileError(ValueError):
    """A feature file or index that cannot be read, or was made otherwise than its index says."""


@dataclass(frozen=True)
class VideoFeatures:
    """One video's window features.

    Attributes:
        features: float16 (V, N, C), per view or fused (V = 1).
        window_frames: int64 (N, 2), each window's frames ``[start, stop)`` in the video.
        centre_frames: float64 (N,), each window's centre frame (a half for an even window).
        centre_seconds: float64 (N,), its time from the video's first frame.
        pts_seconds: float64 (T,), the time of each of the video's frames from `first_frame` on.
        first_frame: The video's index of the first frame (a manifest entry's clip range starts there).
    """

    features: np.ndarray
    window_frames: np.ndarray
    centre_frames: np.ndarray
    centre_seconds: np.ndarray
    pts_seconds: np.ndarray
    first_frame: int = 0

    def __post_init__(self) -> None:
        count = len(self.window_frames)
        shapes = {
            "features (V, N, C)": self.features.ndim == 3 and self.features.shape[1] == count,
            "window_frames (N, 2)": self.window_frames.shape == (count, 2),
            "centre_frames (N,)": self.centre_frames.shape == (count,),
            "centre_seconds (N,)": self.centre_seconds.shape == (count,),
            "pts_seconds (T,)": self.pts_seconds.ndim == 1 and len(self.pts_seconds) >= 1,
        }
        wrong = [name for name, ok in shapes.items() if not ok]
        if wrong or count < 1:
            raise ValueError(f"features of {count} windows need {', '.join(wrong or ['N >= 1'])}")

    @property
    def num_windows(self) -> int:
        return len(self.window_frames)

    @property
    def num_frames(self) -> int:
        return len(self.pts_seconds)

    @property
    def feature_dim(self) -> int:
        """Channels of one window: V * C, the views side by side."""
        return int(self.features.shape[0] * self.features.shape[2])

    def sequence(self) -> np.ndarray:
        """float32 (V * C, N): the views' features stacked on channels, as a temporal model reads them."""
        views, count, channels = self.features.shape
        return self.features.transpose(0, 2, 1).reshape(views * channels, count).astype(np.float32)


def feature_bytes(features: VideoFeatures, *, meta: Mapping[str, Any]) -> bytes:
    """The file's bytes: the same for the same arrays and `meta` (plain JSON data)."""
    arrays = {
        "features": features.features.astype(np.float16),
        "window_frames": features.window_frames.astype(np.int64),
        "centre_frames": features.centre_frames.astype(np.float64),
        "centre_seconds": features.centre_seconds.astype(np.float64),
        "pts_seconds": features.pts_seconds.astype(np.float64),
        "meta": np.frombuffer(
            json.dumps({**meta, "first_frame": features.first_frame}, sort_keys=True).encode(), np.uint8
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in _ARRAYS:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def write_video_features(path: str | os.PathLike[str], features: VideoFeatures, *, meta: Mapping[str, Any]) -> str:
    """Writes a feature file whole or not at all (temp file, then rename); returns its SHA-256."""
    data = feature_bytes(features, meta=meta)
    write_files_atomic({path: lambda temp: temp.write_bytes(data)})
    return hashlib.sha256(data).hexdigest()


def read_video_features(path: str | os.PathLike[str]) -> tuple[VideoFeatures, dict[str, Any]]:
    """A feature file's arrays (checksums of every member checked) and its meta.

    Raises:
        FeatureFileError: Naming the file: missing, cut short, altered, or not a feature file.
    """
    source = Path(path)
    try:
        with np.load(source, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAYS}
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        features = VideoFeatures(
            arrays["features"], arrays["window_frames"], arrays["centre_frames"], arrays["centre_seconds"],
            arrays["pts_seconds"], int(meta.get("first_frame", 0)),
        )  # fmt: skip
    except FileNotFoundError as error:
        raise FeatureFileError(f"{source}: no such feature file") from error
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise FeatureFileError(f"{source}: not a whole feature file of vidfit extract ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FEATURES_FORMAT:
        raise FeatureFileError(f"{source}: not a feature file of format {FEATURES_FORMAT!r}")
    return features, meta


@dataclass(frozen=True)
class FeatureEntry:
    """One video of the index.

    Attributes:
        file: Its feature file, relative to the index's folder.
        num_frames: Frames of the video (of its clip range) the windows cover.
        num_windows: Windows, N.
        fps: The video's frame rate.
        sha256: The file's SHA-256.
    """

    file: str
    num_frames: int
    num_windows: int
    fps: float
    sha256: str


@dataclass(frozen=True)
class FeatureIndex:
    """The index of a feature folder.

    Attributes:
        settings: How every file was made: backbone, pretrained weights, checkpoint and its SHA-256, window,
            stride, frame stride, image size, views, whether fused, feature_dim, precision.
        videos: The videos whose files are complete, by id, in the order of the inputs.
        failures: Per video id, why it has no features.
        folder: The folder of the index and the files.
    """

    settings: dict[str, Any]
    videos: dict[str, FeatureEntry]
    failures: dict[str, str] = field(default_factory=dict)
    folder: Path = Path()

    @property
    def feature_dim(self) -> int:
        return int(self.settings["feature_dim"])

    def read(self, video_id: str) -> VideoFeatures:
        """The features of `video_id`, refused when its file was made with other settings than the index's."""
        if video_id not in self.videos:
            reason = self.failures.get(video_id, "not extracted")
            raise FeatureFileError(f"{self.folder / FEATURES_INDEX}: no features of video {video_id!r} ({reason})")
        try:  # an index is read from anywhere: the files it names must stay inside its folder
            path = resolve_inside(self.folder, self.videos[video_id].file)
        except ValueError as error:
            raise FeatureFileError(f"{self.folder / FEATURES_INDEX}: video {video_id!r}: {error}") from error
        features, meta = read_video_features(path)
        if meta.get("settings") != self.settings or meta.get("video_id") != video_id:
            raise FeatureFileError(
                f"{path}: made with other settings than {self.folder / FEATURES_INDEX} says (or for another video): "
                "run vidfit extract again"
            )
        return features

    def to_document(self) -> dict[str, Any]:
        videos = {video_id: vars(entry) for video_id, entry in self.videos.items()}
        return {"format": FEATURES_FORMAT, **self.settings, "videos": videos, "failures": dict(self.failures)}


def save_feature_index(index: FeatureIndex, path: str | os.PathLike[str]) -> Path:
    """Writes the index as YAML, whole or not at all; the same index gives the same bytes."""
    text = yaml.safe_dump(index.to_document(), sort_keys=False, allow_unicode=True, width=120)
    return write_files_atomic({path: lambda temp: temp.write_text(text, encoding="utf-8")})[0]


def load_feature_index(path: str | os.PathLike[str]) -> FeatureIndex:
    """The index of a feature folder (or the index file itself).

    Raises:
        FeatureFileError: No index there, or one that is not vidfit extract's, naming the file and the field.
    """
    source = Path(path)
    source = source / FEATURES_INDEX if source.is_dir() else source
    try:
        document = load_document(source.read_text(encoding="utf-8"), form="yaml", source=str(source),
                                 limits=_INDEX_LIMITS)  # fmt: skip
    except FileNotFoundError as error:
        raise FeatureFileError(f"{source}: no feature index: run vidfit extract --out {source.parent}") from error
    except (OSError, ValueError) as error:
        raise FeatureFileError(f"{source}: cannot read the feature index: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FEATURES_FORMAT:
        raise FeatureFileError(f"{source}: format must be {FEATURES_FORMAT!r}: not an index written by vidfit extract")
    settings = {k: v for k, v in document.items() if k not in ("format", "videos", "failures")}
    try:
        videos = {str(k): FeatureEntry(**v) for k, v in dict(document.get("videos") or {}).items()}
        failures = {str(k): str(v) for k, v in dict(document.get("failures") or {}).items()}
        int(settings["feature_dim"])
    except (TypeError, ValueError, KeyError) as error:
        raise FeatureFileError(
            f"{source}: a video entry or feature_dim is not as vidfit extract writes it: {error}"
        ) from error
    return FeatureIndex(settings, videos, failures, source.parent)
