"""Keypoints of a whole video follow each view's own frames, as views are matched by time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidfit.data import ManifestError
from vidfit.data._keypoints import load_video_keypoints


def test_each_view_reads_the_keypoints_of_its_matched_frames(tmp_path: Path) -> None:
    front, side = tmp_path / "front.npy", tmp_path / "side.npy"
    np.save(front, np.arange(16 * 2 * 3, dtype=np.float32).reshape(16, 2, 3))
    np.save(side, -np.arange(8 * 2 * 3, dtype=np.float32).reshape(8, 2, 3))
    # The side camera runs at half the frame rate: frame t of the video is its frame t // 2.
    view_frames = np.stack([np.arange(16), np.arange(16) // 2])
    files = {"front": front, "side": side}
    points, mask = load_video_keypoints("v", files, views=["front", "side"], view_frames=view_frames)
    assert points.shape == (2, 16, 2, 3) and bool(mask.all())
    assert np.array_equal(points[0].numpy(), np.load(front))
    assert np.array_equal(points[1].numpy(), np.load(side)[np.arange(16) // 2])
    with pytest.raises(ManifestError, match="side"):
        load_video_keypoints("v", files, views=["front", "side"], view_frames=np.stack([np.arange(16)] * 2))
