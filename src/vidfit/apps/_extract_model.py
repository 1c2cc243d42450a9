"""The model `vidfit extract` runs: an action classifier's backbone giving pooled features per window, per view
or fused, from Kinetics-400 weights or a trained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidfit.config import ConfigError, resolve_precision
from vidfit.infer import ChunkedPredictor, Ranks
from vidfit.models import VideoClassifier, build_classifier
from vidfit.models._backbone_recipes import backbone_constraints


@dataclass
class WindowFeatures:
    """What `FeatureModel` returns, as `ChunkedPredictor` reads a model's output.

    Attributes:
        logits: Each window's pooled features (B, V * C): the predictor's "clip logits", kept per window.
        frame_logits: (B, T, 0): nothing per frame, so that the predictor keeps nothing that grows with the video.
    """

    logits: torch.Tensor
    frame_logits: torch.Tensor


class FeatureModel(nn.Module):
    """A classifier's RGB branch without its heads: features pooled over each window's time and space.

    Args:
        classifier: Its backbone (and view fusion, when `fused`) gives the features.
        fused: One feature per window, after the classifier's view fusion (its late-fusion projection, or the
            stacked views of early fusion); otherwise the backbone's features of each view side by side.
    """

    def __init__(self, classifier: VideoClassifier, *, fused: bool) -> None:
        super().__init__()
        if classifier.rgb is None:
            raise ConfigError("vidfit extract reads video: model.input_type must be rgb or rgb_kpt (its RGB branch)")
        views, fusion = len(classifier.spec.views), classifier.spec.view_fusion
        if not fused and views > 1 and fusion == "early":
            raise ConfigError(
                f"model.view_fusion='early' stacks the {views} views before the backbone, so there are no features "
                "per view: extract with --fused"
            )
        self.rgb, self.fused = classifier.rgb, fused
        self.channels = self.rgb.feature_dim

    def forward(self, video: torch.Tensor, keypoints: Any = None, keypoint_mask: Any = None) -> WindowFeatures:
        """Features (B, V * C), or (B, C) fused, of uint8 windows (B, V, 3, T, H, W)."""
        batch, views = video.shape[:2]
        if self.fused:
            pooled = self.rgb(video).mean(dim=-1)
        else:
            frames = self.rgb.normalize(video).flatten(0, 1)
            pooled = self.rgb.backbone(frames).mean(dim=(-3, -2, -1)).reshape(batch, views * self.channels)
        return WindowFeatures(pooled.float(), pooled.new_zeros((batch, video.shape[3], 0)))


def build_extractor(
    config: Any, *, views: list[str], num_classes: int, weights: dict[str, torch.Tensor] | None, fused: bool
) -> FeatureModel:
    """The feature model of an action config, with a checkpoint's `weights` (None: ``model.pretrained``'s)."""
    model = config.model
    if config.experiment.task != "action":
        raise ConfigError(
            f"vidfit extract takes the backbone of an action model: experiment.task is {config.experiment.task!r}"
        )
    classifier = build_classifier(
        backbone=model.backbone, num_classes=num_classes, views=tuple(views), view_fusion=model.view_fusion,
        input_type="rgb", pretrained=model.pretrained, pretrained_path=model.pretrained_path,
        load_pretrained=weights is None,
    )  # fmt: skip
    if weights is not None:
        # The keypoint branch and the heads of a trained checkpoint are not used.
        rgb = {k: v for k, v in weights.items() if k.startswith("rgb.")}
        classifier.load_state_dict(rgb, strict=False)
        missing = [k for k in classifier.state_dict() if k.startswith("rgb.") and k not in rgb]
        if missing:
            raise ConfigError(f"the checkpoint has no weights of the RGB branch ({missing[:3]}): not an rgb model")
    return FeatureModel(classifier, fused=fused).eval()


def min_window_frames(config: Any) -> int:
    return backbone_constraints(config.model.backbone).min_window_frames


def feature_predictor(
    model: FeatureModel, config: Any, ranks: Ranks, *, window: int, stride: int, windows_per_pass: int
) -> ChunkedPredictor:
    """`model` on this process's device (its local rank's GPU under torchrun) behind a window-by-window predictor."""
    if not torch.cuda.is_available():
        device = torch.device("cpu")
    elif ranks.local_rank < torch.cuda.device_count():
        device = torch.device("cuda", ranks.local_rank if ranks.world_size > 1 else torch.cuda.current_device())
    else:
        raise ValueError(
            f"LOCAL_RANK={ranks.local_rank} but {torch.cuda.device_count()} GPU(s) are visible: "
            "launch at most one process per GPU (torchrun --nproc-per-node)"
        )
    model.to(device)
    precision = resolve_precision(config) if device.type == "cuda" else "32"
    return ChunkedPredictor(
        model, chunk_infer_size=window, chunk_overlap=window - stride, chunk_aggregation="mean",
        video_batch_size=windows_per_pass, precision=precision,  # type: ignore[arg-type]
        device=device, min_window_frames=min_window_frames(config),
    )  # fmt: skip
