"""`VideoDatasetConfig(data_dir=..., config_path=..., image_size=...)` as the notes (seed 000) use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data.dataset_layouts import video, write
from vidfit.data import VideoDataset, VideoDatasetConfig, import_video_folders

# The notes' configs/config_example.json: dataset settings beside the trainer's.
CONFIG_EXAMPLE = {
    "dataset": {"image_size": 160, "num_frames": 40},
    "training": {"batch_size": 12, "num_workers": 4, "precision": "fp16"},
}


def test_the_notes_data_dir_and_json_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("data/walk/a.mp4", "data/walk/b.mp4", "data/run/c.mp4"):
        video(tmp_path / name, seconds=10, fps=5)  # 50 frames of 16x16
    config_path = write(tmp_path / "configs" / "config_example.json", json.dumps(CONFIG_EXAMPLE, indent=2))
    config = VideoDatasetConfig(data_dir=tmp_path / "data", config_path=config_path, image_size=160)
    assert (config.num_frames, config.image_size) == (40, 160)
    dataset = VideoDataset(config)
    assert dataset.labels == ("run", "walk") and len(dataset) == 3
    sample = dataset[0]
    assert tuple(sample["video"].shape) == (1, 3, 40, 160, 160) and sample["label"].item() == 0
    explicit = VideoDatasetConfig(data_dir=tmp_path / "data", config_path=config_path, num_frames=8)
    assert (explicit.num_frames, explicit.image_size) == (8, 160)  # a value given here wins over the file


def test_a_data_dir_with_its_own_manifest_uses_it(tmp_path: Path) -> None:
    for name in ("train/walk/a.mp4", "val/walk/b.mp4"):
        video(tmp_path / "data" / name)
    manifest = import_video_folders(tmp_path / "data").save(tmp_path / "data" / "manifest.yaml")
    dataset = VideoDataset(VideoDatasetConfig(data_dir=tmp_path / "data", split="val", num_frames=2))
    assert list(dataset.index.videos) == ["b"]
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("label: walk", "label: run"), encoding="utf-8")
    with pytest.raises(ValueError, match="label 'run' is not one of the manifest's labels"):
        VideoDataset(VideoDatasetConfig(data_dir=tmp_path / "data", num_frames=2))


def test_a_missing_data_source_or_settings_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs manifest \(the manifest file\) or data_dir"):
        VideoDataset(VideoDatasetConfig())
    with pytest.raises(FileNotFoundError, match="data_dir is not a folder"):
        VideoDataset(VideoDatasetConfig(data_dir=tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="config_path: no such file"):
        VideoDatasetConfig(data_dir=tmp_path, config_path=tmp_path / "gone.json")
    bad = write(tmp_path / "c.json", '{"dataset": {"num_frames": 40,}}')
    with pytest.raises(ValueError, match=r"c.json: config_path: not valid JSON: Expecting property name"):
        VideoDatasetConfig(data_dir=tmp_path, config_path=bad)
    write(bad, '{"dataset": {"num_frames": 0}}')
    with pytest.raises(ValueError, match="num_frames=0"):
        VideoDatasetConfig(data_dir=tmp_path, config_path=bad)


def test_a_settings_file_is_read_with_a_configs_limits_and_may_start_with_a_bom(tmp_path: Path) -> None:
    bom = tmp_path / "windows.json"
    bom.write_bytes(b'\xef\xbb\xbf{"dataset": {"num_frames": 12}}\r\n')
    assert VideoDatasetConfig(data_dir=tmp_path, config_path=bom).num_frames == 12
    # Nine levels of ten aliases each: a billion values from a few hundred bytes.
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\ndataset: {num_frames: *a8}\n")
    with pytest.raises(ValueError, match=r"bomb.yaml: config_path: .*100,000"):
        VideoDatasetConfig(data_dir=tmp_path, config_path=bomb)
