"""The training step that a memory plan measures or estimates: the config's classifier, loss and optimizer."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vidfit.data import Manifest, load_manifest
from vidfit.memory import Precision, estimate_step_memory, free_memory, measure_step
from vidfit.models import ClassifierOutput, build_classifier
from vidfit.train._config import Config

DEFAULT_IMAGE_SIZE = (112, 112)


def views_and_classes(config: Config, num_views: int | None, num_classes: int | None) -> tuple[tuple[str, ...], int]:
    configured = tuple(config.data.views or ())
    if (num_views is None and not configured) or num_classes is None:
        manifest = _load_manifest(config.data.manifest)
        if num_classes is None:
            num_classes = len(manifest.labels)
        if num_views is None and not configured:
            configured = tuple(manifest.videos[0].views) if manifest.videos else ()
            if not configured:
                raise ValueError(f"the manifest {config.data.manifest!r} has no videos; pass num_views")
    if num_views is not None and num_views < 1:
        raise ValueError(f"num_views={num_views} must be >= 1")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be >= 1 (the manifest's labels, or pass num_classes)")
    if num_views is None or len(configured) == num_views:
        return configured, num_classes
    return tuple(f"view{index}" for index in range(num_views)), num_classes


def _load_manifest(path: str) -> Manifest:
    try:
        return load_manifest(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"cannot read the manifest {path!r} (data.manifest) for the number of views and classes: {error}; "
            "point data.manifest at the dataset, or pass num_views and num_classes to plan_memory"
        ) from error


class PlanStep:
    """The training step of the config's classifier at one configuration, measured or estimated."""

    def __init__(self, config: Config, views: tuple[str, ...], num_classes: int) -> None:
        self.config, self.views, self.num_classes = config, views, num_classes
        self.image_size = config.data.image_size or DEFAULT_IMAGE_SIZE

    def estimate(
        self, num_frames: int, batch_size: int, precision: Precision, ckpt: bool, budget_bytes: int
    ) -> tuple[int, None]:
        estimate = estimate_step_memory(
            lambda: self._model(ckpt),
            self._inputs(num_frames, batch_size),
            optimizer=self.config.train.optimizer,
            precision=precision,
            device_type="cuda",
            loss_fn=self._loss,
        )
        return estimate.total_bytes, None

    def measure(
        self, num_frames: int, batch_size: int, precision: Precision, ckpt: bool, budget_bytes: int
    ) -> tuple[int | None, float | None]:
        model = self._model(ckpt)
        if self.config.train.channels_last:
            # As training does on a GPU (`VideoClassificationModule.on_fit_start`); fake tensors cannot be
            # converted in place, so the estimate keeps the default layout, whose sizes are the same.
            model = model.to(memory_format=torch.channels_last_3d)
        try:
            step = measure_step(
                model,
                self._inputs(num_frames, batch_size),
                device=torch.device("cuda", torch.cuda.current_device()),
                precision=precision,
                optimizer=self.config.train.optimizer,
                steps=3,
                memory_cap_bytes=budget_bytes,
                loss_fn=self._loss,
            )
        finally:
            del model
            free_memory()
        if step.oom or step.seconds_per_step is None:
            return None, None
        return step.peak_bytes, batch_size / step.seconds_per_step

    def _model(self, ckpt: bool) -> nn.Module:
        spec = self.config.model
        return build_classifier(
            backbone=spec.backbone,
            num_classes=self.num_classes,
            views=self.views,
            view_fusion=spec.view_fusion,
            input_type=spec.input_type,
            num_keypoints=spec.num_keypoints,
            keypoint_dims=spec.keypoint_dims,
            activation_checkpointing=ckpt,
            dropout=spec.dropout,
        )

    def _inputs(self, num_frames: int, batch_size: int) -> Callable[[], dict[str, torch.Tensor]]:
        spec, (height, width) = self.config.model, self.image_size
        num_views = len(self.views)

        def make() -> dict[str, torch.Tensor]:
            inputs = {}
            if spec.input_type != "kpt":
                shape = (batch_size, num_views, 3, num_frames, height, width)
                inputs["video"] = torch.randint(0, 256, shape, dtype=torch.uint8)
            if spec.input_type != "rgb":
                kpt_shape = (batch_size, num_views, num_frames, spec.num_keypoints, spec.keypoint_dims)
                inputs["keypoints"] = torch.rand(kpt_shape)
            return inputs

        return make

    def _loss(self, output: ClassifierOutput) -> torch.Tensor:
        """Clip plus weighted per-frame cross-entropy, as `VideoClassificationModule` trains."""
        logits, frame_logits = output.logits, output.frame_logits
        batch_size, num_frames = frame_logits.shape[:2]
        labels = torch.arange(batch_size, device=logits.device) % self.num_classes
        frame_labels = labels.repeat_interleave(num_frames)
        clip = F.cross_entropy(logits.float(), labels)
        frame = F.cross_entropy(frame_logits.flatten(0, 1).float(), frame_labels)
        return clip + self.config.train.frame_loss_weight * frame
