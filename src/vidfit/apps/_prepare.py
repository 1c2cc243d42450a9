"""`prepare`: a manifest transcoded by the local process pool or on a Ray cluster, whole or one shard of it."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidfit.data import load_manifest, prepare_manifest
from vidfit.infer._engines import Engine, EngineName, Work
from vidfit.infer._shards import Shard, file_sizes, write_shard_record


def prepare(
    manifest_path: str | os.PathLike[str],
    *,
    size: tuple[int, int],
    gop: int,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    crf: int = 18,
    engine: EngineName = "local",
    ray_address: str | None = None,
    shard: str | Shard | None = None,
    allow_outside_root: bool = False,
    progress: bool = True,
) -> Path:
    """`vidfit.data.prepare_manifest` on the chosen engine; returns the manifest written.

    Args:
        manifest_path: The manifest to prepare.
        size: ``(height, width)`` of the copies; both even (4:2:0 chroma).
        gop: Keyframe interval in frames.
        out_dir: Folder of the copies and of the new manifest; shared by every shard of one corpus.
        workers: Processes of the local pool (``engine="local"``).
        crf: x264 constant rate factor.
        engine: ``"local"`` (a pool of `workers` processes) or ``"ray"`` (one CPU task per view on a Ray cluster,
            whose workers must see `out_dir`: one machine, or a shared file system).
        ray_address: The Ray cluster to join; None: ``RAY_ADDRESS``, else a cluster started on this machine.
        shard: ``"i/N"``: only the i-th of N deterministic shards of the videos, written to
            ``<manifest stem>.shard-<i>-of-<N>.<ext>`` with a record for `vidfit merge` (docs/DISTRIBUTED.md).
        allow_outside_root: Accept original paths outside the manifest's data root.
        progress: Show a progress bar.
    """
    chosen = Engine(engine, ray_address=ray_address)
    part = Shard.parse(shard) if isinstance(shard, str) else shard
    options: dict[str, Any] = {}
    if part is not None:
        all_ids = [video.id for video in load_manifest(manifest_path, allow_outside_root=allow_outside_root).videos]
        name = part.output_path(Path(manifest_path).name).name
        options.update(video_ids=part.video_ids(all_ids), manifest_name=name)
    if chosen.name != "local":  # the local engine of prepare is its own process pool
        options.update(runner=functools.partial(_transcode_on, chosen, progress=progress))
    written = prepare_manifest(
        manifest_path, size=size, gop=gop, out_dir=out_dir, workers=workers, crf=crf,
        allow_outside_root=allow_outside_root, progress=progress, **options,
    )  # fmt: skip
    if part is not None:
        # Every file of the shard, sized, so that `merge` finds one removed or cut short since.
        copies = load_manifest(written).videos
        kept = [path for video in copies for path in (*video.views.values(), *video.keypoints.values())]
        write_shard_record(
            written, shard=part, kind="manifest", video_ids=all_ids, failures={},
            settings={"size": list(size), "gop": gop, "crf": crf}, files=file_sizes(kept, folder=written.parent),
        )  # fmt: skip
    return written


def _transcode_on(
    engine: Engine, jobs: list[Any], transcode: Callable[[Any], int], *, progress: bool
) -> dict[Path, str]:
    """Each view as one task of `engine`; why each failed view did, by its target file."""
    work = Work(functools.partial(_transcode_one, transcode), key=_target, description="transcoding views")
    try:
        _, failures = engine.run(jobs, work, progress=progress)
    finally:  # interrupted too: the engine has stopped every attempt by then
        for job in jobs:
            _remove_killed_attempts(job.target)
    return failures


def _transcode_one(transcode: Callable[[Any], int], loaded: None, job: Any) -> int:
    return transcode(job)


def _target(job: Any) -> Path:
    return Path(job.target)


def _remove_killed_attempts(target: Path) -> None:
    """Removes the temp files of attempts whose process was killed (`VideoWriter` names them so), once all ended.

    A retried task wrote its file whole under a temp name of its own and renamed it; an attempt killed before
    its rename could not remove its own temp file.
    """
    for temp in target.parent.glob(f".{target.stem}.tmp-*{target.suffix}"):
        temp.unlink(missing_ok=True)
