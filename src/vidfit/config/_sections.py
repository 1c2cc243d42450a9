"""The sections every run has; a task adds its own `model` section and may extend `data` and `train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from vidfit.data import VideoDatasetConfig


@dataclass
class ExperimentConfig:
    """Names the run: logs and checkpoints go to ``output_dir/name/version_N``.

    Attributes:
        task: The registered task the run trains (``vidfit.config.task_names()``).
    """

    name: str = "vidfit"
    output_dir: str = "runs"
    seed: int = 0
    task: str = "action"


@dataclass(frozen=True)
class DataConfig(VideoDatasetConfig):
    """`VideoDatasetConfig`'s keys, plus the DataLoader settings that keep a GPU fed and the split names.

    `split`, `mode` and `seed` are set by vidfit for each split (from the split names and
    ``experiment.seed``), so they are not keys of the section; nor is `transform`, a callable for library
    users (a run config augments on the GPU: the action task's ``data.augment``), nor `multi_label`, which
    the task sets from its model (the action task's ``model.multi_label``), nor `data_dir` and `config_path`,
    the library's stand-ins for ``data.manifest`` and a config file.
    """

    NOT_CONFIG_KEYS: ClassVar[tuple[str, ...]] = (
        "split", "mode", "seed", "transform", "multi_label", "data_dir", "config_path"
    )  # fmt: skip

    batch_size: int | Literal["auto"] = 8
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    prefetch_factor: int | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"

    def dataset_config(self, **settings: Any) -> VideoDatasetConfig:
        """The `VideoDatasetConfig` part of this section, with `settings` (split, mode, seed, ...) replaced."""
        shared = {name: getattr(self, name) for name in VideoDatasetConfig.__dataclass_fields__}
        return VideoDatasetConfig(**(shared | settings))


@dataclass
class TrainConfig:
    """Optimization, memory, evaluation by chunks, and the CUDA speed settings (on by default).

    Attributes:
        monitor: The metric that picks the best checkpoint; one of the task's (the first by default).
    """

    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: Literal["none", "multistep", "cosine"] = "cosine"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: int = 0
    accumulate_grad_batches: int = 1
    memory_budget: str | None = None
    memory_margin: float = 0.1
    effective_batch_size: int | None = None
    early_stopping_patience: int | None = None
    monitor: str = ""
    chunk_infer_size: int = -1
    chunk_overlap: int = 0
    chunk_aggregation: Literal["mean", "max", "last", "prob"] = "mean"
    video_batch_size: int = 1
    channels_last: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True


@dataclass
class TrainerConfig:
    """Arguments of Lightning's `Trainer`; `precision: auto` is mixed precision on a GPU.

    An int ``limit_*_batches`` is a count of batches and a float a fraction of them, as Lightning reads them.
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Literal["auto", "32", "16-mixed", "bf16-mixed"] = "auto"
    max_epochs: int = 10
    max_steps: int = -1
    check_val_every_n_epoch: int = 1
    val_check_interval: float | None = None
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = None
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    limit_test_batches: int | float | None = None
    enable_progress_bar: bool = True
