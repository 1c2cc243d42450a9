"""Before any run folder: a config whose smallest training step cannot fit the machine is refused at once.

The OOM guard splits a batch that runs out of memory into micro-batches, down to one clip, so a batch too
large for the GPU trains anyway; what cannot train is a batch of clips the loader cannot hold in host
memory, or a single clip whose training step is larger than the device. Both are found here from the
config, the data's frame size and the memory plan's estimate (fake tensors: nothing is allocated), before
a run folder exists, instead of after minutes of retries or in an allocation of terabytes.
"""

from __future__ import annotations

import logging

import psutil
import torch

from vidfit.config import Config, ConfigError
from vidfit.memory._estimate import UnestimableModelError
from vidfit.memory._report import format_bytes
from vidfit.memory._step import Precision, cuda_mixed_precision
from vidfit.train._plan_step import PlanStep, task_plan_step

_LOG = logging.getLogger("vidfit")
# Batches alive at once besides those the loader's workers prefetch: the one training and its pinned copy.
_BATCHES_IN_USE = 2


def check_fits_machine(config: Config) -> None:
    """Refuses a run whose batch of clips exceeds host memory or whose one-clip training step exceeds the device.

    The device is the visible CUDA GPU where training runs on one, else the host (its RAM). Tasks without
    a memory plan (`TaskSpec.plan_step`) are not checked.

    Raises:
        ConfigError: Naming the keys that size the clips, the bytes needed and the memory there is, and
            what to change.
    """
    if config.task.plan_step is None:
        return
    step = task_plan_step(config, views=None, num_classes=None)
    _check_host(config, step)
    device, capacity = _device_memory(config)
    precision = _precision(config, on_gpu=device != "host RAM")
    try:
        needed = step.estimate(
            num_frames=config.data.num_frames, batch_size=1, precision=precision, checkpointing=step.checkpointing
        )
    except (UnestimableModelError, RuntimeError) as error:  # a model the fake tensors cannot run: train unchecked
        _LOG.info("the memory of one clip's training step cannot be estimated (%s); not checked", error)
        return
    if needed > capacity:
        # 16-bit is offered on a GPU only: on the CPU vidfit trains in 32-bit whatever trainer.precision says.
        advice = step.advice(
            num_frames=config.data.num_frames, batch_size=None, checkpointing=step.checkpointing,
            precision=precision if device != "host RAM" else "bf16-mixed",
        )  # fmt: skip
        raise ConfigError(
            f"{_clip_words(config, step)}: the training step of one clip needs about {format_bytes(needed)} "
            f"(estimate), more than the {format_bytes(capacity)} of {device}: {advice}"
        )


def _check_host(config: Config, step: PlanStep) -> None:
    """A batch of uint8 clips, times the batches the loader keeps in flight, must fit in host RAM."""
    data = config.data
    batch = data.batch_size if data.batch_size != "auto" else 1
    height, width = step.inputs.image_size
    clip_bytes = len(step.inputs.views) * 3 * data.num_frames * height * width
    prefetch = data.prefetch_factor or 2  # the DataLoader's default
    in_flight = _BATCHES_IN_USE + data.num_workers * prefetch
    needed, host = batch * clip_bytes * in_flight, psutil.virtual_memory().total
    if needed > host:
        raise ConfigError(
            f"{_clip_words(config, step)}, data.batch_size={batch}: a batch takes {format_bytes(batch * clip_bytes)} "
            f"and {in_flight} are in host memory at once (the one training, its pinned copy, and data.num_workers="
            f"{data.num_workers} x {prefetch} prefetched), {format_bytes(needed)} in all, more than the "
            f"{format_bytes(host)} of host RAM: lower data.batch_size, data.num_frames or data.image_size (or "
            "data.num_workers)"
        )


def _clip_words(config: Config, step: PlanStep) -> str:
    """The keys that size a clip and their values."""
    height, width = step.inputs.image_size
    views, size = len(step.inputs.views), config.data.image_size
    size = list(size) if isinstance(size, tuple) else size
    return (
        f"data.num_frames={config.data.num_frames}, data.image_size={size} (frames of {height}x{width}), "
        f"{views} view{'s' if views != 1 else ''}"
    )


def _device_memory(config: Config) -> tuple[str, int]:
    """Where one clip's step runs and its memory: the current CUDA GPU where training uses one, else host RAM."""
    if config.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        index = torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
        return f"the GPU cuda:{index} ({properties.name})", int(properties.total_memory)
    return "host RAM", int(psutil.virtual_memory().total)


def _precision(config: Config, *, on_gpu: bool) -> Precision:
    """The precision the step runs in, as `vidfit.config.resolve_precision` picks it (without its notice)."""
    precision = config.trainer.precision
    if not on_gpu:
        return "32"
    return cuda_mixed_precision() if precision == "auto" else precision
