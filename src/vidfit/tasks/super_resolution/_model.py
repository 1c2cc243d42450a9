"""The ESPCN a super-resolution config describes, for training and for inference alike."""

from __future__ import annotations

from vidfit.models import ESPCN, build_espcn
from vidfit.tasks.super_resolution._config import SRConfig


def build_sr_model(config: SRConfig) -> ESPCN:
    """The ESPCN a super-resolution config describes (`data.num_frames`, `model.scale`, `model.espcn_features`)."""
    return build_espcn(
        num_frames=config.data.num_frames, scale=config.model.scale, features=config.model.espcn_features
    )
