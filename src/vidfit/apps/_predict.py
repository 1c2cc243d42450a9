"""`predict`: any trained checkpoint over video files, folders or manifests, run by the task it was trained for."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from vidfit.config import ConfigError, get_task
from vidfit.infer import read_checkpoint
from vidfit.infer._engines import Engine, EngineName
from vidfit.infer._shards import Shard


def predict(
    checkpoint: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    split: str | None = None,
    progress: bool = True,
    engine: EngineName = "local",
    ray_address: str | None = None,
    shard: str | Shard | None = None,
    **options: Any,
) -> Any:
    """Runs `checkpoint` over `inputs` with its task's predictor (action: labels and segments to JSON and CSV;
    super-resolution: upscaled videos).

    Args:
        checkpoint: A checkpoint written by `vidfit fit`.
        inputs: Video files, folders (their video files), or manifests (their videos, all views).
        out: Where results go; None for the task's default (see the task's `predict`).
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``train.chunk_infer_size=64``.
        split: Only the manifest videos of this split.
        progress: Show a progress bar.
        engine: ``"local"`` (this process, or each torchrun rank) or ``"ray"`` (actors on a Ray cluster, each
            loading the model once, one GPU each where the cluster has GPUs); see docs/DISTRIBUTED.md.
        ray_address: The Ray cluster to join; None: ``RAY_ADDRESS``, else a cluster started on this machine.
        shard: ``"i/N"``: only the i-th of N deterministic shards of the videos, for `vidfit merge` to join.
        options: The task's own options (super-resolution: ``codec``).

    Returns:
        The task's result: ``failures`` by video, and ``report_lines()`` to show.
    """
    runner = Engine(engine, ray_address=ray_address)
    part = Shard.parse(shard) if isinstance(shard, str) else shard
    state = read_checkpoint(checkpoint)
    spec = get_task(state.task, key=f"{checkpoint}: experiment.task")
    unknown = sorted(set(options) - set(spec.predict_options))
    if unknown:
        raise ConfigError(
            f"{checkpoint}: {', '.join(unknown)} do not apply to a checkpoint of experiment.task {spec.name!r}"
            + (f" (its options: {', '.join(spec.predict_options)})" if spec.predict_options else "")
        )
    where: dict[str, Any] = {} if out is None else {"out": out}
    where.update(engine=runner, shard=part)
    return spec.predict(state, inputs, overrides=overrides, split=split, progress=progress, **where, **options)
