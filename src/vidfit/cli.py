"""The `vidfit` command line: parses arguments, calls the library's public functions, prints."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

from vidfit.apps import merge, predict, prepare, run_demo
from vidfit.apps._demo import DEMO_EPOCHS, DEMO_VIDEOS_PER_CLASS
from vidfit.config import ConfigError, load_config
from vidfit.data import (
    Manifest,
    ManifestError,
    import_activitynet,
    import_frame_labels,
    import_hmdb51,
    import_kinetics,
    import_multiview,
    import_segments,
    import_thumos14,
    import_ucf101,
    save_manifest,
)
from vidfit.data._import_formats import OVERLAP_POLICIES
from vidfit.infer._engines import ENGINE_NAMES
from vidfit.infer._ranks import is_rank_zero
from vidfit.io import VideoDecodeError, VideoMetadata, probe
from vidfit.train import fit, plan_memory, test, validate
from vidfit.train._plan_grid import parse_grid

Command = Callable[[argparse.Namespace], int]


def _info(args: argparse.Namespace) -> int:
    from rich.markup import escape  # paths like clip[1].mp4 are not markup

    rows, failures = [], 0
    err = Console(stderr=True)
    for video in args.videos:
        try:
            rows.append(probe(video, stream_index=args.stream))
        except (FileNotFoundError, ImportError, VideoDecodeError, ValueError) as error:
            err.print(f"[red]error[/red] {escape(str(error))}")
            failures += 1
    if args.json:
        print(json.dumps([{**dataclasses.asdict(m), "path": str(m.path)} for m in rows], indent=2))
        return 1 if failures else 0
    table = Table(Column("video", overflow="fold"), "stream", "frames", "fps", "size", "seconds", "starts at", "codec")
    for m in rows:
        for row in _stream_rows(m):
            table.add_row(escape(str(m.path)), *row)
    Console().print(table)
    return 1 if failures else 0


def _stream_rows(meta: VideoMetadata) -> list[tuple[str, ...]]:
    """A row per video stream: the one read as counted from its packet index, the others as their header says."""
    rows: list[tuple[str, ...]] = []
    for stream in meta.streams:
        size = f"{stream.width}x{stream.height}"
        if stream.index == meta.stream_index:
            timing = (str(meta.num_frames), f"{meta.fps:.3f}", size, f"{meta.duration_seconds:.3f}")
            rows.append((f"{stream.index} (read)", *timing, f"{meta.begin_seconds:.3f}", stream.codec))
        else:
            rows.append(
                (str(stream.index), str(stream.num_frames or "?"), f"{stream.fps:.3f}", size, "", "", stream.codec)
            )
    return rows


def _import(args: argparse.Namespace) -> int:
    keywords = [p.name for p in inspect.signature(args.importer).parameters.values() if p.kind == p.KEYWORD_ONLY]
    options = {name: getattr(args, name) for name in keywords if getattr(args, name, None) is not None}
    try:
        manifest = args.importer(args.source, **options)
        path = save_manifest(manifest, args.out)
    except ManifestError:
        raise
    except ValueError as error:  # a bad --out extension: the user's input
        raise ConfigError(str(error)) from error
    print(f"manifest: {path} ({len(manifest.videos)} videos, {len(manifest.labels)} labels)")
    return 0


def _report(text: str, *, error: bool = False) -> None:
    """Prints on rank 0 only: under DDP every rank runs the command, and one report is enough."""
    if is_rank_zero():
        print(text, file=sys.stderr if error else sys.stdout)


def _fit(args: argparse.Namespace) -> int:
    result = fit(load_config(args.config, args.set), resume_from=args.checkpoint)
    _report(f"run: {result.run_dir}\nbest checkpoint: {result.best_checkpoint} ({result.best_score})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    run = validate if args.command == "validate" else test
    metrics = run(load_config(args.config, args.set), checkpoint=args.checkpoint)
    _report(json.dumps(metrics, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    options = {"codec": args.codec} if args.codec is not None else {}
    options.update(engine=args.engine, ray_address=args.ray_address, shard=args.shard)
    result = predict(args.checkpoint, args.inputs, out=args.out, overrides=args.set, split=args.split, **options)
    for line in result.report_lines():
        _report(line)
    for name, reason in result.failures.items():
        _report(f"failed: {name}: {reason}", error=True)
    return 1 if result.failures else 0


def _prepare(args: argparse.Namespace) -> int:
    try:
        manifest = prepare(
            args.manifest, size=tuple(args.size), gop=args.gop, out_dir=args.out, workers=args.workers,
            engine=args.engine, ray_address=args.ray_address, shard=args.shard,
        )  # fmt: skip
    except ValueError as error:  # a bad --size, --gop, --workers or --shard, or a bad manifest: the user's input
        raise ConfigError(str(error)) from error
    print(f"prepared manifest: {manifest}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    result = merge(args.target)
    for line in result.report_lines():
        print(line)
    for name, reason in result.failures.items():
        print(f"failed: {name}: {reason}", file=sys.stderr)
    return 1 if result.failures else 0


def _plan(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.set)
    try:
        grid = parse_grid(
            frames=args.frames, batch=args.batch, precision=args.precision, checkpointing=args.checkpointing
        )
        result = plan_memory(config, budget=args.budget, **dataclasses.asdict(grid))
    except ValueError as error:  # a bad grid value, budget or manifest: the user's input, not a bug
        raise ConfigError(str(error)) from error
    how = (
        "measured on the GPU" if result.measured else "ESTIMATED on the meta device (no GPU): plan on a GPU to measure"
    )
    print(f"peak memory of a training step, {how}\n\n{result.table()}")
    if result.recommendation is not None:
        best = result.recommendation
        print(
            f"\nrecommended: data.num_frames={best.num_frames} data.batch_size={best.batch_size} "
            f"trainer.precision={best.precision} "
            f"model.activation_checkpointing={str(best.activation_checkpointing).lower()}"
        )
    result.write(json_path=args.out, png_path=Path(args.out).with_suffix(".png"))
    print(f"\nplan: {args.out}, chart: {Path(args.out).with_suffix('.png')}")
    return 0 if result.recommendation is not None else 1


def _demo(args: argparse.Namespace) -> int:
    result = run_demo(
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        max_epochs=args.epochs,
        videos_per_class=args.videos_per_class,
        progress=args.progress,
    )
    print(
        f"\ndemo dataset: {result.manifest}\nrun: {result.run_dir}\ncheckpoint: {result.checkpoint}\n"
        f"validation accuracy: {result.val_accuracy:.1%} (per frame {result.val_frame_accuracy:.1%})\n"
        f"predictions: {result.predictions.json_path}"
    )
    return 0


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="vidfit", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("info", help="print the metadata of videos (from their packet index)")
    info.add_argument("videos", nargs="+", metavar="VIDEO", help="a path, an http(s):// or other fsspec URL")
    info.add_argument("--stream", type=int, help="video stream to index (default: the one FFmpeg picks as best)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_import(commands.add_parser("import", help="write a manifest from another dataset format"))
    handlers: dict[str, Command] = {"info": _info, "import": _import}
    for name, needs_checkpoint in (("fit", False), ("validate", True), ("test", True)):
        sub = commands.add_parser(name, help=f"{name} a model described by a YAML config")
        sub.add_argument("--config", type=Path, required=True)
        _add_set(sub, "train.lr=0.01")
        sub.add_argument("--checkpoint", type=Path, required=needs_checkpoint, help="checkpoint (fit: resume from it)")
        handlers[name] = _fit if name == "fit" else _evaluate
    _add_predict(commands.add_parser("predict", help="predict videos, folders or manifests with a checkpoint"))
    _add_prepare(
        commands.add_parser("prepare", help="transcode a manifest's videos to the training size with a short GOP")
    )
    mer = commands.add_parser("merge", help="join the shards of a --shard i/N run of predict or prepare")
    mer.add_argument(
        "target", type=Path, help="what the unsharded run writes: predict's --out JSON, or prepare's <--out>/<manifest>"
    )
    _add_plan(commands.add_parser("plan", help="peak memory of training steps over a grid, against a budget"))
    _add_demo(commands.add_parser("demo", help="generate demo videos, train the tiny model on them, predict"))
    handlers.update(predict=_predict, prepare=_prepare, merge=_merge, plan=_plan, demo=_demo)
    for sub in commands.choices.values():  # also after the command: `vidfit fit ... --debug`
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
        )
    return parser, handlers


def _add_prepare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest", help="the manifest: a path, or an http(s)/fsspec URL (the copies are written locally)"
    )
    parser.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"))
    parser.add_argument("--gop", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the local engine")
    _add_engine(parser, "one CPU task per view")


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--output-dir", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--videos-per-class", type=int, default=DEMO_VIDEOS_PER_CLASS)
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _add_import(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    def add(name: str, importer: Callable[..., Manifest], source: str, help_text: str) -> argparse.ArgumentParser:
        sub = formats.add_parser(name, help=help_text)
        sub.add_argument("source", type=Path, metavar=source)
        sub.add_argument("--out", type=Path, required=True, help="the manifest to write (.yaml or .json)")
        sub.set_defaults(importer=importer)
        return sub

    def video_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--video-dir", dest="video_dir", type=Path, required=True, help="folder of the videos")

    def overlap(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--overlap", choices=tuple(OVERLAP_POLICIES), default="error", help="overlapping segments")

    video_dir(add("kinetics", import_kinetics, "CSV", "label,youtube_id,time_start,time_end,split CSV"))
    for name, importer in (("ucf101", import_ucf101), ("hmdb51", import_hmdb51)):
        sub = add(name, importer, "VIDEO_DIR", f"{name.upper()} class folders and split files")
        sub.add_argument("--split-files", dest="split_files", type=Path, nargs="+", required=True)
    segments = add("segments", import_segments, "CSV", "video,start,stop,label CSV (Charades, EPIC-KITCHENS)")
    video_dir(segments)
    overlap(segments)
    segments.add_argument("--unit", choices=("seconds", "frames"), default="seconds")
    segments.add_argument("--split")
    thumos = add("thumos14", import_thumos14, "ANNOTATION_DIR", "THUMOS14 <Class>_val.txt / <Class>_test.txt files")
    video_dir(thumos)
    overlap(thumos)
    multiview = add("multiview", import_multiview, "VIDEO_DIR", "recordings as <id>/<view>.mp4")
    multiview.add_argument("--views", nargs="+", help="view names in order (default: the first recording's)")
    multiview.add_argument("--split")
    video_dir(add("activitynet", import_activitynet, "JSON", "ActivityNet-style JSON"))
    frames = add("frame-labels", import_frame_labels, "LABELS", "a folder of <id>.txt files, one label per frame")
    video_dir(frames)
    frames.add_argument("--split")


def _add_set(sub: argparse.ArgumentParser, example: str) -> None:
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override, e.g. {example}")


def _add_predict(pred: argparse.ArgumentParser) -> None:
    pred.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    pred.add_argument("--checkpoint", type=Path, required=True)
    pred.add_argument(
        "--out",
        type=Path,
        help="JSON results, the CSV beside (default predictions.json); super-resolution: the output video, or "
        "a folder for several inputs (default: <input>_x<scale>.mp4 beside each input)",
    )
    pred.add_argument("--split", help="only the manifest videos of this split")
    _add_set(pred, "train.chunk_infer_size=64 (windows; super-resolution: frames decoded at a time, -1 = 32)")
    pred.add_argument(
        "--codec",
        choices=("libx264", "libx264rgb"),
        help="super-resolution output: libx264 (H.264 4:2:0, even sizes only) or libx264rgb (RGB H.264, any size)",
    )
    _add_engine(pred, "actors that each load the model, one GPU each where there are GPUs")


def _add_engine(sub: argparse.ArgumentParser, ray_work: str) -> None:
    sub.add_argument(
        "--engine", choices=ENGINE_NAMES, default="local",
        help=f"where the videos are processed: local (this machine) or ray (a Ray cluster: {ray_work})",
    )  # fmt: skip
    sub.add_argument("--ray-address", help="the Ray cluster to join (default: RAY_ADDRESS, else start one here)")
    sub.add_argument(
        "--shard", metavar="I/N", help="only the I-th of N shards of the videos (from 0), for `vidfit merge` to join"
    )


def _add_plan(plan: argparse.ArgumentParser) -> None:
    plan.add_argument("--config", type=Path, required=True)
    plan.add_argument("--budget", required=True, help="memory budget, e.g. 16GiB")
    plan.add_argument("--frames", help="clip lengths, e.g. 30,40,60 (default: data.num_frames)")
    plan.add_argument("--batch", help="batch sizes, e.g. 8,12,16 (default: data.batch_size)")
    plan.add_argument("--precision", help="e.g. 32,16-mixed,bf16-mixed (default: trainer.precision)")
    plan.add_argument("--checkpointing", help="off,on (default: model.activation_checkpointing)")
    plan.add_argument("--out", type=Path, default=Path("plan.json"), help="JSON; the PNG chart goes beside")
    _add_set(plan, "model.backbone=mc3_18")


def _show_library_log() -> None:
    """Prints what vidfit logs (chunking, auto-fit decisions), and not other libraries' INFO lines."""
    logger = logging.getLogger("vidfit")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vidfit` console script; returns the exit code."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    _show_library_log()
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, _USER_ERRORS) else 1


# What a user's input or machine causes (bad config, manifest, checkpoint, video, argument: vidfit raises a
# ValueError naming it; missing files, a full disk: OSError): exit 2 with the message alone. Anything else is
# a bug in vidfit: exit 1, and --debug shows where.
_USER_ERRORS = (ValueError, VideoDecodeError, OSError)


def _describe(error: Exception) -> str:
    """One line for `error`: ``<file>: <reason>`` for file-system errors, the message for vidfit's own."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, _USER_ERRORS):
        return str(error)
    return f"{type(error).__name__}: {error} (a bug in vidfit: run again with --debug and report the traceback)"


if __name__ == "__main__":
    sys.exit(main())
