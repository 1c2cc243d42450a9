"""On-disk cache of chunk indexes, keyed by the manifest entries, the files' size and mtime, and the parameters."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vidfit.data._manifest import VideoEntry
from vidfit.io._atomic import write_text_atomic
from vidfit.io._sources import source_stamp

_CACHE_VERSION = 3  # 2: file versions as strings (URLs have no mtime); 3: each video's clip frames


def cache_key(*, labels: tuple[str, ...], entries: list[VideoEntry], parameters: dict[str, Any]) -> str:
    """A digest that changes when an entry, a file's size or mtime_ns, or a parameter changes.

    Keypoint folders contribute their own mtime, which changes when files are added or removed.
    """
    videos = [{"entry": asdict(entry), "files": _file_stamps(entry)} for entry in entries]
    document = {"version": _CACHE_VERSION, "labels": labels, "videos": videos, "parameters": parameters}
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_stamps(entry: VideoEntry) -> list[tuple[int, str] | None]:
    # Size and version (mtime for local files, the store's ETag or modification time for URLs).
    return [source_stamp(path) for path in [*entry.views.values(), *entry.keypoints.values()]]


def cache_file(cache_dir: Path, key: str) -> Path:
    """Where the index with `key` is stored."""
    return cache_dir / f"chunk-index-{key[:32]}.json"


def read_cache(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The cached document for `key`, or None when absent or unreadable."""
    try:
        document = json.loads(cache_file(cache_dir, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("key") == key else None


def write_cache(cache_dir: Path, key: str, document: dict[str, Any]) -> Path:
    """Stores `document` under `key` through a temp file, so readers never see half a file."""
    return write_text_atomic(cache_file(cache_dir, key), json.dumps({**document, "key": key}))
