"""`extract`: the features of every window of every video, one file per video, for a temporal model to read.

The videos stream window by window through `vidfit.infer.ChunkedPredictor` (memory flat in video length, the
OOM policy), one job per video on the engine `predict` uses (this process or torchrun's ranks, or Ray actors),
optionally one shard of them. Each file is written whole, then renamed; the index ``features.yaml`` comes last.
A rerun skips the videos whose file is whole, was made with the same settings and agrees with the index.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfit.apps._extract_model import build_extractor, feature_predictor, min_window_frames
from vidfit.apps._extract_settings import (
    ExtractJob,
    Extractor,
    collect_jobs,
    existing_entries,
    expand,
    file_meta,
    load_extractor,
    remove_partial_files,
    remove_stale_index,
)
from vidfit.apps._merge_features import ordered_failures
from vidfit.config import ConfigError
from vidfit.data import clip_frame_range, decode_size, match_views
from vidfit.infer import ChunkedPredictor, Engine, EngineName, Ranks, Shard, Work, join_launch, write_shard_record
from vidfit.infer._features import (
    FEATURES_INDEX,
    FeatureEntry,
    FeatureIndex,
    VideoFeatures,
    feature_file_name,
    save_feature_index,
    write_video_features,
)
from vidfit.infer._ranks import broadcast_from_rank_zero, gather_to_rank_zero
from vidfit.infer._shards import file_sizes
from vidfit.io import VideoReader, check_writable
from vidfit.io._atomic import resolve_inside

# Views are matched by time as training matched them: `VideoDataset`'s default tolerance.
_SYNC_TOLERANCE_SECONDS = 0.05


@dataclass(frozen=True)
class ExtractResult:
    """What `extract` did.

    Attributes:
        index_path: The index written (``<out>/features.yaml``, or the shard's).
        extracted: Videos whose features this run computed.
        skipped: Videos whose features an earlier run left whole, with the same settings.
        failures: Per video id (or input), why it has no features.
    """

    index_path: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def report_lines(self) -> list[str]:
        """What the command line prints (failures apart)."""
        done = len(self.extracted) + len(self.skipped)
        return [
            f"{done} videos ({len(self.extracted)} extracted, {len(self.skipped)} already whole) -> {self.index_path}"
        ]


def extract(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    window: int = 16,
    stride: int = 4,
    fused: bool = False,
    split: str | None = None,
    overrides: Sequence[str] = (),
    engine: EngineName = "local",
    ray_address: str | None = None,
    shard: str | Shard | None = None,
    progress: bool = True,
) -> ExtractResult:
    """Writes the features of every `window`-frame window, every `stride` frames, of every video of `inputs`.

    Args:
        inputs: Manifests (all views of their videos), video files or folders of them.
        out: The feature folder: ``<video id>.npz`` per video and the index ``features.yaml``.
        checkpoint: An action checkpoint whose backbone (and view fusion) gives the features; or
        config: An action config (``model.backbone``, ``model.pretrained: kinetics400``, ``data.image_size``).
        window: Frames of each window (as the backbone was trained on clips of).
        stride: Frames between the starts of consecutive windows, from 1 to `window`.
        fused: One feature per window after the model's view fusion; otherwise one per view, side by side.
        split: Only the manifest videos of this split.
        overrides: ``section.key=value`` changes to the config, e.g. ``train.video_batch_size=32`` (windows per pass).
        engine: ``"local"`` (this process, or each torchrun rank) or ``"ray"`` (actors, each loading the model).
        ray_address: The Ray cluster to join.
        shard: ``"i/N"``: only the i-th of N shards of the videos; `vidfit merge <out>/features.yaml` joins them.
        progress: Show a progress bar.
    """
    if (checkpoint is None) == (config is None):
        raise ConfigError("vidfit extract takes one of --checkpoint (a trained action model) or --config")
    if window < 1 or not 1 <= stride <= window:
        raise ConfigError(f"--window {window} --stride {stride}: need window >= 1 and 1 <= stride <= window")
    runner = Engine(engine, ray_address=ray_address)
    part = Shard.parse(shard) if isinstance(shard, str) else shard
    folder = Path(out)
    index_path = folder / FEATURES_INDEX if part is None else part.output_path(folder / FEATURES_INDEX)
    check_writable(index_path)
    videos, failures = expand(inputs, split=split)
    extractor = load_extractor(
        videos, checkpoint=checkpoint, config=config, overrides=overrides, window=window, stride=stride, fused=fused
    )
    jobs = collect_jobs(videos, views=extractor.model_views, failures=failures)
    if min_window_frames(extractor.config) > window:
        raise ConfigError(
            f"--window {window}: model.backbone needs windows of >= {min_window_frames(extractor.config)}"
        )
    all_ids = [job.video_id for job in jobs]
    if part is not None:
        jobs = [job for job in jobs if job.video_id in part.video_ids(all_ids)]
    with join_launch() as ranks:
        if ranks.rank == 0:
            remove_stale_index(index_path, extractor.settings)
        done = existing_entries(folder, jobs, extractor.settings, index_path)
        todo = [job for job in jobs if done[job.video_id] is None]
        share, shown = todo[ranks.rank :: ranks.world_size], progress and ranks.rank == 0
        whole = [job for job in jobs if done[job.video_id] is not None] if ranks.rank == 0 else []
        remove_partial_files(folder, [*share, *whole])  # each rank its own videos': none is another's to write
        mine = runner.run(share, _work(extractor, ranks, folder), progress=shown)
        parts = gather_to_rank_zero(mine)
        result = ExtractResult(index_path)
        if parts is not None:
            result = _write_index(parts, jobs=jobs, done=done, failures=failures, extractor=extractor,
                                  index_path=index_path)  # fmt: skip
            if part is not None:
                files = file_sizes([folder / e.file for e in _entries(jobs, parts, done).values()], folder=folder)
                write_shard_record(index_path, shard=part, kind="features", video_ids=all_ids,
                                   failures=result.failures, settings=extractor.settings, files=files)  # fmt: skip
        result = broadcast_from_rank_zero(result)
    return result


def _entries(
    jobs: list[ExtractJob],
    parts: list[tuple[dict[str, FeatureEntry], dict[str, str]]],
    done: dict[str, FeatureEntry | None],
) -> dict[str, FeatureEntry]:
    """Every whole video's entry, this run's and the earlier runs', in job order."""
    found = {video_id: entry for entries, _ in parts for video_id, entry in entries.items()}
    found.update({video_id: entry for video_id, entry in done.items() if entry is not None})
    return {job.video_id: found[job.video_id] for job in jobs if job.video_id in found}


def _write_index(
    parts: list[tuple[dict[str, FeatureEntry], dict[str, str]]],
    *,
    jobs: list[ExtractJob],
    done: dict[str, FeatureEntry | None],
    failures: dict[str, str],
    extractor: Extractor,
    index_path: Path,
) -> ExtractResult:
    """The index of every whole video, in job order, written last: its presence says those files are whole."""
    failed = {**failures, **{k: v for _, f in parts for k, v in f.items()}}
    skipped = [job.video_id for job in jobs if done[job.video_id] is not None]
    extracted = [job.video_id for job in jobs if any(job.video_id in entries for entries, _ in parts)]
    result = ExtractResult(index_path, extracted, skipped, failed)
    videos = _entries(jobs, parts, done)
    index = FeatureIndex(
        extractor.settings, videos, ordered_failures(failed, [job.video_id for job in jobs]), index_path.parent
    )
    save_feature_index(index, index_path)
    return result


def _work(extractor: Extractor, ranks: Ranks, folder: Path) -> Work[ExtractJob, ChunkedPredictor, FeatureEntry, str]:
    """Each video through a predictor that every worker (this process, or each Ray actor) builds once."""
    return Work(
        functools.partial(extract_video, extractor=extractor, folder=folder),
        key=_video_id,
        description="extracting",
        load=functools.partial(_load_predictor, extractor, ranks),
    )


def _video_id(job: ExtractJob) -> str:
    return job.video_id


def _load_predictor(extractor: Extractor, ranks: Ranks) -> ChunkedPredictor:
    settings = extractor.settings
    model = build_extractor(
        extractor.config, views=extractor.model_views, num_classes=extractor.num_classes, weights=extractor.weights,
        fused=settings["fused"],
    )  # fmt: skip
    return feature_predictor(
        model, extractor.config, ranks, window=settings["window"], stride=settings["stride"],
        windows_per_pass=extractor.config.train.video_batch_size,
    )  # fmt: skip


def extract_video(predictor: ChunkedPredictor, job: ExtractJob, *, extractor: Extractor, folder: Path) -> FeatureEntry:
    """One video's windows through the predictor, written to its feature file; its index entry."""
    settings = extractor.settings
    with ExitStack() as stack:
        readers = [
            stack.enter_context(VideoReader(job.views[v], stream_index=job.streams.get(v))) for v in job.view_names
        ]
        reference = readers[0]
        times = reference.pts_seconds - reference.metadata.begin_seconds
        frames = clip_frame_range(times, start_seconds=job.start_seconds, end_seconds=job.end_seconds)
        if not frames:
            raise ValueError(f"{reference.path}: the clip range of video {job.video_id!r} holds no frame")
        view_frames = match_views(readers, frames, video_id=job.video_id, tolerance_seconds=_SYNC_TOLERANCE_SECONDS)
        meta = reference.metadata
        prediction = predictor.predict_readers(
            readers, size=decode_size(extractor.config.data.image_size, height=meta.height, width=meta.width),
            view_frames=view_frames, frame_stride=settings["frame_stride"], frames=frames,
        )  # fmt: skip
    if prediction.used_chunk_infer_size not in (settings["window"], -1):
        raise ValueError(
            f"out of memory even with one {settings['window']}-frame window per pass: windows of another length "
            "would give other features; lower data.image_size or use another GPU"
        )
    layout = 1 if settings["fused"] else len(settings["views"])
    features = _video_features(prediction, layout, frames.start, times[frames.start : frames.stop])
    path = resolve_inside(folder, feature_file_name(job.video_id))
    sha256 = write_video_features(path, features, meta={**file_meta(job, settings), "fps": meta.fps})
    return FeatureEntry(path.name, features.num_frames, features.num_windows, float(meta.fps), sha256)


def _video_features(prediction: Any, num_views: int, first_frame: int, pts_seconds: np.ndarray) -> VideoFeatures:
    """The window features of a prediction, with each window's frames and centre."""
    windows = np.array([[w.start, w.stop] for w in prediction.windows], dtype=np.int64)
    logits = prediction.window_logits.float()
    features = logits.reshape(len(windows), num_views, -1).transpose(0, 1).to(torch.float16).numpy()
    centres = (windows[:, 0] + windows[:, 1] - 1) / 2
    seconds = np.interp(centres, np.arange(len(pts_seconds)), pts_seconds)
    return VideoFeatures(features, windows + first_frame, centres + first_frame, seconds, pts_seconds, first_frame)
