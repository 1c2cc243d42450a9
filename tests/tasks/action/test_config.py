"""Action configs checked before the run: keypoints the model does not read, one frame size, K and D from the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import MakeVideo, tiny_overrides
from vidfit.config import ConfigError, load_config
from vidfit.data import ManifestError
from vidfit.train import fit

M = "data.manifest=m.yaml"


def test_keypoints_follow_the_input_type_and_unused_ones_are_refused() -> None:
    assert load_config(None, [M, "model.input_type=rgb_kpt"]).data.load_kpt is True
    assert load_config(None, [M]).data.load_kpt is False
    with pytest.raises(ConfigError, match=r"data\.load_kpt: true loads keypoints that model\.input_type='rgb' does"):
        load_config(None, [M, "data.load_kpt=true"])
    with pytest.raises(ConfigError, match=r"model\.input_type='rgb_kpt' needs data\.load_kpt: true"):
        load_config(None, [M, "model.input_type=rgb_kpt", "data.load_kpt=false"])
    with pytest.raises(ConfigError, match=r"model\.input_type='kpt' needs model\.num_keypoints >= 1"):
        load_config(None, [M, "model.input_type=kpt", "model.num_keypoints=-2"])


def test_keypoint_count_and_dims_come_from_the_keypoint_files(tiny_manifest: Path, tmp_path: Path) -> None:
    path = Path(__file__).parents[2] / "config" / "fixtures" / "chunk_inference_rgb_kpt.yaml"
    config = load_config(path, tiny_overrides(tiny_manifest, tmp_path))  # note 003's config as written
    assert (config.model.num_keypoints, config.model.keypoint_dims) == (0, 0)
    result = fit(config)
    assert result.last_checkpoint is not None
    saved = torch.load(result.last_checkpoint, weights_only=True)["hyper_parameters"]["config"]["model"]
    assert (saved["input_type"], saved["num_keypoints"], saved["keypoint_dims"]) == ("rgb_kpt", 5, 2)


def test_a_short_side_over_videos_of_two_shapes_fails_before_a_run_folder(
    make_video: MakeVideo, tmp_path: Path
) -> None:
    videos = []
    for index, (split, width) in enumerate([("train", 32), ("train", 48), ("val", 32)]):
        make_video(f"v{index}.mkv", num_frames=8, height=32, width=width)
        videos.append({"id": f"v{index}", "split": split, "views": {"front": f"v{index}.mkv"}, "label": "a"})
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"labels": ["a", "b"], "root": ".", "videos": videos}), encoding="utf-8")
    config = load_config(None, [*tiny_overrides(manifest, tmp_path / "runs"), "data.image_size=16"])
    with pytest.raises(ManifestError, match=r"16x16 from v0/front \(32x32\); 16x24 from v1/front \(32x48\)"):
        fit(config)
    assert not (tmp_path / "runs").exists()
