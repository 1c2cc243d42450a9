"""Super-resolution patches: shapes per scale, aligned low-resolution pixels, neighbours, sampling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data.conftest import MakeDataset
from tests.videos import frame_ids
from vidfit.data import ManifestError, make_loader
from vidfit.tasks.super_resolution._patches import (
    SRPatchConfig,
    SRPatchDataset,
    collate_patches,
    cut_patch,
    downsample_bicubic,
)


@pytest.mark.parametrize(("scale", "patch_size"), [(2, 16), (3, 12), (4, 16)])
def test_sample_shapes_for_each_scale(make_dataset: MakeDataset, scale: int, patch_size: int) -> None:
    manifest = make_dataset(num_frames=(10, 6))
    config = SRPatchConfig(manifest=manifest, scale=scale, patch_size=patch_size, patches_per_chunk=3, num_frames=5)
    dataset = SRPatchDataset(config)
    assert len(dataset) == 2 * 3
    sample = dataset[4]
    low = patch_size // scale
    assert sample["lr"].shape == (5, 3, low, low) and sample["lr"].dtype == torch.uint8
    assert sample["hr"].shape == (3, patch_size, patch_size) and sample["hr"].dtype == torch.uint8
    assert set(sample) == {"lr", "hr", "meta"} and sample["meta"]["video_id"] == "v1"
    assert sample["meta"]["top"] % scale == 0 and sample["meta"]["left"] % scale == 0


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_low_resolution_patches_equal_the_downsampled_whole_frame(scale: int) -> None:
    frames = torch.randint(0, 256, (2, 3, 37, 45), dtype=torch.uint8, generator=torch.Generator().manual_seed(scale))
    whole = downsample_bicubic(frames, scale=scale)
    assert whole.shape == (2, 3, 37 // scale, 45 // scale)
    size = 4 * scale
    for top in range(0, 37 // scale * scale - size + 1, scale):
        for left in range(0, 45 // scale * scale - size + 1, scale):
            high, low = cut_patch(frames, top=top, left=left, patch_size=size, scale=scale)
            torch.testing.assert_close(high, frames[..., top : top + size, left : left + size])
            row, column = top // scale, left // scale
            torch.testing.assert_close(low, whole[..., row : row + 4, column : column + 4], rtol=0, atol=0)


def test_downsampling_matches_pillow_bicubic() -> None:
    # PIL's resize is the reference degradation of SR datasets; torch's antialiased bicubic follows it.
    image = np.random.default_rng(0).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((12, 8), Image.Resampling.BICUBIC, reducing_gap=None))
    ours = downsample_bicubic(torch.from_numpy(image).permute(2, 0, 1)[None], scale=3)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1
    constant = torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(downsample_bicubic(constant, scale=2), torch.full((1, 3, 4, 4), 77, dtype=torch.uint8))


def test_neighbours_are_consecutive_and_repeat_at_the_ends_of_the_video(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(4,))
    config = SRPatchConfig(manifest=manifest, scale=2, num_frames=5, patch_size=16, patches_per_chunk=12)
    dataset = SRPatchDataset(config)
    centres = set()
    for position in range(len(dataset)):
        sample = dataset[position]
        centre = sample["meta"]["frame_index"]
        centres.add(centre)
        # Frames paint their index in red and green: constant colours survive downsampling exactly.
        assert frame_ids(sample["lr"]) == np.clip(np.arange(centre - 2, centre + 3), 0, 3).tolist()
        assert frame_ids(sample["hr"][None]) == [centre]
    assert centres == {0, 1, 2, 3}


def test_fixed_patches_repeat_and_random_patches_vary(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(12,))
    fixed = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, sampling="fixed"))
    again = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, sampling="fixed"))
    assert all(fixed[i]["meta"] == fixed[i]["meta"] == again[i]["meta"] for i in range(len(fixed)))
    assert len({str(fixed[i]["meta"]) for i in range(len(fixed))}) > 1
    random = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16))
    assert len({str(random[0]["meta"]) for _ in range(8)}) > 1


def test_views_are_chosen_per_sample(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(6,), views={"front": {}, "left": {}})
    dataset = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, patches_per_chunk=16))
    assert {dataset[i]["meta"]["view"] for i in range(len(dataset))} == {"front", "left"}
    only_left = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, views=("left",)))
    assert {only_left[i]["meta"]["view"] for i in range(len(only_left))} == {"left"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampling": "grid"}, r"sampling='grid' is not one of 'random', 'fixed'"),
        ({"num_frames": 4}, r"num_frames=4 must be odd"),
        ({"patch_size": 15}, r"patch_size=15 must be a positive multiple of scale=2"),
        ({"scale": 1}, r"scale=1 must be >= 2"),
        ({"patches_per_chunk": 0}, r"patches_per_chunk=0 must be >= 1"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SRPatchConfig(**{"manifest": "m.yaml", "scale": 2, **kwargs})


def test_videos_too_small_or_without_the_view_name_the_file(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(4,))
    with pytest.raises(ManifestError, match=r"v0/front\.mkv.*views\.front.*32x32 are smaller than patch_size=48"):
        SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=48))
    with pytest.raises(ManifestError, match=r"views.*lacks view\(s\) \['top'\]"):
        SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, views=("top",)))
    with pytest.raises(ValueError, match=r"a 16-pixel patch at \(18, 0\) is outside frames of 32x32"):
        cut_patch(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), top=18, left=0, patch_size=16, scale=2)


def test_patches_load_in_dataloader_workers(make_dataset: MakeDataset) -> None:
    manifest = make_dataset(num_frames=(6,))
    dataset = SRPatchDataset(SRPatchConfig(manifest=manifest, scale=2, patch_size=16, patches_per_chunk=4))
    loader = make_loader(
        dataset, batch_size=4, shuffle=True, num_workers=1, seed=0, pin_memory=False, collate_fn=collate_patches
    )
    batch = next(iter(loader))
    assert batch.lr.shape == (4, 3, 3, 8, 8) and batch.hr.shape == (4, 3, 16, 16)
    assert len(batch.meta) == 4
