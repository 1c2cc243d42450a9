"""`fit`, `validate` and `test`: a configured Lightning Trainer over the module and data module."""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LambdaCallback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from vidfit.train._autofit import AutoFit
from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ThroughputMonitor
from vidfit.train._config import Config, ConfigError, save_config
from vidfit.train._datamodule import VideoDataModule
from vidfit.train._module import VideoClassificationModule
from vidfit.train._sr import checkpoint_task
from vidfit.train._sr_data import sr_data_and_module


@dataclass(frozen=True)
class FitResult:
    """Where a training run left its work.

    Attributes:
        run_dir: The run's folder: resolved config, checkpoints, TensorBoard and CSV logs.
        best_checkpoint: The checkpoint with the best monitored metric, if any was saved.
        last_checkpoint: The checkpoint at the end of training (resumable).
        best_score: The best value of `train.monitor`.
        metrics: The last logged value of every metric.
    """

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_score: float | None
    metrics: dict[str, float]


def resolve_precision(config: Config) -> str:
    """`trainer.precision: auto` is bf16-mixed (or 16-mixed) on a CUDA GPU and 32 elsewhere."""
    precision = config.trainer.precision
    if precision != "auto":
        return precision
    if config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


def _trainer(config: Config, *, run_dir: Path | None, loggers: list[Any] | bool) -> L.Trainer:
    trainer, train = config.trainer, config.train
    callbacks: list[L.Callback] = [MemoryMonitor(every_n_steps=max(1, trainer.log_every_n_steps)), ThroughputMonitor()]
    if run_dir is not None:
        mode = "min" if train.monitor.endswith("loss") else "max"
        callbacks += [
            ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=train.monitor, mode=mode, save_last=True),
            InterruptCheckpoint(run_dir / "checkpoints" / "interrupted.ckpt"),
            LearningRateMonitor(logging_interval="epoch"),
            _config_saver(config, run_dir / "config.yaml"),
        ]
        if config.data.batch_size == "auto":
            callbacks.append(AutoFit(precision=resolve_precision(config)))  # type: ignore[arg-type]
        if train.early_stopping_patience is not None:
            callbacks.append(EarlyStopping(monitor=train.monitor, mode=mode, patience=train.early_stopping_patience))
    optional = {k: v for k, v in asdict(trainer).items() if k.startswith("limit_") or k == "val_check_interval"}
    return L.Trainer(
        accelerator=trainer.accelerator, devices=trainer.devices, num_nodes=trainer.num_nodes,
        strategy=trainer.strategy, precision=resolve_precision(config),  # type: ignore[arg-type]
        max_epochs=trainer.max_epochs, max_steps=trainer.max_steps,
        check_val_every_n_epoch=trainer.check_val_every_n_epoch, log_every_n_steps=trainer.log_every_n_steps,
        enable_progress_bar=trainer.enable_progress_bar,
        logger=loggers, callbacks=callbacks, default_root_dir=config.experiment.output_dir,
        **{k: v for k, v in optional.items() if v is not None},
    )  # fmt: skip


def _config_saver(config: Config, path: Path) -> L.Callback:
    """Saves the config from rank 0 at `setup`, once every rank has joined the run.

    A file in the run folder any earlier would make the ranks started later (Lightning's launcher
    runs `fit` again in each) see the version as taken and log to the next one.
    """

    def save(trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            save_config(config, path)

    return LambdaCallback(setup=save)


def fit(config: Config, *, resume_from: str | os.PathLike[str] | None = None) -> FitResult:
    """Trains from the config; `resume_from` continues a run from its checkpoint (same step and optimizer)."""
    L.seed_everything(config.experiment.seed, workers=True)
    data, module = _data_and_module(config, checkpoint=resume_from, load=False)
    tensorboard = TensorBoardLogger(
        config.experiment.output_dir, name=config.experiment.name, version=_run_version(resume_from)
    )
    run_dir = Path(tensorboard.log_dir)
    csv = CSVLogger(config.experiment.output_dir, name=config.experiment.name, version=tensorboard.version)
    trainer = _trainer(config, run_dir=run_dir, loggers=[tensorboard, csv])
    resume = Path(resume_from) if resume_from is not None else None
    with warnings.catch_warnings():
        # Both loggers share the run folder on purpose; the CSV logger's "not empty" warning is about the other.
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        _interruptible(lambda: trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True))
    checkpoint = trainer.checkpoint_callback
    assert isinstance(checkpoint, ModelCheckpoint)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    last = Path(checkpoint.last_model_path) if checkpoint.last_model_path else None
    score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
    return FitResult(run_dir, best, last, score, {k: float(v) for k, v in trainer.callback_metrics.items()})


def _run_version(resume_from: str | os.PathLike[str] | None) -> str | None:
    """The run folder's name when resuming from ``<run>/checkpoints/*.ckpt``, so logs continue there."""
    if resume_from is None:
        return None
    folder = Path(resume_from).resolve().parent
    return folder.parent.name if folder.name == "checkpoints" and folder.parent.name.startswith("version_") else None


def _interruptible(call: Callable[[], object]) -> None:
    """Runs a Trainer entry point and turns its Ctrl-C exit back into KeyboardInterrupt.

    Lightning answers Ctrl-C by running the `on_exception` hooks (`InterruptCheckpoint` saves there),
    ignoring SIGINT while it shuts down and calling ``sys.exit(1)``; callers should see the interrupt
    and get Ctrl-C back.
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        call()
    except SystemExit as exit_:
        if not isinstance(exit_.__context__, KeyboardInterrupt):
            raise
        signal.signal(signal.SIGINT, handler)
        raise KeyboardInterrupt from exit_


def validate(config: Config, *, checkpoint: str | os.PathLike[str]) -> dict[str, float]:
    """Scores a checkpoint on the validation split."""
    return _evaluate(config, checkpoint, "validate")


def test(config: Config, *, checkpoint: str | os.PathLike[str]) -> dict[str, float]:
    """Scores a checkpoint on the test split."""
    return _evaluate(config, checkpoint, "test")


def _evaluate(config: Config, checkpoint: str | os.PathLike[str], stage: str) -> dict[str, float]:
    data, module = _data_and_module(config, checkpoint=checkpoint, load=True)
    trainer = _trainer(config, run_dir=None, loggers=False)
    run = trainer.validate if stage == "validate" else trainer.test
    results = run(module, datamodule=data, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def _data_and_module(
    config: Config, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The task's data module and module: new (`checkpoint` checked when resuming), or loaded from `checkpoint`."""
    if config.experiment.task == "super_resolution":
        return sr_data_and_module(config, checkpoint=checkpoint, load=load)
    data = VideoDataModule(config)
    if checkpoint is not None:
        check_checkpoint(checkpoint, config, data.label_names)
    if load and checkpoint is not None:
        return data, load_module(checkpoint)
    return data, VideoClassificationModule(config=config.to_dict(), label_names=data.label_names, views=data.views)


def load_module(checkpoint: str | os.PathLike[str]) -> VideoClassificationModule:
    """A trained module from a Lightning checkpoint, on the CPU; tensors only are unpickled."""
    task = checkpoint_task(checkpoint)
    if task != "action":
        raise ConfigError(f"{checkpoint}: a checkpoint of experiment.task {task!r}; load it with load_sr_module")
    return VideoClassificationModule.load_from_checkpoint(Path(checkpoint), map_location="cpu", weights_only=True)


def read_hyperparameters(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The config, label names and views a checkpoint was trained with."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "hyper_parameters" not in state:
        raise ConfigError(f"{path}: not a vidfit checkpoint (no hyper_parameters)")
    return dict(state["hyper_parameters"])


def check_checkpoint(checkpoint: str | os.PathLike[str], config: Config, label_names: list[str]) -> None:
    """Refuses a checkpoint of another model or label set than the config and its data describe."""
    saved = read_hyperparameters(checkpoint)
    if list(saved["label_names"]) != list(label_names):
        raise ConfigError(
            f"{checkpoint}: trained on labels {list(saved['label_names'])}, but the data has labels {label_names}"
        )
    trained, wanted = saved["config"]["model"], config.to_dict()["model"]
    # The ESPCN's keys do not shape an action model, and checkpoints older than them lack them.
    wanted = {k: v for k, v in wanted.items() if k not in ("scale", "espcn_features")}
    different = [
        f"model.{k}: checkpoint {trained.get(k)!r} vs config {v!r}" for k, v in wanted.items() if trained.get(k) != v
    ]
    if different:
        raise ConfigError(f"{checkpoint}: model differs from the config: " + "; ".join(different))
