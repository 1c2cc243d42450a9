"""The temporal task's config: its `model` section (the head and its sizes), the feature folder in `data`, and the
weights of its losses in `train`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from vidfit.config import Config, DataConfig, TrainConfig

Head = Literal["mstcn", "actionformer"]
HEADS: tuple[str, ...] = get_args(Head)


@dataclass
class TemporalModelConfig:
    """The temporal model over a whole video's features.

    Attributes:
        head: ``mstcn`` (dense per-frame classes: MS-TCN, multi-stage dilated convolutions with a smoothing loss)
            or ``actionformer`` (segments with scores: an anchor-free detector over a feature pyramid).
        channels: Channels of every layer (MS-TCN's ``num_f_maps``; ActionFormer's embedding).
        num_stages: MS-TCN stages, each refining the one before.
        num_layers: MS-TCN's dilated layers per stage (10 see 2047 feature steps).
        num_levels: ActionFormer's pyramid levels, each half as long as the one before.
        dropout: Dropout inside the layers.
        background: The label of frames that are no action (MS-TCN's and the figures' background); null when
            every label is an action. A label the manifest does not have is the same as null.
        score_threshold: ActionFormer's per-frame labels and CSV paint the segments scoring at least this
            (segments in the JSON keep every score, for mAP).
    """

    head: Head = "mstcn"
    channels: int = 64
    num_stages: int = 4
    num_layers: int = 10
    num_levels: int = 6
    dropout: float = 0.5
    background: str | None = "background"
    score_threshold: float = 0.3


@dataclass(frozen=True)
class TemporalDataConfig(DataConfig):
    """`DataConfig` plus the feature folder `vidfit extract` wrote for the manifest's videos.

    Attributes:
        features: The folder (its ``features.yaml`` names every video's file). ``data.max_video_frames``, given,
            cuts longer training videos into windows of that many video frames (``data.chunk_overlap_frames``
            shared); evaluation and predict take whole videos.
    """

    features: str = ""


@dataclass
class TemporalTrainConfig(TrainConfig):
    """`TrainConfig` plus the weights of the heads' second losses.

    Attributes:
        smoothing_weight: MS-TCN's smoothing loss against over-segmentation (0.15 in the paper).
        regression_weight: ActionFormer's distance-IoU loss of the segment boundaries (1.0 in the paper).
    """

    smoothing_weight: float = 0.15
    regression_weight: float = 1.0


# The config of a temporal run, typed by its sections.
TemporalConfig = Config[TemporalModelConfig, TemporalDataConfig, TemporalTrainConfig]

# What `train.monitor` may name; the first is the default. Validation logs every one of them.
MONITORS = (
    "val/f1@50", "val/loss", "val/f1@25", "val/f1@10", "val/edit", "val/frame_acc", "val/mAP",
    *(f"val/mAP@{t:.1f}" for t in (0.3, 0.4, 0.5, 0.6, 0.7)),
)  # fmt: skip

# A temporal model is light: it trains and evaluates on whole videos of features, in the main process.
DEFAULTS: dict[tuple[str, str], Any] = {
    ("data", "num_workers"): 0,
    ("data", "batch_size"): 4,
    ("train", "lr"): 5e-4,
    ("train", "chunk_infer_size"): -1,
}


def temporal_problems(config: TemporalConfig) -> list[str]:
    """The temporal task's rules between keys."""
    model, data, train = config.model, config.data, config.train
    rules = [
        (bool(data.features), "data.features must name the feature folder `vidfit extract --out` wrote"),
        (model.head in HEADS, f"model.head={model.head!r} is not one of {', '.join(map(repr, HEADS))}"),
        (
            min(model.channels, model.num_stages, model.num_layers, model.num_levels) >= 1,
            "model.channels, model.num_stages, model.num_layers and model.num_levels must be >= 1",
        ),
        (0 <= model.dropout < 1, f"model.dropout={model.dropout} must be in [0, 1)"),
        (0 <= model.score_threshold <= 1, f"model.score_threshold={model.score_threshold} must be in [0, 1]"),
        (train.smoothing_weight >= 0, f"train.smoothing_weight={train.smoothing_weight} must be >= 0"),
        (train.regression_weight >= 0, f"train.regression_weight={train.regression_weight} must be >= 0"),
        (
            data.batch_size != "auto",
            "data.batch_size: auto is not planned for experiment.task: temporal: give a number",
        ),
    ]
    return [message for ok, message in rules if not ok]
