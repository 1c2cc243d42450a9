"""Finding an annotation's video among the files under a data root, and reading each found video's length.

Datasets arrive in many layouts (Kinetics flat or in class folders with spaces or underscores, EPIC-KITCHENS
in ``P01/videos/P01_01.MP4``, ActivityNet as ``v_<id>.mp4``), so importers look a video up by its name
stem anywhere under the root, preferring the folder the annotation suggests.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from vidfit.io import VideoDecodeError, VideoMetadata, probe

_LOG = logging.getLogger("vidfit")
# The first listed wins when one name has several files in one place (a converted copy beside the original).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts")
_FOLDER_KEY = re.compile(r"[^0-9a-z]+")
_PROGRESS_SECONDS = 10.0


def folder_key(name: str) -> str:
    """A class name as its folder may be spelled: ``"passing American football (in game)"``,
    ``passing_American_football_(in_game)`` (MMAction2's rename) and ``passing_american_football_in_game``
    have one key."""
    return _FOLDER_KEY.sub("", name.lower())


class VideoFiles:
    """Every video file under a root (links followed, hidden folders skipped), by name stem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_stem: dict[str, list[Path]] = defaultdict(list)
        self._by_folded: dict[str, list[Path]] = defaultdict(list)
        for path in _walk(root):
            self._by_stem[path.stem].append(path)
            self._by_folded[path.stem.casefold()].append(path)

    def __len__(self) -> int:
        return sum(len(paths) for paths in self._by_stem.values())

    def find(
        self,
        stem: str,
        *,
        within: Path | None = None,
        prefer: Callable[[Path], int] | None = None,
        any_case: bool = True,
    ) -> Path | None:
        """The video named `stem`, with any known extension.

        Args:
            stem: The file name without its extension.
            within: Only files directly in this folder.
            prefer: Ranks candidates (lower first) before the extension order and the path.
            any_case: Accept the name in another letter case when no file has it exactly (UCF101's
                ``v_HandStandPushups`` files under lists some copies spell ``v_HandstandPushups``); off
                for names where case matters (YouTube ids).
        """
        candidates = [p for p in self._by_stem.get(stem, []) if within is None or p.parent == within]
        if not candidates and any_case:
            candidates = [p for p in self._by_folded.get(stem.casefold(), []) if within is None or p.parent == within]
        if not candidates:
            return None
        return min(candidates, key=lambda path: (prefer(path) if prefer else 0, _suffix_rank(path), str(path)))

    def paths(self) -> list[Path]:
        """Every video file found."""
        return [path for paths in self._by_stem.values() for path in paths]


def _suffix_rank(path: Path) -> int:
    suffix = path.suffix.lower()
    return VIDEO_SUFFIXES.index(suffix) if suffix in VIDEO_SUFFIXES else len(VIDEO_SUFFIXES)


def is_video(path: Path) -> bool:
    """Whether the name has a known video extension (any letter case: EPIC-KITCHENS writes ``.MP4``)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    seen: set[str] = set()
    for folder, folders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            folders.clear()
            continue
        seen.add(real)
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [Path(folder, name) for name in sorted(files) if not name.startswith(".") and is_video(Path(name))]
    return found


def probe_all(
    videos: Mapping[str, Path], *, workers: int | None = None, pool_from: int = 256
) -> dict[str, VideoMetadata | str]:
    """Each video's metadata from its packet index (the length the loader measures), or why it cannot be read.

    Reading a packet index is Python work per packet (a quarter second for three minutes of video), so
    imports of `pool_from` videos or more read them in `workers` processes (default: one per CPU); fewer
    are read here. Progress is logged every few seconds; Ctrl-C stops promptly (queued videos are dropped,
    the workers ignore the signal and finish the video in hand).
    """
    if not videos:
        return {}
    workers = workers or os.cpu_count() or 1
    _LOG.info("reading the length of %d video(s) from their packet index", len(videos))
    names, paths = list(videos), list(videos.values())
    if len(videos) < pool_from or workers == 1:
        return dict(zip(names, _logged(map(_probe_one, paths), len(paths)), strict=True))
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    pool = ProcessPoolExecutor(max_workers=min(workers, len(paths)), mp_context=context, initializer=_ignore_interrupts)
    try:
        results = list(_logged(pool.map(_probe_one, paths, chunksize=8), len(paths)))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return dict(zip(names, results, strict=True))


def _probe_one(path: Path) -> VideoMetadata | str:
    try:
        return probe(path)
    except (FileNotFoundError, VideoDecodeError, ValueError, OSError) as error:
        return str(error).removeprefix(f"{path}: ")


def _logged(results: Iterator[VideoMetadata | str], total: int) -> Iterator[VideoMetadata | str]:
    last = time.monotonic()
    for done, result in enumerate(results, start=1):
        if time.monotonic() - last > _PROGRESS_SECONDS:
            _LOG.info("read %d of %d videos", done, total)
            last = time.monotonic()
        yield result


def _ignore_interrupts() -> None:
    """Ctrl-C reaches every process of the terminal: the importer stops the pool, workers must not die mid-task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
