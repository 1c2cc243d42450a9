"""Super-resolution samples: high-resolution video patches and their bicubic low-resolution inputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vidfit.data import ManifestError, Problem, TensorBatch, WorkerLocal, build_chunk_index, load_manifest
from vidfit.io import VideoMetadata

PatchSampling = Literal["random", "fixed"]
PATCH_SAMPLINGS: tuple[str, ...] = get_args(PatchSampling)
# Antialiased bicubic downsampling reads 2 low-resolution pixels around each output pixel; with 3 of
# context, a patch's low-resolution pixels equal those of the whole downsampled frame.
_MARGIN_LR_PIXELS = 3


@dataclass(frozen=True)
class SRPatchConfig:
    """What `SRPatchDataset` cuts.

    Attributes:
        manifest: The manifest file (YAML or JSON); labels and timelines are not used.
        scale: Upscaling factor: low-resolution patches are `patch_size / scale` pixels wide.
        split: Only videos of this split; all when None.
        num_frames: Odd number of consecutive frames per sample, centred on the frame to upscale.
        patch_size: High-resolution patch side in pixels, a multiple of `scale`.
        patches_per_chunk: Samples drawn from each chunk of the index (per epoch).
        sampling: ``"random"`` patches, new every epoch (training), or ``"fixed"`` ones, the same on every
            call for a position (evaluation).
        max_video_frames: Chunk length of the index; whole videos when None.
        chunk_overlap_frames: Frames shared by consecutive chunks.
        views: Views to cut from (each sample picks one); every view of each video when None.
        image_size: ``(height, width)`` frames are resized to while decoding, before cutting; native when None.
        seed: Seeds the patch positions.
        num_threads: FFmpeg decoding threads per reader (0 lets FFmpeg choose).
        cache_dir: Folder caching the chunk index; no cache when None.
        max_open_readers: Readers each process keeps open.
    """

    manifest: str | os.PathLike[str]
    scale: int
    split: str | None = None
    num_frames: int = 3
    patch_size: int = 96
    patches_per_chunk: int = 8
    sampling: PatchSampling = "random"
    max_video_frames: int | None = None
    chunk_overlap_frames: int = 0
    views: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    seed: int = 0
    num_threads: int = 1
    cache_dir: str | os.PathLike[str] | None = None
    max_open_readers: int = 8

    def __post_init__(self) -> None:
        if self.sampling not in PATCH_SAMPLINGS:
            raise ValueError(f"sampling={self.sampling!r} is not one of {', '.join(map(repr, PATCH_SAMPLINGS))}")
        if self.scale < 2:
            raise ValueError(f"scale={self.scale!r} must be >= 2")
        if self.num_frames < 1 or self.num_frames % 2 == 0:
            raise ValueError(
                f"num_frames={self.num_frames!r} must be odd and positive, so that there is a centre frame"
            )
        if self.patch_size < self.scale or self.patch_size % self.scale:
            raise ValueError(f"patch_size={self.patch_size!r} must be a positive multiple of scale={self.scale!r}")
        for name in ("patches_per_chunk", "max_open_readers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")
        if self.num_threads < 0:
            raise ValueError(f"num_threads={self.num_threads!r} must be >= 0 (0 lets FFmpeg choose)")
        # YAML gives lists; tuples keep the config hashable.
        if self.views is not None:
            object.__setattr__(self, "views", tuple(self.views))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))


@dataclass(frozen=True)
class PatchBatch(TensorBatch):
    """Low-resolution inputs and the high-resolution patches they should upscale to, as `collate_patches` stacks them.

    `B` samples of `T` frames, upscaled `s` times.
    """

    lr: torch.Tensor
    """uint8 (B, T, 3, h, w): the bicubic-downsampled patches of `T` consecutive frames."""
    hr: torch.Tensor
    """uint8 (B, 3, h * s, w * s): the centre frame's patch."""
    meta: list[dict[str, Any]] = field(default_factory=list)
    """One dict per sample (video_id, view, frame_index, top, left), or empty; stays on the host."""

    def __post_init__(self) -> None:
        if self.lr.ndim != 5 or self.lr.shape[2] != 3 or self.hr.ndim != 4 or self.hr.shape[:2] != (len(self.lr), 3):
            raise ValueError(
                f"lr must be (B, T, 3, h, w) and hr (B, 3, H, W), got {tuple(self.lr.shape)} and {tuple(self.hr.shape)}"
            )
        height, width = self.lr.shape[-2:]
        scale = self.hr.shape[-2] // height
        if scale < 1 or tuple(self.hr.shape[-2:]) != (height * scale, width * scale):
            raise ValueError(f"hr patches of {tuple(self.hr.shape[-2:])} are not lr's {(height, width)} upscaled")
        if self.meta and len(self.meta) != len(self.lr):
            raise ValueError(f"meta holds {len(self.meta)} entries for {len(self.lr)} samples")

    def __len__(self) -> int:
        return len(self.lr)


def collate_patches(samples: Sequence[dict[str, Any]]) -> PatchBatch:
    """Stacks `SRPatchDataset` samples into a `PatchBatch`; ``meta`` stays a list of dicts."""
    return PatchBatch(
        lr=torch.stack([sample["lr"] for sample in samples]),
        hr=torch.stack([sample["hr"] for sample in samples]),
        meta=[sample["meta"] for sample in samples],
    )


def downsample_bicubic(frames: torch.Tensor, *, scale: int) -> torch.Tensor:
    """Bicubic, antialiased downsampling by `scale` (the usual degradation of super-resolution datasets).

    Rows and columns past the last multiple of `scale` are dropped first, so the result is exactly
    ``scale`` times smaller.

    Args:
        frames: uint8 frames (N, 3, H, W).
        scale: Integer factor, >= 1.

    Returns:
        uint8 frames (N, 3, H // scale, W // scale), rounded to the nearest value.
    """
    if scale < 1:
        raise ValueError(f"scale={scale!r} must be >= 1")
    if frames.dtype != torch.uint8 or frames.ndim != 4:
        raise ValueError(f"frames must be uint8 (N, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
    height, width = frames.shape[-2] // scale, frames.shape[-1] // scale
    if height < 1 or width < 1:
        raise ValueError(f"frames of {tuple(frames.shape[-2:])} are smaller than scale={scale}")
    trimmed = frames[..., : height * scale, : width * scale].float()
    small = F.interpolate(trimmed, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return small.round_().clamp_(0, 255).to(torch.uint8)


def cut_patch(
    frames: torch.Tensor, *, top: int, left: int, patch_size: int, scale: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The high-resolution patch at (`top`, `left`) and its low-resolution counterpart.

    The low-resolution patch equals the same pixels of `downsample_bicubic` of the whole frames, but
    only a margin around the patch is downsampled.

    Args:
        frames: uint8 frames (N, 3, H, W).
        top: First row of the patch, a multiple of `scale`.
        left: First column of the patch, a multiple of `scale`.
        patch_size: Side of the high-resolution patch, a multiple of `scale`.
        scale: Downsampling factor.

    Returns:
        uint8 (N, 3, patch_size, patch_size) and (N, 3, patch_size / scale, patch_size / scale).
    """
    height, width = (frames.shape[-2] // scale) * scale, (frames.shape[-1] // scale) * scale
    if top % scale or left % scale or patch_size % scale:
        raise ValueError(f"top={top}, left={left} and patch_size={patch_size} must be multiples of scale={scale}")
    if not (0 <= top <= height - patch_size and 0 <= left <= width - patch_size):
        raise ValueError(f"a {patch_size}-pixel patch at ({top}, {left}) is outside frames of {height}x{width}")
    margin = _MARGIN_LR_PIXELS * scale
    row, column = max(top - margin, 0), max(left - margin, 0)
    region = frames[..., row : min(top + patch_size + margin, height), column : min(left + patch_size + margin, width)]
    small = downsample_bicubic(region, scale=scale)
    low_top, low_left, low_size = (top - row) // scale, (left - column) // scale, patch_size // scale
    low = small[..., low_top : low_top + low_size, low_left : low_left + low_size]
    high = frames[..., top : top + patch_size, left : left + patch_size]
    return high.contiguous(), low.contiguous()


class SRPatchDataset(WorkerLocal, Dataset[dict[str, Any]]):
    """`patches_per_chunk` samples per chunk of the manifest's chunk index, for super-resolution.

    A sample is a dict: ``lr`` uint8 (num_frames, 3, p / scale, p / scale), the bicubic-downsampled
    patches of `num_frames` consecutive frames; ``hr`` uint8 (3, p, p), the centre frame's patch; and
    ``meta`` (video_id, view, frame_index of the centre, top and left of the patch in high-resolution pixels).
    Neighbours past the ends of a video repeat its first or last frame, as at inference.
    """

    def __init__(self, config: SRPatchConfig) -> None:
        self.config = config
        manifest = load_manifest(config.manifest)
        self.index = build_chunk_index(
            manifest, split=config.split, max_video_frames=config.max_video_frames,
            chunk_overlap_frames=config.chunk_overlap_frames, cache_dir=config.cache_dir,
        )  # fmt: skip
        self.sources: dict[str, list[tuple[str, VideoMetadata]]] = self._check_sources()
        self.init_worker_local(
            seed=config.seed, max_open_readers=config.max_open_readers, reader_threads=config.num_threads
        )

    def _check_sources(self) -> dict[str, list[tuple[str, VideoMetadata]]]:
        """Views to cut from, by video; every one must hold a patch once trimmed to multiples of the scale."""
        config, problems, sources = self.config, [], {}
        for video_id, video in self.index.videos.items():
            names = config.views or tuple(video.views)
            missing = [name for name in names if name not in video.views]
            if missing:
                file = next(iter(video.views.values())).path
                problems.append(Problem(video_id, file, "views", f"lacks view(s) {missing} of {list(names)}"))
                continue
            sources[video_id] = [(name, video.views[name]) for name in names]
            for name, meta in sources[video_id]:
                height, width = config.image_size or (meta.height, meta.width)
                if min(height, width) // config.scale * config.scale < config.patch_size:
                    message = f"frames of {height}x{width} are smaller than patch_size={config.patch_size}"
                    problems.append(Problem(video_id, meta.path, f"views.{name}", message))
        if problems:
            raise ManifestError(problems)
        return sources

    def __len__(self) -> int:
        return len(self.index) * self.config.patches_per_chunk

    def __getitem__(self, position: int) -> dict[str, Any]:
        config = self.config
        chunk = self.index[position // config.patches_per_chunk]
        rng = self._generator(position)
        view, meta = self.sources[chunk.video_id][int(rng.integers(len(self.sources[chunk.video_id])))]
        centre = chunk.start_frame + int(rng.integers(chunk.num_frames))
        radius = config.num_frames // 2
        indices = np.clip(np.arange(centre - radius, centre + radius + 1), 0, meta.num_frames - 1)
        frames = self.reader_pool().get(meta).get_frames_at(indices, size=config.image_size).data
        height, width = frames.shape[-2] // config.scale, frames.shape[-1] // config.scale
        low_size = config.patch_size // config.scale
        top = config.scale * int(rng.integers(height - low_size + 1))
        left = config.scale * int(rng.integers(width - low_size + 1))
        high, low = cut_patch(frames, top=top, left=left, patch_size=config.patch_size, scale=config.scale)
        meta_out = {"video_id": chunk.video_id, "view": view, "frame_index": centre, "top": top, "left": left}
        return {"lr": low, "hr": high[radius], "meta": meta_out}

    def _generator(self, position: int) -> np.random.Generator:
        if self.config.sampling == "fixed":
            return np.random.default_rng([self.config.seed, position])
        return self.worker_generator()
