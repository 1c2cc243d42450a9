"""The views of one video read in step, window by window, under the reference view's frames."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vidfit.infer._windows import Window
from vidfit.io import VideoReader


def check_views(
    readers: Sequence[VideoReader],
    *,
    view_frames: np.ndarray | None,
    size: tuple[int, int] | None,
    frames: range | None = None,
) -> np.ndarray:
    """The frames (V, T) each view reads under the reference's (the first reader's) T frames.

    Args:
        readers: One reader per view.
        view_frames: The caller's matching (V, T); None reads every view frame for frame.
        size: The size frames are decoded at; with None the views must share their native size.
        frames: The reference frames read, T of them (a clip range); None: all of them.

    Raises:
        ValueError: Views of unequal length without `view_frames`, `view_frames` of the wrong shape,
            or views of unequal sizes without `size`.
    """
    frames = range(len(readers[0])) if frames is None else frames
    if frames.step != 1 or not frames or not 0 <= frames.start < frames.stop <= len(readers[0]):
        raise ValueError(f"frames={frames!r} must be a non-empty range of step 1 in [0, {len(readers[0])}]")
    num_frames = len(frames)
    if size is None and len({(r.metadata.height, r.metadata.width) for r in readers}) > 1:
        names = ", ".join(f"{r.path} ({r.metadata.width}x{r.metadata.height})" for r in readers)
        raise ValueError(f"views differ in size: {names}; give size= (data.image_size) to decode them at one size")
    if view_frames is None:
        if any(len(reader) != len(readers[0]) for reader in readers):
            names = ", ".join(f"{r.path} ({len(r)})" for r in readers)
            raise ValueError(
                f"views must have the same number of frames to be read frame for frame: {names}; "
                "pass view_frames= to match their frames by time"
            )
        return np.broadcast_to(np.arange(frames.start, frames.stop), (len(readers), num_frames))
    if view_frames.shape != (len(readers), num_frames):
        raise ValueError(
            f"view_frames must be ({len(readers)}, {num_frames}), a frame of each view per reference frame, "
            f"got {view_frames.shape}"
        )
    return view_frames


def windows_in_step(
    readers: Sequence[VideoReader], *, view_frames: np.ndarray, windows: list[Window], size: tuple[int, int] | None
) -> Iterator[torch.Tensor]:
    """uint8 video (V, 3, t, H, W) of each window, every view at its frames of `view_frames` (V, T)."""
    streams = [
        _view_windows(reader, frames=frames, windows=windows, size=size)
        for reader, frames in zip(readers, view_frames, strict=True)
    ]
    for per_view in zip(*streams, strict=True):
        yield torch.stack([frames.transpose(0, 1) for frames in per_view])


def _view_windows(
    reader: VideoReader, *, frames: np.ndarray, windows: list[Window], size: tuple[int, int] | None
) -> Iterator[torch.Tensor]:
    """Frames (t, 3, H, W) of one view for each window, `frames` (T,) being its frame under each reference frame.

    Frames that run in step with the reference's (a contiguous range) stream through `iter_chunks`,
    each decoded once; others, e.g. a view at another frame rate, are decoded window by window.
    """
    first = int(frames[0])
    # Frames evenly spaced (every one, or every `data.frame_stride`-th) stream; any other pattern seeks.
    step = int(frames[1] - frames[0]) if len(frames) > 1 else 1
    if step < 1 or not np.array_equal(frames, first + step * np.arange(len(frames))):
        for window in windows:
            yield reader.get_frames_at(frames[window.start : window.stop], size=size).data
        return
    overlap = windows[0].stop - windows[1].start if len(windows) > 1 else 0
    chunks = reader.iter_chunks(
        chunk_num_frames=windows[0].num_frames, overlap_num_frames=overlap, step=step, size=size, start=first,
        stop=int(frames[-1]) + 1,
    )  # fmt: skip
    for window, chunk in zip(windows, chunks, strict=True):
        if not np.array_equal(chunk.frame_indices.numpy(), frames[window.start : window.stop]):
            got = f"[{chunk.start_frame}, {chunk.stop_frame})"
            raise RuntimeError(f"{reader.path}: iter_chunks gave {got} where plan_windows planned {window} + {first}")
        yield chunk.data
