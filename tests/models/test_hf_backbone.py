"""Hugging Face encoders as backbones: features for both heads and fusions, freezing, LoRA, token drop, SDPA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.hf_models import FAMILIES, hf_models
from vidfit.models import LoraSettings, build_backbone, build_classifier
from vidfit.models._hf_backbone import HfBackbone
from vidfit.models._hf_tokens import sinusoid_table, tube_positions

transformers = pytest.importorskip("transformers")
__all__ = ["hf_models"]


def _video(batch: int = 2, views: int = 1, frames: int = 4) -> torch.Tensor:
    return torch.randint(0, 256, (batch, views, 3, frames, 32, 32), dtype=torch.uint8, generator=torch.Generator())


def _backbone(folder: Path, **options: object) -> HfBackbone:
    backbone = build_backbone(name=f"hf:{folder}", **options)  # type: ignore[arg-type]
    assert isinstance(backbone, HfBackbone)
    return backbone


def _saved_bytes(module: torch.nn.Module, video: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in a forward pass (each storage once), weights left out."""
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(video)
    return sum(saved.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_clip_and_frame_logits_with_either_fusion(hf_models: dict[str, Path], family: str) -> None:
    for fusion in ("late", "early"):
        model = build_classifier(
            backbone=f"hf:{hf_models[family]}", num_classes=3, views=("a", "b"), view_fusion=fusion
        )
        out = model(_video(views=2))
        assert out.logits.shape == (2, 3) and out.frame_logits.shape == (2, 4, 3)
        out.logits.sum().backward()
    # Identical views through the widened (tiled / V) patch embedding give the features of one view.
    single = build_classifier(backbone=f"hf:{hf_models[family]}", num_classes=3).eval()
    early = build_classifier(backbone=f"hf:{hf_models[family]}", num_classes=3, views=("a", "b"), view_fusion="early")
    video = _video()
    assert single.rgb is not None and early.rgb is not None
    assert torch.allclose(single.rgb(video), early.eval().rgb(video.repeat(1, 2, 1, 1, 1, 1)), atol=1e-4)


def test_videomae_token_drop_is_its_own_bool_masked_pos_by_tube_and_only_in_training(
    hf_models: dict[str, Path],
) -> None:
    backbone = _backbone(hf_models["videomae"], token_drop=0.5)
    video = torch.randn(2, 3, 4, 32, 32)
    torch.manual_seed(7)
    kept = tube_positions(2, 16, 8, device=torch.device("cpu"))  # the draw the backbone makes next
    torch.manual_seed(7)
    dropped = backbone(video)
    masked = torch.ones(2, 2, 16, dtype=torch.bool)  # (B, slots, positions): True is dropped
    masked[torch.arange(2)[:, None], :, kept] = False  # the same positions kept in both slots: a tube
    net = backbone.net.train()
    tokens = net(video.transpose(1, 2), bool_masked_pos=masked.flatten(1)).last_hidden_state  # (2, 16, 32)
    expected = backbone.norm(tokens.reshape(2, 2, 8, 32).mean(dim=2)).transpose(1, 2)[..., None, None]
    assert torch.allclose(dropped, expected, atol=1e-5)
    whole = net(video.transpose(1, 2)).last_hidden_state.reshape(2, 2, 16, 32).mean(dim=2)
    assert torch.allclose(backbone.eval()(video), backbone.norm(whole).transpose(1, 2)[..., None, None], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_token_drop_keeps_fewer_tokens_in_every_time_slot(hf_models: dict[str, Path], family: str) -> None:
    full = _backbone(hf_models[family])
    half = _backbone(hf_models[family], token_drop=0.5)
    video = torch.randn(2, 3, 4, 32, 32)
    assert half(video).shape == full(video).shape
    # Half the tokens: half the blocks' activations (the input clip and the embedding's are kept either way).
    assert _saved_bytes(half, video) < 0.75 * _saved_bytes(full, video)
    family_obj = half.hf.family
    kept = family_obj.keep_count(half.hf.config, 0.5)
    assert kept == 8 and family_obj.keep_count(half.hf.config, 0.9) >= (4 if family == "timesformer" else 2)


def test_timesformer_attention_is_scaled_dot_product_attention_with_its_own_result(hf_models: dict[str, Path]) -> None:
    backbone = _backbone(hf_models["timesformer"])
    eager = transformers.AutoModel.from_pretrained(hf_models["timesformer"], attn_implementation="eager").eval()
    attention = backbone.net.encoder.layer[0].attention.attention
    assert type(attention).__name__ == "SdpaTimesformerSelfAttention"
    pixels = torch.randn(2, 4, 3, 32, 32)
    ours = backbone.net.eval()(pixels).last_hidden_state
    assert torch.allclose(ours, eager(pixels).last_hidden_state, atol=1e-5)


def test_frozen_blocks_run_without_autograd_and_get_no_gradient(hf_models: dict[str, Path]) -> None:
    video = torch.randn(2, 3, 4, 32, 32)
    counts = {}
    for freeze in ("none", "first:1", "all"):
        backbone = _backbone(hf_models["videomae"], freeze=freeze)
        counts[freeze] = _saved_bytes(backbone, video)
        trainable = {name for name, p in backbone.named_parameters() if p.requires_grad}
        if freeze == "first:1":
            assert not any(name.startswith(("net.embeddings", "net.encoder.layer.0.")) for name in trainable)
            assert any(name.startswith("net.encoder.layer.1.") for name in trainable)
        if freeze == "all":
            assert trainable == {"norm.weight", "norm.bias"}  # the new norm before the heads
        backbone(video).sum().backward()
        assert all(p.grad is None for p in backbone.parameters() if not p.requires_grad)
    assert counts["all"] < counts["first:1"] < counts["none"]


def test_checkpointed_blocks_give_the_same_gradients(hf_models: dict[str, Path]) -> None:
    video = torch.randn(2, 3, 4, 32, 32)
    grads = []
    for checkpointing in (False, True):
        backbone = _backbone(hf_models["vjepa2"], activation_checkpointing=checkpointing)
        backbone(video).square().sum().backward()
        grads.append([p.grad for p in backbone.parameters()])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads, strict=True))  # type: ignore[arg-type]


def test_lora_trains_adapters_saves_them_alone_and_merges(hf_models: dict[str, Path]) -> None:
    folder = hf_models["videomae"]
    model = build_classifier(backbone=f"hf:{folder}", num_classes=3, lora=LoraSettings(rank=4), freeze="first:1")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all(".lora_" in name for name in trainable if name.startswith("rgb.backbone.net."))
    # Adapters only in the block that is not frozen, on its query and value projections.
    adapted = {name.split(".lora_")[0] for name in trainable if ".lora_" in name}
    assert adapted == {f"rgb.backbone.net.encoder.layer.1.attention.attention.{p}" for p in ("query", "value")}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    state = model.state_dict()
    assert not [key for key in state if key.startswith("rgb.backbone.net.") and ".lora_" not in key]
    # A model built without reading weights reads the base model's anyway: the adapters alone restore it.
    restored = build_classifier(
        backbone=f"hf:{folder}", num_classes=3, lora=LoraSettings(rank=4), freeze="first:1", load_pretrained=False
    )
    restored.load_state_dict(state)
    video = _video()
    expected = model.eval()(video).logits
    assert torch.allclose(restored.eval()(video).logits, expected, atol=1e-5)
    restored.merge_lora()
    assert torch.allclose(restored(video).logits, expected, atol=1e-5)
    assert not [key for key in restored.state_dict() if ".lora_" in key]
    assert "rgb.backbone.net.encoder.layer.0.attention.attention.query.weight" in restored.state_dict()


def test_lora_targets_name_missing_layers(hf_models: dict[str, Path]) -> None:
    message = r"model\.lora\.targets=\['qkv'\]: no such linear layer .* \['query', 'value'\]"
    with pytest.raises(ValueError, match=message):
        build_classifier(backbone=f"hf:{hf_models['videomae']}", num_classes=2, lora=LoraSettings(targets=("qkv",)))
    timesformer = build_classifier(backbone=f"hf:{hf_models['timesformer']}", num_classes=2, lora=LoraSettings())
    assert any(".qkv.lora_A" in name for name, _ in timesformer.named_parameters())


def test_wrong_clip_sizes_are_refused_naming_the_backbone(hf_models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"needs clips of exactly \(T, H, W\)=\(4, 32, 32\), got \(8, 32, 32\)"):
        _backbone(hf_models["vivit"])(torch.randn(1, 3, 8, 32, 32))
    jepa = _backbone(hf_models["vjepa2"])
    assert jepa(torch.randn(1, 3, 6, 32, 32)).shape == (1, 32, 3, 1, 1)  # any whole number of tubelets
    with pytest.raises(ValueError, match=r"needs frames of exactly \(H, W\)=\(32, 32\)"):
        jepa(torch.randn(1, 3, 4, 32, 40))


def test_videomae_position_table_is_the_same_built_at_once() -> None:
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    assert torch.equal(sinusoid_table(40, 24), get_sinusoid_encoding_table(40, 24))


def test_an_hf_backbone_builds_on_the_meta_device_without_reading_weights(hf_models: dict[str, Path]) -> None:
    with torch.device("meta"):
        model = build_classifier(backbone=f"hf:{hf_models['videomae']}", num_classes=3, lora=LoraSettings(rank=4))
    assert {p.device.type for p in model.parameters()} == {"meta"}
