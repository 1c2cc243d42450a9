"""The video classifier: RGB and/or keypoint branches, clip logits and per-frame logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidfit.models._backbones import canonical_backbone
from vidfit.models._branches import KeypointBranch, RgbBranch, ViewFusion
from vidfit.models._classifier_checks import InputType, classifier_problems
from vidfit.models._hf import is_hf_backbone
from vidfit.models._hf_backbone import MAX_TOKEN_DROP, HfBackbone
from vidfit.models._lora import LoraSettings


@dataclass(frozen=True)
class ClassifierSpec:
    """Everything `build_classifier` was given; ``build_classifier(**dataclasses.asdict(spec))`` rebuilds it.

    Stored as `VideoClassifier.spec` so a checkpoint can be checked against a config. An alias of a backbone
    is stored as the backbone's own name.

    Attributes:
        backbone: One of `BACKBONES` (not built for ``input_type="kpt"``).
        num_classes: Number of classes.
        views: Names of the camera views, in the order the V axis of the inputs holds them.
        view_fusion: ``"early"`` or ``"late"`` (see `vidfit.models._branches`).
        input_type: ``"rgb"``, ``"kpt"`` or ``"rgb_kpt"``.
        num_keypoints: K, keypoints per frame (needed by the keypoint input types).
        keypoint_dims: D, coordinates per keypoint (needed by the keypoint input types).
        activation_checkpointing: Recompute each backbone stage in backward.
        pretrained_path: Local state_dict of the backbone network, or None.
        dropout: Dropout probability before the heads.
        pretrained: ``"kinetics400"`` for torchvision's weights of the backbone (which also set the input
            normalization), or None.
        freeze: ``hf:`` backbones: ``"none"``, ``"all"`` or ``"first:N"`` blocks trained no more.
        lora: ``hf:`` backbones: LoRA adapters (`LoraSettings`, or its fields as a dict), or None.
        token_drop: ``hf:`` backbones: share of patch tokens dropped in training, in [0, 0.9].
    """

    backbone: str
    num_classes: int
    views: tuple[str, ...] = ("front",)
    view_fusion: ViewFusion = "late"
    input_type: InputType = "rgb"
    num_keypoints: int = 0
    keypoint_dims: int = 0
    activation_checkpointing: bool = False
    pretrained_path: str | None = None
    dropout: float = 0.0
    pretrained: str | None = None
    freeze: str = "none"
    lora: LoraSettings | None = None
    token_drop: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", tuple(self.views))  # a list from YAML/JSON is fine
        object.__setattr__(self, "backbone", canonical_backbone(self.backbone))
        if isinstance(self.lora, dict):  # as `dataclasses.asdict` leaves it
            object.__setattr__(self, "lora", LoraSettings(**self.lora))
        problems = classifier_problems(
            backbone=self.backbone, view_fusion=self.view_fusion, input_type=self.input_type,
            num_keypoints=self.num_keypoints, keypoint_dims=self.keypoint_dims, dropout=self.dropout,
            pretrained=self.pretrained, pretrained_path=self.pretrained_path, freeze=self.freeze, lora=self.lora,
        )  # fmt: skip
        if not 0.0 <= self.token_drop <= MAX_TOKEN_DROP:
            problems.append(f"token_drop={self.token_drop!r} must be in [0, {MAX_TOKEN_DROP}]")
        elif self.token_drop and not is_hf_backbone(self.backbone):
            problems.append(f"token_drop applies to hf: backbones, not to backbone={self.backbone!r}")
        if not self.views or len(set(self.views)) != len(self.views):
            problems.append(f"views={self.views!r} must be one or more distinct names")
        if self.num_classes < 1:
            problems.append(f"num_classes={self.num_classes!r} must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class ClassifierOutput:
    """What `VideoClassifier` returns.

    Attributes:
        logits: Clip logits (B, num_classes).
        frame_logits: Per-frame logits (B, T, num_classes), T being the input's frame count.
    """

    logits: torch.Tensor
    frame_logits: torch.Tensor


def _to_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Stretches features (B, C, T') linearly over time to (B, C, num_frames)."""
    if features.shape[-1] == num_frames:
        return features
    return F.interpolate(features, size=num_frames, mode="linear", align_corners=False)


class VideoClassifier(nn.Module):
    """Classifies clips and their frames from uint8 video and/or keypoints; build with `build_classifier`.

    Features of each branch are average-pooled over time for the clip head and stretched to the
    input's T for the per-frame head; with both inputs the two are concatenated on channels.

    Attributes:
        spec: The hyper-parameters it was built from.
    """

    def __init__(self, spec: ClassifierSpec, *, load_pretrained: bool = True) -> None:
        super().__init__()
        self.spec = spec
        num_views = len(spec.views)
        self.rgb = (
            None
            if spec.input_type == "kpt"
            else RgbBranch(
                backbone=spec.backbone,
                num_views=num_views,
                view_fusion=spec.view_fusion,
                activation_checkpointing=spec.activation_checkpointing,
                pretrained=spec.pretrained,
                pretrained_path=spec.pretrained_path,
                load_pretrained=load_pretrained,
                freeze=spec.freeze,
                lora=spec.lora,
                token_drop=spec.token_drop,
            )
        )
        self.kpt = (
            None
            if spec.input_type == "rgb"
            else KeypointBranch(
                num_views=num_views,
                num_keypoints=spec.num_keypoints,
                keypoint_dims=spec.keypoint_dims,
                view_fusion=spec.view_fusion,
            )
        )
        feature_dim = sum(branch.feature_dim for branch in (self.rgb, self.kpt) if branch is not None)
        self.dropout = nn.Dropout(spec.dropout)
        self.clip_head = nn.Linear(feature_dim, spec.num_classes)
        self.frame_head = nn.Linear(feature_dim, spec.num_classes)

    def merge_lora(self) -> None:
        """Folds LoRA adapters into the backbone's weights, for inference at the base model's speed (no-op without)."""
        if self.rgb is not None and isinstance(self.rgb.backbone, HfBackbone):
            self.rgb.backbone.merge_lora()

    def forward(
        self,
        video: torch.Tensor | None,
        keypoints: torch.Tensor | None = None,
        keypoint_mask: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """Computes clip and per-frame logits.

        Args:
            video: uint8 RGB video (B, V, 3, T, H, W); ignored (may be None) when ``input_type="kpt"``.
            keypoints: float keypoints (B, V, T, K, D), for the keypoint input types.
            keypoint_mask: bool (B, V, T), True where a frame has keypoints; None means all frames do.

        Raises:
            ValueError: A missing input, or a dtype or shape that does not fit `spec`.
        """
        pooled, per_frame = [], []
        num_frames = 0
        if self.rgb is not None:
            num_frames = self._check_video(video).shape[3]
            features = self.rgb(video)
            pooled.append(features.mean(dim=-1))
            per_frame.append(_to_frames(features, num_frames))
        if self.kpt is not None:
            keypoints, keypoint_mask = self._check_keypoints(keypoints, keypoint_mask, video)
            features = self.kpt(keypoints, keypoint_mask)
            pooled.append(features.mean(dim=-1))
            per_frame.append(features)
        elif keypoints is not None or keypoint_mask is not None:
            raise ValueError("keypoints were given but input_type='rgb' does not use them")
        frame_features = self.dropout(torch.cat(per_frame, dim=1).transpose(1, 2))
        return ClassifierOutput(
            logits=self.clip_head(self.dropout(torch.cat(pooled, dim=1))),
            frame_logits=self.frame_head(frame_features),
        )

    def _check_video(self, video: torch.Tensor | None) -> torch.Tensor:
        views = self.spec.views
        if video is None:
            raise ValueError(f"input_type={self.spec.input_type!r} needs video (B, V, 3, T, H, W)")
        if video.dtype != torch.uint8:
            raise ValueError(f"video must be uint8 (the model normalizes it), got {video.dtype}")
        if video.ndim != 6 or video.shape[2] != 3:
            raise ValueError(f"video must be (B, V, 3, T, H, W), got shape {tuple(video.shape)}")
        if video.shape[1] != len(views):
            raise ValueError(f"video has {video.shape[1]} views but the model was built for views={views!r}")
        return video

    def _check_keypoints(
        self, keypoints: torch.Tensor | None, mask: torch.Tensor | None, video: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.spec
        if keypoints is None:
            raise ValueError(f"input_type={spec.input_type!r} needs keypoints (B, V, T, K, D)")
        expected = (len(spec.views), spec.num_keypoints, spec.keypoint_dims)
        if keypoints.ndim != 5 or (keypoints.shape[1], *keypoints.shape[3:]) != expected:
            raise ValueError(
                f"keypoints must be (B, V={expected[0]}, T, K={expected[1]}, D={expected[2]}) "
                f"for views={spec.views!r}, got shape {tuple(keypoints.shape)}"
            )
        if self.rgb is not None and video is not None and keypoints.shape[:3] != video.shape[:2] + video.shape[3:4]:
            raise ValueError(
                f"keypoints (B, V, T)={tuple(keypoints.shape[:3])} do not match video's "
                f"{(*video.shape[:2], video.shape[3])}"
            )
        if mask is None:
            return keypoints, torch.ones(keypoints.shape[:3], dtype=torch.bool, device=keypoints.device)
        if mask.dtype != torch.bool or mask.shape != keypoints.shape[:3]:
            raise ValueError(
                f"keypoint_mask must be bool (B, V, T)={tuple(keypoints.shape[:3])}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        return keypoints, mask


def build_classifier(
    *,
    backbone: str,
    num_classes: int,
    views: tuple[str, ...] = ("front",),
    view_fusion: ViewFusion = "late",
    input_type: InputType = "rgb",
    num_keypoints: int = 0,
    keypoint_dims: int = 0,
    activation_checkpointing: bool = False,
    pretrained_path: str | None = None,
    dropout: float = 0.0,
    pretrained: str | None = None,
    load_pretrained: bool = True,
    freeze: str = "none",
    lora: LoraSettings | None = None,
    token_drop: float = 0.0,
) -> VideoClassifier:
    """Builds a video classifier (see `ClassifierSpec` for the arguments).

    Args:
        load_pretrained: Read the `pretrained` or `pretrained_path` weights (an ``hf:`` backbone's own). Off builds
            the same network and normalization without reading them: for a checkpoint's weights to replace, or
            an estimate on the meta device. A backbone with LoRA adapters always reads its base weights (its
            checkpoints hold only the adapters), except on the meta device.

    Raises:
        ValueError: A choice not among the allowed values, or inconsistent sizes.
        FileNotFoundError: `pretrained_path` does not exist, or the `pretrained` weights are neither in the
            torch hub cache nor downloadable (`PretrainedWeightsUnavailableError`).
    """
    spec = ClassifierSpec(
        backbone=backbone,
        num_classes=num_classes,
        views=views,
        view_fusion=view_fusion,
        input_type=input_type,
        num_keypoints=num_keypoints,
        keypoint_dims=keypoint_dims,
        activation_checkpointing=activation_checkpointing,
        pretrained_path=pretrained_path,
        dropout=dropout,
        pretrained=pretrained,
        freeze=freeze,
        lora=lora,
        token_drop=token_drop,
    )
    return VideoClassifier(spec, load_pretrained=load_pretrained)
