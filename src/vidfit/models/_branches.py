"""The two input branches of a classifier: RGB video and keypoints, each fusing its views.

Both branches return temporal features (B, C, T_branch). View fusion is shared:

- ``early``: views are stacked on channels before any layer (the backbone stem is widened to 3*V
  channels; keypoints of all views form one per-frame vector). Cheapest: one backbone pass per clip.
- ``late``: one shared network runs on every view, and the per-view features are concatenated and
  projected back to C by a learned 1x1 temporal convolution. Concatenation rather than a mean keeps
  which camera saw what (views are named and fixed at build time), at the cost of V*C*C weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vidfit.models._backbone_recipes import build_backbone
from vidfit.models._hf import hf_normalization, is_hf_backbone
from vidfit.models._lora import LoraSettings
from vidfit.models._pretrained import normalization

ViewFusion = Literal["early", "late"]

# Channels of the keypoint encoder; small because keypoints carry far less than pixels.
KEYPOINT_FEATURE_DIM = 128


class LateFusion(nn.Module):
    """Concatenates per-view features on channels and projects them back to `feature_dim`."""

    def __init__(self, *, num_views: int, feature_dim: int) -> None:
        super().__init__()
        self.num_views = num_views
        self.project = nn.Conv1d(num_views * feature_dim, feature_dim, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Maps per-view features (B*V, C, T) to fused features (B, C, T)."""
        per_view, channels, frames = features.shape
        stacked = features.reshape(per_view // self.num_views, self.num_views * channels, frames)
        return self.project(stacked)


def _fusion(view_fusion: ViewFusion, *, num_views: int, feature_dim: int) -> nn.Module:
    # A single view needs no fusion; keeping none leaves a plain backbone with nothing extra to learn.
    if view_fusion == "early" or num_views == 1:
        return nn.Identity()
    return LateFusion(num_views=num_views, feature_dim=feature_dim)


class RgbBranch(nn.Module):
    """Normalizes uint8 video on its device, runs the backbone and pools space away.

    The normalization is that of the `pretrained` weights' transforms, and the Kinetics one without them (an
    ``hf:`` backbone's is its own processor's); it depends only on the arguments, so a model built with
    ``load_pretrained=False`` (for a checkpoint's weights to replace) normalizes as the one trained.

    Attributes:
        feature_dim: Channels C of the output.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        *,
        backbone: str,
        num_views: int,
        view_fusion: ViewFusion,
        activation_checkpointing: bool,
        pretrained: str | None = None,
        pretrained_path: str | Path | None = None,
        load_pretrained: bool = True,
        freeze: str = "none",
        lora: LoraSettings | None = None,
        token_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.view_fusion = view_fusion
        self.backbone = build_backbone(
            name=backbone,
            pretrained=pretrained if load_pretrained else None,
            pretrained_path=pretrained_path if load_pretrained else None,
            activation_checkpointing=activation_checkpointing,
            load_weights=load_pretrained,
            freeze=freeze,
            lora=lora,
            token_drop=token_drop,
        )
        if view_fusion == "early" and num_views > 1:
            self.backbone.widen_stem(num_views=num_views)
        self.feature_dim = self.backbone.feature_dim
        self.fusion = _fusion(view_fusion, num_views=num_views, feature_dim=self.feature_dim)
        # Scaled to uint8 range so normalizing is one subtract and one divide on the raw values.
        shape = (1, 1, 3, 1, 1, 1)
        if is_hf_backbone(backbone):
            mean, std = hf_normalization(backbone)
        else:
            mean, std = normalization(backbone=backbone, pretrained=pretrained)
        self.register_buffer("mean", torch.tensor(mean).mul(255).reshape(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std).mul(255).reshape(shape), persistent=False)

    def normalize(self, video: torch.Tensor) -> torch.Tensor:
        """Maps uint8 video (B, V, 3, T, H, W) to float, normalized with the backbone's mean and std."""
        return video.float().sub_(self.mean).div_(self.std)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Maps uint8 video (B, V, 3, T, H, W) to features (B, C, T')."""
        batch, views, channels, *thw = video.shape
        x = self.normalize(video)
        if self.view_fusion == "early":
            x = x.reshape(batch, views * channels, *thw)
        else:
            x = x.reshape(batch * views, channels, *thw)
        features = self.backbone(x).mean(dim=(-2, -1))
        return self.fusion(features)


class KeypointEncoder(nn.Module):
    """A per-frame MLP over flattened keypoints, then a temporal Conv1d stack.

    Attributes:
        feature_dim: Channels C of the output.
    """

    def __init__(self, *, in_features: int, feature_dim: int = KEYPOINT_FEATURE_DIM) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.frame_mlp = nn.Sequential(
            nn.Linear(in_features, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.temporal = nn.Sequential(
            nn.Conv1d(feature_dim, feature_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(feature_dim, feature_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Maps per-frame vectors (N, T, in_features) to features (N, C, T)."""
        return self.temporal(self.frame_mlp(frames).transpose(1, 2))


class KeypointBranch(nn.Module):
    """Zeroes frames without keypoints, flags them, encodes and fuses the views.

    Each frame's vector is its flattened K*D coordinates followed by a 1/0 presence flag, so the encoder
    can tell a missing frame from keypoints that happen to be zero.

    Attributes:
        feature_dim: Channels C of the output.
    """

    def __init__(self, *, num_views: int, num_keypoints: int, keypoint_dims: int, view_fusion: ViewFusion) -> None:
        super().__init__()
        self.view_fusion = view_fusion
        views_per_vector = num_views if view_fusion == "early" else 1
        self.encoder = KeypointEncoder(in_features=views_per_vector * (num_keypoints * keypoint_dims + 1))
        self.feature_dim = self.encoder.feature_dim
        self.fusion = _fusion(view_fusion, num_views=num_views, feature_dim=self.feature_dim)

    def forward(self, keypoints: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Maps keypoints (B, V, T, K, D) and their mask (B, V, T) to features (B, C, T).

        Frames where the mask is False are zeroed (with `where`, so NaN placeholders do not leak).
        """
        batch, views, frames = mask.shape
        coords = torch.where(mask[..., None, None], keypoints, 0.0).flatten(3)
        vectors = torch.cat([coords, mask[..., None].to(coords.dtype)], dim=-1)  # (B, V, T, K*D+1)
        if self.view_fusion == "early":
            vectors = vectors.permute(0, 2, 1, 3).reshape(batch, frames, -1)
        else:
            vectors = vectors.reshape(batch * views, frames, -1)
        return self.fusion(self.encoder(vectors))
