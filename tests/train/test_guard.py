"""The OOM guard and manual accumulation: split batches give the whole batch's gradients, nothing lost or doubled."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from tests.conftest import tiny_overrides
from vidfit.config import load_config
from vidfit.models import VideoClassifier
from vidfit.tasks.action import load_module
from vidfit.train import _run as run_module
from vidfit.train import fit
from vidfit.train._guard import OomGuard

ADVICE = "set model.activation_checkpointing: true"


def _linear_batch() -> tuple[nn.Linear, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return nn.Linear(5, 3), {"x": torch.randn(8, 5), "y": torch.randint(0, 3, (8,))}


def _compute(model: nn.Module, fits: int, calls: list[int]):  # type: ignore[no-untyped-def]
    """Summed cross-entropy over 8 samples; raises an OOM for micro-batches above `fits` samples."""

    def compute(part: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        calls.append(len(part["x"]))
        if len(part["x"]) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return nn.functional.cross_entropy(model(part["x"]), part["y"], reduction="sum") / 8, len(part["x"])

    return compute


def test_an_oom_redoes_the_batch_split_and_keeps_earlier_gradients() -> None:
    model, batch = _linear_batch()
    expected = nn.functional.cross_entropy(model(batch["x"]), batch["y"])
    expected.backward()
    whole = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    earlier = [torch.full_like(p, 0.5) for p in model.parameters()]
    for p, grad in zip(model.parameters(), earlier, strict=True):
        p.grad = grad.clone()
    guard, calls = OomGuard(list(model.parameters()), advice=ADVICE), []
    with pytest.warns(UserWarning, match="redoing the batch of 8 as 4 micro-batches"):
        result = guard.run(batch, batch_size=8, compute=_compute(model, 2, calls), backward=torch.Tensor.backward)
    assert calls == [8, 4, 2, 2, 2, 2] and result.outputs == [2, 2, 2, 2]
    assert (result.num_micro_batches, result.oom_retries) == (4, 2)
    assert torch.allclose(result.loss, expected.detach())
    for p, old, new in zip(model.parameters(), earlier, whole, strict=True):
        assert torch.allclose(p.grad, old + new, atol=1e-6)  # type: ignore[arg-type]
    calls.clear()
    guard.run(batch, batch_size=8, compute=_compute(model, 2, calls), backward=torch.Tensor.backward)
    assert calls == [2, 2, 2, 2]


def test_other_errors_pass_through_and_a_lone_clip_that_does_not_fit_says_what_to_change() -> None:
    model, batch = _linear_batch()
    guard = OomGuard(list(model.parameters()), advice=ADVICE)

    def broken(part: dict[str, torch.Tensor]) -> tuple[torch.Tensor, None]:
        model(part["x"]).sum().backward()
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        guard.run(batch, batch_size=8, compute=broken, backward=torch.Tensor.backward)
    assert all(p.grad is None for p in model.parameters())
    with (
        pytest.warns(UserWarning),
        pytest.raises(torch.OutOfMemoryError, match=r"even alone: set model\.activation_checkpointing: true"),
    ):
        guard.run(batch, batch_size=8, compute=_compute(model, 0, []), backward=torch.Tensor.backward)
    with pytest.raises(ValueError, match="num_micro_batches=0"):
        OomGuard([], advice=ADVICE, num_micro_batches=0)


def test_a_synchronized_batch_adds_to_earlier_gradients_and_cannot_be_redone() -> None:
    model, batch = _linear_batch()
    whole = torch.autograd.grad(nn.functional.cross_entropy(model(batch["x"]), batch["y"]), model.weight)[0]
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    seen: list[torch.Tensor] = []

    def backward(loss: torch.Tensor) -> None:
        # What DDP's all-reduce would carry: the gradient as it stands after this backward.
        loss.backward()
        seen.append(next(model.parameters()).grad.clone())  # type: ignore[union-attr]

    guard = OomGuard(list(model.parameters()), advice=ADVICE)
    guard.run(batch, batch_size=8, compute=_compute(model, 8, []), backward=backward, synchronized=True)
    assert torch.allclose(seen[-1], 0.5 + whole, atol=1e-6)
    with pytest.raises(torch.OutOfMemoryError, match="all-reduced across ranks, which cannot be redone"):
        guard.run(batch, batch_size=8, compute=_compute(model, 2, []), backward=backward, synchronized=True)
    assert guard.num_micro_batches == 1


def test_a_batch_smaller_than_the_kept_split_runs_clip_by_clip() -> None:
    model, batch = _linear_batch()
    guard, calls = OomGuard(list(model.parameters()), advice=ADVICE, num_micro_batches=4), []
    small = {key: value[:3] for key, value in batch.items()}
    result = guard.run(small, batch_size=3, compute=_compute(model, 2, calls), backward=torch.Tensor.backward)
    assert calls == [1, 1, 1] and result.num_micro_batches == 3
    assert guard.num_micro_batches == 4


class _FrozenBatchNorm(L.Callback):
    """BatchNorm in eval mode, so that batch statistics do not depend on how a batch is split."""

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm3d):
                layer.eval()


def _one_step(manifest: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> list[torch.Tensor]:
    original = run_module._trainer

    def trainer(config, **kwargs):  # type: ignore[no-untyped-def]
        made = original(config, **kwargs)
        made.callbacks.append(_FrozenBatchNorm())
        return made

    monkeypatch.setattr(run_module, "_trainer", trainer)
    settings = ("train.optimizer=sgd", "train.momentum=0", "train.weight_decay=0", "train.lr=0.5")
    overrides = tiny_overrides(manifest, out, "trainer.max_steps=1", "data.sampling=uniform", *settings, *extra)
    result = fit(load_config(None, overrides))
    assert result.last_checkpoint is not None
    return [p.detach() for p in load_module(result.last_checkpoint).parameters()]


def test_accumulated_and_oom_split_steps_equal_the_whole_batch_step(
    tiny_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _one_step(tiny_manifest, tmp_path / "a", monkeypatch, "data.batch_size=4")
    accumulated = _one_step(
        tiny_manifest, tmp_path / "b", monkeypatch, "data.batch_size=2", "train.accumulate_grad_batches=2"
    )
    forward = VideoClassifier.forward

    def small_memory(self: VideoClassifier, video: torch.Tensor | None, *args: object, **kwargs: object) -> object:
        if video is not None and len(video) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(self, video, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(VideoClassifier, "forward", small_memory)
    with pytest.warns(UserWarning, match="as 2 micro-batches"):
        split = _one_step(tiny_manifest, tmp_path / "c", monkeypatch, "data.batch_size=4")
    for a, b, c in zip(whole, accumulated, split, strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)
    checkpoint = torch.load(next((tmp_path / "c").rglob("last.ckpt")), weights_only=True)
    assert checkpoint["vidfit_micro_batches"] == 4
