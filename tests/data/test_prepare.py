"""prepare_manifest: copies decode at the new size with every frame and its time, and the manifest loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.conftest import MakeDataset, WriteManifest, offset_pts, write_keypoints
from vidfit.data import VideoDataset, VideoDatasetConfig, build_chunk_index, load_manifest, prepare_manifest
from vidfit.io import VideoReader, probe, write_video


def grey_video(path: Path, num_frames: int, *, fps: float, begin_seconds: float = 0.0) -> str:
    """Frame ``i`` is uniformly grey at level ``10 * i``, which survives scaling and lossy 4:2:0 coding."""
    levels = torch.arange(num_frames, dtype=torch.uint8) * 10
    frames = levels.view(-1, 1, 1, 1).expand(num_frames, 3, 32, 32).contiguous()
    write_video(
        path,
        frames,
        fps=fps,
        codec="libx264rgb",
        crf=0,
        pts_seconds=offset_pts(num_frames, fps=fps, begin_seconds=begin_seconds),
    )
    return path.name


def grey_levels(path: Path) -> list[int]:
    with VideoReader(path) as reader:
        return [
            round(level / 10) for level in reader.get_frames(0, len(reader)).data.float().mean(dim=(1, 2, 3)).tolist()
        ]


def test_prepared_copies_keep_frames_times_labels_and_keypoints(tmp_path: Path, write_manifest: WriteManifest) -> None:
    video = {
        "id": "v0",
        "split": "train",
        "views": {
            "front": grey_video(tmp_path / "front.mkv", 24, fps=30.0),
            "left": grey_video(tmp_path / "left.mkv", 12, fps=15.0, begin_seconds=0.5),
        },
        "timeline": {"unit": "seconds", "segments": [{"start": 0.2, "end": 0.5, "label": "adjust"}]},
        "keypoints": {
            "front": write_keypoints(tmp_path / "v0", "front", 24, "npz"),
            "left": write_keypoints(tmp_path / "v0", "left", 12, "npy"),
        },
    }
    source = write_manifest({"labels": ["idle", "front", "adjust"], "root": ".", "videos": [video]})
    prepared = prepare_manifest(source, size=(16, 32), gop=4, out_dir=tmp_path / "prepared", workers=2, crf=10)
    assert prepared == tmp_path / "prepared" / "manifest.yaml"
    original, manifest = load_manifest(source), load_manifest(prepared)
    assert manifest.root == (tmp_path / "prepared").resolve()
    entry = manifest.videos[0]
    assert (entry.timeline, entry.split, manifest.labels) == (original.videos[0].timeline, "train", original.labels)
    for view, path in entry.views.items():
        before, after = probe(original.videos[0].views[view]), probe(path)
        assert path == manifest.root / "videos" / "v0" / f"{view}.mp4"
        assert (after.num_frames, after.height, after.width, after.codec) == (before.num_frames, 16, 32, "h264")
        assert after.begin_seconds == pytest.approx(before.begin_seconds, abs=1e-3)
        assert grey_levels(path) == list(range(before.num_frames))
    assert entry.keypoints["left"].read_bytes() == original.videos[0].keypoints["left"].read_bytes()
    assert len(list(entry.keypoints["front"].iterdir())) == 24
    index = build_chunk_index(manifest)
    assert index.videos["v0"].keypoints["front"].suffix == "_sam3d_body.npz"
    sample = VideoDataset(VideoDatasetConfig(manifest=prepared, mode="chunk", load_kpt=True))[0]
    assert sample["video"].shape == (2, 3, 24, 16, 32)
    assert sample["frame_labels"].tolist() == [-1] * 6 + [2] * 9 + [-1] * 9
    np.testing.assert_array_equal(sample["keypoints"][1, :, 0, 0].numpy(), np.arange(24) // 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (15, 24), "gop": 4}, r"size=\(15, 24\) must be \(height, width\) of even integers"),
        ({"size": (16, 24), "gop": 0}, r"need gop >= 1, workers >= 1 and 0 <= crf <= 51, got 0, 1, 18"),
    ],
)
def test_bad_prepare_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_manifest(tmp_path / "m.yaml", out_dir=tmp_path / "out", **kwargs)


def test_failed_transcode_names_the_file(make_dataset: MakeDataset, tmp_path: Path) -> None:
    source = make_dataset(num_frames=(6,))
    (tmp_path / "v0" / "front.mkv").write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match=r"front.mkv: transcoding failed: .*cannot open as a video"):
        prepare_manifest(source, size=(16, 16), gop=4, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.yaml").exists()
