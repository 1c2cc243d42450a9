"""`predict`: any trained checkpoint over video files, folders or manifests, run by the task it was trained for."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidfit.apps._report import write_report
from vidfit.apps._report_run import is_run_folder
from vidfit.config import ConfigError, ReportedOutcome, get_task
from vidfit.infer import read_checkpoint
from vidfit.infer._engines import Engine, EngineName
from vidfit.infer._ranks import is_rank_zero
from vidfit.infer._shards import Shard
from vidfit.io import DocumentError, DocumentLimits, load_document, shorten

logger = logging.getLogger(__name__)


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
    report: bool = True,
    **options: Any,
) -> Any:
    """Runs `checkpoint` over `inputs` with its task's predictor (action: labels and segments to JSON and CSV;
    super-resolution: upscaled videos).

    Args:
        checkpoint: A checkpoint written by `vidfit fit`.
        inputs: Video files, folders (their video files), or manifests (their videos, all views): paths, or
            http(s)/fsspec URLs of videos and manifests.
        out: Where results go; None for the task's default (see the task's `predict`).
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``train.chunk_infer_size=64``.
        split: Only the manifest videos of this split.
        progress: Show a progress bar.
        engine: ``"local"`` (this process, or each torchrun rank) or ``"ray"`` (actors on a Ray cluster, each
            loading the model once, one GPU each where the cluster has GPUs); see docs/DISTRIBUTED.md.
        ray_address: The Ray cluster to join; None: ``RAY_ADDRESS``, else a cluster started on this machine.
        shard: ``"i/N"``: only the i-th of N deterministic shards of the videos, for `vidfit merge` to join.
        report: Write the HTML report of the predictions beside their JSON (``<stem>.html``, `write_report`),
            with the curves of the checkpoint's run folder, for a task whose result is a `ReportedOutcome`
            (action, temporal); not for a shard.
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
            f"{checkpoint}: the options {', '.join(unknown)} do not apply to a checkpoint of experiment.task "
            f"{spec.name!r} ({_options_words(spec.predict_options)})"
        )
    where: dict[str, Any] = {} if out is None else {"out": out}
    where.update(engine=runner, shard=part)
    result = spec.predict(state, inputs, overrides=overrides, split=split, progress=progress, **where, **options)
    if report and part is None and isinstance(result, ReportedOutcome) and result.written and is_rank_zero():
        result = dataclasses.replace(result, report_path=_report(result, Path(checkpoint), inputs))
    return result


def _report(result: ReportedOutcome, checkpoint: Path, inputs: Sequence[str | os.PathLike[str]]) -> Path | None:
    """The report beside the predictions; a report that cannot be written is a warning, the predictions stand."""
    run_dir = checkpoint.parent.parent  # a run folder's checkpoints/<name>.ckpt
    try:
        written = write_report(result.json_path, inputs=inputs, run_dir=run_dir if is_run_folder(run_dir) else None)
    except (OSError, ValueError) as error:
        logger.warning("report not written: %s", error)
        return None
    return written.path


def parse_options(texts: Sequence[str]) -> dict[str, Any]:
    """``key=value`` texts (``vidfit predict --option``) as a task's options, each value read as YAML (``0.5`` a
    number, ``true`` a bool, ``libx264rgb`` text); `ConfigError` naming the text that is not one."""
    options: dict[str, Any] = {}
    for text in texts:
        key, equals, value = text.partition("=")
        if not equals or not key.strip().isidentifier():
            raise ConfigError(f"--option {shorten(text)}: expected key=value, e.g. codec=libx264rgb")
        try:
            options[key.strip()] = load_document(value, form="yaml", source="the value", limits=_OPTION_LIMITS)
        except DocumentError as error:
            raise ConfigError(f"--option {shorten(text)}: {error}") from None
    return options


# An option is one short value.
_OPTION_LIMITS = DocumentLimits(max_bytes=1 << 16, max_depth=4, max_nodes=1_000)


def _options_words(names: Sequence[str]) -> str:
    return f"its options: {', '.join(names)}" if names else "it has no options"
