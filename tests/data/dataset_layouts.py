"""Public datasets' file layouts in miniature: annotation files written byte for byte in each dataset's
format (CRLF where the real files have it, BOMs, quoting, trailing spaces), and tiny videos named as each
dataset names them. Entries whose video is left out stand for the videos every real copy is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from vidfit.io import write_video

_VIDEOS: dict[tuple[int, float, str], Path] = {}


def video(path: Path, *, seconds: float = 2.0, fps: float = 5.0) -> Path:
    """A tiny H.264 video of `seconds` at `fps` (16x16) at `path`; one encode per length, copied after that
    (the encoded copy is a hidden file, which importers do not list)."""
    kind = "avi" if path.suffix.lower() == ".avi" else "mp4"
    key = (round(seconds * fps), fps, kind)
    if key not in _VIDEOS or not _VIDEOS[key].is_file():
        frames = torch.zeros(key[0], 3, 16, 16, dtype=torch.uint8)
        frames[:, 0] = torch.arange(key[0], dtype=torch.uint8)[:, None, None]
        cache = path.parent.parent / f".video_{key[0]}_{fps}.{kind}"
        cache.parent.mkdir(parents=True, exist_ok=True)
        _VIDEOS[key] = write_video(cache, frames, fps=fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_VIDEOS[key], path)
    return path


def write(path: Path, text: str, *, crlf: bool = False, bom: bool = False) -> Path:
    """`text` as UTF-8 bytes, with Windows line endings and a byte-order mark when asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path
