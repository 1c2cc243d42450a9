"""The LightningModule of video super-resolution: ESPCN, Y-channel PSNR and SSIM, distillation from a teacher."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from vidfit.config import Config, ConfigError, config_from_dict
from vidfit.infer import CheckpointState, check_weights, read_checkpoint
from vidfit.models import ESPCN
from vidfit.tasks.super_resolution._config import SRConfig
from vidfit.tasks.super_resolution._model import build_sr_model
from vidfit.tasks.super_resolution._patches import PatchBatch
from vidfit.train import GuardedModule

# ITU-R BT.601 luma of RGB in [0, 1], studio swing (16 to 235 of 255): the Y channel SR papers score on.
_LUMA_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
_LUMA_OFFSET = 16 / 255


def rgb_to_luma(images: torch.Tensor) -> torch.Tensor:
    """The BT.601 Y channel of RGB images in [0, 1].

    Args:
        images: (..., 3, H, W).

    Returns:
        (..., 1, H, W), in [16/255, 235/255] for inputs in [0, 1].
    """
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must be (..., 3, H, W), got shape {tuple(images.shape)}")
    weights = torch.tensor(_LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * weights).sum(dim=-3, keepdim=True) + _LUMA_OFFSET


class SRMetrics(nn.Module):
    """PSNR and SSIM on the Y channel of images clamped to [0, 1], averaged over images.

    Attributes:
        psnr: Mean PSNR of each image in dB (`torchmetrics.image.PeakSignalNoiseRatio`, peak 1).
        ssim: Mean SSIM (`torchmetrics.image.StructuralSimilarityIndexMeasure`, 11-pixel Gaussian window).
    """

    def __init__(self) -> None:
        super().__init__()
        self.psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Adds RGB images (B, 3, H, W) in [0, 1]; predictions are clamped as they would be when saved."""
        # Under mixed precision, autocast would run SSIM's Gaussian filters in half precision, whose
        # variances (E[x^2] - E[x]^2) are off by enough to move SSIM by 0.05 (measured on the demo).
        with torch.autocast(prediction.device.type, enabled=False):
            predicted = rgb_to_luma(prediction.detach().float().clamp(0, 1))
            expected = rgb_to_luma(target.float())
            self.psnr.update(predicted, expected)
            self.ssim.update(predicted, expected)

    def compute(self) -> dict[str, float]:
        """``{"psnr": ..., "ssim": ...}`` over every image added since the last reset."""
        return {"psnr": float(self.psnr.compute()), "ssim": float(cast(torch.Tensor, self.ssim.compute()))}

    def reset(self) -> None:
        """Forgets the images added so far."""
        self.psnr.reset()
        self.ssim.reset()


def distillation_loss(
    prediction: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor, *, weight: float
) -> torch.Tensor:
    """``(1 - weight) * MSE(prediction, target) + weight * MSE(prediction, teacher)``.

    Args:
        prediction: The student's output.
        target: The ground truth, same shape.
        teacher: The teacher's output for the same input, same shape (no gradient flows into it).
        weight: Share of the teacher's term, in [0, 1]; 0 is plain training on the ground truth.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight={weight!r} must be in [0, 1]")
    truth = F.mse_loss(prediction, target)
    return (1 - weight) * truth + weight * F.mse_loss(prediction, teacher.detach())


class SuperResolutionModule(GuardedModule):
    """Trains an ESPCN on patches (mean squared error), optionally distilled from a frozen teacher.

    Training goes through `GuardedModule`, as action recognition does: the OOM guard, accumulation,
    clipping and per-epoch schedule. Evaluation logs ``{stage}/loss``, ``{stage}/psnr``, ``{stage}/ssim``
    and the bicubic baseline ``{stage}/bicubic_psnr``, ``{stage}/bicubic_ssim``.

    Args:
        config: The run's configuration as plain data (saved in checkpoints).
    """

    def __init__(self, *, config: dict[str, Any]) -> None:
        run: SRConfig = config_from_dict(config, source="checkpoint hyper-parameters")
        # ESPCN has no checkpointing switch and takes a fixed number of frames: the patch size is what to lower.
        advice = f"lower data.patch_size ({run.data.patch_size}) or train in trainer.precision: bf16-mixed"
        super().__init__(run, memory_advice=advice)
        self.save_hyperparameters()
        self.config: SRConfig = run
        self.model = build_sr_model(self.config)
        self.metrics = nn.ModuleDict(
            {f"{stage}_{kind}": SRMetrics() for stage in ("val", "test") for kind in ("model", "bicubic")}
        )
        # Not a submodule (set around nn.Module's registration): never trained, saved, or wrapped by DDP.
        object.__setattr__(self, "_teacher", None)

    @property
    def teacher(self) -> ESPCN | None:
        """The frozen teacher the student is distilled from, if any."""
        return cast(ESPCN | None, self.__dict__["_teacher"])

    def set_teacher(self, teacher: ESPCN) -> None:
        """Distils from `teacher` (frozen and put in eval mode here), weighted by `train.distill_weight`."""
        if (teacher.scale, teacher.num_frames) != (self.model.scale, self.model.num_frames):
            raise ConfigError(
                f"the teacher upscales {teacher.num_frames} frames by {teacher.scale}, the student "
                f"{self.model.num_frames} frames by {self.model.scale}: they must match"
            )
        object.__setattr__(self, "_teacher", teacher.eval().requires_grad_(False))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(frames)

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)
        super().on_fit_start()

    def training_step(self, batch: PatchBatch, batch_index: int) -> torch.Tensor:
        size, accumulate = len(batch), self.config.train.accumulate_grad_batches

        def compute(part: PatchBatch) -> tuple[torch.Tensor, None]:
            # Each micro-batch's mean is weighted by its share, so the parts add up to the batch's mean.
            return self._loss(part) * (len(part) / size / accumulate), None

        result = self.guarded_step(batch, batch_index, batch_size=size, compute=compute)
        self.log("train/loss", result.loss * accumulate, prog_bar=True, batch_size=size)
        return result.loss

    def _loss(self, batch: PatchBatch) -> torch.Tensor:
        prediction = self.model(batch.lr).float()
        target = batch.hr.float() / 255
        if self.teacher is None:
            return F.mse_loss(prediction, target)
        with torch.no_grad():
            taught = self.teacher(batch.lr).float().clamp(0, 1)
        return distillation_loss(prediction, target, taught, weight=self.config.train.distill_weight)

    def validation_step(self, batch: PatchBatch, batch_index: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: PatchBatch, batch_index: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, stage: str, batch: PatchBatch) -> None:
        prediction = self.model(batch.lr).float()
        target = batch.hr.float() / 255
        centre = batch.lr[:, self.model.num_frames // 2].float() / 255
        bicubic = F.interpolate(centre, scale_factor=self.model.scale, mode="bicubic", align_corners=False)
        size = len(target)
        self.log(f"{stage}/loss", F.mse_loss(prediction, target), prog_bar=True, batch_size=size)
        for kind, output in (("model", prediction), ("bicubic", bicubic)):
            metrics = cast(SRMetrics, self.metrics[f"{stage}_{kind}"])
            metrics.update(output, target)
            prefix = f"{stage}/" if kind == "model" else f"{stage}/bicubic_"
            self.log(f"{prefix}psnr", metrics.psnr, on_epoch=True, prog_bar=kind == "model", batch_size=size)
            self.log(f"{prefix}ssim", metrics.ssim, on_epoch=True, batch_size=size)


def _require_sr(state: CheckpointState, key: str) -> Config:
    if state.task != "super_resolution":
        raise ConfigError(
            f"{key}={str(state.path)!r} is a checkpoint of experiment.task {state.task!r}, not 'super_resolution'"
        )
    return config_from_dict(state.config, source=str(state.path))


def load_teacher(path: str | os.PathLike[str], *, config: SRConfig) -> ESPCN:
    """The frozen ESPCN of a super-resolution checkpoint, checked against the student's `config`.

    Raises:
        ConfigError: No such file, a checkpoint of another task, or another scale or frame count.
    """
    state = read_checkpoint(path, key="train.teacher")
    trained = _require_sr(state, "train.teacher")
    ours = (config.model.scale, config.data.num_frames)
    theirs = (trained.model.scale, trained.data.num_frames)
    if ours != theirs:
        raise ConfigError(
            f"train.teacher={str(path)!r} upscales by {theirs[0]} from {theirs[1]} frames, but the config by "
            f"model.scale={ours[0]} from data.num_frames={ours[1]}"
        )
    teacher = build_sr_model(trained)
    check_weights(teacher, state, key="train.teacher")
    teacher.load_state_dict(state.weights)
    return teacher.eval().requires_grad_(False)


def load_sr_module(checkpoint: str | os.PathLike[str]) -> SuperResolutionModule:
    """A trained super-resolution module from a checkpoint, on the CPU; tensors only are unpickled."""
    state = read_checkpoint(checkpoint)  # whole: its weights are checked before Lightning loads them
    with torch.device("meta"):
        check_weights(build_sr_model(_require_sr(state, "checkpoint")), state)
    return SuperResolutionModule.load_from_checkpoint(Path(checkpoint), map_location="cpu", weights_only=True)


def check_sr_checkpoint(checkpoint: str | os.PathLike[str], config: SRConfig) -> None:
    """Refuses a checkpoint of another task, or of another ESPCN than the config describes."""
    trained = _require_sr(read_checkpoint(checkpoint, weights=False), "checkpoint")
    keys = {
        "model.scale": (trained.model.scale, config.model.scale),
        "model.espcn_features": (tuple(trained.model.espcn_features), tuple(config.model.espcn_features)),
        "data.num_frames": (trained.data.num_frames, config.data.num_frames),
    }
    different = [
        f"{k}: checkpoint {saved!r} vs config {wanted!r}" for k, (saved, wanted) in keys.items() if saved != wanted
    ]
    if different:
        raise ConfigError(f"{checkpoint}: model differs from the config: " + "; ".join(different))
