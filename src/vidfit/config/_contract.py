"""The typed contract of a task: what `TaskSpec`'s callables take and give, checked by mypy in any package.

`vidfit.train` calls ``data_and_module`` and ``plan_step``; `vidfit.apps.predict` calls ``predict``. A task
written against these Protocols (the built-in ones are, and docs/PLUGINS.md's example) needs nothing else of
vidfit's insides. The types named here from the layers above (the checkpoint, the engine, the Lightning
module) are for the type checker only: nothing below `tasks/` imports them at run time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from vidfit.memory._step import Precision

if TYPE_CHECKING:
    import lightning as L

    from vidfit.config._load import Config
    from vidfit.infer._checkpoint import CheckpointState
    from vidfit.infer._engines import Engine
    from vidfit.infer._shards import Shard

# The entry points of `vidfit.train`, as Lightning names the stage each one runs.
Stage = Literal["fit", "validate", "test"]


class TaskData(Protocol):
    """What `vidfit.train` asks of a task's data module, a ``LightningDataModule`` (`vidfit.train.TaskDataModule`
    has all of it).

    Attributes:
        batch_size: Training samples per batch; None until auto-fit sets it (``data.batch_size: auto``).
    """

    batch_size: int | None

    @property
    def views(self) -> Sequence[str]:
        """The camera views the model takes, in order (auto-fit plans clips of them)."""
        ...

    @property
    def label_names(self) -> Sequence[str]:
        """The classes, in label-index order (auto-fit plans ``len(label_names)`` of them; empty without)."""
        ...

    def check(self, stage: Stage) -> None:
        """Builds the datasets `stage` reads, raising once with every problem (`ConfigError`, `ManifestError`)."""
        ...


class DataAndModule(Protocol):
    """``TaskSpec.data_and_module``: the data module and Lightning module of a run.

    The module keeps the model's weights under ``self.model`` (checkpoints hold them as ``model.*``, which
    `vidfit.infer.read_checkpoint` reads) and its hyper-parameters hold the run's config as plain data under
    ``config`` (``save_hyperparameters`` of a ``config: dict`` argument); `vidfit.train.GuardedModule` is its base.
    """

    def __call__(
        self, config: Config[Any, Any, Any], /, *, checkpoint: str | os.PathLike[str] | None, load: bool
    ) -> tuple[TaskData, L.LightningModule]:
        """A new module (`checkpoint` None), one checked against `checkpoint` (resuming), or one loaded from it.

        Args:
            config: The run, its sections the task's.
            checkpoint: The checkpoint to resume from (`load` False) or to evaluate (`load` True).
            load: Load the module's weights from `checkpoint` (validate, test).
        """
        ...


class PredictOutcome(Protocol):
    """What a task's ``predict`` returns: the command line prints `report_lines` and every failure."""

    @property
    def failures(self) -> Mapping[str, str]:
        """Per video id (or input), why it could not be processed; the others completed."""
        ...

    def report_lines(self) -> list[str]:
        """What the command line prints of the run, failures apart."""
        ...


@runtime_checkable
class ReportedOutcome(PredictOutcome, Protocol):
    """A `PredictOutcome` of predictions `vidfit report` reads (a predictions JSON, `vidfit.apps.write_report`).

    A dataclass (``@dataclass(frozen=True)``) with these fields: `vidfit.apps.predict` writes the HTML report
    of `json_path` beside it (``<stem>.html``) when `written`, and returns the result with `report_path` set
    (``dataclasses.replace``); `report_lines` then end with ``report: <report_path>``.
    """

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def json_path(self) -> Path:
        """The predictions JSON: ``results`` segments with ``frames``, and per video a ``vidfit`` record."""
        ...

    @property
    def written(self) -> bool:
        """Whether the outputs were written (not when no video could be predicted)."""
        ...

    @property
    def report_path(self) -> Path | None:
        """The report written beside `json_path`; None until written, or without one."""
        ...


class PredictFunction(Protocol):
    """``TaskSpec.predict``: a checkpoint of the task over videos, called by `vidfit.apps.predict`.

    The task's own options (``TaskSpec.predict_options``) are keyword-only parameters with defaults after
    these: `vidfit predict --option key=value` passes them.
    """

    def __call__(
        self,
        checkpoint: CheckpointState,
        inputs: Sequence[str | os.PathLike[str]],
        /,
        *,
        out: str | os.PathLike[str] = ...,
        overrides: Sequence[str],
        split: str | None,
        progress: bool,
        engine: Engine,
        shard: Shard | None,
    ) -> PredictOutcome:
        """Predicts every video of `inputs`; one video's failure is in the result, never the run's.

        Args:
            checkpoint: The checkpoint, read without the trainer.
            inputs: Video files, folders of them, or manifests (`vidfit.infer.expand_inputs`).
            out: Where results go; the task's default when `vidfit predict` has no ``--out``.
            overrides: ``section.key=value`` changes to the checkpoint's config.
            split: Only the manifest videos of this split.
            progress: Show a progress bar.
            engine: Where each video runs (`Engine.run`: this process, or Ray actors).
            shard: Only this shard's videos, written as `vidfit merge` joins them; None for all.
        """
        ...


class PlannedClips(Protocol):
    """The clips a plan step plans: what `vidfit plan` reports and the pre-flight check sizes."""

    @property
    def views(self) -> tuple[str, ...]: ...

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        ...

    @property
    def image_size_source(self) -> str:
        """Where `image_size` comes from, in words."""
        ...


class PlanStep(Protocol):
    """A task's training step at one configuration, measured or estimated (`vidfit.memory`).

    Attributes:
        checkpointing: Whether the config turns activation checkpointing on (the default of the grid).
        inputs: The planned clips.
    """

    checkpointing: bool

    @property
    def inputs(self) -> PlannedClips: ...

    def estimate(self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool) -> int:
        """Peak bytes of the step on fake CUDA tensors (`vidfit.memory.estimate_step_memory`)."""
        ...

    def measure(
        self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool, budget_bytes: int
    ) -> tuple[int | None, float | None]:
        """Peak bytes and samples/s on the current CUDA GPU, capped at the budget; Nones for an OOM."""
        ...

    def advice(self, *, num_frames: int, batch_size: int | None, precision: Precision, checkpointing: bool) -> str:
        """What to change when the step does not fit (`vidfit.memory.memory_advice`)."""
        ...


class PlanStepFunction(Protocol):
    """``TaskSpec.plan_step``: the step `vidfit plan`, ``data.batch_size: auto`` and the pre-flight check measure."""

    def __call__(
        self, config: Config[Any, Any, Any], /, *, views: tuple[str, ...] | None, num_classes: int | None
    ) -> PlanStep:
        """The planned step of `config`.

        Args:
            config: The run.
            views: The camera views; None: the config's or the data's.
            num_classes: The classes (``len(TaskData.label_names)`` under auto-fit); None: the data's.
        """
        ...
