"""Action recognition's evaluation: one result per chunk, gathered from every rank, scored once per chunk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import multiclass_accuracy

from vidfit.data import IGNORE_LABEL
from vidfit.infer._ranks import gather_objects


@dataclass(frozen=True)
class ChunkResult:
    """What evaluation found in one chunk of the index, small enough to send between ranks.

    Attributes:
        video_id: The chunk's video.
        chunk_index: The chunk's place in its video, from 0.
        loss: The loss of the chunk alone.
        label: The video's class index, `IGNORE_LABEL` when unlabelled.
        predicted_label: The class with the highest clip score.
        frame_labels: Class index of each of the chunk's frames (T,), `IGNORE_LABEL` where unlabelled.
        predicted_frame_labels: The class with the highest score at each frame (T,).
    """

    video_id: str
    chunk_index: int
    loss: float
    label: int
    predicted_label: int
    frame_labels: torch.Tensor
    predicted_frame_labels: torch.Tensor

    @property
    def key(self) -> tuple[str, int]:
        """(video_id, chunk_index): unique in a chunk index."""
        return self.video_id, self.chunk_index


def gather_chunk_results(results: Sequence[ChunkResult]) -> list[ChunkResult]:
    """Every rank's results with each chunk once, video by video and each video's chunks in order.

    `DistributedSampler` evens out the ranks' shards by repeating chunks of the index; a repeat
    carries the key of a chunk already gathered and is dropped, so what remains is exactly what a
    single process evaluates. A collective under DDP; the sorted `results` otherwise.
    """
    unique: dict[tuple[str, int], ChunkResult] = {}
    for result in gather_objects(results):
        unique.setdefault(result.key, result)
    return [unique[key] for key in sorted(unique)]


@dataclass(frozen=True)
class EvaluationMetrics:
    """Evaluation over chunks, each counted once.

    Attributes:
        loss: Mean loss per chunk.
        accuracy: Share of the labelled chunks whose clip prediction is right.
        frame_accuracy: Share of the labelled frames (of every chunk) predicted right.
        num_chunks: Chunks evaluated.
    """

    loss: float
    accuracy: float
    frame_accuracy: float
    num_chunks: int


def evaluation_metrics(results: Sequence[ChunkResult], *, num_classes: int) -> EvaluationMetrics:
    """Loss and micro accuracies (torchmetrics', `IGNORE_LABEL` ignored) of gathered chunk results.

    Args:
        results: From `gather_chunk_results`: the same list, in the same order, on every rank.
        num_classes: Classes of the model.
    """
    if not results:
        raise ValueError("evaluation_metrics needs at least one chunk result, got none")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be >= 2")
    labels = torch.tensor([r.label for r in results])
    predicted = torch.tensor([r.predicted_label for r in results])
    frame_labels = torch.cat([r.frame_labels.flatten() for r in results])
    predicted_frames = torch.cat([r.predicted_frame_labels.flatten() for r in results])
    return EvaluationMetrics(
        loss=float(torch.tensor([r.loss for r in results], dtype=torch.float64).mean()),
        accuracy=float(multiclass_accuracy(predicted, labels, num_classes, average="micro", ignore_index=IGNORE_LABEL)),
        frame_accuracy=float(
            multiclass_accuracy(predicted_frames, frame_labels, num_classes, average="micro", ignore_index=IGNORE_LABEL)
        ),
        num_chunks=len(results),
    )
