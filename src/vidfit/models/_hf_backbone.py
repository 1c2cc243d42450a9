"""A Hugging Face video encoder as a vidfit backbone, with the memory-lean ways to fine-tune it.

- ``freeze``: ``none``, ``all`` (the encoder is a fixed feature extractor; the heads train) or ``first:N``
  (the patch embedding and the first N blocks). Frozen parts run under ``torch.no_grad``: their activations
  are not kept for backward, and they get no gradients or optimizer state.
- ``lora``: adapters on the attention projections of the blocks not frozen (see `vidfit.models._lora`).
- ``token_drop``: in training only, that share of the patch tokens is dropped after the embedding by a tube
  mask (see `vidfit.models._hf_tokens`); evaluation and prediction see every token.
- scaled-dot-product attention in every block (the flash or memory-efficient kernels where the GPU has
  them), and activation checkpointing per trainable block.

The output is the backbone interface's feature map (B, C, T', 1, 1): one feature per time slot, the mean of
that slot's (kept) patch tokens, so the clip head's pooling and the frame head's stretching to T frames work
as for the torchvision backbones.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from vidfit.models._backbones import VideoBackbone
from vidfit.models._checkpointing import run_stage
from vidfit.models._hf import HfModel, hf_model, import_extra
from vidfit.models._hf_tokens import Tokens
from vidfit.models._lora import LoraSettings, add_lora, is_lora_weight, merge_lora

MAX_TOKEN_DROP = 0.9


def freeze_problems(freeze: str, *, num_blocks: int | None, prefix: str = "") -> list[str]:
    """What is wrong with a ``freeze`` value for an encoder of `num_blocks` blocks (None: not known yet)."""
    if freeze in ("none", "all"):
        return []
    count = freeze.removeprefix("first:")
    if count == freeze or not count.isdigit() or int(count) < 1:
        return [f"{prefix}freeze={freeze!r} is not one of 'none', 'all', 'first:N' (N >= 1 blocks)"]
    if num_blocks is not None and int(count) > num_blocks:
        return [f"{prefix}freeze={freeze!r}: the encoder has {num_blocks} blocks; freeze at most first:{num_blocks}"]
    return []


def frozen_blocks(freeze: str, num_blocks: int) -> int:
    """How many leading blocks `freeze` freezes (all of them for ``all``)."""
    if problems := freeze_problems(freeze, num_blocks=num_blocks):
        raise ValueError(problems[0])
    named = {"none": 0, "all": num_blocks}
    return named[freeze] if freeze in named else int(freeze.removeprefix("first:"))


class HfBackbone(VideoBackbone):
    """The encoder of a `transformers` video model, run block by block; build with `build_hf_backbone`.

    Attributes:
        hf: The model as found on disk (its config and family).
        token_drop: Share of patch tokens dropped in training.
        frozen_blocks: Leading blocks run without autograd (with the patch embedding).
        freeze_all: The final norm is frozen too.
    """

    def __init__(
        self, *, hf: HfModel, net: nn.Module, freeze: str, token_drop: float, lora: LoraSettings | None
    ) -> None:
        family, config = hf.family, hf.config
        super().__init__(
            name=hf.name, net=net, feature_dim=config.hidden_size, stem_conv=family.stem,
            constraints=family.constraints(config),
        )  # fmt: skip
        self.hf, self.token_drop = hf, token_drop
        num_blocks = len(self._blocks())
        self.frozen_blocks, self.freeze_all = frozen_blocks(freeze, num_blocks), freeze == "all"
        # VideoMAE leaves the norm to its classification head, after mean pooling: this is that norm.
        self.norm: nn.Module = nn.LayerNorm(config.hidden_size) if family.mean_norm(config) else nn.Identity()
        self._freeze()
        self._peft: Any = None
        self._hooks: list[Any] = []
        if lora is not None:
            # Kept out of the module tree: the PeftModel wraps `net`, whose weights would appear twice.
            self.__dict__["_peft"] = add_lora(
                net, lora, blocks=family.blocks, first_block=self.frozen_blocks, num_blocks=num_blocks,
                defaults=family.lora_targets,
            )  # fmt: skip
            self._hooks = [
                self.register_state_dict_post_hook(_drop_base_weights),
                self.register_load_state_dict_pre_hook(_fill_base_weights),
            ]

    def merge_lora(self) -> None:
        """Folds the LoRA adapters into the weights (for inference); the state dict is then the whole encoder's."""
        if self._peft is None:
            return
        merge_lora(self._peft)
        for hook in self._hooks:
            hook.remove()
        self._peft, self._hooks = None, []

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Maps normalized float video (B, C_in, T, H, W) to per-slot features (B, feature_dim, T', 1, 1)."""
        frames, height, width = video.shape[2:]
        self.constraints.check(self.name, (frames, height, width))
        return self._features(video)

    def _features(self, video: torch.Tensor) -> torch.Tensor:
        family, config = self.hf.family, self.hf.config
        with _no_grad(self.frozen_blocks > 0):
            hidden = family.embed(self.net, video)
            positions = family.positions(config)
            # Before any drop every position of every slot is kept.
            tokens = Tokens(hidden, (hidden.shape[1] - family.class_tokens) // positions, positions)
            if self.training and self.token_drop > 0:
                tokens = family.drop(tokens, config, self.token_drop)
        for index, block in enumerate(self._blocks()):
            frozen = index < self.frozen_blocks
            with _no_grad(frozen):
                arguments = (tokens.hidden, tokens.ids) if family.block_ids else (tokens.hidden,)
                out = run_stage(block, *arguments, checkpointing=self.activation_checkpointing and not frozen)
            tokens.hidden = out[0] if isinstance(out, tuple) else out
        hidden, final_norm = tokens.hidden, self._final_norm()
        if final_norm is not None:
            with _no_grad(self.freeze_all):
                hidden = final_norm(hidden)
        features = self.norm(family.slot_features(hidden, tokens))  # (B, T', D)
        return features.transpose(1, 2)[..., None, None]

    def widen_stem(self, *, num_views: int) -> None:
        """Makes the patch embedding take `num_views` videos stacked on channels (early fusion).

        As for the torchvision backbones: the weights are tiled over the views and divided by `num_views`;
        a frozen embedding stays frozen.
        """
        old = self.net.get_submodule(self._stem_conv)
        assert isinstance(old, nn.Conv2d | nn.Conv3d)
        new = type(old)(
            old.in_channels * num_views, old.out_channels, kernel_size=old.kernel_size,  # type: ignore[arg-type]
            stride=old.stride, padding=old.padding, bias=old.bias is not None,  # type: ignore[arg-type]
        )  # fmt: skip
        with torch.no_grad():
            new.weight.copy_(old.weight.repeat(1, num_views, *([1] * (old.weight.dim() - 2))) / num_views)
            if old.bias is not None and new.bias is not None:
                new.bias.copy_(old.bias)
        new.requires_grad_(old.weight.requires_grad)
        self.net.set_submodule(self._stem_conv, new)
        owner: Any = self.net.get_submodule(self._stem_conv.rpartition(".")[0])
        if hasattr(owner, "num_channels"):  # VideoMAE checks the channels it is given
            owner.num_channels = new.in_channels

    def _blocks(self) -> nn.ModuleList:
        blocks = self.net.get_submodule(self.hf.family.blocks)
        assert isinstance(blocks, nn.ModuleList)
        return blocks

    def _final_norm(self) -> nn.Module | None:
        path = self.hf.family.final_norm
        # VideoMAE's is None where its head normalizes after mean pooling (`norm` above).
        if path is None or getattr(self.net, path.split(".")[-1], True) is None:
            return None
        return self.net.get_submodule(path)

    def _freeze(self) -> None:
        if not self.frozen_blocks:
            return
        trainable = {id(p) for block in self._blocks()[self.frozen_blocks :] for p in block.parameters()}
        final_norm = self._final_norm()
        if not self.freeze_all and final_norm is not None:
            trainable |= {id(p) for p in final_norm.parameters()}
        for parameter in self.net.parameters():
            parameter.requires_grad_(id(parameter) in trainable)

    def base_state(self) -> dict[str, torch.Tensor]:
        """The base model's weights (everything of the encoder but LoRA adapters), by state-dict key."""
        return {f"net.{key}": value for key, value in self.net.state_dict().items() if not is_lora_weight(key)}


def _no_grad(frozen: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.no_grad() if frozen else contextlib.nullcontext()


def _drop_base_weights(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    """Leaves the base model's weights out of a LoRA backbone's state dict: they are read from the base model."""
    for key in [key for key in state if key.startswith(f"{prefix}net.") and not is_lora_weight(key)]:
        del state[key]


def _fill_base_weights(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Fills in the base model's weights a LoRA state dict leaves out, from this backbone (built with them)."""
    assert isinstance(module, HfBackbone)
    for key, value in module.base_state().items():
        state.setdefault(prefix + key, value)


def _on_meta() -> bool:
    return torch.empty(0).device.type == "meta"


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """No "Loading weights" progress bar: reading from local disk takes a moment, and fit has its own output."""
    logging = transformers.utils.logging
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def _load_net(hf: HfModel, *, weights: bool) -> nn.Module:
    """The model with its weights read from disk, or only built from its config (random, or on the meta device)."""
    transformers = import_extra("transformers", needed_for=f"backbone={hf.name!r}")
    config = copy.deepcopy(hf.config)  # the cached config stays as read
    attention = {"attn_implementation": "sdpa" if hf.family.sdpa else "eager"}
    with hf.family.building(), _quiet(transformers):
        if weights:
            net = transformers.AutoModel.from_pretrained(
                hf.folder, config=config, local_files_only=True, dtype=torch.float32, **attention
            )
        else:
            net = transformers.AutoModel.from_config(config, **attention)
    hf.family.prepare(net)
    # `from_pretrained` leaves the model in eval mode; a backbone starts in training mode like any module.
    return net.train()


def build_hf_backbone(
    *,
    name: str,
    load_weights: bool = True,
    activation_checkpointing: bool = False,
    freeze: str = "none",
    lora: LoraSettings | None = None,
    token_drop: float = 0.0,
) -> HfBackbone:
    """Builds the encoder of the Hugging Face model `name` (``hf:<id or folder>``) as a backbone.

    Args:
        load_weights: Read the model's weights from its folder or the cache; off builds the architecture
            alone (for a checkpoint's weights to replace). With `lora` the base weights are always read (a
            checkpoint holds only the adapters), except on the meta device, where nothing is read.
        activation_checkpointing: Recompute each trainable block in backward.
        freeze: ``none``, ``all`` or ``first:N``.
        lora: LoRA adapters on the blocks not frozen, or None.
        token_drop: Share of patch tokens dropped in training, in [0, 0.9].

    Raises:
        HfModelUnavailableError: The model is neither a local folder nor in the Hugging Face cache.
        HfExtraMissingError: `transformers` (or, for `lora`, `peft`) is not installed.
        ValueError: A model type vidfit cannot run, or a bad `freeze`, `lora` or `token_drop`.
    """
    if not 0.0 <= token_drop <= MAX_TOKEN_DROP:
        raise ValueError(f"token_drop={token_drop!r} must be in [0, {MAX_TOKEN_DROP}]")
    hf = hf_model(name)
    net = _load_net(hf, weights=(load_weights or lora is not None) and not _on_meta())
    backbone = HfBackbone(hf=hf, net=net, freeze=freeze, token_drop=token_drop, lora=lora)
    backbone.activation_checkpointing = activation_checkpointing
    return backbone
