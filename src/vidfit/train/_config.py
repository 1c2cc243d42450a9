"""The run configuration in the seeds' YAML shape (experiment, model, data, train, trainer), checked strictly."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from vidfit.data import OnError, Tail, VideoDatasetConfig
from vidfit.io import Backend, write_text_atomic
from vidfit.train._config_rules import config_problems, fill_task_defaults
from vidfit.train._config_values import ConfigError, build_section

# `action`: clip and per-frame classification; `super_resolution`: ESPCN upscaling of the centre frame.
Task = Literal["action", "super_resolution"]
TASKS: tuple[str, ...] = get_args(Task)


@dataclass
class ExperimentConfig:
    """Names the run: logs and checkpoints go to ``output_dir/name/version_N``."""

    name: str = "vidfit"
    output_dir: str = "runs"
    seed: int = 0
    task: Task = "action"


@dataclass
class ModelConfig:
    """Arguments of `vidfit.models.build_classifier`."""

    backbone: str = "r3d_18"
    view_fusion: Literal["early", "late"] = "late"
    input_type: Literal["rgb", "kpt", "rgb_kpt"] = "rgb"
    num_keypoints: int = 0
    keypoint_dims: int = 0
    activation_checkpointing: bool = False
    pretrained_path: str | None = None
    dropout: float = 0.0
    # super_resolution: `vidfit.models.build_espcn` (its num_frames is data.num_frames).
    scale: Literal[2, 3, 4] = 4
    espcn_features: tuple[int, int] = (64, 32)


@dataclass
class DataConfig:
    """What `VideoDataset` loads, and the DataLoader settings that keep a GPU fed."""

    manifest: str = ""
    batch_size: int | Literal["auto"] = 8
    num_workers: int = 4
    num_frames: int = 16
    image_size: tuple[int, int] | None = None
    sampling: Literal["random", "uniform", "consecutive"] = "random"
    frame_stride: int = 1
    max_video_frames: int | None = None
    chunk_overlap_frames: int = 0
    tail: Tail = "keep"
    min_tail_frames: int | None = None
    views: list[str] | None = None
    load_rgb: bool = True
    load_kpt: bool = False
    sync_tolerance_seconds: float = 0.1
    decode_backend: Backend = "pyav"
    on_error: OnError = "raise"
    report_path: str | None = None
    pin_memory: bool = True
    persistent_workers: bool = True
    prefetch_factor: int | None = None
    cache_dir: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    # super_resolution: high-resolution patch side in pixels, and patches cut from each chunk per epoch.
    patch_size: int = 96
    patches_per_chunk: int = 8

    def dataset_config(self, **settings: Any) -> VideoDatasetConfig:
        """A `VideoDatasetConfig` of this section's keys that it shares (same names), plus `settings`.

        Raises:
            ValueError: From `VideoDatasetConfig`'s own checks, naming the field and the allowed values.
        """
        shared = {f.name for f in dataclasses.fields(VideoDatasetConfig)} - settings.keys()
        values = {name: getattr(self, name) for name in shared if hasattr(self, name)}
        if values.get("views") is not None:
            values["views"] = tuple(values["views"])
        return VideoDatasetConfig(**values, **settings)


@dataclass
class TrainConfig:
    """Optimization, evaluation by chunks, and the CUDA speed settings (on by default)."""

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
    frame_loss_weight: float = 0.5
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None
    monitor: Literal["val/acc", "val/frame_acc", "val/loss", "val/psnr", "val/ssim"] = "val/acc"
    # super_resolution: distil from this checkpoint, weighting its output against the ground truth.
    teacher: str | None = None
    distill_weight: float = 0.5
    chunk_infer_size: int = -1
    chunk_overlap: int = 0
    chunk_aggregation: Literal["mean", "max", "last", "prob"] = "mean"
    video_batch_size: int = 1
    channels_last: bool = True
    tf32: bool = True
    cudnn_benchmark: bool = True


@dataclass
class TrainerConfig:
    """Arguments of Lightning's `Trainer`; `precision: auto` is mixed precision on a GPU."""

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
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    limit_test_batches: float | None = None
    enable_progress_bar: bool = True


@dataclass
class Config:
    """A whole run, section by section."""

    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), as saved in YAML and checkpoints."""
        # Through JSON, so every tuple field (image_size, espcn_features, ...) comes back a list.
        document: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return document


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a YAML config (or the defaults when `path` is None) and applies ``section.key=value`` overrides.

    Everything is checked before any work starts: `ConfigError` names the file, the key and the
    allowed keys or values. Relative paths in the file are taken from the config file's folder, those
    of overrides from the working directory; the config holds them absolute, so a saved config loads
    from anywhere.
    """
    source = str(path) if path is not None else "<defaults>"
    document: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{source}: cannot read the config: {error}") from error
        document = loaded or {}
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(document).__name__}")
        _resolve_paths(document, Path(path).parent)
    return config_from_dict(document, source=source, overrides=overrides)


def config_from_dict(
    document: dict[str, Any], *, source: str = "<dict>", overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Builds a `Config` from plain data and ``section.key=value`` overrides, checking every section, key and value.

    Relative paths are taken from the working directory.
    """
    document = copy.deepcopy(document)
    for override in overrides:
        _apply_override(document, override, source)
    _resolve_paths(document, Path.cwd())
    fill_task_defaults(document)
    hints = typing.get_type_hints(Config)
    values = {}
    for name, section in document.items():
        if name not in hints:
            raise ConfigError(f"{source}: unknown section {name!r}; allowed: {', '.join(hints)}")
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping, got {section!r}")
        values[name] = build_section(hints[name], section, f"{source}: {name}")
    config = Config(**values)
    problems = config_problems(config)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return config


def _resolve_paths(document: dict[str, Any], folder: Path) -> None:
    for section, key in (
        ("data", "manifest"),
        ("data", "cache_dir"),
        ("data", "report_path"),
        ("model", "pretrained_path"),
        ("train", "teacher"),
    ):
        values = document.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            values[key] = str((folder / value).resolve())  # type: ignore[index]


def _apply_override(document: dict[str, Any], override: str, source: str) -> None:
    key, equals, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not equals or not dot or not section or not name:
        raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. train.lr=0.01")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML: {error}") from error
    target = document.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping")
    target[name] = value


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Writes the resolved config as YAML, atomically."""
    return write_text_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
