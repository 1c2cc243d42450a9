"""MS-TCN: shapes, padding that changes nothing, its receptive field, and its loss."""

from __future__ import annotations

import pytest
import torch

from vidfit.data import IGNORE_LABEL
from vidfit.tasks.temporal._mstcn import MultiStageTCN, mstcn_loss


def _model(**sizes: int) -> MultiStageTCN:
    torch.manual_seed(0)
    settings = {"in_channels": 6, "num_classes": 3, "channels": 8, "num_stages": 2, "num_layers": 3} | sizes
    return MultiStageTCN(**settings, dropout=0.0).eval()


def test_every_stage_gives_logits_of_every_step() -> None:
    out = _model()(torch.randn(2, 6, 20), torch.ones(2, 20, dtype=torch.bool))
    assert out.shape == (2, 2, 3, 20)


def test_a_video_in_a_padded_batch_gets_what_it_gets_alone() -> None:
    model = _model()
    short, long = torch.randn(1, 6, 13), torch.randn(1, 6, 20)
    batch = torch.zeros(2, 6, 20)
    batch[0, :, :13], batch[1] = short[0], long[0]
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :13], mask[1] = True, True
    together = model(batch, mask)
    torch.testing.assert_close(together[:, 0, :, :13], model(short, mask[:1, :13])[:, 0])
    torch.testing.assert_close(together[:, 1], model(long, mask[1:])[:, 0])
    assert bool((together[:, 0, :, 13:] == 0).all())


def test_receptive_field_reaches_as_far_as_the_dilations_say() -> None:
    model = _model(num_layers=3, num_stages=1)
    assert model.receptive_field == 15
    features = torch.zeros(1, 6, 40, requires_grad=True)
    model(features, torch.ones(1, 40, dtype=torch.bool))[0, 0, :, 20].sum().backward()
    assert features.grad is not None
    reached = features.grad.abs().sum(dim=1)[0].nonzero().flatten()
    assert (int(reached.min()), int(reached.max())) == (20 - 7, 20 + 7)


def test_smoothing_term_penalizes_flicker() -> None:
    labels = torch.zeros(1, 8, dtype=torch.long)
    mask = torch.ones(1, 8, dtype=torch.bool)
    steady = torch.zeros(1, 1, 2, 8)
    steady[..., 0, :] = 2.0
    flicker = steady.clone()
    flicker[..., 0, 1::2] = -2.0  # every other step leans to class 1
    no_smoothing = {"smoothing_weight": 0.0}
    assert float(mstcn_loss(steady, labels, mask, **no_smoothing)) < float(
        mstcn_loss(flicker, labels, mask, **no_smoothing)
    )
    gap = mstcn_loss(flicker, labels, mask) - mstcn_loss(flicker, labels, mask, **no_smoothing)
    assert float(gap) > 0
    assert float(mstcn_loss(steady, labels, mask) - mstcn_loss(steady, labels, mask, **no_smoothing)) == pytest.approx(
        0
    )


def test_micro_batches_given_the_batch_counts_add_up_to_the_batch_loss() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 3, 10)
    labels = torch.randint(0, 3, (4, 10))
    mask = torch.ones(4, 10, dtype=torch.bool)
    mask[2, 6:], labels[2, 6:], labels[0, :3] = False, IGNORE_LABEL, IGNORE_LABEL
    counts = {
        "num_labelled": (labels != IGNORE_LABEL).sum(),
        "num_pairs": (mask[:, 1:] & mask[:, :-1]).sum(),
    }
    whole = mstcn_loss(logits, labels, mask)
    parts = sum(mstcn_loss(logits[:, s], labels[s], mask[s], **counts) for s in (slice(0, 2), slice(2, 4)))
    torch.testing.assert_close(parts, whole)


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="dropout"):
        MultiStageTCN(in_channels=4, num_classes=2, dropout=1.0)
