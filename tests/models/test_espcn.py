"""ESPCN video super-resolution: shapes, bicubic start, learning, argument errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from vidfit.models import build_espcn


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_per_scale(scale: int) -> None:
    model = build_espcn(num_frames=3, scale=scale, features=(8, 4))
    out = model(torch.rand(2, 3, 3, 10, 12))
    assert out.shape == (2, 3, 10 * scale, 12 * scale)


def test_untrained_model_returns_bicubic_of_the_centre_frame() -> None:
    model = build_espcn(num_frames=5, scale=3, features=(8, 4))
    frames = torch.rand(2, 5, 3, 8, 8)
    expected = F.interpolate(frames[:, 2], scale_factor=3, mode="bicubic", align_corners=False)
    torch.testing.assert_close(model(frames), expected)


def test_uint8_frames_are_scaled_to_the_unit_range() -> None:
    torch.manual_seed(0)
    model = build_espcn(num_frames=3, scale=2, features=(8, 4))
    torch.nn.init.normal_(model.body[-2].weight, std=0.1)  # a non-zero branch, so the whole network is compared
    frames = torch.randint(0, 256, (2, 3, 3, 6, 6), dtype=torch.uint8)
    torch.testing.assert_close(model(frames), model(frames.float() / 255))


def test_zero_initialized_branch_still_learns() -> None:
    torch.manual_seed(0)
    model = build_espcn(num_frames=3, scale=2, channels=1, features=(8, 4))
    frames = torch.rand(4, 3, 1, 8, 8)
    target = torch.rand(4, 1, 16, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(model(frames), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 5}, r"scale=5 is not one of 2, 3, 4"),
        ({"num_frames": 2}, r"num_frames=2 must be odd and positive"),
        ({"num_frames": 0}, r"num_frames=0 must be odd and positive"),
        ({"features": (8, 0)}, r"features=\(8, 0\) must be positive"),
        ({"channels": 0}, r"channels=0 and .* must be positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_espcn(**kwargs)


def test_wrong_frame_count_is_rejected() -> None:
    model = build_espcn(num_frames=3, features=(8, 4))
    with pytest.raises(ValueError, match=r"frames must be \(B, num_frames=3, channels=3, h, w\), got shape \(1, 5, 3"):
        model(torch.rand(1, 5, 3, 8, 8))
