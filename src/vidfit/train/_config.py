"""The run configuration in the seeds' YAML shape (experiment, model, data, train, trainer), checked strictly."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from vidfit.train._config_rules import config_problems, fill_task_defaults


class ConfigError(ValueError):
    """A configuration that cannot run: names the file, the key, the value and what is allowed."""


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
    views: list[str] | None = None
    load_rgb: bool = True
    load_kpt: bool = False
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


# The seeds wrote precision as 16, "fp16" or "bf16"; Lightning's names are what vidfit keeps.
_PRECISION_ALIASES = {16: "16-mixed", "16": "16-mixed", "fp16": "16-mixed", "bf16": "bf16-mixed", 32: "32"}


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Reads a YAML config (or the defaults when `path` is None) and applies ``section.key=value`` overrides.

    Everything is checked before any work starts: `ConfigError` names the file, the key and the
    allowed keys or values. Relative paths in the file are taken from the config file's folder.
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
    """Builds a `Config` from plain data and ``section.key=value`` overrides, checking every section, key and value."""
    document = copy.deepcopy(document)
    for override in overrides:
        _apply_override(document, override, source)
    fill_task_defaults(document)
    hints = typing.get_type_hints(Config)
    values = {}
    for name, section in document.items():
        if name not in hints:
            raise ConfigError(f"{source}: unknown section {name!r}; allowed: {', '.join(hints)}")
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping, got {section!r}")
        values[name] = _build_section(hints[name], section, f"{source}: {name}")
    config = Config(**values)
    problems = config_problems(config)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return config


def _build_section(cls: type, section: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in section.items():
        if key not in hints:
            raise ConfigError(f"{where}.{key}: unknown key; allowed: {', '.join(hints)}")
        if key == "precision" and value in _PRECISION_ALIASES:
            value = _PRECISION_ALIASES[value]
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple) or (origin is tuple and len(value) != len(args)):
            raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")
        kinds = args if origin is tuple else (args[0],) * len(value)
        coerced = [_coerce(item, kind, where) for item, kind in zip(value, kinds, strict=True)]
        return tuple(coerced) if origin is tuple else coerced
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}={value!r} must be {_describe(annotation)}")


def _describe(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is None:
        return str(getattr(annotation, "__name__", annotation))
    if origin is Literal:
        return " or ".join(map(repr, args))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    return str(annotation).replace("typing.", "")


def _resolve_paths(document: dict[str, Any], folder: Path) -> None:
    for section, key in (
        ("data", "manifest"),
        ("data", "cache_dir"),
        ("model", "pretrained_path"),
        ("train", "teacher"),
    ):
        values = document.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            values[key] = str(folder / value)  # type: ignore[index]


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
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    temporary.replace(target)
    return target
