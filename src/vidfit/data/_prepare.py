"""`prepare_manifest`: transcodes a dataset to its training resolution with short GOPs, for fast random access."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from rich.progress import Progress

from vidfit.data._chunks import build_chunk_index
from vidfit.data._manifest import Manifest, VideoEntry, load_manifest, save_manifest
from vidfit.io import VideoReader, VideoWriter

# Frames decoded and encoded at a time: bounds a worker's memory whatever the video's length.
_CHUNK_FRAMES = 64


@dataclass(frozen=True)
class _Job:
    source: Path
    target: Path
    size: tuple[int, int]
    gop: int
    crf: int


def prepare_manifest(
    manifest_path: str | os.PathLike[str],
    *,
    size: tuple[int, int],
    gop: int,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    crf: int = 18,
    sync_tolerance_seconds: float = 0.1,
    allow_outside_root: bool = False,
    progress: bool = True,
) -> Path:
    """Transcodes every view to H.264 at `size` and writes a manifest of the copies; returns its path.

    The manifest is first checked as `build_chunk_index` checks it, so that no problem surfaces after
    hours of transcoding. Each view becomes ``out_dir/videos/<id>/<view>.mp4`` (libx264, yuv420p) with
    every frame's time kept; keypoints are hard-linked (or copied) to ``out_dir/keypoints/<id>/<view>``
    (``.npy`` kept); the manifest, of the same file name, is written last. See docs/DATA.md.

    Args:
        manifest_path: The manifest to prepare.
        size: ``(height, width)`` of the copies; both even (4:2:0 chroma).
        gop: Keyframe interval in frames; short GOPs make random access cheap.
        out_dir: Folder of the copies and of the new manifest.
        workers: Processes transcoding in parallel.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
        sync_tolerance_seconds: Largest allowed difference between the durations of a video's views.
        allow_outside_root: Accept original paths outside the manifest's data root.
        progress: Show a progress bar.
    """
    _check_arguments(size=size, gop=gop, workers=workers, crf=crf)
    manifest = load_manifest(manifest_path, allow_outside_root=allow_outside_root)
    build_chunk_index(manifest, sync_tolerance_seconds=sync_tolerance_seconds)
    root = Path(out_dir).resolve()
    entries = [_relocate(entry, root) for entry in manifest.videos]
    _run(_jobs(manifest.videos, entries, size=size, gop=gop, crf=crf), workers=workers, progress=progress)
    _link_keypoints(manifest.videos, entries)
    return save_manifest(Manifest(manifest.labels, root, tuple(entries)), root / Path(manifest_path).name)


def _check_arguments(*, size: tuple[int, int], gop: int, workers: int, crf: int) -> None:
    if len(size) != 2 or any(not isinstance(n, int) or n < 2 or n % 2 for n in size):
        raise ValueError(f"size={size!r} must be (height, width) of even integers >= 2 for yuv420p")
    if gop < 1:
        raise ValueError(f"gop={gop!r} must be >= 1")
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf={crf!r} must be in [0, 51]")


def _relocate(entry: VideoEntry, root: Path) -> VideoEntry:
    """`entry` with its files moved under `root`; refuses any path that would land outside it."""
    folder, keypoints = root / "videos" / entry.id, root / "keypoints" / entry.id
    moved = replace(
        entry,
        views={view: folder / f"{view}.mp4" for view in entry.views},
        keypoints={
            view: keypoints / f"{view}{path.suffix if path.is_file() else ''}" for view, path in entry.keypoints.items()
        },
    )
    for path in [*moved.views.values(), *moved.keypoints.values()]:
        if not Path(os.path.normpath(path)).is_relative_to(root):
            raise ValueError(f"video {entry.id!r}: output {path} would be outside out_dir {root}")
    return moved


def _jobs(
    originals: Sequence[VideoEntry], copies: Sequence[VideoEntry], *, size: tuple[int, int], gop: int, crf: int
) -> list[_Job]:
    return [
        _Job(source, new.views[view], size, gop, crf)
        for old, new in zip(originals, copies, strict=True)
        for view, source in old.views.items()
    ]


def _run(jobs: list[_Job], *, workers: int, progress: bool) -> None:
    # Forking a process that has run FFmpeg's or torch's threads can inherit a held lock and hang.
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with Progress(disable=not progress) as bar, ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        task = bar.add_task("Transcoding", total=len(jobs))
        futures: dict[Future[int], _Job] = {pool.submit(_transcode, job): job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise RuntimeError(f"{futures[future].source}: transcoding failed: {error}") from error
                bar.advance(task)


def _transcode(job: _Job) -> int:
    """Decodes `job.source` chunk by chunk, scaled in FFmpeg, and encodes it with the original timestamps."""
    height, width = job.size
    # One FFmpeg thread per process: the pool already runs one process per core asked for.
    with VideoReader(job.source, num_threads=1) as reader:
        fps = reader.metadata.fps
        with VideoWriter(
            job.target, fps=fps, width=width, height=height, codec="libx264", gop=job.gop, crf=job.crf
        ) as w:
            for chunk in reader.iter_chunks(chunk_num_frames=_CHUNK_FRAMES, size=job.size):
                w.write(chunk.data, pts_seconds=chunk.pts_seconds)
    return w.num_frames


def _link_keypoints(originals: Sequence[VideoEntry], copies: Sequence[VideoEntry]) -> None:
    for old, new in zip(originals, copies, strict=True):
        for view, source in old.keypoints.items():
            _link_tree(source, new.keypoints[view])


def _link_tree(source: Path, target: Path) -> None:
    """Hard-links a keypoint file, or every file of a keypoint folder, to `target`."""
    files = [(source, target)] if source.is_file() else [(f, target / f.name) for f in sorted(source.iterdir())]
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    for original, link in files:
        link.unlink(missing_ok=True)
        try:
            os.link(original, link)
        except OSError:
            shutil.copy2(original, link)
