"""`prepare_manifest`: transcodes a dataset to its training resolution with short GOPs, for fast random access."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from rich.progress import Progress

from vidfit.data._chunks import build_chunk_index
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._manifest import Manifest, VideoEntry, load_manifest, save_manifest
from vidfit.io import VideoReader, VideoWriter
from vidfit.io._atomic import check_writable, resolve_inside

# Frames decoded and encoded at a time: bounds a worker's memory whatever the video's length.
_CHUNK_FRAMES = 64
# How long a worker asked to stop may take to drop its partial file before it is killed.
_STOP_SECONDS = 5.0


@dataclass(frozen=True)
class _Job:
    video_id: str
    source: Path | str
    target: Path
    size: tuple[int, int]
    gop: int
    crf: int
    stream_index: int | None = None


# Transcodes elsewhere than the local pool (`vidfit.apps.prepare` passes Ray's): given the jobs and the function
# transcoding one, it returns why each job that failed did, by the job's target file.
TranscodeRunner = Callable[[list[_Job], Callable[[_Job], int]], dict[Path, str]]


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
    video_ids: Collection[str] | None = None,
    manifest_name: str | None = None,
    runner: TranscodeRunner | None = None,
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
        video_ids: Only these videos are checked, transcoded and written to the manifest (a shard's); None: all.
        manifest_name: The new manifest's file name in `out_dir`; None: the original's.
        runner: Transcodes the views instead of the local pool of `workers` processes.
    """
    _check_arguments(size=size, gop=gop, workers=workers, crf=crf)
    manifest = load_manifest(manifest_path, allow_outside_root=allow_outside_root)
    if not manifest.videos:
        raise ManifestError([Problem(None, Path(manifest_path), "videos", "is empty: there is nothing to prepare")])
    videos = manifest.videos if video_ids is None else tuple(v for v in manifest.videos if v.id in video_ids)
    build_chunk_index(replace(manifest, videos=videos), sync_tolerance_seconds=sync_tolerance_seconds)
    root = Path(out_dir).resolve()
    target = check_writable(resolve_inside(root, manifest_name or Path(manifest_path).name))
    entries = [_relocate(entry, root) for entry in videos]
    jobs = _jobs(videos, entries, size=size, gop=gop, crf=crf)
    with _sigterm_as_interrupt():
        if runner is None:
            _run(jobs, workers=workers, progress=progress)
        else:
            _raise_first_failure(jobs, runner(jobs, _transcode))
    _link_keypoints(videos, entries)
    return save_manifest(Manifest(manifest.labels, root, tuple(entries)), target)


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
    """`entry` with its files moved under `root`, links followed; refuses any path that would land outside it."""
    try:
        views = {view: resolve_inside(root, f"videos/{entry.id}/{view}.mp4") for view in entry.views}
        keypoints = {
            view: resolve_inside(root, f"keypoints/{entry.id}/{view}{path.suffix if path.is_file() else ''}")
            for view, path in entry.keypoints.items()
        }
    except ValueError as error:
        raise ValueError(f"video {entry.id!r}: {error}") from error
    return replace(entry, views=views, keypoints=keypoints, streams={})  # the copies hold one stream each


def _jobs(
    originals: Sequence[VideoEntry], copies: Sequence[VideoEntry], *, size: tuple[int, int], gop: int, crf: int
) -> list[_Job]:
    return [
        _Job(old.id, source, Path(new.views[view]), size, gop, crf, old.streams.get(view))
        for old, new in zip(originals, copies, strict=True)
        for view, source in old.views.items()
    ]


def _run(jobs: list[_Job], *, workers: int, progress: bool) -> None:
    """Transcodes in worker processes; any failure or interrupt cancels the queue and stops the workers."""
    # Forking a process that has run FFmpeg's or torch's threads can inherit a held lock and hang.
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker)
    try:
        with Progress(disable=not progress) as bar:
            task = bar.add_task("Transcoding", total=len({job.video_id for job in jobs}))
            futures: dict[Future[int], _Job] = {pool.submit(_transcode, job): job for job in jobs}
            views_left = Counter(job.video_id for job in jobs)
            for future in as_completed(futures):
                job = futures[future]
                error = future.exception()
                if error is not None:
                    raise RuntimeError(f"{job.source}: transcoding failed: {error}") from error
                views_left[job.video_id] -= 1
                if not views_left[job.video_id]:
                    bar.advance(task)
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _raise_first_failure(jobs: list[_Job], failures: dict[Path, str]) -> None:
    """The first failed view's error, as the local pool reports it."""
    for job in jobs:
        if job.target in failures:
            raise RuntimeError(f"{job.source}: transcoding failed: {failures[job.target]}")


def _stop(pool: ProcessPoolExecutor) -> None:
    """Drops the queued jobs and ends the running ones now, each worker removing its partial file."""
    # The executor has no public way to end busy workers before Python 3.14 (`terminate_workers`).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(_STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


def _start_worker() -> None:
    # Ctrl-C reaches the whole terminal's process group; the main process alone decides, then stops
    # the workers with SIGTERM, which unwinds the transcode so that its writer drops its temp file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the transcoding as Ctrl-C does, cleaning up, where no one else handles it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _transcode(job: _Job) -> int:
    """Decodes `job.source` chunk by chunk, scaled in FFmpeg, and encodes it with the original timestamps."""
    height, width = job.size
    # One FFmpeg thread per process: the pool already runs one process per core asked for.
    with VideoReader(job.source, stream_index=job.stream_index, num_threads=1) as reader:
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
