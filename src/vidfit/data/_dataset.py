"""`VideoDataset`: synchronized multi-view clips or chunks of long videos, with labels and keypoints."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from vidfit.data._chunks import ChunkRef, IndexedVideo, OnError, Tail, build_chunk_index
from vidfit.data._data_dir import data_dir_manifest, settings_file_values
from vidfit.data._dataset_checks import DatasetConfigError, check_frame_sizes, dataset_config_problems
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._keypoints import stack_view_keypoints
from vidfit.data._manifest import load_manifest
from vidfit.data._sampling import (
    IGNORE_LABEL,
    Mode,
    Sampling,
    WorkerLocal,
    clip_multi_hot,
    frame_labels,
    frame_midpoints,
    frame_multi_hot,
    match_view_frames,
    sample_positions,
)
from vidfit.io._decoders import Backend


@dataclass(frozen=True)
class VideoDatasetConfig:
    """What `VideoDataset` loads and how.

    Attributes:
        manifest: The manifest file (YAML or JSON); or leave it empty and give `data_dir`.
        split: Only videos of this split; all when None.
        mode: ``"clip"`` (`num_frames` frames sampled inside a chunk) or ``"chunk"`` (the whole chunk).
        num_frames: Frames per clip (``"clip"`` mode).
        sampling: ``"random"``, ``"uniform"`` or ``"consecutive"`` frames of a clip.
        frame_stride: Distance between frames for ``"consecutive"`` clips and ``"chunk"`` mode.
        image_size: ``(height, width)`` frames are resized to while decoding; an int is the short side (the
            other keeps the reference view's aspect ratio, as torchvision's ``Resize(int)``); native when None.
        max_video_frames: Chunk length in reference-view frames; whole videos when None.
        chunk_overlap_frames: Frames shared by consecutive chunks.
        tail: Short last chunk rule: ``"keep"``, ``"merge"`` or ``"drop"``.
        min_tail_frames: Last chunks shorter than this are tails (default `max_video_frames`).
        views: Views to load, in this order; when None, the views of the split's first video in the manifest.
        load_rgb: Return ``video``.
        load_kpt: Return ``keypoints`` and ``keypoint_mask``.
        sync_tolerance_seconds: Allowed timing mismatch between views.
        num_threads: FFmpeg threads per reader; None lets `make_loader` pick cpu_count // num_workers.
        decode_backend: ``"pyav"`` (CPU), ``"nvdec"`` (NVIDIA GPU decoder, PyAV with a warning where
            unavailable) or ``"torchcodec"``; frames come back as uint8 CPU tensors either way.
        seed: Seed of clip sampling, combined with the worker's seed.
        cache_dir: Folder caching the chunk index; no cache when None.
        on_error: ``"raise"`` on any bad video, or ``"skip"`` bad videos (their problems go to the log
            and to `report_path`).
        report_path: JSON report of skipped videos.
        allow_outside_root: Accept paths outside the manifest's data root.
        max_open_readers: Readers each worker keeps open.
        transform: Called on each view's uint8 frames (T, 3, H, W) of every sample (a chunk in ``"chunk"``
            mode), in the loader's workers, e.g. a ``torchvision.transforms.v2`` pipeline; returns uint8
            frames (T, 3, H', W') of one size across views. Run configs augment on the GPU instead
            (``data.augment``), where keypoints follow the crop.
        multi_label: Targets as classes present, for a manifest with ``multi_label: true`` (whose segments may
            overlap): ``frame_labels`` int8 (T, C) and ``label`` int8 (C,), 1 present, 0 absent, -1 unknown.
        data_dir: Instead of `manifest`, a data folder: its ``manifest.yaml`` (``.yml``, ``.json``) when it has
            one, else its class folders ``<class>/<video>`` or ``<split>/<class>/<video>`` (see
            `import_video_folders`).
        config_path: A JSON or YAML settings file whose ``dataset`` (or ``data``) section fills the settings
            left at their defaults here, e.g. ``{"dataset": {"image_size": 160, "num_frames": 40}}``.
    """

    manifest: str | os.PathLike[str] = ""
    split: str | None = None
    mode: Mode = "clip"
    num_frames: int = 16
    sampling: Sampling = "random"
    frame_stride: int = 1
    image_size: int | tuple[int, int] | None = None
    max_video_frames: int | None = None
    chunk_overlap_frames: int = 0
    tail: Tail = "keep"
    min_tail_frames: int | None = None
    views: tuple[str, ...] | None = None
    load_rgb: bool = True
    load_kpt: bool = False
    sync_tolerance_seconds: float = 0.1
    num_threads: int | None = None
    decode_backend: Backend = "pyav"
    seed: int = 0
    cache_dir: str | os.PathLike[str] | None = None
    on_error: OnError = "raise"
    report_path: str | os.PathLike[str] | None = None
    allow_outside_root: bool = False
    max_open_readers: int = 8
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    multi_label: bool = False
    data_dir: str | os.PathLike[str] | None = None
    config_path: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.config_path is not None:
            for name, value in settings_file_values(self, self.config_path).items():
                object.__setattr__(self, name, value)
        # YAML gives lists; tuples keep the config hashable.
        if self.image_size is not None and not isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", tuple(self.image_size))
        if self.views is not None:
            object.__setattr__(self, "views", tuple(self.views))
        problems = dataset_config_problems(self)  # every bad value at once, each under its key
        if problems:
            raise DatasetConfigError(problems)

    @property
    def source(self) -> Path:
        """The manifest file, or the data folder standing for one."""
        return Path(self.manifest or self.data_dir or "")


class VideoDataset(WorkerLocal, Dataset[dict[str, Any]]):
    """One sample per chunk of the index; see docs/DATA.md for the sample layout.

    A sample is a dict: ``video`` uint8 (V, 3, T, H, W), ``frame_labels`` int64 (T,) with -1 where
    unlabelled, ``label`` int64 (video label or -1) (with `multi_label`: int8 (T, C) and (C,), see
    `frame_multi_hot` and `clip_multi_hot`), ``keypoints`` float32 (V, T, K, D) and
    ``keypoint_mask`` bool (V, T) when `load_kpt`, and ``meta`` (video_id, chunk_index,
    frame_indices (T,) and pts_seconds (T,) of the reference view, view_frame_indices (V, T)).
    Readers are opened lazily in each worker, so the dataset pickles cheaply.
    """

    def __init__(self, config: VideoDatasetConfig) -> None:
        self.config = config
        if str(config.manifest):
            manifest = load_manifest(config.manifest, allow_outside_root=config.allow_outside_root)
        elif config.data_dir is not None:
            manifest = data_dir_manifest(config.data_dir, allow_outside_root=config.allow_outside_root)
        else:
            raise ValueError("VideoDatasetConfig needs manifest (the manifest file) or data_dir (a data folder)")
        self.labels = manifest.labels
        if manifest.multi_label and not config.multi_label:
            message = "is true: segments may overlap, which single-label targets cannot hold; set multi_label=True"
            raise ManifestError([Problem(None, manifest.path or config.source, "multi_label", message)])
        first = next((entry for entry in manifest.videos if config.split in (None, entry.split)), None)
        self.views: tuple[str, ...] = config.views or (tuple(first.views) if first else ())
        self.index = build_chunk_index(
            manifest,
            split=config.split,
            max_video_frames=config.max_video_frames,
            chunk_overlap_frames=config.chunk_overlap_frames,
            tail=config.tail,
            min_tail_frames=config.min_tail_frames,
            sync_tolerance_seconds=config.sync_tolerance_seconds,
            views=self.views,
            same_frame_size=config.load_rgb and config.image_size is None,
            on_error=config.on_error,
            cache_dir=config.cache_dir,
            report_path=config.report_path,
        )
        check_frame_sizes(config, self.index.videos, self.views)
        self.keypoint_shape = self._keypoint_shape()
        self.init_worker_local(
            seed=config.seed,
            max_open_readers=config.max_open_readers,
            reader_threads=config.num_threads or 0,
            decode_backend=config.decode_backend,
        )

    def _keypoint_shape(self) -> tuple[int, int]:
        """The one (K, D) of the dataset's keypoints; (0, 0) when `load_kpt` is off and there are none."""
        shapes = {(s.num_keypoints, s.dims) for v in self.index.videos.values() for s in v.keypoints.values()}
        if self.config.load_kpt and len(shapes) != 1:
            message = f"load_kpt needs one keypoint shape (K, D) across the dataset, found {sorted(shapes)}"
            raise ManifestError([Problem(None, self.config.source, "keypoints", message)])
        return next(iter(shapes), (0, 0))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, position: int) -> dict[str, Any]:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The samples at `positions`; DataLoader fetches a batch through this.

        Samples of one shape decode into consecutive slices of one batch buffer (in shared memory inside a
        loader worker), which `collate_samples` hands on as the batch without copying it. A subclass that
        overrides `__getitem__` is fetched through it, one sample at a time.
        """
        if type(self).__getitem__ is not VideoDataset.__getitem__:
            return [self[position] for position in positions]
        samples, reads = [], []
        for position in positions:
            sample, read = self._sample(position)
            samples.append(sample)
            reads.append(read)
        if self.config.load_rgb:
            for sample, video in zip(samples, self._read_videos(reads), strict=True):
                sample["video"] = video
        return samples

    def _sample(self, position: int) -> tuple[dict[str, Any], _VideoRead]:
        """Sample `position` without its video, and what its video reads."""
        chunk = self.index[position]
        video = self.index.videos[chunk.video_id]
        config = self.config
        positions = sample_positions(
            chunk.num_frames, mode=config.mode, num_frames=config.num_frames, sampling=config.sampling,
            frame_stride=config.frame_stride, rng=self.worker_generator(),
        )  # fmt: skip
        frames = chunk.start_frame + positions
        reference = next(iter(video.views.values()))
        times = self.reader_pool().get(reference).pts_seconds[frames] - reference.begin_seconds
        view_frames = self._view_frames(video, frames)
        sample: dict[str, Any] = {
            **self._targets(video, frames, times),
            "meta": self._meta(chunk, frames, times + reference.begin_seconds, view_frames),
        }
        if config.load_kpt:
            sample["keypoints"], sample["keypoint_mask"] = self._read_keypoints(video, view_frames)
        size = decode_size(config.image_size, height=reference.height, width=reference.width)
        return sample, _VideoRead(video, view_frames, size, size or (reference.height, reference.width))

    def _targets(self, video: IndexedVideo, frames: np.ndarray, times: np.ndarray) -> dict[str, torch.Tensor]:
        """``frame_labels`` and ``label`` of a sample: class ids, or multi-hot classes with `multi_label`."""
        timeline, label = video.entry.timeline, self._video_label(video)
        if not self.config.multi_label:
            per_frame = frame_labels(timeline, labels=self.labels, frame_indices=frames, times_seconds=times)
            return {"frame_labels": torch.from_numpy(per_frame), "label": torch.tensor(label, dtype=torch.int64)}
        multi_hot = frame_multi_hot(timeline, labels=self.labels, frame_indices=frames, times_seconds=times)
        return {
            "frame_labels": torch.from_numpy(multi_hot),
            "label": torch.from_numpy(clip_multi_hot(multi_hot, video_label=label)),
        }

    def _view_frames(self, video: IndexedVideo, frames: np.ndarray) -> np.ndarray:
        reference_view, reference = next(iter(video.views.items()))
        times = frame_midpoints(self.reader_pool().get(reference), frames)
        rows = [
            frames
            if view == reference_view
            else match_view_frames(
                self.reader_pool().get(video.views[view]),
                times,
                video_id=video.entry.id,
                tolerance_seconds=self.config.sync_tolerance_seconds,
            )
            for view in self.views
        ]
        return np.stack(rows)

    def _read_videos(self, reads: list[_VideoRead]) -> list[torch.Tensor]:
        """Each read's uint8 (V, 3, T, H, W) video, a view of packed (V, T, H, W, 3) frames.

        Frames go from FFmpeg's scaler straight into their place in a packed buffer: channels_last_3d,
        the layout the model runs in, so they are never transposed on the CPU or the GPU. Reads of one
        shape share one buffer, so that batching them copies nothing either.
        """
        shapes = [read.shape for read in reads]
        if self.config.transform is None and len(set(shapes)) == 1:
            buffers = list(_frame_buffer((len(reads), *shapes[0])))
        else:
            buffers = [_frame_buffer(shape) for shape in shapes]
        pool, videos = self.reader_pool(), []
        for read, frames in zip(reads, buffers, strict=True):
            for slot, (view, indices) in enumerate(zip(self.views, read.view_frames, strict=True)):
                pool.get(read.video.views[view]).get_frames_at(indices, size=read.size, out=frames[slot])
            if self.config.transform is not None:
                transformed = [self.config.transform(view.permute(0, 3, 1, 2)) for view in frames]
                frames = torch.stack([view.permute(0, 2, 3, 1) for view in transformed])
            videos.append(frames.permute(0, 4, 1, 2, 3))
        return videos

    def _read_keypoints(self, video: IndexedVideo, view_frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        sources = [video.keypoints.get(view) for view in self.views]
        return stack_view_keypoints(sources, view_frames=view_frames, shape=self.keypoint_shape)

    def _video_label(self, video: IndexedVideo) -> int:
        label = video.entry.label
        return self.labels.index(label) if label is not None else IGNORE_LABEL

    def _meta(self, chunk: ChunkRef, frames: np.ndarray, pts: np.ndarray, view_frames: np.ndarray) -> dict[str, Any]:
        return {
            "video_id": chunk.video_id,
            "chunk_index": chunk.chunk_index,
            "frame_indices": torch.from_numpy(frames),
            "pts_seconds": torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float64)),
            "view_frame_indices": torch.from_numpy(view_frames),
        }


@dataclass(frozen=True)
class _VideoRead:
    """The frames one sample reads."""

    video: IndexedVideo
    view_frames: np.ndarray
    """Frame indices (V, T) of each view."""
    size: tuple[int, int] | None
    """``(height, width)`` to decode at; native when None."""
    frame_size: tuple[int, int]
    """``(height, width)`` of the decoded frames."""

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape (V, T, H, W, 3) of the packed frames."""
        return (*self.view_frames.shape, *self.frame_size, 3)


def _frame_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised uint8 tensor; in shared memory inside a loader worker, where it is sent through
    shared memory anyway (allocating it there saves the copy that sending would make)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(math.prod(shape))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def decode_size(image_size: int | tuple[int, int] | None, *, height: int, width: int) -> tuple[int, int] | None:
    """The ``(height, width)`` to decode a `height` x `width` video at for ``image_size``.

    A pair is taken as it is and None keeps the native size; an int is the short side, the long side
    scaled to keep the aspect ratio and rounded down, as torchvision's ``Resize(int)`` (160 keeps 160x210).
    """
    if image_size is None or not isinstance(image_size, int):
        return image_size
    if height <= width:
        return image_size, int(image_size * width / height)
    return int(image_size * height / width), image_size
