"""Fixtures of the data tests: tiny multi-view datasets on disk, written at test time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import MakeVideo

WriteManifest = Callable[[dict[str, Any]], Path]
MakeDataset = Callable[..., Path]
NUM_KEYPOINTS, KEYPOINT_DIMS = 5, 3


def keypoint_values(frame_index: int) -> np.ndarray:
    """Keypoints of a frame that say which frame they belong to: every value is the frame index."""
    return np.full((NUM_KEYPOINTS, KEYPOINT_DIMS), frame_index, dtype=np.float32)


@pytest.fixture
def write_manifest(tmp_path: Path) -> WriteManifest:
    """Writes a manifest document as ``tmp_path/manifest.yaml``."""

    def write(document: dict[str, Any]) -> Path:
        path = tmp_path / "manifest.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_dataset(tmp_path: Path, make_video: MakeVideo, write_manifest: WriteManifest) -> MakeDataset:
    """Factory of a dataset with videos ``v0, v1, ...``, each with the given views, and its manifest.

    Keyword arguments: num_frames (one per video), views (name -> `make_video` kwargs such as fps,
    pts_seconds or num_frames), timelines (video index -> timeline), keypoints ("npz" or "npy" per view name),
    labels, and extra (video index -> extra entry keys). Videos are 32x32 lossless RGB with frame
    indices painted in (`tests.videos.frame_ids`).
    """

    def make(
        *,
        num_frames: tuple[int, ...] = (20,),
        views: dict[str, dict[str, Any]] | None = None,
        timelines: dict[int, dict[str, Any]] | None = None,
        keypoints: dict[str, str] | None = None,
        labels: tuple[str, ...] = ("idle", "front", "adjust"),
        extra: dict[int, dict[str, Any]] | None = None,
    ) -> Path:
        views = views or {"front": {}}
        videos = []
        for i, count in enumerate(num_frames):
            entry: dict[str, Any] = {"id": f"v{i}", "split": "train", "views": {}}
            for view, kwargs in views.items():
                settings = {"num_frames": count, "height": 32, "width": 32, **kwargs}
                make_video(f"v{i}/{view}.mkv", **settings)
                entry["views"][view] = f"v{i}/{view}.mkv"
            for view, kind in (keypoints or {}).items():
                view_frames = views[view].get("num_frames", count)
                entry.setdefault("keypoints", {})[view] = write_keypoints(tmp_path / f"v{i}", view, view_frames, kind)
            if timelines and i in timelines:
                entry["timeline"] = timelines[i]
            entry.update((extra or {}).get(i, {}))
            videos.append(entry)
        return write_manifest({"labels": list(labels), "root": ".", "videos": videos})

    return make


def write_keypoints(folder: Path, view: str, num_frames: int, kind: str) -> str:
    """Writes per-frame ``000123_sam3d_body.npz`` files or one ``.npy``; returns the path relative to the root."""
    if kind == "npy":
        array = np.stack([keypoint_values(i) for i in range(num_frames)])
        np.save(folder / f"kpt_{view}.npy", array)
        return f"{folder.name}/kpt_{view}.npy"
    target = folder / f"kpt_{view}"
    target.mkdir(parents=True)
    for i in range(num_frames):
        np.savez(target / f"{i:06d}_sam3d_body.npz", keypoints=keypoint_values(i))
    return f"{folder.name}/kpt_{view}"


def offset_pts(num_frames: int, *, fps: float, begin_seconds: float) -> torch.Tensor:
    """Presentation times of a stream that starts at `begin_seconds`."""
    return begin_seconds + torch.arange(num_frames, dtype=torch.float64) / fps
