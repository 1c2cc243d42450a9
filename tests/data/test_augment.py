"""Clip augmentation: one draw per clip, shared or independent views, keypoints that follow, bad settings."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vidfit.data._augment import AugmentConfig, augment_clips

SIZE = 32
NO_JITTER: dict[str, Any] = {"jitter_probability": 0.0}
FULL_FRAME: dict[str, Any] = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0)}  # the crop is the whole square frame


def _video(batch: int = 2, views: int = 2, frames: int = 4, *, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, views, 3, frames, SIZE, SIZE), dtype=torch.uint8, generator=generator)


def _run(video: torch.Tensor, keypoints: torch.Tensor | None = None, *, seed: int = 0, **fields: Any) -> Any:
    config = AugmentConfig(enabled=True, **fields)
    return augment_clips(video, keypoints, config=config, generator=torch.Generator().manual_seed(seed))


def _dots(batch: int, frames: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One view whose every frame is black but for one bright pixel, and that pixel as (x, y, 7) keypoints."""
    generator = torch.Generator().manual_seed(seed)
    xy = torch.randint(4, SIZE - 4, (batch, 1, frames, 1, 2), generator=generator)
    video = torch.zeros(batch, 1, 3, frames, SIZE, SIZE, dtype=torch.uint8)
    for b in range(batch):
        for t in range(frames):
            x, y = xy[b, 0, t, 0].tolist()
            video[b, 0, :, t, y, x] = 200
    keypoints = torch.cat([xy.float(), torch.full((batch, 1, frames, 1, 1), 7.0)], dim=-1)
    return video, keypoints


def _centroid(image: torch.Tensor) -> tuple[float, float]:
    """(x, y) of the brightness-weighted centre of a (H, W) image."""
    weights = image.double()
    ys, xs = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.double), torch.arange(SIZE, dtype=torch.double), indexing="ij"
    )
    total = weights.sum()
    return float((weights * xs).sum() / total), float((weights * ys).sum() / total)


def test_disabled_returns_the_inputs_untouched() -> None:
    video, keypoints = _video(), torch.randn(2, 2, 4, 3, 2)
    out = augment_clips(video, keypoints, config=AugmentConfig())
    assert out.video is video and out.keypoints is keypoints


def test_shape_and_dtype_are_kept_and_the_input_is_not_modified() -> None:
    video = _video()
    before = video.clone()
    out = _run(video, torch.randn(2, 2, 4, 5, 3))
    assert out.video.dtype == torch.uint8 and out.video.shape == video.shape
    assert out.keypoints.shape == (2, 2, 4, 5, 3) and out.keypoints.dtype == torch.float32
    assert torch.equal(video, before)
    assert not torch.equal(out.video, video)


def test_the_same_generator_seed_gives_the_same_batch() -> None:
    video = _video()
    assert torch.equal(_run(video, seed=3).video, _run(video, seed=3).video)
    assert not torch.equal(_run(video, seed=3).video, _run(video, seed=4).video)


def test_one_draw_per_clip_is_shared_by_its_frames() -> None:
    still = _video(frames=1).expand(-1, -1, -1, 6, -1, -1).contiguous()  # every frame the same image
    out = _run(still).video
    assert torch.equal(out, out[:, :, :, :1].expand_as(out))
    assert not torch.equal(out, still)


@pytest.mark.parametrize("views", ["shared", "independent"])
def test_views_share_or_draw_their_own(views: str) -> None:
    same_scene = _video(batch=4, views=1).expand(-1, 3, -1, -1, -1, -1).contiguous()  # identical views
    out = _run(same_scene, views=views).video
    views_equal = [torch.equal(out[b, 0], out[b, v]) for b in range(4) for v in (1, 2)]
    assert all(views_equal) if views == "shared" else not any(views_equal)


def test_keypoints_follow_a_flip_exactly() -> None:
    video, keypoints = _dots(batch=3, frames=4, seed=0)
    out = _run(video, keypoints, flip_probability=1.0, **FULL_FRAME, **NO_JITTER)
    assert torch.equal(out.video, video.flip(-1))
    expected = keypoints.clone()
    expected[..., 0] = SIZE - 1 - keypoints[..., 0]
    torch.testing.assert_close(out.keypoints, expected)


@pytest.mark.parametrize("flip_probability", [0.0, 1.0])
def test_keypoints_follow_a_crop_to_the_dot_they_mark(flip_probability: float) -> None:
    # Crops of a quarter of the area, square: each is resized back by exactly 2, so a dot becomes a blob
    # whose centre is where the keypoint must go.
    video, keypoints = _dots(batch=4, frames=6, seed=1)
    out = _run(video, keypoints, scale=(0.25, 0.25), ratio=(1.0, 1.0), flip_probability=flip_probability, **NO_JITTER)
    checked = 0
    for b in range(4):
        for t in range(6):
            x, y, extra = out.keypoints[b, 0, t, 0].tolist()
            assert extra == 7.0  # coordinates after x and y are kept
            if 1 <= x <= SIZE - 2 and 1 <= y <= SIZE - 2:  # the crop kept the dot, away from the edges
                assert _centroid(out.video[b, 0, 0, t]) == pytest.approx((x, y), abs=0.02)
                checked += 1
            elif not -3 <= x <= SIZE + 2 or not -3 <= y <= SIZE + 2:  # two input pixels or more out of the crop
                assert out.video[b, 0, 0, t].sum() == 0
    assert checked >= 6


def test_normalized_keypoints_follow_as_pixels_do() -> None:
    video, keypoints = _dots(batch=3, frames=4, seed=2)
    pixels = _run(video, keypoints, scale=(0.3, 0.9), seed=5).keypoints
    normalized = keypoints.clone()
    normalized[..., :2] = (keypoints[..., :2] + 0.5) / SIZE  # pixel centres as fractions of the frame
    config = AugmentConfig(enabled=True, scale=(0.3, 0.9))
    out = augment_clips(
        video, normalized, config=config, keypoint_units="normalized", generator=torch.Generator().manual_seed(5)
    )
    assert out.keypoints is not None
    torch.testing.assert_close(out.keypoints[..., :2] * SIZE - 0.5, pixels[..., :2], atol=1e-4, rtol=0)


def test_colour_jitter_alone_keeps_the_geometry() -> None:
    video = torch.full((2, 1, 3, 2, SIZE, SIZE), 100, dtype=torch.uint8)
    video[..., :, : SIZE // 2] = 50  # a dark left half
    out = _run(video, flip_probability=0.0, jitter_probability=1.0, brightness=0.5, **FULL_FRAME).video
    left, right = out[..., : SIZE // 2].float().mean(), out[..., SIZE // 2 :].float().mean()
    assert left < right
    assert not torch.equal(out, video)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"views": "per_view"}, r"views='per_view' is not one of 'shared', 'independent'"),
        ({"scale": (0.9, 0.5)}, r"scale=\[0\.9, 0\.5\] must be \[low, high\] with 0 < low <= high <= 1"),
        ({"scale": [0.5, 1.5]}, r"scale=\[0\.5, 1\.5\] must be"),
        ({"ratio": (0.0, 1.0)}, r"ratio=\[0\.0, 1\.0\] must be \[low, high\] with 0 < low <= high"),
        ({"flip_probability": 2}, r"flip_probability=2 must be in \[0, 1\]"),
        ({"hue": 0.7}, r"hue=0\.7 must be in \[0, 0\.5\]"),
        ({"brightness": -1, "contrast": -1}, r"brightness=-1 must be >= 0; contrast=-1 must be >= 0"),
    ],
)
def test_bad_settings_are_all_reported(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**fields)


def test_bad_inputs() -> None:
    config = AugmentConfig(enabled=True)
    with pytest.raises(ValueError, match=r"keypoint_units='cm' is not one of 'pixels', 'normalized'"):
        augment_clips(_video(), config=config, keypoint_units="cm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"video must be uint8 \(B, V, 3, T, H, W\), got torch.float32"):
        augment_clips(_video().float(), config=config)
    with pytest.raises(ValueError, match=r"keypoints must be float \(B, V, T, K, D\) with \(B, V, T\)=\(2, 2, 4\)"):
        augment_clips(_video(), torch.zeros(2, 2, 3, 5, 2), config=config)
    with pytest.raises(ValueError, match=r"need x and y \(D >= 2\)"):
        augment_clips(_video(), torch.zeros(2, 2, 4, 5, 1), config=config)
