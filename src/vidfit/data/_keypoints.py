"""Keypoints stored beside a view: a folder of per-frame ``.npz`` files or one ``.npy`` array of (T, K, D)."""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.lib.npyio import NpzFile

from vidfit.data._errors import ManifestError, Problem

KeypointFormat = Literal["npz_dir", "npy"]
# `000123_sam3d_body.npz`: the zero-padded frame index, then anything.
_FRAME_FILE = re.compile(r"^(\d+)(.*)\.npz$")
KEYPOINT_ARRAY_KEY = "keypoints"
# What numpy raises for a file that is truncated, corrupt, not an array, or unreadable.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


class KeypointReadError(ValueError):
    """A keypoint file that cannot be read or holds the wrong shape; the message starts with the file."""

    def __init__(self, file: Path, reason: str) -> None:
        self.file, self.reason = file, reason
        super().__init__(f"{file}: {reason}")


@dataclass(frozen=True)
class KeypointSource:
    """Where one view's keypoints are and their shape.

    Attributes:
        path: The folder or the ``.npy`` file.
        format: ``"npz_dir"`` (file ``{frame:0{digits}d}{suffix}`` per frame) or ``"npy"``.
        num_keypoints: K.
        dims: D (2 for image coordinates, 3 with depth or confidence).
        digits: Zero-padded width of the frame index in file names (``npz_dir`` only).
        suffix: What follows the frame index, e.g. ``"_sam3d_body.npz"`` (``npz_dir`` only).
    """

    path: Path
    format: KeypointFormat
    num_keypoints: int
    dims: int
    digits: int = 0
    suffix: str = ""

    def frame_file(self, frame_index: int) -> Path:
        """The ``.npz`` file holding `frame_index`."""
        return self.path / f"{frame_index:0{self.digits}d}{self.suffix}"


def inspect_keypoints(
    path: Path, *, video_id: str, view: str, num_frames: int | None, problems: list[Problem]
) -> KeypointSource | None:
    """Checks a view's keypoints cover frames ``[0, num_frames)`` with one (K, D) shape.

    Lists the folder (no file is read but the first) or reads the ``.npy`` header. With
    `num_frames` None (the view could not be probed) only the files' presence and the first
    file are checked. Problems are appended to `problems`; returns None when the keypoints
    cannot be used.
    """
    field = f"keypoints.{view}"
    try:
        if path.is_dir():
            return _inspect_folder(path, video_id=video_id, field=field, num_frames=num_frames, problems=problems)
        if path.suffix == ".npy" and path.is_file():
            return _inspect_npy(path, video_id=video_id, field=field, num_frames=num_frames, problems=problems)
    except KeypointReadError as error:
        problems.append(Problem(video_id, error.file, field, error.reason))
        return None
    message = "is neither a folder of per-frame .npz files nor a .npy file (missing?)"
    problems.append(Problem(video_id, path, field, message))
    return None


def _inspect_npy(
    path: Path, *, video_id: str, field: str, num_frames: int | None, problems: list[Problem]
) -> KeypointSource | None:
    array = _open_npy(path)
    if array.ndim != 3 or (num_frames is not None and array.shape[0] != num_frames):
        if num_frames is None:
            message = f"shape {tuple(array.shape)} is not (T, K, D)"
        else:
            message = f"shape {tuple(array.shape)} is not ({num_frames}, K, D) for a view of {num_frames} frames"
        problems.append(Problem(video_id, path, field, message))
        return None
    return KeypointSource(path, "npy", int(array.shape[1]), int(array.shape[2]))


def _inspect_folder(
    path: Path, *, video_id: str, field: str, num_frames: int | None, problems: list[Problem]
) -> KeypointSource | None:
    names = {}
    for entry in path.iterdir():
        match = _FRAME_FILE.match(entry.name)
        if match:
            names[int(match.group(1))] = match
    if not names:
        problems.append(Problem(video_id, path, field, "holds no per-frame files like 000123_sam3d_body.npz"))
        return None
    missing = sorted(set(range(num_frames)) - names.keys()) if num_frames is not None else []
    if missing:
        spans = _spans_text(missing)
        problems.append(Problem(video_id, path, field, f"keypoint files missing for frames {spans}"))
        return None
    first = names[min(names)]
    digits, suffix = len(first.group(1)), first.group(2) + ".npz"
    array = _read_npz(path / first.group(0))
    if array.ndim != 2:
        problems.append(Problem(video_id, path / first.group(0), field, f"shape {array.shape} is not (K, D)"))
        return None
    return KeypointSource(path, "npz_dir", int(array.shape[0]), int(array.shape[1]), digits, suffix)


def read_keypoints(source: KeypointSource, frame_indices: np.ndarray) -> np.ndarray:
    """Keypoints of the given frames as float32 (T, K, D); non-finite values are left as they are."""
    if source.format == "npy":
        return np.asarray(_open_npy(source.path)[frame_indices], dtype=np.float32)
    shape = (source.num_keypoints, source.dims)
    out = np.empty((len(frame_indices), *shape), dtype=np.float32)
    for row, frame in enumerate(frame_indices.tolist()):
        file = source.frame_file(frame)
        array = _read_npz(file)
        if array.shape != shape:
            reason = f"keypoints of shape {array.shape}, expected {shape} like the view's first file"
            raise KeypointReadError(file, reason)
        out[row] = array
    return out


def stack_view_keypoints(
    sources: list[KeypointSource | None], *, view_frames: np.ndarray, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints (V, T, K, D) of the given frames of each view, zero where absent, and the mask (V, T).

    A frame is masked out when its view has no keypoints or any of its values is not finite.

    Args:
        sources: One source per view, None for a view without keypoints.
        view_frames: Frame indices (V, T) to read in each view.
        shape: (K, D) of every view's keypoints.
    """
    points = np.zeros((len(sources), view_frames.shape[1], *shape), dtype=np.float32)
    mask = np.zeros(points.shape[:2], dtype=bool)
    for row, (source, indices) in enumerate(zip(sources, view_frames, strict=True)):
        if source is not None:
            values = read_keypoints(source, indices)
            mask[row] = np.isfinite(values).all(axis=(1, 2))
            points[row] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return torch.from_numpy(points), torch.from_numpy(mask)


def load_video_keypoints(
    video_id: str, files: dict[str, Path], *, views: list[str], view_frames: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """All keypoints of one video, as `VideoDataset` gives them: (V, T, K, D) and the mask (V, T).

    Args:
        video_id: The video, for error messages.
        files: A manifest entry's ``keypoints``: view name to folder or ``.npy`` file.
        views: The views in the model's order; a view missing from `files` is masked out.
        view_frames: (V, T): each view's own frame at each of the video's T frames (the first view's,
            other views matched by time as `match_view_frames` does), so keypoints follow their view.

    Raises:
        ManifestError: Keypoints missing for every view, not covering the video, or of unequal shapes.
    """
    problems: list[Problem] = []
    needed = [int(frames.max()) + 1 for frames in view_frames]  # frames each view's keypoints must cover
    sources = [
        inspect_keypoints(files[v], video_id=video_id, view=v, num_frames=needed[i], problems=problems)
        if v in files
        else None
        for i, v in enumerate(views)
    ]
    shapes = {(s.num_keypoints, s.dims) for s in sources if s is not None}
    if not problems and len(shapes) != 1:
        message = f"views {views} need keypoints of one shape (K, D), found {sorted(shapes) or 'none'}"
        problems.append(Problem(video_id, next(iter(files.values()), Path(video_id)), "keypoints", message))
    if problems:
        raise ManifestError(problems)
    return stack_view_keypoints(sources, view_frames=view_frames, shape=shapes.pop())


def _read_npz(file: Path) -> np.ndarray:
    """The array under key ``keypoints``, else the first array of the archive."""
    try:
        with file.open("rb") as handle, NpzFile(handle) as archive:
            key = KEYPOINT_ARRAY_KEY if KEYPOINT_ARRAY_KEY in archive.files else next(iter(archive.files), None)
            array = None if key is None else np.asarray(archive[key])
    except _READ_ERRORS as error:
        raise KeypointReadError(file, f"cannot read keypoints as a .npz archive: {error}") from error
    if array is None:
        raise KeypointReadError(file, "cannot read keypoints: the .npz archive holds no array")
    return array


def _open_npy(file: Path) -> np.ndarray:
    """The ``.npy`` array, memory-mapped: only the header is read here."""
    try:
        return np.lib.format.open_memmap(file, mode="r")
    except _READ_ERRORS as error:
        raise KeypointReadError(file, f"cannot read keypoints as a .npy array: {error}") from error


def _spans_text(frames: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``, at most 5 spans."""
    spans: list[list[int]] = []
    for frame in frames:
        if spans and frame == spans[-1][1] + 1:
            spans[-1][1] = frame
        else:
            spans.append([frame, frame])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans[:5])
    return text + (f" and {len(spans) - 5} more spans" if len(spans) > 5 else "")
