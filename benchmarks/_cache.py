"""Generated benchmark inputs, cached under names keyed by what made them.

A cached file's name holds a hash of the generator's arguments and of the generator's own source, so a
changed generator or setting writes a new file instead of reusing a stale one. The cache lives in
`$VIDFIT_BENCH_CACHE`, else `~/.cache/vidfit/bench`; delete it at will.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import torch

import vidfit._synthetic as synthetic
from vidfit.io import VideoWriter

CACHE_ENV = "VIDFIT_BENCH_CACHE"


def cache_dir() -> Path:
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vidfit" / "bench")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_path(name: str, params: Mapping[str, object], *, generator: Callable | ModuleType, suffix: str = "") -> Path:
    """Where the output of `generator(**params)` is kept: `<cache>/<name>-<hash>` plus `suffix`."""
    recipe = json.dumps(dict(params), sort_keys=True, default=str) + inspect.getsource(generator)
    return cache_dir() / f"{name}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}{suffix}"


def bench_video(*, num_frames: int, height: int, width: int, gop: int, crf: int = 23) -> Path:
    """An H.264 clip with motion and texture (the decoder has real work per frame), made once per setting."""
    params = {"num_frames": num_frames, "height": height, "width": width, "gop": gop, "crf": crf}
    path = cache_path(f"h264-{width}x{height}-{num_frames}f-gop{gop}", params, generator=_synthesize, suffix=".mp4")
    if not path.exists():
        _synthesize(path, **params)  # VideoWriter writes a temp file and renames it once complete
    return path


def _synthesize(path: Path, *, num_frames: int, height: int, width: int, gop: int, crf: int) -> None:
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    texture = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    with VideoWriter(path, fps=30, width=width, height=height, codec="libx264", gop=gop, crf=crf) as writer:
        for start in range(0, num_frames, 50):
            t = torch.arange(start, min(start + 50, num_frames), dtype=torch.float32)[:, None, None, None] / 30
            wave = torch.sin(12 * x + 4 * t) * torch.cos(9 * y - 3 * t)
            frames = (0.5 + 0.3 * wave + 0.2 * texture.roll(shifts=start, dims=2)) * 255
            writer.write(frames.clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous())


def place_video(destination: Path, **params: int) -> Path:
    """`bench_video(**params)` at `destination` (a hard link, else a symbolic one), for a manifest's layout."""
    source = bench_video(**params)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_symlink() or destination.exists():
        if destination.exists() and destination.samefile(source):
            return destination
        destination.unlink()
    try:
        os.link(source, destination)
    except OSError:  # the cache on another file system
        destination.symlink_to(source)
    return destination


def demo_dataset(**params: object) -> synthetic.DemoDataset:
    """`vidfit`'s synthetic demo dataset for `params`, kept in the cache (it reuses a folder made with them)."""
    root = cache_path("demo", params, generator=synthetic)
    return synthetic.make_demo_dataset(root, **params)  # type: ignore[arg-type]
