"""The rules of a run configuration that types alone do not say, and the defaults that depend on the task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning.pytorch.accelerators import AcceleratorRegistry

from vidfit.memory import parse_bytes
from vidfit.models import BACKBONES, backbone_constraints, classifier_problems

if TYPE_CHECKING:
    from vidfit.train._config import Config


def config_problems(config: Config) -> list[str]:
    """What is wrong with a config beyond types: ranges, and rules between keys; empty when it can run."""
    rules = _data_rules(config) + _train_rules(config) + _optimization_rules(config) + _trainer_rules(config)
    rules += _task_rules(config)
    return _model_problems(config) + _dataset_problems(config) + [message for ok, message in rules if not ok]


def _model_problems(config: Config) -> list[str]:
    """The classifier's own checks, then whether the backbone takes the clips the data section makes."""
    model, data = config.model, config.data
    problems = classifier_problems(
        backbone=model.backbone, view_fusion=model.view_fusion, input_type=model.input_type,
        num_keypoints=model.num_keypoints, keypoint_dims=model.keypoint_dims, dropout=model.dropout, prefix="model.",
    )  # fmt: skip
    frames, size = data.num_frames, data.image_size
    unchecked = config.experiment.task != "action" or model.input_type == "kpt" or model.backbone not in BACKBONES
    if unchecked or (size is not None and min(size) < 1):  # a bad image_size is the data package's to report
        return problems
    limits = backbone_constraints(model.backbone)
    where = f"model.backbone={model.backbone!r} needs"
    if limits.exact_shape is not None and (frames, *(size or (None, None))) != limits.exact_shape:
        shape = limits.exact_shape
        problems.append(
            f"{where} clips of exactly (T, H, W)={shape}: data.num_frames={shape[0]} and data.image_size="
            f"{list(shape[1:])}, got data.num_frames={frames}, data.image_size={list(size) if size else None}"
        )
    elif frames < limits.min_frames or (size is not None and min(size) < limits.min_size):
        problems.append(
            f"{where} data.num_frames >= {limits.min_frames} and data.image_size >= {limits.min_size} pixels, "
            f"got data.num_frames={frames}, data.image_size={list(size) if size else None}"
        )
    if limits.exact_shape is not None and config.train.chunk_infer_size != limits.exact_shape[0]:
        problems.append(
            f"{where} inference windows of exactly {limits.exact_shape[0]} frames: train.chunk_infer_size="
            f"{limits.exact_shape[0]}, got {config.train.chunk_infer_size}"
        )
    return problems


def _dataset_problems(config: Config) -> list[str]:
    """The data package's own checks of the keys the data section passes to `VideoDatasetConfig`."""
    try:
        config.data.dataset_config()
    except ValueError as error:
        return [f"data.{error}"]
    return []


def _data_rules(config: Config) -> list[tuple[bool, str]]:
    data, train, model = config.data, config.train, config.model
    rgb_needed = config.experiment.task != "action" or model.input_type != "kpt"
    return [
        (data.manifest != "", "data.manifest is required: the manifest of the videos to train on"),
        (data.batch_size == "auto" or data.batch_size >= 1, f"data.batch_size={data.batch_size} must be >= 1"),
        (
            data.batch_size != "auto" or (train.memory_budget is not None and train.effective_batch_size is not None),
            "data.batch_size: auto needs train.memory_budget (e.g. 16GiB) and train.effective_batch_size (the "
            "clips per optimizer step to keep through accumulation)",
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
        (data.load_rgb or not rgb_needed, f"model.input_type={model.input_type!r} needs data.load_rgb: true"),
        (
            model.input_type == "rgb" or data.load_kpt,
            f"model.input_type={model.input_type!r} needs data.load_kpt: true",
        ),
    ]


def _train_rules(config: Config) -> list[tuple[bool, str]]:
    train = config.train
    chunked = train.chunk_infer_size != -1
    return [
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
        (0 <= train.label_smoothing < 1, f"train.label_smoothing={train.label_smoothing} must be in [0, 1)"),
        (train.frame_loss_weight >= 0, f"train.frame_loss_weight={train.frame_loss_weight} must be >= 0"),
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


_ACTION_MONITORS = ("val/acc", "val/frame_acc", "val/loss")
_SR_MONITORS = ("val/psnr", "val/ssim", "val/loss")
# Keys whose default depends on the task, filled in when the document leaves them out.
_TASK_DEFAULTS: dict[str, dict[tuple[str, str], Any]] = {
    "super_resolution": {("data", "num_frames"): 3, ("train", "monitor"): "val/psnr"},
}


def fill_task_defaults(document: dict[str, Any]) -> None:
    experiment = document.get("experiment")
    task = experiment.get("task") if isinstance(experiment, dict) else None
    defaults = _TASK_DEFAULTS.get(task, {}) if isinstance(task, str) else {}
    for (section, key), value in defaults.items():
        values = document.setdefault(section, {})
        if isinstance(values, dict):
            values.setdefault(key, value)


def _task_rules(config: Config) -> list[tuple[bool, str]]:
    """Rules of the keys that only one task reads."""
    data, train, model = config.data, config.train, config.model
    if config.experiment.task == "action":
        return [
            (train.teacher is None, "train.teacher (distillation) needs experiment.task: super_resolution"),
            (
                train.monitor in _ACTION_MONITORS,
                f"train.monitor={train.monitor!r} is not one of {', '.join(map(repr, _ACTION_MONITORS))} "
                "for experiment.task: action",
            ),
        ]
    task = "for experiment.task: super_resolution"
    return [
        (
            train.monitor in _SR_MONITORS,
            f"train.monitor={train.monitor!r} is not one of {', '.join(map(repr, _SR_MONITORS))} {task}",
        ),
        (data.num_frames % 2 == 1, f"data.num_frames={data.num_frames} must be odd {task}: the centre is upscaled"),
        (data.batch_size != "auto", f"data.batch_size: auto is not supported {task}; give a number"),
        # SSIM's 11-pixel Gaussian window needs patches of 16 pixels or more.
        (
            data.patch_size >= 16 and data.patch_size % model.scale == 0,
            f"data.patch_size={data.patch_size} must be a multiple of model.scale={model.scale} and >= 16",
        ),
        (data.patches_per_chunk >= 1, f"data.patches_per_chunk={data.patches_per_chunk} must be >= 1"),
        (min(model.espcn_features) >= 1, f"model.espcn_features={list(model.espcn_features)} must be >= 1"),
        (0 <= train.distill_weight <= 1, f"train.distill_weight={train.distill_weight} must be in [0, 1]"),
    ]


def _parses_as_bytes(value: str | None) -> bool:
    if value is None:
        return True
    try:
        return parse_bytes(value) > 0
    except ValueError:
        return False
