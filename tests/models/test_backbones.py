"""Backbones: feature maps, input constraints, activation checkpointing, local pretrained weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, BasicStem, Bottleneck, Conv3DSimple, VideoResNet

from vidfit.models import BACKBONES, build_backbone
from vidfit.models._backbone_recipes import backbone_constraints
from vidfit.models._backbones import BACKBONE_ALIASES, VideoBackbone

FEATURE_DIMS = {
    "tiny": 64,
    "r3d_18": 512,
    "r3d_34": 512,
    "r3d_50": 2048,
    "mc3_18": 512,
    "r2plus1d_18": 512,
    "s3d": 1024,
    "mvit_v2_s": 768,
    "swin3d_t": 768,
}
# The smallest clip (T, H, W) each backbone is exercised with on CPU.
SMALL_CLIPS = {
    "tiny": (4, 32, 32),
    "r3d_18": (4, 32, 32),
    "r3d_34": (4, 32, 32),
    "r3d_50": (4, 32, 32),
    "mc3_18": (4, 32, 32),
    "r2plus1d_18": (4, 32, 32),
    "s3d": (8, 17, 17),
    "swin3d_t": (2, 32, 32),
}


def _features(backbone: VideoBackbone, clip: tuple[int, int, int], *, batch: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    return backbone(torch.randn(batch, 3, *clip))


def test_backbones_lists_every_backbone() -> None:
    assert set(BACKBONES) == set(FEATURE_DIMS)


@pytest.mark.parametrize("name", sorted(SMALL_CLIPS))
def test_feature_map_keeps_time_and_has_feature_dim_channels(name: str) -> None:
    backbone = build_backbone(name=name).eval()
    with torch.no_grad():
        features = _features(backbone, SMALL_CLIPS[name])
    assert backbone.feature_dim == FEATURE_DIMS[name]
    assert features.ndim == 5
    assert features.shape[:2] == (1, FEATURE_DIMS[name])


@pytest.mark.slow
def test_mvit_feature_map_at_its_fixed_size() -> None:
    backbone = build_backbone(name="mvit_v2_s").eval()
    with torch.no_grad():
        features = _features(backbone, (16, 224, 224))
    assert features.shape == (1, 768, 8, 7, 7)


def test_mvit_rejects_other_sizes_before_computing() -> None:
    backbone = build_backbone(name="mvit_v2_s")
    with pytest.raises(ValueError, match=r"'mvit_v2_s' needs clips of exactly \(T, H, W\)=\(16, 224, 224\)"):
        backbone(torch.zeros(1, 3, 8, 224, 224))


def test_s3d_rejects_too_few_frames() -> None:
    backbone = build_backbone(name="s3d")
    with pytest.raises(ValueError, match=r"'s3d' needs at least 8 frames of at least 17x17 pixels, got .*4, 32, 32"):
        backbone(torch.zeros(1, 3, 4, 32, 32))


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match=r"backbone='resnet99' is not one of 'tiny', 'r3d_18', 'r3d_34', 'r3d_50'"):
        build_backbone(name="resnet99")


@pytest.mark.parametrize(
    ("name", "block", "channels"),
    [("r3d_34", BasicBlock, (64, 128, 256, 512)), ("r3d_50", Bottleneck, (256, 512, 1024, 2048))],
)
def test_deeper_3d_resnets_are_torchvision_video_resnets(name: str, block: type[nn.Module], channels: tuple) -> None:
    with torch.device("meta"):
        net = build_backbone(name=name).net
    assert isinstance(net, VideoResNet) and isinstance(net.stem, BasicStem)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    assert [len(layer) for layer in layers] == [3, 4, 6, 3]
    assert all(isinstance(b, block) for layer in layers for b in layer)
    norms = [[m for m in layer.modules() if isinstance(m, nn.BatchNorm3d)] for layer in layers]
    assert tuple(layer_norms[-1].num_features for layer_norms in norms) == channels  # each stage's output
    # Full 3x3x3 convolutions everywhere, as in r3d_18 (no (2+1)D or 2D-only blocks).
    convs = [m for layer in layers for m in layer.modules() if isinstance(m, nn.Conv3d) and m.kernel_size != (1, 1, 1)]
    assert all(isinstance(c, Conv3DSimple) and c.kernel_size == (3, 3, 3) for c in convs)


def test_resnet34_is_another_name_of_r3d_34() -> None:
    assert BACKBONE_ALIASES == {"resnet34": "r3d_34"}
    with torch.device("meta"):
        backbone = build_backbone(name="resnet34")
    assert backbone.name == "r3d_34"
    assert backbone_constraints("resnet34") == backbone_constraints("r3d_34")


def test_widened_stem_on_identical_views_matches_the_original() -> None:
    backbone = build_backbone(name="tiny").eval()
    widened = copy.deepcopy(backbone)
    widened.widen_stem(num_views=3)
    clip = torch.randn(2, 3, 4, 16, 16)
    assert widened.stem.in_channels == 9
    with torch.no_grad():
        torch.testing.assert_close(widened(clip.repeat(1, 3, 1, 1, 1)), backbone(clip), atol=1e-5, rtol=1e-4)


def _train_step(backbone: VideoBackbone, clip: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
    """One forward/backward; returns the gradients and how many tensors autograd saved outside checkpoints."""
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += 1
        return tensor

    backbone.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same stochastic depth / dropout draws in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        features = backbone(clip)
    features.square().mean().backward()
    grads = {name: p.grad.clone() for name, p in backbone.named_parameters() if p.grad is not None}
    return grads, saved


@pytest.mark.parametrize(
    "name",
    ["tiny", "r3d_18", *(pytest.param(name, marks=pytest.mark.slow) for name in ("r3d_34", "r3d_50", "swin3d_t"))],
)
def test_activation_checkpointing_gives_identical_gradients_and_stats(name: str) -> None:
    plain = build_backbone(name=name).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.activation_checkpointing = True
    clip = torch.randn(2, 3, *SMALL_CLIPS[name])

    plain_grads, plain_saved = _train_step(plain, clip)
    ckpt_grads, ckpt_saved = _train_step(checkpointed, clip)

    assert ckpt_saved < plain_saved  # the stages really were checkpointed
    assert plain_grads.keys() == ckpt_grads.keys()
    for key, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[key], grad, msg=key)
    # Recomputation must not fold the batch into batch-norm statistics a second time.
    for (key, buffer), (_, ckpt_buffer) in zip(plain.named_buffers(), checkpointed.named_buffers(), strict=True):
        torch.testing.assert_close(ckpt_buffer, buffer, msg=key)


def test_pretrained_round_trip(tmp_path: Path) -> None:
    source = build_backbone(name="tiny")
    path = tmp_path / "tiny.pt"
    torch.save(source.net.state_dict(), path)
    loaded = build_backbone(name="tiny", pretrained_path=path)
    for (key, expected), (_, actual) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(actual, expected, msg=key)


def _save_tiny_state(path: Path, edit: str) -> Path:
    state = build_backbone(name="tiny").net.state_dict()
    if edit == "missing":
        del state["2.0.weight"]
    elif edit == "unexpected":
        state["extra.weight"] = torch.zeros(1)
    else:
        state["2.0.weight"] = torch.zeros(64, 32, 1, 1, 1)
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("missing", r"missing keys: 2\.0\.weight"),
        ("unexpected", r"unexpected keys: extra\.weight"),
        ("shape", r"shape mismatches \(file!=model\): 2\.0\.weight \(64, 32, 1, 1, 1\)!=\(64, 32, 3, 3, 3\)"),
    ],
)
def test_pretrained_mismatch_names_the_file_and_keys(tmp_path: Path, edit: str, message: str) -> None:
    path = _save_tiny_state(tmp_path / "bad.pt", edit)
    with pytest.raises(ValueError, match=rf"pretrained_path='.*bad\.pt' does not fit backbone 'tiny': {message}"):
        build_backbone(name="tiny", pretrained_path=path)


def test_pretrained_of_another_backbone_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(build_backbone(name="tiny").net.state_dict(), path)
    with pytest.raises(ValueError, match=r"does not fit backbone 'r3d_18': missing keys: .*fc\.weight"):
        build_backbone(name="r3d_18", pretrained_path=path)


def test_pretrained_missing_file_or_not_a_state_dict(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pretrained_path='.*nope\.pt': no such file"):
        build_backbone(name="tiny", pretrained_path=tmp_path / "nope.pt")
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=r"list\.pt': holds a list, not a checkpoint \(a dict\); save the network's"):
        build_backbone(name="tiny", pretrained_path=path)


@pytest.mark.parametrize("name", ["tiny", "r3d_18", "r3d_50"])
def test_channels_last_3d_weights_run_channels_last(name: str) -> None:
    backbone = build_backbone(name=name).eval()
    clip = torch.randn(1, 3, *SMALL_CLIPS[name])
    with torch.no_grad():
        expected = backbone(clip)
        backbone.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        stem_inputs: list[torch.Tensor] = []
        backbone.stem.register_forward_pre_hook(lambda _m, args: stem_inputs.append(args[0]))
        actual = backbone(clip)  # a contiguous input is converted to the weights' layout
    assert stem_inputs[0].is_contiguous(memory_format=torch.channels_last_3d)
    assert isinstance(backbone.stem, nn.Conv3d)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
