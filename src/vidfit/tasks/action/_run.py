"""Action recognition's run: the data module and module of a config, new, resumed or loaded from a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

from vidfit.config import ConfigError, config_from_dict
from vidfit.infer import read_checkpoint
from vidfit.tasks.action._config import ActionConfig, ActionTrainConfig, with_keypoint_shape
from vidfit.tasks.action._datamodule import VideoDataModule
from vidfit.tasks.action._model import check_classifier_weights
from vidfit.tasks.action._module import VideoClassificationModule


def data_and_module(
    config: ActionConfig, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[VideoDataModule, VideoClassificationModule]:
    """The data module and module: new (`checkpoint` checked when resuming), or loaded from `checkpoint`."""
    data = VideoDataModule(config)
    config = with_keypoint_shape(config, data.keypoint_shape)  # model.num_keypoints: 0 is the files' K
    if checkpoint is None:
        module = VideoClassificationModule(
            config=config.to_dict(), label_names=data.label_names, views=data.views,
            frame_head_trained=data.frame_labels,
        )  # fmt: skip
        return data, module
    check_checkpoint(checkpoint, config=config, label_names=data.label_names, views=data.views)
    if load:
        return data, load_module(checkpoint, train=config.train)
    # Resuming: the checkpoint's weights replace the pretrained ones, which are not read.
    module = VideoClassificationModule(
        config=config.to_dict(), label_names=data.label_names, views=data.views, load_pretrained=False,
        frame_head_trained=data.frame_labels,
    )  # fmt: skip
    return data, module


def load_module(
    checkpoint: str | os.PathLike[str], *, train: ActionTrainConfig | None = None
) -> VideoClassificationModule:
    """A trained module from a Lightning checkpoint, on the CPU; tensors only are unpickled.

    The model's pretrained weights file is not read: the checkpoint holds all the weights.

    Args:
        checkpoint: The ``.ckpt`` file.
        train: Settings to evaluate with (chunked inference, precision) instead of the checkpoint's own.
    """
    state = read_checkpoint(checkpoint)  # whole: its weights are checked before Lightning loads them
    if state.task != "action":
        raise ConfigError(f"{checkpoint}: a checkpoint of experiment.task {state.task!r}; load it with load_sr_module")
    check_classifier_weights(state, config_from_dict(state.config, source=str(checkpoint)))
    module = VideoClassificationModule.load_from_checkpoint(
        Path(checkpoint), map_location="cpu", weights_only=True, load_pretrained=False
    )
    if train is not None:
        module.config.train = train
    return module


# Model keys that do not shape the classifier's weights: how they were initialized, are trained or are read.
_FREE_MODEL_KEYS = ("pretrained_path", "activation_checkpointing", "dropout", "thresholds")


def check_checkpoint(
    checkpoint: str | os.PathLike[str], *, config: ActionConfig, label_names: list[str], views: list[str]
) -> None:
    """Refuses a checkpoint of another task, model, label set or views than the config and its data describe."""
    state = read_checkpoint(checkpoint, weights=False)
    saved, task = state.hyper_parameters, state.task
    if task != config.experiment.task:
        raise ConfigError(
            f"{checkpoint}: a checkpoint of experiment.task {task!r}, but the config's experiment.task is "
            f"{config.experiment.task!r}"
        )
    if list(saved["label_names"]) != list(label_names):
        raise ConfigError(
            f"{checkpoint}: trained on labels {list(saved['label_names'])}, but the data has labels {label_names}"
        )
    if list(saved["views"]) != list(views):
        raise ConfigError(
            f"{checkpoint}: trained on views {list(saved['views'])} (in this order), but the data gives views {views}"
        )
    # Through the config loader, so that keys added since the checkpoint was written take their defaults
    # and older spellings (``resnet34``) their current names.
    trained = config_from_dict(saved["config"], source=str(checkpoint)).to_dict()["model"]
    wanted = config.to_dict()["model"]
    different = [
        f"model.{k}: checkpoint {trained.get(k)!r} vs config {v!r}"
        for k, v in wanted.items()
        if k not in _FREE_MODEL_KEYS and trained.get(k) != v
    ]
    if different:
        raise ConfigError(f"{checkpoint}: model differs from the config: " + "; ".join(different))
