"""The temporal task's run: the data module and module of a config, new, resumed or loaded from a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vidfit.config import ConfigError, config_from_dict
from vidfit.infer import CheckpointState, check_weights, read_checkpoint
from vidfit.tasks.temporal._config import TemporalConfig
from vidfit.tasks.temporal._datamodule import TemporalDataModule
from vidfit.tasks.temporal._model import TemporalNet
from vidfit.tasks.temporal._module import TemporalModule

# Settings of a feature folder that change what its features mean: a model trained on one reads no other.
FEATURE_KEYS = ("backbone", "checkpoint_sha256", "pretrained", "window", "stride", "frame_stride", "image_size",
                "views", "fused", "feature_dim")  # fmt: skip


def data_and_module(
    config: TemporalConfig, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[TemporalDataModule, TemporalModule]:
    """The data module and module: new (`checkpoint` checked when resuming), or loaded from `checkpoint`."""
    data = TemporalDataModule(config)
    if checkpoint is not None:
        state = read_checkpoint(checkpoint, weights=False)
        check_checkpoint(state, config=config, label_names=data.label_names)
        check_features(state, data.index.settings, where=f"data.features={config.data.features!r}")
        if load:
            return data, load_module(checkpoint, config=config)
    module = TemporalModule(
        config=config.to_dict(), label_names=data.label_names, feature_dim=data.index.feature_dim,
        features=data.index.settings,
    )  # fmt: skip
    return data, module


def require_temporal(state: CheckpointState) -> TemporalConfig:
    """The config of a temporal checkpoint; `ConfigError` for another task's."""
    if state.task != "temporal":
        raise ConfigError(f"{state.path}: a checkpoint of experiment.task {state.task!r}, not 'temporal'")
    return config_from_dict(state.config, source=str(state.path))


def check_checkpoint(state: CheckpointState, *, config: TemporalConfig, label_names: list[str]) -> None:
    """Refuses a checkpoint of another task, label set or model than the config and its data describe."""
    trained = require_temporal(state)
    saved = list(state.hyper_parameters["label_names"])
    if saved != list(label_names):
        raise ConfigError(f"{state.path}: trained on labels {saved}, but the data has labels {label_names}")
    keys = ("head", "channels", "num_stages", "num_layers", "num_levels")
    different = [
        f"model.{k}: checkpoint {getattr(trained.model, k)!r} vs config {getattr(config.model, k)!r}"
        for k in keys
        if getattr(trained.model, k) != getattr(config.model, k)
    ]
    if different:
        raise ConfigError(f"{state.path}: model differs from the config: " + "; ".join(different))


def check_features(state: CheckpointState, settings: dict[str, Any], *, where: str) -> None:
    """Refuses features made otherwise (backbone, weights, window, stride, views) than those the model learnt on."""
    trained = state.hyper_parameters["features"]
    different = [
        f"{k}: {trained.get(k)!r} vs {settings.get(k)!r}" for k in FEATURE_KEYS if trained.get(k) != settings.get(k)
    ]
    if different:
        raise ConfigError(
            f"{where}: features made otherwise than those {state.path} was trained on ({'; '.join(different)}): "
            "extract them with the same checkpoint or config, --window and --stride"
        )


def load_module(checkpoint: str | os.PathLike[str], *, config: TemporalConfig | None = None) -> TemporalModule:
    """A trained module from a checkpoint, on the CPU; tensors only are unpickled, the weights checked first."""
    state = read_checkpoint(checkpoint)
    trained = require_temporal(state)
    hyper = state.hyper_parameters
    with torch.device("meta"):
        net = TemporalNet(trained.model, in_channels=int(hyper["feature_dim"]), label_names=hyper["label_names"])
    check_weights(net, state)
    module = TemporalModule.load_from_checkpoint(Path(checkpoint), map_location="cpu", weights_only=True)
    if config is not None:
        module.config.train = config.train
    return module
