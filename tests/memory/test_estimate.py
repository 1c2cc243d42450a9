import warnings

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from tests.models.test_backbones import SMALL_CLIPS
from vidfit.memory import estimate_step_memory
from vidfit.memory._estimate import UnestimableModelError
from vidfit.models import BACKBONES, build_classifier

F32, BF16 = 4, 2


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _conv3d() -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 3, padding=1))


def _clip() -> torch.Tensor:
    return torch.randn(1, 3, 4, 8, 8)  # (B, C, T, H, W)


class _Blocks(nn.Module):
    def __init__(self, *, checkpointing: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(2))
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing:
            return checkpoint(lambda t: self.blocks[1](self.blocks[0](t)), x, use_reentrant=False)
        return self.blocks[1](self.blocks[0](x))


def test_mlp_fp32_by_hand() -> None:
    est = estimate_step_memory(_mlp, lambda: torch.randn(2, 8), optimizer="adamw", precision="32")
    params = (8 * 16 + 16 + 16 * 4 + 4) * F32
    assert est.parameters_bytes == params
    assert est.gradients_bytes == params
    assert est.optimizer_state_bytes == 2 * params
    # The input (weight grad of layer 1) and the ReLU output, which layer 2 saves again: one storage.
    # Layer 2 also saves its transposed weight, a view of a parameter, so not an activation.
    assert est.activations_bytes == (2 * 8 + 2 * 16) * F32
    assert est.transient_bytes == 2 * 16 * F32  # the hidden layer; the weight transpose is a view
    assert est.total_bytes == 4 * params + est.activations_bytes + est.transient_bytes
    assert "estimate, not a measurement" in est.note and "upper bound" not in est.note
    assert "fragmentation" in est.note and "cuDNN" in est.note and "OOM guard" in est.note


def test_sgd_keeps_one_copy_and_frozen_parameters_have_no_gradient() -> None:
    def frozen_first() -> nn.Module:
        model = _mlp()
        model[0].requires_grad_(False)
        return model

    est = estimate_step_memory(frozen_first, lambda: torch.randn(2, 8), optimizer="sgd")
    trainable = (16 * 4 + 4) * F32
    assert est.parameters_bytes == (8 * 16 + 16 + 16 * 4 + 4) * F32
    assert est.gradients_bytes == trainable
    assert est.optimizer_state_bytes == trainable


def test_conv3d_fp32_by_hand() -> None:
    est = estimate_step_memory(_conv3d, _clip)
    clip, hidden = 3 * 4 * 8 * 8 * F32, 4 * 4 * 8 * 8 * F32
    assert est.activations_bytes == clip + hidden  # conv 1 input; ReLU output = conv 2 input
    assert est.transient_bytes == hidden


def test_conv3d_bf16_mixed_follows_cuda_autocast() -> None:
    est = estimate_step_memory(_conv3d, _clip, precision="bf16-mixed", device_type="cuda")
    clip, hidden = 3 * 4 * 8 * 8 * BF16, 4 * 4 * 8 * 8 * BF16
    weight_copies = (4 * 3 * 27 + 2 * 4 * 27) * BF16  # autocast's bf16 weight casts, saved by the convs
    assert est.activations_bytes == clip + hidden + weight_copies
    assert est.parameters_bytes == (4 * 3 * 27 + 4 + 2 * 4 * 27 + 2) * F32  # master weights stay fp32
    fp32 = estimate_step_memory(_conv3d, _clip)
    assert est.total_bytes < fp32.total_bytes


def test_plain_meta_tensors_ignore_autocast() -> None:
    # Why the estimate uses fake tensors rather than plain meta ones: autocast skips meta tensors.
    with torch.device("meta"):
        model, x = nn.Linear(8, 4), torch.randn(2, 8)
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16):
        warnings.simplefilter("ignore")
        assert model(x).dtype == torch.float32


def test_checkpointing_drops_what_is_recomputed() -> None:
    plain = estimate_step_memory(lambda: _Blocks(checkpointing=False), lambda: torch.randn(2, 16))
    assert plain.activations_bytes == 3 * 2 * 16 * F32  # input, block 1 output, block 2 output
    checkpointed = estimate_step_memory(lambda: _Blocks(checkpointing=True), lambda: torch.randn(2, 16))
    assert checkpointed.activations_bytes == 2 * 16 * F32  # only the region's input, kept to recompute from


def test_the_largest_checkpointed_region_is_held_again_while_backward_recomputes_it() -> None:
    class Probed(_Blocks):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Through the module, as vidfit's backbones call it: the estimate probes that name.
            first = torch.utils.checkpoint.checkpoint(self.blocks[0], x, use_reentrant=False)
            return torch.utils.checkpoint.checkpoint(lambda t: self.blocks[1](t).relu(), first, use_reentrant=False)

    estimate = estimate_step_memory(lambda: Probed(checkpointing=True), lambda: torch.randn(2, 16))
    # Kept: both regions' inputs. Held again in backward: the second region's ReLU outputs (its input is kept).
    assert estimate.activations_bytes == 2 * (2 * 16 * F32)
    assert estimate.recompute_bytes == 2 * (2 * 16 * F32)
    assert estimate.total_bytes - estimate.recompute_bytes == (
        estimate.parameters_bytes + estimate.gradients_bytes + estimate.optimizer_state_bytes
        + estimate.activations_bytes + estimate.transient_bytes
    )  # fmt: skip
    plain = estimate_step_memory(lambda: _Blocks(checkpointing=False), lambda: torch.randn(2, 16))
    assert plain.recompute_bytes == 0


def test_allocates_nothing_for_a_model_larger_than_memory() -> None:
    est = estimate_step_memory(lambda: nn.Linear(100_000, 100_000), lambda: torch.randn(4, 100_000))
    assert est.parameters_bytes > 40 * 10**9


def test_dict_inputs_and_custom_loss() -> None:
    class Keyed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(8, 4)

        def forward(self, *, video: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"logits": self.linear(video)}

    est = estimate_step_memory(
        Keyed, lambda: {"video": torch.randn(2, 8)}, loss_fn=lambda out: out["logits"].square().mean()
    )
    assert est.activations_bytes == (2 * 8 + 2 * 4) * F32  # the input, and the logits square() saves


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp16"}, "precision='fp16' is not one of '32', '16-mixed', 'bf16-mixed'"),
        ({"optimizer": "lion"}, "optimizer='lion' is not one of 'adamw', 'adam', 'sgd'"),
        ({"device_type": "mps"}, "device_type='mps' is not one of 'cuda', 'cpu'"),
    ],
)
def test_rejects_unknown_choices(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_step_memory(_mlp, lambda: torch.randn(2, 8), **kwargs)  # type: ignore[arg-type]


def test_output_without_floating_tensor_is_an_error() -> None:
    with pytest.raises(ValueError, match="holds no floating-point tensor"):
        estimate_step_memory(lambda: _Argmax(), lambda: torch.randn(2, 8))


class _Argmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        return {"classes": self.linear(x).argmax(dim=1), "names": ["a", "b"]}


# Clips each backbone accepts, as its own tests use them; mvit_v2_s takes only its fixed shape.
_CLIPS = {**SMALL_CLIPS, "mvit_v2_s": (16, 224, 224)}
_SLOW = {"s3d", "swin3d_t", "mvit_v2_s"}


def test_every_backbone_has_an_estimate_test() -> None:
    assert set(_CLIPS) == set(BACKBONES)


@pytest.mark.parametrize(
    "backbone", [pytest.param(name, marks=[pytest.mark.slow] if name in _SLOW else []) for name in _CLIPS]
)
def test_every_backbone_is_estimated(backbone: str) -> None:
    # swin3d_t and mvit_v2_s draw their relative position tables with trunc_normal_, which reads values.
    est = estimate_step_memory(
        lambda: build_classifier(backbone=backbone, num_classes=3, views=("front",)),
        lambda: {"video": torch.randint(0, 256, (2, 1, 3, *_CLIPS[backbone]), dtype=torch.uint8)},
        precision="bf16-mixed",
        loss_fn=lambda output: output.logits.float().sum(),
    )
    assert est.total_bytes > est.parameters_bytes > 0
    assert est.activations_bytes > 0


def test_a_forward_pass_that_reads_values_cannot_be_estimated() -> None:
    class Gated(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) if x.sum() > 0 else x[:, :4]

    with pytest.raises(UnestimableModelError, match=r"Gated cannot be estimated on fake tensors.*on a GPU instead"):
        estimate_step_memory(lambda: Gated(8, 4), lambda: torch.randn(2, 8))
