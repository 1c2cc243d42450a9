"""Scaled-dot-product attention in an estimate: the fused kernel a GPU runs, not PyTorch's math fallback.

On fake CUDA tensors there is no GPU to ask which attention kernels it has, so
`torch.nn.functional.scaled_dot_product_attention` takes the math path, which keeps the (B, heads, N, N)
attention weights for backward: 59 MB per block and clip for a ViT-B at 16x224x224 (1,568 tokens, fp16),
where flash or memory-efficient attention on a GPU keeps only its output and one log-sum-exp per query. While
an estimate runs, `FusedAttention` routes each call to the kernel a GPU picks first: flash attention for
fp16/bf16 inputs whose head size is a multiple of 8 up to 256, memory-efficient attention otherwise. A call
with an attention mask or grouped-query heads keeps PyTorch's own choice.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_FLASH_DTYPES = (torch.float16, torch.bfloat16)


class FusedAttention(TorchFunctionMode):
    """A function mode that runs CUDA scaled-dot-product attention through the fused kernels (see the module)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            routed = _fused(*args, **kwargs)
            if routed is not None:
                return routed
        return func(*args, **kwargs)


def _fused(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor | None:
    """The fused kernel's output, or None where the call is left to PyTorch."""
    if attn_mask is not None or enable_gqa or query.device.type != "cuda" or query.dim() != 4:
        return None
    if torch.is_autocast_enabled("cuda"):  # autocast casts attention's inputs to its dtype
        dtype = torch.get_autocast_dtype("cuda")
        query, key, value = (tensor.to(dtype) for tensor in (query, key, value))
    head_size = query.shape[-1]
    if query.dtype in _FLASH_DTYPES and head_size <= 256 and head_size % 8 == 0:
        flash = torch.ops.aten._scaled_dot_product_flash_attention
        return flash(query, key, value, dropout_p, is_causal, False, scale=scale)[0]
    needs_grad = any(tensor.requires_grad for tensor in (query, key, value))
    efficient = torch.ops.aten._scaled_dot_product_efficient_attention
    return efficient(query, key, value, None, needs_grad, dropout_p, is_causal, scale=scale)[0]
