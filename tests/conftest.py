"""Shared fixtures: tiny videos written at test time, and the CUDA marker."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from tests.videos import pattern_frames
from vidfit.io import write_video


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The tests that run Ray in this process go last: Ray's gRPC threads outlive ray.shutdown(), and a process
    # forked after them (a DataLoader's workers, in a later test) can hang on a lock one of them held.
    items.sort(key=lambda item: "ray_cluster" in getattr(item, "fixturenames", ()))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="module")
def _ray_shut_down_after_each_module() -> Iterator[None]:
    """Ray started in the test process (``Engine("ray")`` joins or starts a cluster and keeps it, as a command
    does until it exits) is shut down when the module ends: a process forked later by another module's test
    (a DataLoader's workers) would inherit Ray's threads' locks and could hang on them."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


MakeVideo = Callable[..., tuple[Path, torch.Tensor]]


@pytest.fixture
def make_video(tmp_path: Path) -> MakeVideo:
    """Factory writing a pattern video; returns its path and the frames that went in.

    Keyword arguments: name, num_frames, height, width, fps, codec, gop, crf, bframes, pts_seconds.
    The default is lossless RGB H.264 in Matroska, so decoded frames compare exactly.
    """

    def make(
        name: str = "video.mkv",
        *,
        num_frames: int = 24,
        height: int = 32,
        width: int = 48,
        fps: float = 30.0,
        codec: str = "libx264rgb",
        gop: int | None = 8,
        crf: int | None = 0,
        bframes: int | None = None,
        pts_seconds: torch.Tensor | None = None,
    ) -> tuple[Path, torch.Tensor]:
        frames = pattern_frames(num_frames, height, width)
        path = write_video(
            tmp_path / name,
            frames,
            fps=fps,
            codec=codec,
            gop=gop,
            crf=crf if codec.startswith("libx264") else None,
            bframes=bframes,
            pts_seconds=pts_seconds,
        )
        return path, frames

    return make


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-view synthetic action dataset (2 videos per class, 16 frames, 32x32) with keypoints per view."""
    import dataclasses

    import numpy as np

    from vidfit._synthetic import make_demo_dataset
    from vidfit.data import load_manifest, save_manifest

    root = tmp_path_factory.mktemp("tiny_dataset")
    dataset = make_demo_dataset(root, num_videos_per_class=2, num_frames=16, size=(32, 32))
    manifest = load_manifest(dataset.manifest_path)
    rng = np.random.default_rng(0)
    videos = []
    for entry in manifest.videos:
        keypoints = {}
        for view in entry.views:
            path = root / entry.id / f"kpt_{view}.npy"
            np.save(path, rng.random((16, 5, 2), dtype=np.float32))
            keypoints[view] = path
        videos.append(dataclasses.replace(entry, keypoints=keypoints))
    return save_manifest(dataclasses.replace(manifest, videos=tuple(videos)), root / "manifest_kpt.yaml")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier trained for two steps on `tiny_manifest`."""
    from vidfit.config import load_config
    from vidfit.train import fit

    output = tmp_path_factory.mktemp("runs")
    result = fit(load_config(None, tiny_overrides(tiny_manifest, output)))
    assert result.last_checkpoint is not None
    return result.last_checkpoint


def tiny_overrides(manifest: Path, output_dir: Path, *extra: str) -> list[str]:
    """Settings for a training run of seconds on the CPU (the tiny classifier unless `extra` picks another task)."""
    model = [] if any(item.startswith("experiment.task=") for item in extra) else ["model.backbone=tiny"]
    return [
        f"data.manifest={manifest}", f"experiment.output_dir={output_dir}", *model,
        "data.num_frames=4", "data.batch_size=2", "data.num_workers=0", "trainer.max_steps=2",
        "trainer.max_epochs=1", "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", *extra,
    ]  # fmt: skip
