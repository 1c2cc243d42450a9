"""Tiny Hugging Face video models built from config and saved with `save_pretrained`: nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

# Every family at 4 frames of 32x32 with 8x8 patches: 2 time slots (tubelets of 2) or 4 (TimeSformer) of 16 patches.
TINY: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
FAMILIES = ("videomae", "timesformer", "vivit", "vjepa2")


def tiny_config(family: str, **changes: Any) -> Any:
    """The `transformers` config of a tiny model of `family`."""
    import transformers

    settings: dict[str, Any] = {
        "videomae": lambda: transformers.VideoMAEConfig(
            **TINY, intermediate_size=64, image_size=32, patch_size=8, num_frames=4, tubelet_size=2
        ),
        "timesformer": lambda: transformers.TimesformerConfig(
            **TINY, intermediate_size=64, image_size=32, patch_size=8, num_frames=4
        ),
        "vivit": lambda: transformers.VivitConfig(
            **TINY, intermediate_size=64, image_size=32, tubelet_size=[2, 8, 8], num_frames=4
        ),
        "vjepa2": lambda: transformers.VJEPA2Config(
            **TINY, mlp_ratio=2.0, crop_size=32, patch_size=8, frames_per_clip=4, tubelet_size=2, pred_hidden_size=32,
            pred_num_hidden_layers=1, pred_num_attention_heads=2, num_pooler_layers=1,
        ),
    }  # fmt: skip
    config = settings[family]()
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def save_tiny(family: str, folder: Path, *, seed: int = 0, **changes: Any) -> Path:
    """Saves a randomly initialized tiny model of `family` into `folder` (config.json and weights)."""
    import transformers

    torch.manual_seed(seed)
    transformers.AutoModel.from_config(tiny_config(family, **changes)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny model of every family, by family name."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf_models")
    return {family: save_tiny(family, root / family) for family in FAMILIES}
