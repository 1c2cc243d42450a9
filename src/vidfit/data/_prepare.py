"""`prepare_manifest`: transcodes a dataset to its training resolution with short GOPs, for fast random access."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from rich.progress import Progress

from vidfit.data._chunks import build_chunk_index
from vidfit.data._cut import ViewCut, cut_keypoints, cut_timeline, has_clip_range, link_or_copy, view_cuts
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._manifest import Manifest, VideoEntry, load_manifest, save_manifest
from vidfit.io import VideoDecodeError, VideoReader, VideoWriter, sigterm_as_interrupt
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
    # The frames kept: a clip range's, or the whole video (stop None).
    start_frame: int = 0
    stop_frame: int | None = None


class TranscodeError(OSError):
    """A view that could not be transcoded because of its files, not of vidfit: a user's error.

    The source does not decode, or the copy cannot be written (a full disk, a file in the way). The message
    is ``<source>: transcoding to <copy> failed: <reason>``.
    """


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
    (``.npy`` kept); the manifest, of the same file name, is written last. An entry's clip range (``start``,
    ``end``) is cut: the copy holds the clip's frames alone, its timeline and keypoints counted from the
    clip's first frame, and its entry has no range. See docs/DATA.md.

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
    index = build_chunk_index(replace(manifest, videos=videos), sync_tolerance_seconds=sync_tolerance_seconds)
    root = Path(out_dir).resolve()
    target = check_writable(resolve_inside(root, manifest_name or Path(manifest_path).name))
    cuts = {entry.id: view_cuts(entry) for entry in videos if has_clip_range(entry)}
    entries = [_relocate(entry, root, cuts.get(entry.id)) for entry in videos]
    jobs = _jobs(videos, entries, cuts, size=size, gop=gop, crf=crf)
    with sigterm_as_interrupt():  # SIGTERM stops the transcoding as Ctrl-C does, cleaning up
        if runner is None:
            _run(jobs, workers=workers, progress=progress)
        else:
            _raise_first_failure(jobs, runner(jobs, _transcode))
    _link_keypoints(videos, entries)
    for entry, copy in zip(videos, entries, strict=True):
        for view, cut in cuts.get(entry.id, {}).items():
            if view in entry.keypoints:
                cut_keypoints(index.videos[entry.id].keypoints[view], copy.keypoints[view], cut)
    prepared = Manifest(manifest.labels, root, tuple(entries), multi_label=manifest.multi_label)
    return save_manifest(prepared, target)


def _check_arguments(*, size: tuple[int, int], gop: int, workers: int, crf: int) -> None:
    if len(size) != 2 or any(not isinstance(n, int) or n < 2 or n % 2 for n in size):
        raise ValueError(f"size={size!r} must be (height, width) of even integers >= 2 for yuv420p")
    if gop < 1:
        raise ValueError(f"gop={gop!r} must be >= 1")
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf={crf!r} must be in [0, 51]")


def _relocate(entry: VideoEntry, root: Path, cuts: dict[str, ViewCut] | None = None) -> VideoEntry:
    """`entry` with its files moved under `root`, links followed; refuses any path that would land outside it.

    With `cuts` (a clip range's frames, by view) the copy is the clip alone: its timeline counts from the
    clip's first frame and it has no range.
    """
    try:
        views = {view: resolve_inside(root, f"videos/{entry.id}/{view}.mp4") for view in entry.views}
        keypoints = {
            view: resolve_inside(root, f"keypoints/{entry.id}/{view}{path.suffix if path.is_file() else ''}")
            for view, path in entry.keypoints.items()
        }
    except ValueError as error:
        raise ValueError(f"video {entry.id!r}: {error}") from error
    copy = replace(entry, views=views, keypoints=keypoints, streams={})  # the copies hold one stream each
    if cuts is None:
        return copy
    timeline = cut_timeline(entry.timeline, cuts[next(iter(entry.views))])
    return replace(copy, timeline=timeline, start_seconds=None, end_seconds=None)


def _jobs(
    originals: Sequence[VideoEntry],
    copies: Sequence[VideoEntry],
    cuts: dict[str, dict[str, ViewCut]],
    *,
    size: tuple[int, int],
    gop: int,
    crf: int,
) -> list[_Job]:
    jobs = []
    for old, new in zip(originals, copies, strict=True):
        for view, source in old.views.items():
            cut = cuts.get(old.id, {}).get(view)
            frames = (0, None) if cut is None else (cut.start_frame, cut.stop_frame)
            jobs.append(_Job(old.id, source, Path(new.views[view]), size, gop, crf, old.streams.get(view), *frames))
    return jobs


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
                if isinstance(error, TranscodeError):  # the input's or the disk's: the user's to fix
                    raise error
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
            reason = failures[job.target]
            if reason.startswith(f"{TranscodeError.__name__}: "):  # as the engine reports an error: its class first
                raise TranscodeError(reason.removeprefix(f"{TranscodeError.__name__}: "))
            raise RuntimeError(f"{job.source}: transcoding failed: {reason}")


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


def _transcode(job: _Job) -> int:
    """Decodes `job.source` chunk by chunk, scaled in FFmpeg, and encodes it with the original timestamps.

    A clip's frames keep their spacing, moved so that its first frame is where the original's first frame was.

    Raises:
        TranscodeError: The source does not decode, or the copy cannot be written (a full disk, a file in the way).
    """
    try:
        return _transcode_view(job)
    except (OSError, ValueError, VideoDecodeError) as error:
        # What the user's files cause, said here in the worker: its class must survive Ray's report as text.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        reason = reason.removeprefix(f"{job.source}: ")
        raise TranscodeError(f"{job.source}: transcoding to {job.target} failed: {reason}") from error


def _transcode_view(job: _Job) -> int:
    height, width = job.size
    # One FFmpeg thread per process: the pool already runs one process per core asked for.
    with VideoReader(job.source, stream_index=job.stream_index, num_threads=1) as reader:
        fps = reader.metadata.fps
        shift = float(reader.pts_seconds[job.start_frame] - reader.pts_seconds[0])
        with VideoWriter(
            job.target, fps=fps, width=width, height=height, codec="libx264", gop=job.gop, crf=job.crf
        ) as w:
            chunks = reader.iter_chunks(
                chunk_num_frames=_CHUNK_FRAMES, size=job.size, start=job.start_frame, stop=job.stop_frame
            )
            for chunk in chunks:
                w.write(chunk.data, pts_seconds=chunk.pts_seconds - shift)
    return w.num_frames


def _link_keypoints(originals: Sequence[VideoEntry], copies: Sequence[VideoEntry]) -> None:
    """Links the keypoints of whole videos; those of clip ranges are cut instead (`cut_keypoints`)."""
    for old, new in zip(originals, copies, strict=True):
        for view, source in old.keypoints.items() if not has_clip_range(old) else ():
            _link_tree(source, new.keypoints[view])


def _link_tree(source: Path, target: Path) -> None:
    """Hard-links a keypoint file, or every file of a keypoint folder, to `target`."""
    files = [(source, target)] if source.is_file() else [(f, target / f.name) for f in sorted(source.iterdir())]
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    for original, link in files:
        link_or_copy(original, link)
