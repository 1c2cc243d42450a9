"""How each family of Hugging Face video encoder is run block by block, with or without token dropping.

vidfit runs the encoder's parts itself (patch embedding, each transformer block, the final norm) instead of
the model's ``forward``, so that frozen blocks run without autograd, each trainable block can be checkpointed,
and patch tokens can be dropped after the embedding. Every family puts the same patch tokens in a
(time slot, spatial position) grid; what differs is the token order, a class token, and how positions enter.

Token dropping is tube masking, as VideoMAE pre-trains: the same spatial positions are dropped in every time
slot, after the position embeddings are added, so each kept token keeps its own position. It is VideoMAE's
``bool_masked_pos`` done by index (a gather) rather than by boolean mask, so that shapes stay static for the
memory estimate on fake tensors; V-JEPA 2 gets the kept tokens' ids for its rotary positions. Because every
time slot keeps the same number of tokens, each slot's feature is the mean of its kept tokens, and the clip's
is the mean over slots: frames lose spatial detail, never a whole time step.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidfit.models._backbones import InputConstraints


@dataclass
class Tokens:
    """The encoder's tokens between blocks.

    Attributes:
        hidden: (B, N, D), with the family's class token first where it has one.
        slots: Time slots T' of the patch grid.
        kept: Spatial positions kept per slot.
        ids: (B, slots * kept) grid ids of the kept patch tokens (slot * positions + position), or None when
            none were dropped.
    """

    hidden: torch.Tensor
    slots: int
    kept: int
    ids: torch.Tensor | None = None


def _pair(size: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def tube_positions(batch: int, positions: int, kept: int, *, device: torch.device) -> torch.Tensor:
    """`kept` random spatial positions out of `positions` per clip, sorted: (B, kept)."""
    scores = torch.rand(batch, positions, device=device)
    return scores.argsort(dim=1)[:, :kept].sort(dim=1).values


def _gather(hidden: torch.Tensor, index: torch.Tensor, *, skip: int) -> torch.Tensor:
    """The first `skip` tokens (a class token) and those at `index` (B, M) counted after them."""
    picked = hidden[:, skip:].gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
    return torch.cat([hidden[:, :skip], picked], dim=1) if skip else picked


def _slot_means(patches: torch.Tensor, tokens: Tokens, *, slot_major: bool) -> torch.Tensor:
    """Per-slot means (B, T', D) of patch tokens ordered slot by slot (or position by position)."""
    batch, _, dim = patches.shape
    if slot_major:
        return patches.reshape(batch, tokens.slots, tokens.kept, dim).mean(dim=2)
    return patches.reshape(batch, tokens.kept, tokens.slots, dim).mean(dim=1)


class Family:
    """One kind of encoder. Subclasses say where its parts are and how tokens flow through them.

    Attributes:
        processor: The `transformers` video processor whose defaults give the input statistics.
        offset: Whether that processor shifts rescaled pixels by -1 (ViViT).
        blocks: Path of the transformer blocks (an ``nn.ModuleList``) in the model.
        stem: Path of the patch-embedding convolution.
        final_norm: Path of the norm after the last block, or None.
        lora_targets: Default `peft` targets: the attention projections of each block.
        sdpa: Whether `transformers` runs its attention through scaled-dot-product attention.
    """

    processor = ""
    offset = False
    blocks = "encoder.layer"
    stem = "embeddings.patch_embeddings.projection"
    final_norm: str | None = "layernorm"
    lora_targets: tuple[str, ...] = ("query", "value")
    sdpa = True
    class_tokens = 0
    slot_major = True
    block_ids = False  # blocks take the kept tokens' grid ids (rotary positions) after the hidden states

    def config_problem(self, config: Any) -> str | None:
        """Why a config of this family cannot run as a backbone, or None."""
        return None

    def constraints(self, config: Any) -> InputConstraints:
        height, width = _pair(config.image_size)
        return InputConstraints(exact_shape=(config.num_frames, height, width))

    def positions(self, config: Any) -> int:
        """Spatial positions per time slot at the input size the constraints allow."""
        patch = _pair(config.patch_size)
        height, width = _pair(config.image_size)
        return (height // patch[0]) * (width // patch[1])

    def keep_count(self, config: Any, ratio: float) -> int:
        """Spatial positions kept per slot when `ratio` of them are dropped (at least one)."""
        return max(1, round((1.0 - ratio) * self.positions(config)))

    def building(self) -> contextlib.AbstractContextManager[None]:
        """A context to build the model in."""
        return contextlib.nullcontext()

    def prepare(self, net: nn.Module) -> None:
        """Adapts a freshly built model in place (drops parts the encoder does not use)."""

    def mean_norm(self, config: Any) -> bool:
        """Whether the model leaves the final norm to a head over mean-pooled tokens (vidfit then adds one)."""
        return False

    def embed(self, net: Any, video: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their positions (B, N, D) of a normalized video (B, C, T, H, W)."""
        return net.embeddings(video.transpose(1, 2))

    def drop(self, tokens: Tokens, config: Any, ratio: float) -> Tokens:
        """Keeps the same random spatial positions in every slot (see the module docstring)."""
        positions, kept = tokens.kept, self.keep_count(config, ratio)
        batch, device = tokens.hidden.shape[0], tokens.hidden.device
        spatial = tube_positions(batch, positions, kept, device=device)
        slots = torch.arange(tokens.slots, device=device)
        if self.slot_major:
            index = (slots[None, :, None] * positions + spatial[:, None, :]).flatten(1)
        else:
            index = (spatial[:, :, None] * tokens.slots + slots[None, None, :]).flatten(1)
        ids = (slots[None, :, None] * positions + spatial[:, None, :]).flatten(1)
        hidden = _gather(tokens.hidden, index, skip=self.class_tokens)
        return Tokens(hidden, tokens.slots, kept, ids)

    def slot_features(self, hidden: torch.Tensor, tokens: Tokens) -> torch.Tensor:
        """Per-slot features (B, T', D) from the normed tokens."""
        return _slot_means(hidden[:, self.class_tokens :], tokens, slot_major=self.slot_major)


class VideoMae(Family):
    processor = "VideoMAEVideoProcessor"

    def mean_norm(self, config: Any) -> bool:
        return bool(config.use_mean_pooling)

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        # VideoMAE fills its fixed sin-cos table in pure Python: 10 s for ViT-B's 1,568 positions, at every build
        # (an estimate included). The same table, computed at once, stands in while the model is built.
        module: Any = importlib.import_module("transformers.models.videomae.modeling_videomae")
        original = module.get_sinusoid_encoding_table
        module.get_sinusoid_encoding_table = sinusoid_table
        try:
            yield
        finally:
            module.get_sinusoid_encoding_table = original

    def prepare(self, net: nn.Module) -> None:
        embeddings = net.get_submodule("embeddings")
        table = embeddings.__dict__.pop("position_embeddings", None)
        if table is not None:  # a plain attribute: a buffer moves with the model and is faked for an estimate
            embeddings.register_buffer("position_embeddings", table, persistent=False)

    def embed(self, net: Any, video: torch.Tensor) -> torch.Tensor:
        return net.embeddings(video.transpose(1, 2), None)


class Timesformer(Family):
    processor = "TimesformerVideoProcessor"
    lora_targets = ("qkv",)
    sdpa = False  # `transformers` has none for it: `prepare` puts scaled-dot-product attention in
    class_tokens = 1
    slot_major = False  # divided space-time attention orders its tokens position by position

    def config_problem(self, config: Any) -> str | None:
        if config.attention_type == "space_only":
            return "TimeSformer with attention_type='space_only' has no time axis to train per-frame heads on"
        return None

    def keep_count(self, config: Any, ratio: float) -> int:
        # Its blocks infer the patch grid's height from the token count at a fixed width: whole rows are kept.
        width = _pair(config.image_size)[1] // config.patch_size
        rows = self.positions(config) // width
        return max(1, round((1.0 - ratio) * rows)) * width

    def prepare(self, net: nn.Module) -> None:
        for module in net.modules():
            if type(module).__name__ == "TimesformerSelfAttention":
                module.__class__ = _sdpa_attention_class(type(module))

    def embed(self, net: Any, video: torch.Tensor) -> torch.Tensor:
        return net.embeddings(video.transpose(1, 2))


class Vivit(Family):
    processor = "VivitVideoProcessor"
    offset = True
    blocks = "layers"
    lora_targets = ("q_proj", "v_proj")
    class_tokens = 1

    def positions(self, config: Any) -> int:
        height, width = _pair(config.image_size)
        return (height // config.tubelet_size[1]) * (width // config.tubelet_size[2])

    def prepare(self, net: Any) -> None:
        net.pooler = None  # the pooled class token is not used: its weights would train for nothing

    def embed(self, net: Any, video: torch.Tensor) -> torch.Tensor:
        return net.embeddings(video.transpose(1, 2))


class Vjepa2(Family):
    processor = "VJEPA2VideoProcessor"
    stem = "encoder.embeddings.patch_embeddings.proj"
    final_norm = "encoder.layernorm"
    block_ids = True

    def constraints(self, config: Any) -> InputConstraints:
        # Rotary positions follow the token ids, so any clip of whole tubelets works; the crop size is fixed
        # because an id is split into row and column at the configured grid width.
        size = (config.crop_size, config.crop_size)
        return InputConstraints(min_frames=config.tubelet_size, exact_size=size)

    def positions(self, config: Any) -> int:
        return (config.crop_size // config.patch_size) ** 2

    def prepare(self, net: nn.Module) -> None:
        del net.predictor  # the self-supervised predictor is not part of the encoder

    def embed(self, net: Any, video: torch.Tensor) -> torch.Tensor:
        return net.encoder.embeddings(video.transpose(1, 2))


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's sin-cos position table (1, num_positions, dim), on the CPU: sin on even, cos on odd channels."""
    position = torch.arange(num_positions, dtype=torch.float64, device="cpu")[:, None]
    exponent = 2 * (torch.arange(dim, device="cpu") // 2).to(torch.float64) / dim
    angles = position / torch.pow(torch.tensor(10000.0, dtype=torch.float64, device="cpu"), exponent)
    table = torch.where(torch.arange(dim, device="cpu") % 2 == 0, angles.sin(), angles.cos())
    return table.to(torch.float32)[None]


_SDPA_CLASSES: dict[type, type] = {}


def _sdpa_attention_class(base: type) -> type:
    """TimeSformer's self-attention computed by `F.scaled_dot_product_attention` (same weights, same result)."""

    def forward(self: Any, hidden_states: torch.Tensor, output_attentions: bool = False) -> tuple[torch.Tensor]:
        batch, length, channels = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, length, 3, self.num_heads, channels // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        dropout = self.attn_drop.p if self.training else 0.0
        context = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=self.scale)
        return (context.transpose(1, 2).reshape(batch, length, channels),)

    if base not in _SDPA_CLASSES:
        _SDPA_CLASSES[base] = type(f"Sdpa{base.__name__}", (base,), {"forward": forward})
    return _SDPA_CLASSES[base]


FAMILIES: dict[str, Family] = {
    "videomae": VideoMae(),
    "vjepa2": Vjepa2(),
    "timesformer": Timesformer(),
    "vivit": Vivit(),
}
