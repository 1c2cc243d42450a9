"""Typed batches: named, shape-checked fields that move to a device and pin as one object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

import torch


@dataclass(frozen=True)
class TensorBatch:
    """Base of the typed batches: every field holds one entry per sample along its first dim.

    `to` and `pin_memory` act on the tensor fields and keep the others (such as ``meta``) as they are, on
    the host. Lightning moves a batch with ``move_data_to_device``, which calls ``to`` on any object that
    has one; DataLoader's ``pin_memory=True`` calls ``pin_memory``; `vidfit.memory.split_batch` slices
    every field into micro-batches. Subclasses check their fields' shapes in ``__post_init__``.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def to(self, device: torch.device | str, *, non_blocking: bool | None = None) -> Self:
        """The batch with its tensors on `device`.

        Args:
            device: Where to.
            non_blocking: Copy asynchronously (from pinned memory). None does so towards a CUDA device only,
                as Lightning does for tensors: a non-blocking copy back to the host could be read unfinished.
        """
        device = torch.device(device)
        asynchronous = device.type == "cuda" if non_blocking is None else non_blocking
        return self._map_tensors(lambda tensor: tensor.to(device, non_blocking=asynchronous))

    def pin_memory(self) -> Self:
        """The batch with its tensors in page-locked host memory, so that copies to the GPU can be asynchronous."""
        return self._map_tensors(_pin_keeping_layout)

    def _map_tensors(self, function: Any) -> Self:
        changes = {
            f.name: function(value)
            for f in dataclasses.fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VideoBatch(TensorBatch):
    """Clips of multi-view video with their labels, as `collate_samples` stacks `VideoDataset` samples.

    `B` clips of `V` views and `T` frames each. Multi-label batches (``VideoDatasetConfig.multi_label``) hold
    the classes present instead of one class id: `label` (B, C) and `frame_labels` (B, T, C).
    """

    label: torch.Tensor
    """int64 (B,): each clip's video label, `IGNORE_LABEL` where the video has none; multi-label: int8 (B, C),
    1 for a class present, 0 absent, `IGNORE_LABEL` unknown."""
    frame_labels: torch.Tensor
    """int64 (B, T): each frame's label, `IGNORE_LABEL` where no segment covers it; multi-label: int8 (B, T, C)."""
    video: torch.Tensor | None = None
    """uint8 (B, V, 3, T, H, W) frames, or None when only keypoints are loaded.

    Held channels-last, as decoded: a view of packed (B, V, T, H, W, 3) memory, so each clip is already in
    ``torch.channels_last_3d`` and no transpose runs on the CPU or the GPU."""
    keypoints: torch.Tensor | None = None
    """float (B, V, T, K, D) keypoints, or None when not loaded."""
    keypoint_mask: torch.Tensor | None = None
    """bool (B, V, T): which keypoints are present; given with `keypoints` only."""
    meta: list[dict[str, Any]] = field(default_factory=list)
    """One dict per clip (``video_id``, ``chunk_index``, frame indices and times), or empty; stays on the host."""

    def __post_init__(self) -> None:
        size = len(self.label)
        single = self.label.ndim == 1 and self.frame_labels.ndim == 2
        multi = (
            self.label.ndim == 2 and self.frame_labels.ndim == 3 and self.frame_labels.shape[2] == self.label.shape[1]
        )
        if not (single or multi) or self.frame_labels.shape[0] != size:
            raise ValueError(
                f"label must be (B,) and frame_labels (B, T), got {tuple(self.label.shape)} and "
                f"{tuple(self.frame_labels.shape)} (multi-label: (B, C) and (B, T, C))"
            )
        num_frames = self.frame_labels.shape[1]
        if self.video is not None:
            _check_shape("video", self.video, ndim=6, leading={0: size, 2: 3, 3: num_frames})
        if (self.keypoints is None) != (self.keypoint_mask is None):
            raise ValueError("keypoints and keypoint_mask go together: give both or neither")
        if self.keypoints is not None and self.keypoint_mask is not None:
            views = self.keypoints.shape[1] if self.video is None else self.video.shape[1]
            _check_shape("keypoints", self.keypoints, ndim=5, leading={0: size, 1: views, 2: num_frames})
            _check_shape("keypoint_mask", self.keypoint_mask, ndim=3, leading={0: size, 1: views, 2: num_frames})
        if self.meta and len(self.meta) != size:
            raise ValueError(f"meta holds {len(self.meta)} entries for {size} clips")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def multi_label(self) -> bool:
        """Whether the labels are classes present (B, C) and (B, T, C) rather than class ids."""
        return self.label.ndim == 2

    @property
    def num_frames(self) -> int:
        """Frames per clip, `T`."""
        return int(self.frame_labels.shape[1])


def _pin_keeping_layout(tensor: torch.Tensor) -> torch.Tensor:
    """A pinned copy with the same strides: channels-last videos stay channels-last on their way to the GPU."""
    if tensor.is_contiguous():
        return tensor.pin_memory()
    pinned = torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype, pin_memory=True)
    return pinned.copy_(tensor)


def _check_shape(name: str, tensor: torch.Tensor, *, ndim: int, leading: dict[int, int]) -> None:
    """Refuses a tensor of another rank, or whose dims differ from the sizes `leading` gives by position."""
    if tensor.ndim != ndim or any(tensor.shape[dim] != size for dim, size in leading.items()):
        expected = ", ".join(str(leading.get(dim, "_")) for dim in range(ndim))
        raise ValueError(f"{name} must have shape ({expected}), got {tuple(tensor.shape)}")
