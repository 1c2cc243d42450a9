"""The rules of a run configuration that types alone do not say, and the defaults that depend on the task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vidfit.memory import parse_bytes
from vidfit.models import BACKBONES

if TYPE_CHECKING:
    from vidfit.train._config import Config


def config_problems(config: Config) -> list[str]:
    """What is wrong with a config beyond types: ranges, and rules between keys; empty when it can run."""
    data, train, model = config.data, config.train, config.model
    chunked = train.chunk_infer_size != -1
    rules = [
        (model.backbone in BACKBONES, f"model.backbone={model.backbone!r} is not one of {', '.join(BACKBONES)}"),
        (data.manifest != "", "data.manifest is required: the manifest of the videos to train on"),
        (data.batch_size == "auto" or data.batch_size >= 1, f"data.batch_size={data.batch_size} must be >= 1"),
        (
            data.batch_size != "auto" or (train.memory_budget is not None and train.effective_batch_size is not None),
            "data.batch_size: auto needs train.memory_budget (e.g. 16GiB) and train.effective_batch_size (the "
            "clips per optimizer step to keep through accumulation)",
        ),
        (
            train.effective_batch_size is None or train.effective_batch_size >= 1,
            f"train.effective_batch_size={train.effective_batch_size} must be >= 1",
        ),
        (0 <= train.memory_margin < 1, f"train.memory_margin={train.memory_margin} must be in [0, 1)"),
        (_parses_as_bytes(train.memory_budget), f"train.memory_budget={train.memory_budget!r} {_BYTES_HELP}"),
        (data.num_workers >= 0, f"data.num_workers={data.num_workers} must be >= 0"),
        (data.num_frames >= 1, f"data.num_frames={data.num_frames} must be >= 1"),
        (train.lr > 0, f"train.lr={train.lr} must be > 0"),
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
        (
            model.input_type == "rgb" or (model.num_keypoints > 0 and model.keypoint_dims > 0),
            f"model.input_type={model.input_type!r} needs model.num_keypoints and model.keypoint_dims > 0",
        ),
        (
            model.input_type == "rgb" or data.load_kpt,
            f"model.input_type={model.input_type!r} needs data.load_kpt: true",
        ),
    ]
    rules += _task_rules(config)
    return [message for ok, message in rules if not ok]


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
