"""The checks of a `VideoDatasetConfig`: every bad value at once, and the frame sizes its videos decode to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vidfit.data._chunks import ON_ERRORS, TAILS, IndexedVideo
from vidfit.data._errors import ManifestError, Problem
from vidfit.data._manifest import MAX_VIEWS
from vidfit.data._sampling import DECODE_BACKENDS, MODES, SAMPLINGS
from vidfit.io._documents import shorten

if TYPE_CHECKING:
    from vidfit.data._dataset import VideoDatasetConfig

# Upper bounds far above any real use, low enough that a typo (a billion frames, a 100000-pixel side) is
# refused here instead of failing in an allocation of terabytes.
MAX_NUM_FRAMES = 4096
MAX_FRAME_STRIDE = 1000
MAX_IMAGE_SIDE = 8192  # 8K video is 7680 x 4320
MAX_VIDEO_FRAMES = 1_000_000  # a chunk of over nine hours at 30 fps
MAX_OPEN_READERS = 1024
MAX_THREADS = 256


class DatasetConfigError(ValueError):
    """Every bad value of a `VideoDatasetConfig` at once.

    Attributes:
        problems: Key to what is wrong with its value and what is allowed.
    """

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems.values()))


def dataset_config_problems(config: VideoDatasetConfig) -> dict[str, str]:
    """What is wrong with each value of `config`, by key; empty when it can load."""
    problems = {
        name: f"{name}={shorten(value)} is not one of {', '.join(map(repr, allowed))}"
        for name, value, allowed in (
            ("mode", config.mode, MODES),
            ("sampling", config.sampling, SAMPLINGS),
            ("tail", config.tail, TAILS),
            ("on_error", config.on_error, ON_ERRORS),
            ("decode_backend", config.decode_backend, DECODE_BACKENDS),
        )
        if value not in allowed
    }
    counts = (
        ("num_frames", config.num_frames, MAX_NUM_FRAMES), ("frame_stride", config.frame_stride, MAX_FRAME_STRIDE),
        ("max_open_readers", config.max_open_readers, MAX_OPEN_READERS),
    )  # fmt: skip
    problems |= {
        name: f"{name}={value!r} {_range(1, most)}" for name, value, most in counts if _outside(value, 1, most)
    }
    if _outside(config.max_video_frames, 1, MAX_VIDEO_FRAMES):
        problems["max_video_frames"] = (
            f"max_video_frames={config.max_video_frames!r} {_range(1, MAX_VIDEO_FRAMES)} or None"
        )
    if _outside(config.num_threads, 0, MAX_THREADS):
        threads = config.num_threads
        problems["num_threads"] = f"num_threads={threads!r} {_range(0, MAX_THREADS)} (0 lets FFmpeg choose) or None"
    if not _image_size_ok(config.image_size):
        problems["image_size"] = (
            f"image_size={shorten(config.image_size)} must be (height, width) of positive integers up to "
            f"{MAX_IMAGE_SIDE}, one such int (the short side) or None"
        )
    if config.views is not None and not 1 <= len(config.views) <= MAX_VIEWS:
        problems["views"] = f"views={shorten(config.views)} must name 1 to {MAX_VIEWS} views, got {len(config.views)}"
    return problems


def _outside(value: int | None, least: int, most: int) -> bool:
    """Whether an optional count is set and outside ``[least, most]``."""
    return value is not None and not least <= value <= most


def _range(least: int, most: int) -> str:
    return f"must be >= {least} and <= {most}"


def _image_size_ok(size: object) -> bool:
    if size is None:
        return True
    sides = (size,) if isinstance(size, int) else size
    if not isinstance(sides, tuple) or len(sides) != (1 if isinstance(size, int) else 2):
        return False
    return all(isinstance(side, int) and not isinstance(side, bool) and 1 <= side <= MAX_IMAGE_SIDE for side in sides)


def check_frame_sizes(config: VideoDatasetConfig, videos: Mapping[str, IndexedVideo], views: Sequence[str]) -> None:
    """Refuses a short side (an int ``image_size``) that resizes the frames of one sample to different sizes.

    An int keeps each video's aspect ratio, so views of different shapes decode to different sizes (a
    sample stacks its views), and so do videos of different shapes in ``"clip"`` mode, whose samples are
    batched (a ``"chunk"`` batch holds one chunk). Refused before any run, naming the videos and sizes,
    rather than cropping: cropping would drop pixels, and the keypoints on them, without being asked to.

    Raises:
        ManifestError: One problem naming each decoded size, the first videos and views at it, and what to set.
    """
    from vidfit.data._dataset import decode_size  # the dataset module imports this one

    if not config.load_rgb or not isinstance(config.image_size, int):
        return
    groups: list[dict[tuple[int, int] | None, list[str]]] = [{}] if config.mode == "clip" else []
    for video_id, video in videos.items():
        if config.mode != "clip":
            groups.append({})
        for view in (name for name in views if name in video.views):
            meta = video.views[view]
            size = decode_size(config.image_size, height=meta.height, width=meta.width)
            groups[-1].setdefault(size, []).append(f"{video_id}/{view} ({meta.height}x{meta.width})")
    mixed = next((sizes for sizes in groups if len(sizes) > 1), None)
    if mixed is None:
        return
    found = "; ".join(
        f"{size[0]}x{size[1]} from {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}"
        for size, names in mixed.items()
        if size is not None
    )
    message = (
        f"image_size={config.image_size} (the short side, aspect ratio kept) gives frames of {len(mixed)} sizes "
        f"(height x width): {found}; one {'batch' if config.mode == 'clip' else 'sample'} needs one size: set "
        "image_size to [height, width] (each frame resized to it), or transcode the videos to one size "
        "(vidfit prepare --size H W)"
    )
    raise ManifestError([Problem(None, Path(config.manifest), "image_size", message)])
