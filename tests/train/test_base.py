"""`GuardedModule`: its guard made from its arguments, channels-last per layer, and the contract it checks."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from vidfit.config import config_from_dict
from vidfit.train import GuardedModule, channels_last


class _Mixed(nn.Module):
    """A 2-D convolution per frame, then a 3-D one over time: what a feature-then-temporal task holds."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = nn.Conv2d(3, 4, kernel_size=3)
        self.norm = nn.BatchNorm2d(4)
        self.time = nn.Conv3d(4, 4, kernel_size=(3, 1, 1))
        self.head = nn.Linear(4, 2)


class _Module(GuardedModule):
    def __init__(self, *, config: dict[str, Any]) -> None:
        super().__init__(config_from_dict(config, source="test"), memory_advice="lower data.num_frames")
        self.save_hyperparameters()
        self.model = _Mixed()


def _config() -> dict[str, Any]:
    return config_from_dict({"data": {"manifest": "unused.yaml"}}, source="test").to_dict()


def test_channels_last_takes_each_weight_by_its_dims() -> None:
    model = _Mixed()
    with pytest.raises(RuntimeError, match="channels_last_3d"):  # the whole-module conversion refuses 2-D layers
        _Mixed().to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    assert channels_last(model) is model
    assert model.time.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert model.frames.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.frames.weight.is_contiguous()  # really moved, not a tensor contiguous both ways
    assert model.head.weight.is_contiguous() and model.norm.running_mean.is_contiguous()
    video = torch.rand(2, 3, 6, 8, 8)  # (B, C, T, H, W)
    frames = model.frames(video.transpose(1, 2).flatten(0, 1))
    assert model.time(frames.view(2, 6, 4, 6, 6).transpose(1, 2)).shape == (2, 4, 4, 6, 6)


def test_setup_on_a_gpu_converts_per_layer() -> None:
    """The CUDA branch of `setup`, forced on the CPU: a module with 2-D layers trains on a GPU."""
    module = _Module(config=_config())
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda")))  # type: ignore[assignment]
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (cudnn.allow_tf32, cudnn.benchmark, matmul.allow_tf32)  # the global settings setup changes
    try:
        module.setup("fit")
    finally:
        cudnn.allow_tf32, cudnn.benchmark, matmul.allow_tf32 = saved
    assert module.model.time.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert module.model.frames.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_guard_is_made_from_the_arguments_over_the_trained_parameters() -> None:
    module = _Module(config=_config())
    module.model.head.requires_grad_(False)
    guard = module.guard
    assert guard is module.guard and guard.advice == "lower data.num_frames"
    trained = {id(p) for p in module.parameters() if p.requires_grad}
    assert {id(p) for p in guard.parameters} == trained and id(module.model.head.weight) not in trained


def test_a_module_without_its_model_or_config_is_refused_when_a_run_starts() -> None:
    class NoModel(GuardedModule):
        def __init__(self, *, config: dict[str, Any]) -> None:
            super().__init__(config_from_dict(config, source="test"), memory_advice="")
            self.save_hyperparameters()
            self.net = _Mixed()

    class NoConfig(GuardedModule):
        def __init__(self) -> None:
            super().__init__(config_from_dict({"data": {"manifest": "m.yaml"}}, source="test"), memory_advice="")
            self.model = _Mixed()

    cpu = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    for module, message in (
        (NoModel(config=_config()), r"NoModel keeps no model under self\.model"),
        (NoConfig(), r"NoConfig saves no hyper-parameter 'config'"),
    ):
        module._trainer = cpu  # type: ignore[assignment]
        with pytest.raises(TypeError, match=message):
            module.setup("fit")
