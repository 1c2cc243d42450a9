"""A synthetic dataset where an action's meaning depends on what came long before it: context beyond one clip.

Every video is a grey textured scene with episodes one after another. An episode opens with a *cue*: a red or
a blue square in the top-left corner for a few frames. Then nothing happens for `gap_frames` frames (a grey
distractor drifts about), and then the *action*: a white disc crosses the scene. The action looks the same
after either cue, but its label is ``after_red`` or ``after_blue``: which one, only the cue `gap_frames`
earlier tells. A clip model sees the cue or the action, never both (when `gap_frames` exceeds its clip); a
temporal model over the whole video can tell them apart.

Labels: ``background`` (no cue, no action: first, so that it is class 0), ``cue_red``, ``cue_blue``,
``after_red``, ``after_blue``. Videos are H.264 files with a manifest (``manifest.yaml``) of ``frames``
timelines, split train/val by `num_val_videos`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidfit.data import Manifest, Segment, Timeline, VideoEntry, save_manifest
from vidfit.io import write_video

CONTEXT_LABELS = ("background", "cue_red", "cue_blue", "after_red", "after_blue")
_CUE_COLOURS = {"red": (230.0, 30.0, 30.0), "blue": (30.0, 60.0, 230.0)}
_GOP = 16


@dataclass(frozen=True)
class ContextSpec:
    """How the videos are drawn.

    Attributes:
        num_videos: Videos in all.
        num_val_videos: Of them, the last ones are the ``val`` split (the rest ``train``).
        episodes: Cue-gap-action episodes per video.
        gap_frames: Frames between a cue's end and its action's start (drawn within +-25%).
        cue_frames: Frames a cue shows.
        action_frames: Frames an action lasts.
        size: (height, width) in pixels.
        fps: Frame rate.
        seed: Everything is a function of the spec.
    """

    num_videos: int = 32
    num_val_videos: int = 8
    episodes: int = 2
    gap_frames: int = 200
    cue_frames: int = 8
    action_frames: int = 40
    size: tuple[int, int] = (32, 32)
    fps: float = 15.0
    seed: int = 0

    def __post_init__(self) -> None:
        numbers = (self.num_videos, self.episodes, self.gap_frames, self.cue_frames, self.action_frames)
        if min(numbers) < 1 or not 0 <= self.num_val_videos < self.num_videos:
            raise ValueError(f"need counts >= 1 and 0 <= num_val_videos < num_videos, got {self}")
        if min(self.size) < 16 or any(s % 2 for s in self.size):
            raise ValueError(f"size={self.size} must be even and >= 16")


def make_context_dataset(root: str | os.PathLike[str], spec: ContextSpec = ContextSpec()) -> Path:
    """Writes the videos and ``manifest.yaml`` under `root`; returns the manifest's path."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(spec.num_videos):
        rng = np.random.default_rng([spec.seed, index])
        frames, segments = _draw_video(rng, spec)
        path = write_video(folder / f"ctx_{index:03d}.mp4", frames, fps=spec.fps, codec="libx264", gop=_GOP, crf=18)
        split = "val" if index >= spec.num_videos - spec.num_val_videos else "train"
        entries.append(
            VideoEntry(
                f"ctx_{index:03d}", {"front": path.resolve()}, split=split, timeline=Timeline("frames", tuple(segments))
            )
        )
    manifest = Manifest(CONTEXT_LABELS, folder.resolve(), tuple(entries))
    return save_manifest(manifest, folder / "manifest.yaml")


def _draw_video(rng: np.random.Generator, spec: ContextSpec) -> tuple[torch.Tensor, list[Segment]]:
    """The frames (N, 3, H, W) of one video and its timeline: background between and around the episodes."""
    plan: list[tuple[str, int]] = [("background", int(rng.integers(4, 16)))]
    # Half the episodes of each video follow each cue, in a random order: the labels are balanced.
    colours = rng.permutation(["red", "blue"] * -(-spec.episodes // 2))[: spec.episodes]
    for colour in colours:
        gap = round(float(spec.gap_frames * rng.uniform(0.75, 1.25)))
        plan += [(f"cue_{colour}", spec.cue_frames), ("background", gap), (f"after_{colour}", spec.action_frames)]
        plan.append(("background", int(rng.integers(8, 24))))
    segments, start = [], 0
    for label, length in plan:
        if label != "background":
            segments.append(Segment(start, start + length, label))
        start += length
    frames = _render(plan, start, rng, spec)
    # The background's spans are labelled too (frames timelines, every frame labelled).
    labelled = []
    cursor = 0
    for segment in segments:
        if segment.start > cursor:
            labelled.append(Segment(cursor, segment.start, "background"))
        labelled.append(segment)
        cursor = int(segment.end)
    labelled.append(Segment(cursor, start, "background"))
    return frames, labelled


def _render(plan: list[tuple[str, int]], num_frames: int, rng: np.random.Generator, spec: ContextSpec) -> torch.Tensor:
    height, width = spec.size
    base = rng.uniform(90, 150) + rng.normal(0, 12, size=(height, width, 1)) + rng.normal(0, 4, size=(height, width, 3))
    frames = np.repeat(base[None], num_frames, axis=0)
    ys, xs = np.mgrid[0:height, 0:width]
    # A grey distractor drifts all the time, so that "nothing happens" is not a still picture.
    drift = np.cumsum(rng.normal(0, 0.6, size=(num_frames, 2)), axis=0)
    centre = np.array([height / 2, width / 2]) + np.clip(drift, -height / 3, height / 3)
    start = 0
    cue = max(3, height // 5)
    for label, length in plan:
        for t in range(start, start + length):
            frames[t][(ys - centre[t, 0]) ** 2 + (xs - centre[t, 1]) ** 2 <= (height / 10) ** 2] = 110.0
            if label.startswith("cue_"):
                frames[t, :cue, :cue] = _CUE_COLOURS[label.removeprefix("cue_")]
            elif label.startswith("after_"):
                progress = (t - start) / max(1, length - 1)
                x = width * (0.1 + 0.8 * progress)
                frames[t][(ys - height * 0.6) ** 2 + (xs - x) ** 2 <= (height / 7) ** 2] = 250.0
        start += length
    frames += rng.normal(0, 3, size=frames.shape)
    return torch.from_numpy(np.clip(np.rint(frames), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
