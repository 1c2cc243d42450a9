"""`fit`, `validate` and `test`: a configured Lightning Trainer over the module and data module."""

from __future__ import annotations

import logging
import os
import signal
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import lightning as L
from lightning.pytorch.callbacks import LambdaCallback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from vidfit.config import Config, TaskData, resolve_precision, save_config
from vidfit.infer import check_weights, read_checkpoint
from vidfit.train._autofit import AutoFit
from vidfit.train._callbacks import InterruptCheckpoint, MemoryMonitor, ReportedEarlyStopping, ThroughputReport
from vidfit.train._preflight import check_fits_machine
from vidfit.train._runs import ResumableCSVLogger, claim_run_dir

# Written on Ctrl-C; resume with `vidfit fit --checkpoint <run>/checkpoints/interrupted.ckpt`.
INTERRUPT_CHECKPOINT = "interrupted.ckpt"


class _NoServiceTips(logging.Filter):
    """Drops Lightning's tips to install its cloud services (litlogger, litmodels), said at every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoServiceTips())


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


def _trainer(config: Config, *, run_dir: Path | None, loggers: list[Any] | bool) -> L.Trainer:
    trainer, train = config.trainer, config.train
    throughput = ThroughputReport(
        num_workers=config.data.num_workers,
        decode_backend=config.data.decode_backend,
        every_n_steps=trainer.log_every_n_steps,
    )
    callbacks: list[L.Callback] = [MemoryMonitor(every_n_steps=trainer.log_every_n_steps), throughput]
    if run_dir is not None:
        mode = "min" if train.monitor.endswith("loss") else "max"
        # AutoFit before the config saver, which records the batch it chose.
        autofit: AutoFit | None = None
        if config.data.batch_size == "auto":
            autofit = AutoFit(precision=resolve_precision(config))  # type: ignore[arg-type]
        callbacks += [
            *([autofit] if autofit is not None else []),
            ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=train.monitor, mode=mode),
            # `save_last` of the checkpoint above rewrites last.ckpt only when it saves a new best.
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints", filename=ModelCheckpoint.CHECKPOINT_NAME_LAST,
                save_on_train_epoch_end=True, enable_version_counter=False,
            ),
            InterruptCheckpoint(path=run_dir / "checkpoints" / INTERRUPT_CHECKPOINT),
            LearningRateMonitor(logging_interval="epoch"),
            _config_saver(config, run_dir / "config.yaml", autofit=autofit),
        ]  # fmt: skip
        if train.early_stopping_patience is not None:
            patience = train.early_stopping_patience
            callbacks.append(ReportedEarlyStopping(monitor=train.monitor, mode=mode, patience=patience))
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


def trainable_parameters(module: L.LightningModule) -> str:
    """``trainable parameters: N of M (p%)``: what frozen layers or LoRA leave to train."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def _config_saver(config: Config, path: Path, *, autofit: AutoFit | None) -> L.Callback:
    """Saves the config from rank 0 at `setup`, once every rank has joined the run.

    A file in the run folder any earlier would make the ranks started later (Lightning's launcher
    runs `fit` again in each) see the version as taken and log to the next one. With auto-fit, the
    saved config holds the batch and accumulation it chose, so the run can be repeated as it ran.
    """

    def save(trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        chosen = autofit.result if autofit is not None else None
        if chosen is None:
            save_config(config, path)
            return
        data = replace(config.data, batch_size=chosen.batch_size)
        train = replace(config.train, accumulate_grad_batches=chosen.accumulate_grad_batches)
        save_config(replace(config, data=data, train=train), path)

    return LambdaCallback(setup=save)


def fit(config: Config, *, resume_from: str | os.PathLike[str] | None = None) -> FitResult:
    """Trains from the config; `resume_from` continues a run from its checkpoint (same step and optimizer).

    The data of both splits is checked (every problem at once) before a run folder or the trainer
    exists. A resumed run logs into its own folder, after the history kept up to the checkpoint's step.
    """
    L.seed_everything(config.experiment.seed, workers=True)
    # Read whole: a bad file fails here, before any work, and the loop state gives the step to resume at.
    resume = read_checkpoint(resume_from, key="--checkpoint") if resume_from is not None else None
    data, module = _data_and_module(config, checkpoint=resume_from, load=False)
    if getattr(rank_zero_only, "rank", 0) == 0:
        logging.getLogger("vidfit").info(trainable_parameters(module))
    if resume is not None:  # before Lightning's load, whose refusal is a dump of every key
        check_weights(module.get_submodule("model"), resume, key="--checkpoint")
    data.check("fit")
    check_fits_machine(config)  # a clip too large for the machine is refused before a run folder exists
    run_dir = _resumed_run(resume.path) if resume is not None else None
    run_dir = run_dir or claim_run_dir(config.experiment.output_dir, config.experiment.name)
    where: dict[str, Any] = {"name": config.experiment.name, "version": run_dir.name}
    tensorboard = TensorBoardLogger(config.experiment.output_dir, **where)
    csv = ResumableCSVLogger(config.experiment.output_dir, **where, resuming=resume is not None)
    trainer = _trainer(config, run_dir=run_dir, loggers=[tensorboard, csv])
    with warnings.catch_warnings():
        # Both loggers share the run folder on purpose; the CSV logger's "not empty" warning is about the other.
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        # A task module augments on the device in this hook on purpose; its data module has none to override.
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer` in `LightningModule`")
        checkpoint = resume.path if resume is not None else None
        _interruptible(
            lambda: trainer.fit(module, datamodule=_lightning(data), ckpt_path=checkpoint, weights_only=True)
        )
    best, last = (callback for callback in trainer.checkpoint_callbacks if isinstance(callback, ModelCheckpoint))
    if resume is not None and last.best_model_path:
        _retire_interrupt_checkpoint(resume.path, last=Path(last.best_model_path))
    return FitResult(
        run_dir,
        Path(best.best_model_path) if best.best_model_path else None,
        Path(last.best_model_path) if last.best_model_path else None,
        float(best.best_model_score) if best.best_model_score is not None else None,
        {k: float(v) for k, v in trainer.callback_metrics.items()},
    )


def _resumed_run(checkpoint: Path) -> Path | None:
    """The run folder of ``<run>/checkpoints/*.ckpt``, so that a resumed run logs there; None elsewhere."""
    folder = checkpoint.resolve().parent
    if folder.name == "checkpoints" and folder.parent.name.startswith("version_"):
        return folder.parent
    return None


def _retire_interrupt_checkpoint(used: Path, *, last: Path) -> None:
    """Removes the ``interrupted.ckpt`` a run resumed from once the run has saved a newer checkpoint of its own.

    Left in place, it would offer to resume from a point the run has long passed. An interrupt of the
    resumed run writes a new one, newer than `last`, which stays.
    """
    if used.name != INTERRUPT_CHECKPOINT or not used.is_file() or not last.is_file():
        return
    if used.stat().st_mtime_ns < last.stat().st_mtime_ns:
        used.unlink()


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


def _evaluate(
    config: Config, checkpoint: str | os.PathLike[str], stage: Literal["validate", "test"]
) -> dict[str, float]:
    data, module = _data_and_module(config, checkpoint=checkpoint, load=True)
    data.check(stage)
    trainer = _trainer(config, run_dir=None, loggers=False)
    run = trainer.validate if stage == "validate" else trainer.test
    results = run(module, datamodule=_lightning(data), verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def _data_and_module(
    config: Config, *, checkpoint: str | os.PathLike[str] | None, load: bool
) -> tuple[TaskData, L.LightningModule]:
    """The task's data module (a LightningDataModule) and module: new, resumed (checked) or loaded from `checkpoint`."""
    spec = config.task
    data, module = spec.data_and_module(config, checkpoint=checkpoint, load=load)
    if not isinstance(data, L.LightningDataModule) or not isinstance(module, L.LightningModule):
        raise TypeError(
            f"task {spec.name!r}: data_and_module must give a LightningDataModule and a LightningModule, gave "
            f"{type(data).__name__} and {type(module).__name__}"
        )
    return data, module


def _lightning(data: TaskData) -> L.LightningDataModule:
    """The data module as the Trainer takes it (`_data_and_module` checked that it is one)."""
    return cast(L.LightningDataModule, data)
