"""`prepare` on Ray: the same files as the local pool, killed tasks retried with nothing left half-written, shards."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import torch

from tests.apps.conftest import tree
from vidfit.apps import merge, prepare
from vidfit.apps._prepare import _transcode_on
from vidfit.cli import main
from vidfit.data import load_manifest, prepare_manifest
from vidfit.infer._engines import Engine
from vidfit.io import VideoReader, VideoWriter

SETTINGS: dict[str, Any] = {"size": (16, 16), "gop": 4, "crf": 10, "progress": False}


def test_prepare_on_ray_writes_the_local_pools_files(ray_cluster: Any, tiny_manifest: Path, tmp_path: Path) -> None:
    local = prepare(tiny_manifest, out_dir=tmp_path / "local", workers=2, **SETTINGS)
    on_ray = prepare(tiny_manifest, out_dir=tmp_path / "ray", engine="ray", **SETTINGS)
    assert on_ray.name == local.name
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def _dies_on_first_attempt(transcode: Any, markers: Path, job: Any) -> int:
    """The first attempt at each of the first video's views writes part of its copy, then its process dies."""
    marker = markers / f"{job.video_id}.{Path(job.target).stem}"
    if job.video_id == "vid_000" and not marker.exists():
        marker.touch()
        writer = VideoWriter(job.target, fps=10.0, width=16, height=16, codec="libx264", gop=4)
        writer.write(torch.zeros(4, 3, 16, 16, dtype=torch.uint8))
        os._exit(1)  # as a node lost or the OOM killer would: no cleanup runs
    return transcode(job)


def test_a_killed_transcode_is_retried_without_a_partial_or_duplicate_file(
    ray_cluster: Any, tiny_manifest: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()

    def runner(jobs: list[Any], transcode: Any) -> dict[Path, str]:
        dying = functools.partial(_dies_on_first_attempt, transcode, markers)
        return _transcode_on(Engine("ray"), jobs, dying, progress=False)

    prepare_manifest(tiny_manifest, out_dir=tmp_path / "ray", runner=runner, **SETTINGS)
    assert sorted(p.name for p in markers.iterdir()) == [f"vid_000.{view}" for view in ("front", "left")]
    prepare(tiny_manifest, out_dir=tmp_path / "local", **SETTINGS)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_shards_merge_into_the_unsharded_manifest(tiny_manifest: Path, tmp_path: Path) -> None:
    whole = prepare(tiny_manifest, out_dir=tmp_path / "whole", **SETTINGS)
    out = tmp_path / "sharded"
    assert main(["prepare", str(tiny_manifest), "--size", "16", "16", "--gop", "4", "--out", str(out),
                 "--shard", "1/3"]) == 0  # fmt: skip
    # The command line's CRF (its default, 18): shards of one corpus are made alike, or `merge` refuses them.
    firsts = [prepare(tiny_manifest, out_dir=out, shard=f"{i}/3", **{**SETTINGS, "crf": 18}) for i in (0, 2)]
    assert [p.name for p in firsts] == ["manifest_kpt.shard-0-of-3.yaml", "manifest_kpt.shard-2-of-3.yaml"]
    assert [v.id for v in load_manifest(firsts[0]).videos] == ["vid_000", "vid_003", "vid_006"]
    result = merge(out / whole.name)
    assert (result.num_shards, result.num_videos, result.failures) == (3, 8, {})
    assert (out / whole.name).read_text() == whole.read_text()
    for video in load_manifest(out / whole.name).videos:
        with VideoReader(video.views["front"]) as copy:
            reference = load_manifest(whole).videos[[v.id for v in load_manifest(whole).videos].index(video.id)]
            with VideoReader(reference.views["front"]) as original:
                assert np.array_equal(copy.pts_seconds, original.pts_seconds)


def _wait_for(condition: Any, process: psutil.Popen, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "prepare never started transcoding"
        time.sleep(0.05)


@pytest.mark.slow  # starts a Ray cluster of its own, as the command does
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_ray_prepare_exits_as_the_local_engine_does_and_leaves_nothing(
    tmp_path: Path, signum: int, code: int
) -> None:
    pytest.importorskip("ray")
    from vidfit._synthetic import make_demo_dataset

    source = make_demo_dataset(tmp_path / "data", num_videos_per_class=1, num_frames=200, size=(64, 64))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidfit.cli", "prepare", str(source.manifest_path), "--size", "256", "256",
               "--gop", "2", "--out", str(out), "--engine", "ray"]  # fmt: skip
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    process = psutil.Popen(command, stderr=subprocess.PIPE, env=env)
    try:
        _wait_for(lambda: any((out / "videos").glob("*/.*tmp*")), process, seconds=300)  # Ray starts slowly
        cluster = process.children(recursive=True)
        process.send_signal(signum)
        process.wait(timeout=120)
        err = process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.is_running():
            process.kill()
    assert process.returncode == code, err
    assert "SIGTERM received" not in err and "Traceback" not in err, err
    assert err.rstrip().splitlines()[-1] == ("interrupted" if signum == signal.SIGINT else "stopped by SIGTERM"), err
    assert not [p.name for p in out.rglob(".*")], "temp files left behind"
    assert not (out / source.manifest_path.name).exists()
    _, alive = psutil.wait_procs(cluster, timeout=30)
    assert not [p.pid for p in alive if _running(p)], "Ray processes left running"


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
