"""`upscale`: a super-resolution checkpoint over video files, folders or manifests, written as videos."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import track

from vidfit.data import ManifestError, load_manifest
from vidfit.infer import UpscaleResult, upscale_video
from vidfit.io import VideoDecodeError
from vidfit.predict import MANIFEST_SUFFIXES, VIDEO_SUFFIXES
from vidfit.train import ConfigError, config_from_dict, load_sr_module, resolve_precision


@dataclass(frozen=True)
class UpscaleRun:
    """What `upscale` produced.

    Attributes:
        outputs: Per input video, the upscaled video written.
        failures: Per input video (or manifest), why it could not be upscaled.
    """

    outputs: dict[str, UpscaleResult]
    failures: dict[str, str]


def upscale(
    checkpoint: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    split: str | None = None,
    chunk_num_frames: int = 32,
    progress: bool = True,
) -> UpscaleRun:
    """`predict`'s sibling for ``experiment.task: super_resolution``: upscales every frame of every input video.

    Args:
        checkpoint: A super-resolution checkpoint written by `vidfit fit`.
        inputs: Video files, folders (their video files), or manifests (every view of their videos).
        out: The output video when `inputs` is one video file; otherwise a folder of ``<stem>.mp4`` files
            (``<video id>/<view>.mp4`` for manifests). None writes ``<stem>_x<scale>.mp4`` beside each input.
        overrides: ``section.key=value`` changes to the checkpoint's config, e.g. ``trainer.precision=32``.
        split: Only the manifest videos of this split.
        chunk_num_frames: Frames decoded at a time (memory is O(chunk)).
        progress: Show a progress bar.
    """
    module = load_sr_module(checkpoint)
    config = config_from_dict(module.hparams["config"], source=str(checkpoint), overrides=tuple(overrides))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(config) if device.type == "cuda" else "32"
    model = module.model.eval().to(device)
    pairs, failures = _upscale_targets(inputs, out=out, split=split, scale=model.scale)
    outputs: dict[str, UpscaleResult] = {}
    for source, target in track(pairs, description="upscaling", disable=not progress):
        try:
            outputs[str(source)] = upscale_video(
                model, source, target, chunk_num_frames=chunk_num_frames, device=device,
                precision=precision,  # type: ignore[arg-type]
            )  # fmt: skip
        except (FileNotFoundError, VideoDecodeError, ValueError) as error:
            failures[str(source)] = str(error)
    return UpscaleRun(outputs, failures)


def _upscale_targets(
    inputs: Sequence[str | os.PathLike[str]], *, out: str | os.PathLike[str] | None, split: str | None, scale: int
) -> tuple[list[tuple[Path, Path]], dict[str, str]]:
    """(input video, output video) pairs, and the manifests that cannot be read."""
    named: list[tuple[Path, str]] = []
    failures: dict[str, str] = {}
    for item in map(Path, inputs):
        if item.suffix.lower() in MANIFEST_SUFFIXES:
            try:
                videos = [v for v in load_manifest(item).videos if split is None or v.split == split]
            except (ManifestError, FileNotFoundError) as error:
                failures[str(item)] = str(error)
                continue
            named += [(path, f"{v.id}/{view}.mp4") for v in videos for view, path in v.views.items()]
            continue
        files = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if item.is_dir() else [item]
        named += [(file, f"{file.stem}.mp4") for file in files]
    folder = Path(out) if out is not None else None
    if folder is not None and folder.suffix.lower() in VIDEO_SUFFIXES:
        if len(named) != 1:
            raise ConfigError(f"out={str(folder)!r} is one video for {len(named)} inputs: give a folder")
        return [(named[0][0], folder)], failures
    pairs = [
        (source, folder / name if folder is not None else source.with_name(f"{source.stem}_x{scale}.mp4"))
        for source, name in named
    ]
    return pairs, failures
