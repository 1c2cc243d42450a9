"""`prepare_manifest`: transcodes a dataset to its training resolution with short GOPs, for fast random access."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from rich.progress import Progress

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
    allow_outside_root: bool = False,
    progress: bool = True,
) -> Path:
    """Transcodes every view to H.264 at `size` and writes a manifest of the copies; returns its path.

    Each view becomes ``out_dir/videos/<video id>/<view>.mp4`` (libx264, yuv420p, keyframe every
    `gop` frames) with every frame's presentation time kept, so ``frames`` and ``seconds``
    timelines stay valid. Keypoints are hard-linked (copied across file systems) to
    ``out_dir/keypoints/<video id>/<view>[.npy]``, so the new manifest is self-contained under
    `out_dir`. Videos are written to a temp file and renamed; the manifest is written last.

    Args:
        manifest_path: The manifest to prepare.
        size: ``(height, width)`` of the copies; both even (4:2:0 chroma).
        gop: Keyframe interval in frames; short GOPs make random access cheap.
        out_dir: Folder of the copies and of the new manifest (same file name as the original).
        workers: Processes transcoding in parallel.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 default).
        allow_outside_root: Accept original paths outside the manifest's data root.
        progress: Show a progress bar.
    """
    height, width = size
    if height < 2 or width < 2 or height % 2 or width % 2:
        raise ValueError(f"size={size!r} must be (height, width) of even integers >= 2 for yuv420p")
    if gop < 1 or workers < 1 or not 0 <= crf <= 51:
        raise ValueError(f"need gop >= 1, workers >= 1 and 0 <= crf <= 51, got {gop!r}, {workers!r}, {crf!r}")
    manifest = load_manifest(manifest_path, allow_outside_root=allow_outside_root)
    root = Path(out_dir).resolve()
    entries = [_relocate(entry, root) for entry in manifest.videos]
    jobs = [
        _Job(source, new.views[view], (height, width), gop, crf)
        for old, new in zip(manifest.videos, entries, strict=True)
        for view, source in old.views.items()
    ]
    _run(jobs, workers, progress)
    for old, new in zip(manifest.videos, entries, strict=True):
        for view, source in old.keypoints.items():
            _link_tree(source, new.keypoints[view])
    prepared = Manifest(manifest.labels, root, tuple(entries))
    return save_manifest(prepared, root / Path(manifest_path).name)


def _relocate(entry: VideoEntry, root: Path) -> VideoEntry:
    folder = root / "videos" / entry.id
    keypoints = root / "keypoints" / entry.id
    return replace(
        entry,
        views={view: folder / f"{view}.mp4" for view in entry.views},
        keypoints={
            view: keypoints / f"{view}{path.suffix if path.is_file() else ''}" for view, path in entry.keypoints.items()
        },
    )


def _run(jobs: list[_Job], workers: int, progress: bool) -> None:
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
