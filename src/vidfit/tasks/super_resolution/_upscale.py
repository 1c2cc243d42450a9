"""`upscale`: a super-resolution checkpoint over video files, folders or manifests, written as videos."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidfit.config import ConfigError, config_from_dict, resolve_precision
from vidfit.infer import (
    VIDEO_SUFFIXES,
    CheckpointState,
    Engine,
    Shard,
    VideoFile,
    Work,
    check_weights,
    expand_inputs,
    file_name,
    first_duplicate,
)
from vidfit.io import check_writable, sigterm_as_interrupt
from vidfit.tasks.super_resolution._config import SRConfig
from vidfit.tasks.super_resolution._model import build_sr_model
from vidfit.tasks.super_resolution._stream import (
    DEFAULT_SR_CHUNK_FRAMES,
    SuperResolutionModel,
    UpscaleResult,
    upscale_video,
)


@dataclass(frozen=True)
class UpscaleRun:
    """What `upscale` produced.

    Attributes:
        outputs: Per input video, the upscaled video written.
        failures: Per input video (or manifest, or folder), why it could not be upscaled.
    """

    outputs: dict[str, UpscaleResult]
    failures: dict[str, str]

    def report_lines(self) -> list[str]:
        """What the command line prints of the run (failures apart)."""
        lines = [
            f"{source} -> {video.path} ({video.width}x{video.height}, {video.num_frames} frames)"
            for source, video in self.outputs.items()
        ]
        if with_audio := sum(video.dropped_audio for video in self.outputs.values()):
            lines.append(
                f"audio is not copied: {with_audio} of the {len(self.outputs)} inputs had audio; the upscaled "
                "files hold the video stream only"
            )
        return lines


def upscale(
    checkpoint: CheckpointState,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    split: str | None = None,
    codec: str = "libx264",
    progress: bool = True,
    engine: Engine | None = None,
    shard: Shard | None = None,
) -> UpscaleRun:
    """`predict`'s sibling for ``experiment.task: super_resolution``: upscales every frame of every input video.

    Videos stream in chunks of ``train.chunk_infer_size`` frames (-1, the default: 32); outputs keep the
    input's frame times from its first frame and carry no audio. Inputs that would be written to one file
    are refused before any work; a video that fails is reported in `failures` and the others complete.

    Args:
        checkpoint: A super-resolution checkpoint written by `vidfit fit` (`vidfit.infer.read_checkpoint`).
        inputs: Video files, folders (their video files), or manifests (every view of their videos).
        out: The output video when `inputs` is one video file; otherwise a folder of ``<stem>.mp4`` files
            (``<video id>/<view>.mp4`` for manifests). None writes ``<stem>_x<scale>.mp4`` beside each input.
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``train.chunk_infer_size=64``.
        split: Only the manifest videos of this split.
        codec: ``"libx264"`` (H.264 4:2:0, even sizes only) or ``"libx264rgb"`` (RGB H.264, any size).
        progress: Show a progress bar.
        engine: Where the videos are upscaled: this process (the default), or Ray actors that each load the model.
        shard: Only this shard's input videos (each output is a file of its own: there is nothing to merge).
    """
    config = config_from_dict(checkpoint.config, source=str(checkpoint.path), overrides=tuple(overrides))
    model = build_sr_model(config)
    check_weights(model, checkpoint)  # here, once: not in each worker after videos were handed out
    chunk_num_frames = _chunk_num_frames(config, model_frames=model.num_frames)
    pairs, failures = _upscale_targets(inputs, out=out, split=split, scale=model.scale)
    if shard is not None:
        pairs = [pair for pair in pairs if str(pair[0]) in shard.video_ids([str(source) for source, _ in pairs])]
    for _, target in pairs:  # every output place first: a run must not end in a refused write
        check_writable(target)
    work = Work(
        functools.partial(_upscale_pair, chunk_num_frames=chunk_num_frames, codec=codec),
        key=_source_key,
        description="upscaling",
        load=functools.partial(_load_model, checkpoint, config),
    )
    with sigterm_as_interrupt():  # SIGTERM unwinds as Ctrl-C does: the video being written drops its temp file
        outputs, video_failures = (engine or Engine()).run(pairs, work, progress=progress)
    return UpscaleRun(outputs, {**failures, **video_failures})


def _load_model(checkpoint: CheckpointState, config: SRConfig) -> tuple[SuperResolutionModel, torch.device, str]:
    """The model on this worker's device (a GPU where it has one), with the precision it runs at there."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_sr_model(config)
    model.load_state_dict(checkpoint.weights)
    precision = resolve_precision(config) if device.type == "cuda" else "32"
    return model.eval().to(device), device, precision


def _upscale_pair(
    loaded: tuple[SuperResolutionModel, torch.device, str],
    pair: tuple[Path | str, Path],
    *,
    chunk_num_frames: int,
    codec: str,
) -> UpscaleResult:
    model, device, precision = loaded
    return upscale_video(
        model, *pair, chunk_num_frames=chunk_num_frames, device=device, codec=codec,
        precision=precision,  # type: ignore[arg-type]
    )  # fmt: skip


def _source_key(pair: tuple[Path | str, Path]) -> str:
    return str(pair[0])


def _chunk_num_frames(config: SRConfig, *, model_frames: int) -> int:
    """Frames per chunk from ``train.chunk_infer_size``: super-resolution always streams, so -1 means the default."""
    size = config.train.chunk_infer_size
    if size != -1 and size < model_frames:
        raise ConfigError(f"train.chunk_infer_size={size} must be >= the model's num_frames={model_frames} (or -1)")
    return DEFAULT_SR_CHUNK_FRAMES if size == -1 else size


def _upscale_targets(
    inputs: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None, split: str | None, scale: int
) -> tuple[list[tuple[Path | str, Path]], dict[str, str]]:
    """(input video, output video) pairs, and the inputs that gave no video; ConfigError when outputs collide."""
    videos, failures = expand_inputs(inputs, split=split)
    named: list[tuple[Path | str, str]] = []
    for video in videos:
        if isinstance(video, VideoFile):
            named.append((video.path, f"{file_name(video.path).stem}.mp4"))
        elif video.start_seconds is not None or video.end_seconds is not None:
            failures[video.id] = (
                "its clip range (start/end) would be ignored: super-resolution upscales whole videos; "
                "cut the clip first with `vidfit prepare` (which transcodes the range alone)"
            )
        else:
            named += [(path, f"{video.id}/{view}.mp4") for view, path in video.views.items()]
    folder = Path(out) if out is not None else None
    remote = [source for source, _ in named if isinstance(source, str)]
    if folder is None and remote:
        raise ConfigError(f"{remote[0]} is a URL, with no folder beside it for the upscaled video: give --out")
    if folder is not None and folder.suffix.lower() in VIDEO_SUFFIXES:
        if len(named) != 1:
            raise ConfigError(f"out={str(folder)!r} is one video for {len(named)} inputs: give a folder")
        return [(named[0][0], folder)], failures
    pairs = [
        (source, folder / name if folder is not None else Path(source).with_name(f"{Path(source).stem}_x{scale}.mp4"))
        for source, name in named
    ]
    duplicate = first_duplicate((target, source) for source, target in pairs)
    if duplicate is not None:
        target, first, second = duplicate
        raise ConfigError(
            f"{first} and {second} would both be upscaled into {target}: rename one, or upscale them separately"
        )
    return pairs, failures
