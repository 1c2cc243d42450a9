"""The video classifier: fusion modes, input types, normalization, masks, spec and input errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from vidfit.models import ClassifierOutput, VideoClassifier, build_classifier
from vidfit.models._branches import LateFusion
from vidfit.models._classifier import ClassifierSpec
from vidfit.models._pretrained import KINETICS_MEAN, KINETICS_STD

VIEWS = ("front", "left")
KPT = {"num_keypoints": 5, "keypoint_dims": 3}


def _video(batch: int = 2, views: int = 2, frames: int = 6, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (batch, views, 3, frames, size, size), dtype=torch.uint8)


def _keypoints(batch: int = 2, views: int = 2, frames: int = 6) -> torch.Tensor:
    return torch.randn(batch, views, frames, KPT["num_keypoints"], KPT["keypoint_dims"])


def _build(**overrides: Any) -> VideoClassifier:
    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"backbone": "tiny", "num_classes": 4, "views": VIEWS, **overrides}
    if kwargs.get("input_type", "rgb") != "rgb":
        kwargs = {**KPT, **kwargs}
    return build_classifier(**kwargs).eval()


@pytest.mark.parametrize("view_fusion", ["early", "late"])
@pytest.mark.parametrize("input_type", ["rgb", "kpt", "rgb_kpt"])
def test_output_shapes(view_fusion: str, input_type: str) -> None:
    model = _build(view_fusion=view_fusion, input_type=input_type)
    keypoints = None if input_type == "rgb" else _keypoints()
    out = model(_video(), keypoints=keypoints)
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (2, 4)
    assert out.frame_logits.shape == (2, 6, 4)


def test_keypoint_only_model_needs_no_video_and_builds_no_backbone() -> None:
    model = _build(input_type="kpt")
    assert model.rgb is None
    assert model(None, keypoints=_keypoints()).frame_logits.shape == (2, 6, 4)


def test_early_fusion_widens_the_stem_and_late_fusion_projects_views() -> None:
    early, late = _build(view_fusion="early"), _build(view_fusion="late")
    assert early.rgb is not None and late.rgb is not None
    assert early.rgb.backbone.stem.in_channels == 3 * len(VIEWS)
    assert isinstance(early.rgb.fusion, nn.Identity)
    assert late.rgb.backbone.stem.in_channels == 3
    assert isinstance(late.rgb.fusion, LateFusion)
    single = _build(views=("front",))
    assert single.rgb is not None and isinstance(single.rgb.fusion, nn.Identity)


def test_late_fusion_keeps_which_view_saw_what() -> None:
    model = _build(view_fusion="late")
    video = _video()
    swapped = video.flip(1)
    with torch.no_grad():
        assert not torch.allclose(model(video).logits, model(swapped).logits)


def test_normalization_uses_kinetics_statistics_in_buffers() -> None:
    model = _build()
    assert model.rgb is not None
    video = _video()
    mean = torch.tensor(KINETICS_MEAN).reshape(1, 1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).reshape(1, 1, 3, 1, 1, 1)
    torch.testing.assert_close(model.rgb.normalize(video), (video / 255 - mean) / std)
    assert {name for name, _ in model.named_buffers()} >= {"rgb.mean", "rgb.std"}
    assert "rgb.mean" not in model.state_dict()  # constants, not weights


def test_masked_frames_are_zeroed_even_when_nan() -> None:
    model = _build(input_type="kpt")
    keypoints, mask = _keypoints(), torch.ones(2, 2, 6, dtype=torch.bool)
    mask[:, 0, 2:4] = False
    other = keypoints.clone()
    other[:, 0, 2:4] = float("nan")
    with torch.no_grad():
        out = model(None, keypoints=keypoints, keypoint_mask=mask)
        out_other = model(None, keypoints=other, keypoint_mask=mask)
        unmasked = model(None, keypoints=keypoints)
    torch.testing.assert_close(out_other.frame_logits, out.frame_logits)
    assert not torch.allclose(unmasked.frame_logits, out.frame_logits)


def test_channels_last_3d_model_matches_contiguous() -> None:
    model = _build(view_fusion="late")
    # Decoders hand out (..., T, H, W, 3) frames: a channels-last layout viewed as (B, V, 3, T, H, W).
    video = _video().permute(0, 1, 3, 4, 5, 2).contiguous().permute(0, 1, 5, 2, 3, 4)
    with torch.no_grad():
        expected = model(video.contiguous())
        model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        actual = model(video)
    torch.testing.assert_close(actual.frame_logits, expected.frame_logits, atol=1e-4, rtol=1e-4)


def test_tiny_model_learns_a_colour_task() -> None:
    torch.manual_seed(0)
    model = build_classifier(backbone="tiny", num_classes=2).train()
    labels = torch.arange(8) % 2
    video = torch.randint(0, 128, (8, 1, 3, 4, 16, 16), dtype=torch.uint8)
    video[labels == 1, :, 0] += 100  # class 1 is redder
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(video).logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


def test_torchvision_backbone_takes_a_training_step() -> None:
    torch.manual_seed(0)
    model = build_classifier(backbone="r3d_18", num_classes=3).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    output = model(_video(batch=2, views=1, frames=8, size=32))
    loss = nn.functional.cross_entropy(output.logits, torch.tensor([0, 2]))
    loss = loss + nn.functional.cross_entropy(output.frame_logits.flatten(0, 1), torch.zeros(16, dtype=torch.long))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and output.frame_logits.shape == (2, 8, 3)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_spec_records_the_arguments_and_rebuilds_the_model() -> None:
    model = _build(view_fusion="early", input_type="rgb_kpt", dropout=0.1)
    assert model.spec == ClassifierSpec(
        backbone="tiny", num_classes=4, views=VIEWS, view_fusion="early", input_type="rgb_kpt", dropout=0.1, **KPT
    )
    as_yaml = {**dataclasses.asdict(model.spec), "views": list(VIEWS)}
    rebuilt = build_classifier(**as_yaml)
    assert rebuilt.spec == model.spec
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backbone": "resnet99"}, r"backbone='resnet99' is not one of 'tiny', 'r3d_18', "),
        ({"view_fusion": "middle"}, r"view_fusion='middle' is not one of 'early', 'late'$"),
        ({"input_type": "depth"}, r"input_type='depth' is not one of 'rgb', 'kpt', 'rgb_kpt'$"),
        ({"views": ()}, r"views=\(\) must be one or more distinct names"),
        ({"views": ("a", "a")}, r"views=\('a', 'a'\) must be one or more distinct names"),
        ({"num_classes": 0}, r"num_classes=0 must be at least 1"),
        ({"dropout": 1.0}, r"dropout=1.0 must be in \[0, 1\)"),
        ({"input_type": "kpt", "num_keypoints": 0}, r"input_type='kpt' needs num_keypoints >= 1"),
    ],
)
def test_bad_arguments(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(**overrides)


@pytest.mark.parametrize(
    ("input_type", "call", "message"),
    [
        ("rgb", lambda: (_video(views=3),), r"video has 3 views but the model was built for views=\('front', 'left'\)"),
        ("rgb", lambda: (_video().float(),), r"video must be uint8 \(the model normalizes it\), got torch.float32"),
        ("rgb", lambda: (_video()[:, :, :1],), r"video must be \(B, V, 3, T, H, W\), got shape \(2, 2, 1, 6, 16, 16\)"),
        ("rgb", lambda: (None,), r"input_type='rgb' needs video"),
        ("rgb", lambda: (_video(), _keypoints()), r"keypoints were given but input_type='rgb' does not use them"),
        ("kpt", lambda: (None,), r"input_type='kpt' needs keypoints"),
        ("kpt", lambda: (None, _keypoints(views=1)), r"keypoints must be \(B, V=2, T, K=5, D=3\)"),
        ("rgb_kpt", lambda: (_video(), _keypoints(frames=5)), r"keypoints \(B, V, T\)=\(2, 2, 5\) do not match"),
        (
            "kpt",
            lambda: (None, _keypoints(), torch.ones(2, 2, 6)),
            r"keypoint_mask must be bool \(B, V, T\)=\(2, 2, 6\), got torch.float32",
        ),
    ],
)
def test_bad_inputs(input_type: str, call: Any, message: str) -> None:
    model = _build(input_type=input_type)
    with pytest.raises(ValueError, match=message):
        model(*call())


@pytest.mark.cuda
def test_cuda_bf16_channels_last_forward_backward() -> None:
    model = build_classifier(backbone="r3d_18", num_classes=4, views=VIEWS, activation_checkpointing=True)
    model = model.cuda().to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    video = _video(frames=8, size=32).cuda(non_blocking=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(video)
    out.logits.float().sum().backward()
    assert out.frame_logits.shape == (2, 8, 4)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
