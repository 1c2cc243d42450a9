"""A synthetic multi-view action dataset: a coloured shape idling, moving left, moving right or jumping.

Every video is a scene of one shape over a noisy textured background, seen by every view through its own
camera (the second view is mirrored, all but the first are scaled and shifted). It starts with a short
``idle`` segment, then the main action runs to the end, so per-frame labels have a transition and any
clip past the first few frames shows the video's label. Videos are real H.264 files with a short GOP,
written with the manifest that `vidfit.data.load_manifest` reads.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidfit.data import Manifest, Segment, Timeline, VideoEntry, save_manifest
from vidfit.io import write_video
from vidfit.io._atomic import write_text_atomic

MOTIONS: tuple[str, ...] = ("idle", "left", "right", "jump")
MANIFEST_NAME = "manifest.yaml"
STAMP_NAME = "dataset.json"
# Bumped whenever rendering changes, so a stamp from older code never passes for the current output.
_GENERATOR_VERSION = 1
# Short GOP: seeks to any clip decode at most this many frames.
_GOP = 12
_VIEW_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NOISE_SIGMA = 5.0
_JITTER_PIXELS = 0.5


@dataclass(frozen=True)
class DemoDataset:
    """A generated dataset on disk.

    Attributes:
        manifest_path: The manifest (``root/manifest.yaml``).
        labels: Label names; a label's index is its class id.
        num_videos: Videos in the manifest (each with every view).
        total_bytes: Size of the video files and the manifest.
    """

    manifest_path: Path
    labels: tuple[str, ...]
    num_videos: int
    total_bytes: int


@dataclass(frozen=True)
class _Spec:
    num_videos_per_class: int
    num_frames: int
    views: tuple[str, ...]
    size: tuple[int, int]
    fps: float
    seed: int
    classes: tuple[str, ...]


@dataclass(frozen=True)
class _Camera:
    mirror: bool
    scale: float
    shift_x: float
    shift_y: float


@dataclass(frozen=True)
class _Scene:
    positions: np.ndarray  # (num_frames, 2) x, y of the shape's centre in the reference camera, pixels
    radius: float
    colour: np.ndarray  # (3,) RGB, 0..255
    square: bool


def make_demo_dataset(
    root: str | os.PathLike[str],
    *,
    num_videos_per_class: int = 16,
    num_frames: int = 48,
    views: tuple[str, ...] = ("front", "left"),
    size: tuple[int, int] = (64, 64),
    fps: float = 15.0,
    seed: int = 0,
    classes: tuple[str, ...] = MOTIONS,
) -> DemoDataset:
    """Writes the dataset under `root`, or returns the one already there if made with the same arguments.

    Args:
        root: Folder of the dataset: ``manifest.yaml``, ``dataset.json`` and ``vid_XXX/<view>.mp4``.
        num_videos_per_class: Videos of each class, split 70/15/15 into train/val/test per class.
        num_frames: Frames of every video.
        views: View names; the first is the reference camera.
        size: (height, width) in pixels, even (for 4:2:0 chroma).
        fps: Frame rate of the videos.
        seed: Everything (scenes, cameras, noise, splits) is a function of the arguments and this.
        classes: Labels, a subset of ``idle``, ``left``, ``right``, ``jump`` holding ``idle``.
    """
    for name, value in (("views", views), ("classes", classes), ("size", size)):
        if isinstance(value, str) or not isinstance(value, tuple | list):
            raise ValueError(f"{name}={value!r} must be a tuple")
    if len(size) != 2:
        raise ValueError(f"size={size!r} must be (height, width)")
    spec = _Spec(num_videos_per_class, num_frames, tuple(views), (size[0], size[1]), fps, seed, tuple(classes))
    _validate(spec)
    folder = Path(root)
    existing = _reuse(folder, spec)
    if existing is not None:
        return existing
    return _generate(folder, spec)


def _validate(spec: _Spec) -> None:
    for name, value, minimum in (
        ("num_videos_per_class", spec.num_videos_per_class, 1),
        ("num_frames", spec.num_frames, 8),
        ("seed", spec.seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    height, width = spec.size
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 16 or s % 2 for s in spec.size):
        raise ValueError(f"size={(height, width)!r} must be (height, width) of even integers >= 16")
    if not np.isfinite(spec.fps) or spec.fps <= 0:
        raise ValueError(f"fps={spec.fps!r} must be a finite number > 0")
    if not spec.views or len(set(spec.views)) != len(spec.views):
        raise ValueError(f"views={spec.views!r} must be one or more distinct names")
    for view in spec.views:
        if not isinstance(view, str) or not _VIEW_NAME.fullmatch(view):
            raise ValueError(f"view name {view!r} in views must be letters, digits, '_' or '-'")
    unknown = [name for name in spec.classes if name not in MOTIONS]
    if unknown or "idle" not in spec.classes or len(set(spec.classes)) != len(spec.classes) or len(spec.classes) < 2:
        allowed = ", ".join(map(repr, MOTIONS))
        raise ValueError(f"classes={spec.classes!r} must be 2+ distinct names of {allowed}, 'idle' among them")


def _stamp_parameters(spec: _Spec) -> dict[str, Any]:
    # Through JSON so tuples compare equal to the lists read back from the stamp.
    parameters: dict[str, Any] = json.loads(json.dumps(asdict(spec)))
    return {"version": _GENERATOR_VERSION, **parameters}


def _reuse(root: Path, spec: _Spec) -> DemoDataset | None:
    """The dataset in `root` if its stamp matches `spec` and every file it lists has the size it lists."""
    try:
        stamp = json.loads((root / STAMP_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(stamp, dict) or stamp.get("parameters") != _stamp_parameters(spec):
        return None
    files = stamp.get("files")
    if not isinstance(files, dict) or MANIFEST_NAME not in files or not isinstance(stamp.get("num_videos"), int):
        return None
    for name, size_bytes in files.items():
        path = root / name
        if not path.is_file() or path.stat().st_size != size_bytes:
            return None
    return DemoDataset(root / MANIFEST_NAME, spec.classes, int(stamp["num_videos"]), sum(files.values()))


def _generate(root: Path, spec: _Spec) -> DemoDataset:
    # The stamp goes first and comes back last, so an interrupted run is never taken for a complete one.
    (root / STAMP_NAME).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    cameras = _cameras(spec)
    splits = _splits(spec)
    entries = []
    for index in range(spec.num_videos_per_class * len(spec.classes)):
        label = spec.classes[index % len(spec.classes)]
        entries.append(_make_video(root, index, label, splits[index], cameras, spec))
    manifest_path = save_manifest(Manifest(spec.classes, root.resolve(), tuple(entries)), root / MANIFEST_NAME)
    files = {MANIFEST_NAME: manifest_path.stat().st_size}
    for entry in entries:
        for path in map(Path, entry.views.values()):  # written here, so local
            files[path.relative_to(root.resolve()).as_posix()] = path.stat().st_size
    stamp = {"parameters": _stamp_parameters(spec), "num_videos": len(entries), "files": files}
    write_text_atomic(root / STAMP_NAME, json.dumps(stamp, indent=2))
    return DemoDataset(manifest_path, spec.classes, len(entries), sum(files.values()))


def _splits(spec: _Spec) -> list[str]:
    """Split of every video: per class, a seeded shuffle cut 70/15/15 (one val from 2 videos, one test from 3)."""
    rng = np.random.default_rng([spec.seed, 1])
    count = spec.num_videos_per_class
    num_val = max(1, round(0.15 * count)) if count >= 2 else 0
    num_test = max(1, round(0.15 * count)) if count >= 3 else 0
    names = ["val"] * num_val + ["test"] * num_test + ["train"] * (count - num_val - num_test)
    num_classes = len(spec.classes)
    splits = [""] * (count * num_classes)
    for class_index in range(num_classes):
        for position, name in enumerate(rng.permutation(names)):
            splits[position * num_classes + class_index] = str(name)
    return splits


def _cameras(spec: _Spec) -> list[_Camera]:
    """One fixed camera per view: the first is the reference, the second mirrored, the rest scaled and shifted."""
    rng = np.random.default_rng([spec.seed, 2])
    cameras = [_Camera(mirror=False, scale=1.0, shift_x=0.0, shift_y=0.0)]
    for index in range(1, len(spec.views)):
        scale = float(rng.uniform(0.75, 0.95))
        shift_x, shift_y = (float(v) for v in rng.uniform(-0.06, 0.06, size=2))
        cameras.append(_Camera(mirror=index % 2 == 1, scale=scale, shift_x=shift_x, shift_y=shift_y))
    return cameras


def _make_video(root: Path, index: int, label: str, split: str, cameras: list[_Camera], spec: _Spec) -> VideoEntry:
    """Draws one scene, writes it through every camera and returns its manifest entry."""
    rng = np.random.default_rng([spec.seed, 3, index])
    height, width = spec.size
    onset = 0 if label == "idle" else int(rng.integers(2, max(2, spec.num_frames // 5) + 1))
    radius = float(rng.uniform(0.08, 0.14)) * min(height, width)
    positions = _trajectory(label, onset, spec.num_frames, spec.size, radius, rng)
    scene = _Scene(positions, radius, _colour(rng), bool(rng.integers(2)))
    video_id = f"vid_{index:03d}"
    paths: dict[str, Path] = {}
    for view_index, (view, camera) in enumerate(zip(spec.views, cameras, strict=True)):
        view_rng = np.random.default_rng([spec.seed, 4, index, view_index])
        frames = _render(scene, camera, spec.size, view_rng)
        path = write_video(root / video_id / f"{view}.mp4", frames, fps=spec.fps, codec="libx264", gop=_GOP)
        paths[view] = path.resolve()
    segments = [Segment(0, onset, "idle")] if onset else []
    segments.append(Segment(onset, spec.num_frames, label))
    return VideoEntry(video_id, paths, split=split, label=label, timeline=Timeline("frames", tuple(segments)))


def _trajectory(
    motion: str, onset: int, num_frames: int, size: tuple[int, int], radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Centre of the shape in every frame, (num_frames, 2) x, y: still until `onset`, then `motion`."""
    height, width = size
    steps = np.clip(np.arange(num_frames) - onset, 0, None).astype(np.float64)
    x = np.full(num_frames, rng.uniform(radius + 1, width - radius - 1))
    y = np.full(num_frames, rng.uniform(radius + 1, height - radius - 1))
    if motion in ("left", "right"):
        travel = min(float(rng.uniform(0.45, 0.7)) * width, width - 2 * radius - 2)
        # The slack is clamped: rounding can make it a hair below 0 when the travel fills the frame.
        start = radius + 1 + float(rng.uniform(0.0, max(width - 2 * radius - 2 - travel, 0.0)))
        progress = np.minimum(steps / max(num_frames - onset - 1, 1), 1.0)
        x = start + travel * progress if motion == "right" else start + travel * (1.0 - progress)
    elif motion == "jump":
        ground = float(rng.uniform(0.6 * height, height - radius - 1))
        hop = min(float(rng.uniform(0.2, 0.35)) * height, ground - radius - 1)
        period_frames = float(rng.uniform(8.0, 14.0))
        y = ground - hop * np.abs(np.sin(np.pi * steps / period_frames))
    return np.stack([x, y], axis=1) + rng.normal(0.0, _JITTER_PIXELS, size=(num_frames, 2))


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour (one channel full, one dark, one anywhere) that stands out on the grey background."""
    channels = np.array([255.0, rng.uniform(0.0, 255.0), rng.uniform(0.0, 40.0)])
    return channels[rng.permutation(3)]


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A static texture (H, W, 3): smooth greyish blotches plus fine grain."""
    height, width = size
    cells = rng.uniform(70.0, 180.0, size=(1, 1, 6, 6)) + rng.uniform(-15.0, 15.0, size=(1, 3, 6, 6))
    smooth = F.interpolate(torch.from_numpy(cells), size=(height, width), mode="bilinear", align_corners=False)
    texture = smooth[0].permute(1, 2, 0).numpy()
    return texture + rng.normal(0.0, 10.0, size=(height, width, 3))


def _render(scene: _Scene, camera: _Camera, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """The scene through `camera` over a fresh background, as uint8 frames (N, 3, H, W)."""
    height, width = size
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    offset_x = scene.positions[:, 0] - centre_x
    x = centre_x + camera.scale * (-offset_x if camera.mirror else offset_x) + camera.shift_x * width
    y = centre_y + camera.scale * (scene.positions[:, 1] - centre_y) + camera.shift_y * height
    dx = np.abs(np.arange(width)[None, None, :] - x[:, None, None])
    dy = np.abs(np.arange(height)[None, :, None] - y[:, None, None])
    distance = np.maximum(dx, dy) if scene.square else np.hypot(dx, dy)
    # One pixel of linear falloff anti-aliases the edge, so sub-pixel motion still changes pixels.
    coverage = np.clip(camera.scale * scene.radius + 0.5 - distance, 0.0, 1.0)[..., None]
    image = _background(size, rng)[None] * (1.0 - coverage) + scene.colour * coverage
    image += rng.normal(0.0, _NOISE_SIGMA, size=image.shape)
    frames = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
