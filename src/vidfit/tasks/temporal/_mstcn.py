"""MS-TCN: a multi-stage temporal convolution network over a whole video's features, and its loss.

Farha and Gall, "MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation" (CVPR 2019),
as its reference code (github.com/yabufarha/ms-tcn) builds it: each stage is a 1x1 convolution, layers of
dilated residual convolutions (dilation 2^i, so 10 layers see 2047 steps) and a 1x1 classifier; each later
stage refines the softmax of the one before. The loss is cross-entropy at every stage plus the truncated
mean squared error of the log-probabilities of neighbouring steps, which penalizes over-segmentation.

Padding is masked after every layer (the reference code leaves the bias of a stage's first convolution in the
padded steps): a video in a padded batch gets the outputs it gets alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidfit.data import IGNORE_LABEL


class _DilatedResidual(nn.Module):
    def __init__(self, dilation: int, channels: int, dropout: float) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.pointwise(F.relu(self.dilated(x))))
        return (x + out) * mask


class _Stage(nn.Module):
    def __init__(self, *, in_channels: int, channels: int, num_layers: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_channels, channels, 1)
        self.layers = nn.ModuleList(_DilatedResidual(2**i, channels, dropout) for i in range(num_layers))
        self.classify = nn.Conv1d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.embed(x) * mask
        for layer in self.layers:
            out = layer(out, mask)
        return self.classify(out) * mask


class MultiStageTCN(nn.Module):
    """Per-step class logits of feature sequences, from every stage.

    Args:
        in_channels: Channels of the features.
        num_classes: Classes of the steps.
        channels: Channels of every stage (the reference's ``num_f_maps``).
        num_stages: Stages; the first reads the features, each later one the softmax of the one before.
        num_layers: Dilated residual layers per stage.
        dropout: Dropout inside each layer.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        channels: int = 64,
        num_stages: int = 4,
        num_layers: int = 10,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if min(in_channels, num_classes, channels, num_stages, num_layers) < 1 or not 0 <= dropout < 1:
            raise ValueError(
                f"need in_channels, num_classes, channels, num_stages, num_layers >= 1 and dropout in [0, 1), got "
                f"{in_channels}, {num_classes}, {channels}, {num_stages}, {num_layers}, {dropout}"
            )
        self.num_layers = num_layers
        self.stages = nn.ModuleList(
            _Stage(
                in_channels=in_channels if i == 0 else num_classes,
                channels=channels,
                num_layers=num_layers,
                num_classes=num_classes,
                dropout=dropout,
            )
            for i in range(num_stages)
        )

    @property
    def receptive_field(self) -> int:
        """Steps each output of a stage sees: 2^(layers+1) - 1."""
        return 2 ** (self.num_layers + 1) - 1

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (S, B, C, L) of every stage from features (B, C_in, L) and their valid steps (B, L)."""
        weights = mask[:, None].to(features.dtype)
        out = self.stages[0](features, weights)
        outputs = [out]
        for stage in self.stages[1:]:
            out = stage(F.softmax(out, dim=1) * weights, weights)
            outputs.append(out)
        return torch.stack(outputs)


def mstcn_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    *,
    smoothing_weight: float = 0.15,
    smoothing_clamp: float = 16.0,
    num_labelled: torch.Tensor | None = None,
    num_pairs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy plus the smoothing loss, summed over the stages.

    Each term is a sum divided by a count (labelled steps; pairs of neighbouring valid steps), so that
    micro-batches given the whole batch's counts add up to the batch's loss.

    Args:
        logits: (S, B, C, L) from `MultiStageTCN`.
        labels: (B, L), `IGNORE_LABEL` for unlabelled and padded steps.
        mask: (B, L), True for the steps of the videos.
        smoothing_weight: Weight of the smoothing term (the reference's 0.15).
        smoothing_clamp: Its squared differences are clamped there (tau^2, 16 in the reference).
        num_labelled: The labelled steps of the whole batch; None: those of `labels`.
        num_pairs: The neighbouring valid pairs of the whole batch; None: those of `mask`.
    """
    pair_mask = (mask[:, 1:] & mask[:, :-1]).to(logits.dtype)
    labelled = num_labelled if num_labelled is not None else (labels != IGNORE_LABEL).sum().clamp(min=1)
    pairs = num_pairs if num_pairs is not None else pair_mask.sum().clamp(min=1)
    total = logits.new_zeros(())
    for stage in logits.float():
        total = total + F.cross_entropy(stage, labels, ignore_index=IGNORE_LABEL, reduction="sum") / labelled
        log_probabilities = F.log_softmax(stage, dim=1)
        squared = (log_probabilities[:, :, 1:] - log_probabilities.detach()[:, :, :-1]) ** 2
        smooth = squared.clamp(min=0, max=smoothing_clamp).mean(dim=1) * pair_mask
        total = total + smoothing_weight * smooth.sum() / pairs
    return total
