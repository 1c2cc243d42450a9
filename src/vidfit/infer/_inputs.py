"""The videos that command-line inputs name: video files, folders of them, and manifests."""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar
from urllib.parse import urlsplit

from vidfit.data import ManifestError, VideoEntry, load_manifest
from vidfit.io._sources import as_location

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

K = TypeVar("K", bound=Hashable)
P = TypeVar("P", Path, Path | str)


@dataclass(frozen=True)
class VideoFile:
    """A video file named by the inputs outside any manifest, by itself or as one of a folder's files.

    Attributes:
        id: Its video id: the path or URL as given for a file named by itself, the file's stem for a folder's file.
        path: The file, or its URL.
    """

    id: str
    path: Path | str


def file_name(location: Path | str) -> PurePosixPath:
    """The file name of a path or URL, its query left out (``stem`` and ``suffix`` as a path's)."""
    return PurePosixPath(location.name if isinstance(location, Path) else urlsplit(location).path)


def expand_inputs(
    inputs: Sequence[str | os.PathLike[str]], *, split: str | None
) -> tuple[list[VideoEntry | VideoFile], dict[str, str]]:
    """The videos of `inputs`, in order, and why some inputs gave none.

    A manifest (``.yaml``, ``.yml``, ``.json``) gives its entries, only those of `split` when it is not
    None; a folder gives its files with a video suffix (`VIDEO_SUFFIXES`), sorted; any other path is a
    video file. Manifests and videos may be URLs (kept as text: a `Path` would fold the ``//``). A manifest
    that cannot be read and a folder without videos are reported by path.
    """
    videos: list[VideoEntry | VideoFile] = []
    failures: dict[str, str] = {}
    for item in map(as_location, inputs):
        if file_name(item).suffix.lower() in MANIFEST_SUFFIXES:
            try:
                videos += [v for v in load_manifest(item).videos if split is None or v.split == split]
            except (ManifestError, OSError) as error:  # missing, or a server that fails: that input's failure
                failures[str(item)] = str(error)
        elif isinstance(item, Path) and item.is_dir():
            files = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not files:
                failures[str(item)] = f"{item}: the folder holds no video files ({', '.join(VIDEO_SUFFIXES)})"
            videos += [VideoFile(file.stem, file) for file in files]
        else:
            videos.append(VideoFile(str(item), item))
    return videos, failures


def first_duplicate(named: Iterable[tuple[K, P]]) -> tuple[K, P, P] | None:
    """The first name given twice, with the files it was given for (the same file when it was named twice)."""
    seen: dict[K, P] = {}
    for name, path in named:
        if name in seen:
            return name, seen[name], path
        seen[name] = path
    return None
