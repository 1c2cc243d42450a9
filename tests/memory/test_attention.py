"""An estimate's attention is the fused kernels' (no N x N weights kept), as a GPU runs it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidfit.memory import estimate_step_memory


class _Attention(nn.Module):
    def __init__(self, *, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, dim = tokens.shape
        q, k, v = self.qkv(tokens).reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, dim)


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_estimated_attention_keeps_no_attention_weights(precision: str) -> None:
    batch, length, dim, heads = 2, 1024, 64, 4
    estimate = estimate_step_memory(
        lambda: _Attention(dim=dim, heads=heads),
        lambda: torch.randn(batch, length, dim, requires_grad=True),
        precision=precision,  # type: ignore[arg-type]
    )
    element = 4 if precision == "32" else 2
    weights = batch * heads * length * length * element  # what the math fallback would keep: 16 MiB in fp32
    # The fused kernels keep q, k, v, the output (each batch x length x dim) and a log-sum-exp per query.
    assert estimate.activations_bytes < batch * length * dim * 4 * 8
    assert estimate.activations_bytes < weights / 4
