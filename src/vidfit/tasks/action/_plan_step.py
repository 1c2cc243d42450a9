"""The training step that a memory plan measures or estimates: the config's classifier, loss and optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidfit.data import Manifest, VideoBatch, decode_size, load_manifest
from vidfit.io import VideoDecodeError, probe
from vidfit.memory import Precision, estimate_step_memory, free_memory, measure_step, memory_advice
from vidfit.models import ClassifierOutput, VideoClassifier, backbone_constraints, build_classifier
from vidfit.tasks.action._config import ActionConfig, with_keypoint_shape
from vidfit.tasks.action._datamodule import VideoDataModule
from vidfit.train import channels_last


@dataclass(frozen=True, kw_only=True)
class PlanInputs:
    """What the planned step's clips hold, from the config and, where it leaves them out, the manifest.

    Attributes:
        views: Camera views per clip.
        num_classes: Classes the model predicts.
        image_size: (height, width) of the frames: ``data.image_size``, else the native size of the first
            training video, which training loads when ``data.image_size`` is unset.
        image_size_source: Where `image_size` comes from, in words.
    """

    views: tuple[str, ...]
    num_classes: int
    image_size: tuple[int, int]
    image_size_source: str


def plan_inputs(config: ActionConfig, *, views: tuple[str, ...] | None, num_classes: int | None) -> PlanInputs:
    """Resolves the planned clips; the manifest is read (its metadata only) when the config does not say.

    Args:
        config: The run.
        views: Camera views; None takes ``data.views``, else the first video's in the manifest.
        num_classes: Classes; None takes the manifest's labels.

    Raises:
        ValueError: The manifest is needed and cannot be read, has no video or no label, or its first
            training video cannot be probed; the message names the config key to set instead.
    """
    data = config.data
    needs = [
        *(["the number of classes (its labels)"] if num_classes is None else []),
        *(["the views (data.views is unset)"] if views is None and not data.views else []),
        *(["the native frame size (data.image_size is unset or a short side)"] if not _pair(data.image_size) else []),
    ]
    manifest = _load_manifest(str(data.manifest), needs) if needs else None
    if views is None:
        views = tuple(data.views) if data.views else _first_video_views(manifest, str(data.manifest))
    if num_classes is None:
        num_classes = len(manifest.labels) if manifest is not None else 0
        if num_classes < 1:
            raise ValueError(f"the manifest {data.manifest!r} (data.manifest) lists no labels to plan the classes of")
    if isinstance(data.image_size, tuple):
        image_size, source = (data.image_size[0], data.image_size[1]), "data.image_size"
    else:
        (height, width), source = _native_size(manifest, config)
        image_size = decode_size(data.image_size, height=height, width=width) or (height, width)
        source += " (data.image_size is unset)" if data.image_size is None else f", short side {data.image_size}"
    return PlanInputs(views=views, num_classes=num_classes, image_size=image_size, image_size_source=source)


def _pair(image_size: int | tuple[int, int] | None) -> bool:
    return isinstance(image_size, tuple)


def _load_manifest(path: str, needs: list[str]) -> Manifest:
    try:
        return load_manifest(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"cannot read the manifest {path!r} (data.manifest), which the plan needs for {' and '.join(needs)}: "
            f"{error}; point data.manifest at the dataset's manifest"
        ) from error


def _first_video_views(manifest: Manifest | None, path: str) -> tuple[str, ...]:
    if manifest is None or not manifest.videos:
        raise ValueError(f"the manifest {path!r} (data.manifest) has no videos to take the views from; set data.views")
    return tuple(manifest.videos[0].views)


def _native_size(manifest: Manifest | None, config: ActionConfig) -> tuple[tuple[int, int], str]:
    """The frame size of the first training video's first planned view, from its packet index (no decoding)."""
    data = config.data
    videos = manifest.videos if manifest is not None else []
    video = next((v for v in videos if v.split == data.train_split), None)
    if video is None:
        raise ValueError(
            f"the manifest {data.manifest!r} has no video in data.train_split={data.train_split!r} to take the "
            "native frame size from; set data.image_size"
        )
    view = data.views[0] if data.views and data.views[0] in video.views else next(iter(video.views))
    try:
        meta = probe(video.views[view])
    except (OSError, VideoDecodeError) as error:
        raise ValueError(f"cannot read the frame size of {video.views[view]} ({error}); set data.image_size") from error
    return (meta.height, meta.width), (f"the native size of the first training video, {video.views[view]}")


class PlanStep:
    """The training step of the config's classifier at one configuration, measured or estimated.

    Args:
        config: The run: model, optimizer, frame-loss weight, channels-last.
        inputs: The clips' views, classes and frame size.
    """

    def __init__(self, *, config: ActionConfig, inputs: PlanInputs) -> None:
        self.config, self.inputs = config, inputs
        self.checkpointing: bool = config.model.activation_checkpointing

    def estimate(self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool) -> int:
        """Estimated peak bytes of the step on fake CUDA tensors (see `vidfit.memory.estimate_step_memory`)."""
        estimate = estimate_step_memory(
            lambda: self._model(checkpointing),
            self._inputs(num_frames, batch_size),
            optimizer=self.config.train.optimizer,
            precision=precision,
            device_type="cuda",
            loss_fn=self._loss,
        )
        return estimate.total_bytes

    def measure(
        self, *, num_frames: int, batch_size: int, precision: Precision, checkpointing: bool, budget_bytes: int
    ) -> tuple[int | None, float | None]:
        """Peak bytes and clips/s of the step on the current CUDA GPU, capped at the budget; Nones for an OOM."""
        model = self._model(checkpointing)
        if self.config.train.channels_last:
            # As training does on a GPU (`VideoClassificationModule.on_fit_start`); the estimate keeps the
            # default layout, whose sizes are the same.
            model = channels_last(model)
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

    def advice(self, *, num_frames: int, batch_size: int | None, precision: Precision, checkpointing: bool) -> str:
        """What to change when the step at this configuration does not fit (see `vidfit.memory.memory_advice`).

        A backbone of fixed clip shape (mvit_v2_s) is not offered fewer frames or a smaller image size.
        """
        resizable = backbone_constraints(self.config.model.backbone).exact_shape is None
        return memory_advice(
            num_frames=num_frames if resizable else None,
            batch_size=batch_size,
            precision=precision,
            activation_checkpointing=checkpointing,
            image_size=self.inputs.image_size if resizable else None,
        )

    def _model(self, checkpointing: bool) -> VideoClassifier:
        spec = self.config.model
        return build_classifier(
            backbone=spec.backbone,
            num_classes=self.inputs.num_classes,
            views=self.inputs.views,
            view_fusion=spec.view_fusion,
            input_type=spec.input_type,
            num_keypoints=spec.num_keypoints,
            keypoint_dims=spec.keypoint_dims,
            activation_checkpointing=checkpointing,
            dropout=spec.dropout,
            freeze=spec.freeze,
            lora=spec.lora,
            token_drop=self.config.train.token_drop,
        )

    def _inputs(self, num_frames: int, batch_size: int) -> Callable[[], dict[str, torch.Tensor | None]]:
        """The model's inputs from a batch of random clips of the shapes training loads."""

        def make() -> dict[str, torch.Tensor | None]:
            batch = self._batch(num_frames, batch_size)
            return {"video": batch.video, "keypoints": batch.keypoints, "keypoint_mask": batch.keypoint_mask}

        return make

    def _batch(self, num_frames: int, batch_size: int) -> VideoBatch:
        """Random clips with the labels `_loss` scores them against, on the current default device."""
        spec, (height, width) = self.config.model, self.inputs.image_size
        num_views = len(self.inputs.views)
        labels = torch.arange(batch_size) % self.inputs.num_classes
        video = keypoints = mask = None
        if spec.input_type != "kpt":
            shape = (batch_size, num_views, 3, num_frames, height, width)
            video = torch.randint(0, 256, shape, dtype=torch.uint8)
        if spec.input_type != "rgb":
            keypoints = torch.rand(batch_size, num_views, num_frames, spec.num_keypoints, spec.keypoint_dims)
            mask = torch.ones(batch_size, num_views, num_frames, dtype=torch.bool)
        frame_labels = labels[:, None].expand(batch_size, num_frames)
        return VideoBatch(label=labels, frame_labels=frame_labels, video=video, keypoints=keypoints, keypoint_mask=mask)

    def _loss(self, output: ClassifierOutput) -> torch.Tensor:
        """Clip plus weighted per-frame cross-entropy, as `VideoClassificationModule` trains."""
        logits, frame_logits = output.logits, output.frame_logits
        batch_size, num_frames = frame_logits.shape[:2]
        labels = torch.arange(batch_size, device=logits.device) % self.inputs.num_classes
        frame_labels = labels.repeat_interleave(num_frames)
        clip = F.cross_entropy(logits.float(), labels)
        frame = F.cross_entropy(frame_logits.flatten(0, 1).float(), frame_labels)
        return clip + self.config.train.frame_loss_weight * frame


def plan_step(config: ActionConfig, *, views: tuple[str, ...] | None, num_classes: int | None) -> PlanStep:
    """The planned training step of an action config (`TaskSpec.plan_step`); see `plan_inputs` for the arguments."""
    config = with_keypoint_shape(config, lambda: VideoDataModule(config).keypoint_shape())
    return PlanStep(config=config, inputs=plan_inputs(config, views=views, num_classes=num_classes))
