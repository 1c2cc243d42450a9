"""The rules of a run configuration that types alone do not say; a task adds its own (`TaskSpec.problems`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch.accelerators import AcceleratorRegistry

from vidfit.memory._report import parse_bytes

if TYPE_CHECKING:
    from vidfit.config._load import Config


def config_problems(config: Config) -> list[str]:
    """What is wrong with a config beyond types: ranges, and rules between keys; empty when it can run."""
    rules = _data_rules(config) + _train_rules(config) + _optimization_rules(config) + _trainer_rules(config)
    return [message for ok, message in rules + _upper_bounds(config) if not ok] + config.task.problems(config)


# Upper bounds of counts: far above any real run, low enough that a typo (a batch of 10**12 clips, 10**12
# epochs) is refused with the config instead of running for hours before it fails. The dataset's own keys
# (frames, image size, views, chunk length) are bounded by `VideoDatasetConfig`.
UPPER_BOUNDS: dict[tuple[str, str], int] = {
    ("data", "batch_size"): 4096,  # clips per device and step
    ("data", "num_workers"): 256,
    ("data", "prefetch_factor"): 64,
    ("train", "accumulate_grad_batches"): 65536,
    ("train", "effective_batch_size"): 1_000_000,
    ("train", "video_batch_size"): 4096,
    ("train", "chunk_infer_size"): 1_000_000,
    ("train", "warmup_epochs"): 1_000_000,
    ("trainer", "max_epochs"): 1_000_000,
    ("trainer", "max_steps"): 1_000_000_000,
    ("trainer", "num_nodes"): 10_000,
    ("trainer", "check_val_every_n_epoch"): 1_000_000,
    ("trainer", "log_every_n_steps"): 1_000_000,
}


def _upper_bounds(config: Config) -> list[tuple[bool, str]]:
    values = {(section, key): getattr(getattr(config, section), key) for section, key in UPPER_BOUNDS}
    return [
        (not isinstance(value, int) or value <= UPPER_BOUNDS[where], f"{'.'.join(where)}={value} must be <= "
         f"{UPPER_BOUNDS[where]}")
        for where, value in values.items()
    ]  # fmt: skip


def _data_rules(config: Config) -> list[tuple[bool, str]]:
    data, train, spec = config.data, config.train, config.task
    return [
        (data.manifest != "", "data.manifest is required: the manifest of the videos to train on"),
        (data.batch_size == "auto" or data.batch_size >= 1, f"data.batch_size={data.batch_size} must be >= 1"),
        (
            data.batch_size != "auto" or (train.memory_budget is not None and train.effective_batch_size is not None),
            "data.batch_size: auto needs train.memory_budget (e.g. 16GiB) and train.effective_batch_size (the "
            "clips per optimizer step to keep through accumulation)",
        ),
        (
            data.batch_size != "auto" or spec.plan_step is not None,
            f"data.batch_size: auto is not supported for experiment.task: {spec.name}; give a number",
        ),
        (data.num_workers >= 0, f"data.num_workers={data.num_workers} must be >= 0"),
        (
            data.prefetch_factor is None or data.prefetch_factor >= 1,
            f"data.prefetch_factor={data.prefetch_factor} must be >= 1 or null",
        ),
        (_at_least(data.max_video_frames, 1), f"data.max_video_frames={data.max_video_frames} must be >= 1 or null"),
        (_at_least(data.min_tail_frames, 1), f"data.min_tail_frames={data.min_tail_frames} must be >= 1 or null"),
        (
            data.chunk_overlap_frames >= 0 and (data.chunk_overlap_frames < (data.max_video_frames or 2**63)),
            f"data.chunk_overlap_frames={data.chunk_overlap_frames} must be >= 0"
            + (f" and < data.max_video_frames={data.max_video_frames}" if data.max_video_frames else ""),
        ),
        (
            data.sync_tolerance_seconds >= 0,
            f"data.sync_tolerance_seconds={data.sync_tolerance_seconds} must be >= 0",
        ),
    ]


def _train_rules(config: Config) -> list[tuple[bool, str]]:
    train, monitors = config.train, config.task.monitors
    chunked = train.chunk_infer_size != -1
    return [
        (
            train.monitor in monitors,
            f"train.monitor={train.monitor!r} is not one of {', '.join(map(repr, monitors))} "
            f"for experiment.task: {config.experiment.task}",
        ),
        (
            train.effective_batch_size is None or train.effective_batch_size >= 1,
            f"train.effective_batch_size={train.effective_batch_size} must be >= 1",
        ),
        (0 <= train.memory_margin < 1, f"train.memory_margin={train.memory_margin} must be in [0, 1)"),
        (_parses_as_bytes(train.memory_budget), f"train.memory_budget={train.memory_budget!r} {_BYTES_HELP}"),
        (
            train.accumulate_grad_batches >= 1,
            f"train.accumulate_grad_batches={train.accumulate_grad_batches} must be >= 1",
        ),
        (train.video_batch_size >= 1, f"train.video_batch_size={train.video_batch_size} must be >= 1"),
        (
            not chunked or train.chunk_infer_size >= 1,
            f"train.chunk_infer_size={train.chunk_infer_size} must be -1 (whole video) or >= 1",
        ),
        (
            train.chunk_overlap >= 0 and (not chunked or train.chunk_overlap < train.chunk_infer_size),
            f"train.chunk_overlap={train.chunk_overlap} must be >= 0 and < "
            f"train.chunk_infer_size={train.chunk_infer_size}",
        ),
    ]


def _optimization_rules(config: Config) -> list[tuple[bool, str]]:
    train = config.train
    return [
        (train.lr > 0, f"train.lr={train.lr} must be > 0"),
        (train.weight_decay >= 0, f"train.weight_decay={train.weight_decay} must be >= 0"),
        (train.momentum >= 0, f"train.momentum={train.momentum} must be >= 0"),
        (train.gamma > 0, f"train.gamma={train.gamma} must be > 0"),
        (train.warmup_epochs >= 0, f"train.warmup_epochs={train.warmup_epochs} must be >= 0"),
        (
            train.scheduler != "multistep" or (train.milestones != [] and min(train.milestones) >= 1),
            f"train.scheduler: multistep needs train.milestones, epochs >= 1 (e.g. [30, 60]), got {train.milestones}",
        ),
        (
            _at_least(train.early_stopping_patience, 0),
            f"train.early_stopping_patience={train.early_stopping_patience} must be >= 0 (validations without "
            "improvement before stopping) or null (no early stopping)",
        ),
    ]


def _trainer_rules(config: Config) -> list[tuple[bool, str]]:
    trainer, train = config.trainer, config.train
    accelerators = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
    return [
        (
            trainer.accelerator in accelerators,
            f"trainer.accelerator={trainer.accelerator!r} is not one of {', '.join(map(repr, accelerators))}",
        ),
        (trainer.num_nodes >= 1, f"trainer.num_nodes={trainer.num_nodes} must be >= 1"),
        (
            trainer.max_epochs == -1 or trainer.max_epochs >= 1,
            f"trainer.max_epochs={trainer.max_epochs} must be >= 1, or -1 (until trainer.max_steps)",
        ),
        (
            trainer.max_steps == -1 or trainer.max_steps >= 1,
            f"trainer.max_steps={trainer.max_steps} must be >= 1, or -1 (until trainer.max_epochs)",
        ),
        (
            train.scheduler != "cosine" or trainer.max_epochs >= 1,
            f"train.scheduler: cosine anneals over trainer.max_epochs, which must be >= 1, got {trainer.max_epochs}",
        ),
        (
            trainer.check_val_every_n_epoch >= 1,
            f"trainer.check_val_every_n_epoch={trainer.check_val_every_n_epoch} must be >= 1",
        ),
        (trainer.log_every_n_steps >= 1, f"trainer.log_every_n_steps={trainer.log_every_n_steps} must be >= 1"),
        (
            trainer.val_check_interval is None or trainer.val_check_interval > 0,
            f"trainer.val_check_interval={trainer.val_check_interval} must be > 0 or null",
        ),
        (
            trainer.gradient_clip_val is None or trainer.gradient_clip_val > 0,
            f"trainer.gradient_clip_val={trainer.gradient_clip_val} must be > 0 or null",
        ),
    ] + [
        (value is None or value >= 0, f"trainer.{name}={value} must be >= 0 or null")
        for name, value in vars(trainer).items()
        if name.startswith("limit_")
    ]


def _at_least(value: int | None, minimum: int) -> bool:
    """Whether an optional setting is unset or at least `minimum`."""
    return value is None or value >= minimum


_BYTES_HELP = "is not a memory size such as '16GiB', '7.5GB' or '500MiB'"


def _parses_as_bytes(value: str | None) -> bool:
    if value is None:
        return True
    try:
        return parse_bytes(value) > 0
    except ValueError:
        return False
