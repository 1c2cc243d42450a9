"""The `vidfit` command line: parses arguments, calls the library's public functions, prints."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from vidfit.apps import extract, merge, parse_options, predict, prepare, run_demo, write_report
from vidfit.apps._demo import DEMO_EPOCHS, DEMO_VIDEOS_PER_CLASS
from vidfit.config import ConfigError, TaskPluginWarning, blame_task, load_config
from vidfit.data import (
    ImportResult,
    import_activitynet,
    import_frame_labels,
    import_hmdb51,
    import_kinetics,
    import_multiview,
    import_segments,
    import_thumos14,
    import_ucf101,
    import_video_folders,
    import_video_list,
)
from vidfit.data._import_segments import FRAME_NUMBERINGS, OVERLAP_POLICIES
from vidfit.infer._engines import ENGINE_NAMES
from vidfit.infer._ranks import is_rank_zero
from vidfit.io import Terminated, VideoDecodeError, VideoMetadata, probe
from vidfit.train import fit, plan_memory, test, validate
from vidfit.train._plan_grid import parse_grid

Command = Callable[[argparse.Namespace], int]


def _info(args: argparse.Namespace) -> int:
    from rich.markup import escape  # paths like clip[1].mp4 are not markup

    rows, failed = [], False
    for video in args.videos:
        try:
            rows.append(probe(video, stream_index=args.stream))
        except (*_USER_ERRORS, ImportError) as error:  # this video's: the others are still described
            print(f"error: {_bounded(_describe(error))}", file=sys.stderr)
            failed = True
    if args.json:
        print(json.dumps([{**dataclasses.asdict(m), "path": str(m.path)} for m in rows], indent=2))
    elif rows:
        table = Table(Column("video", overflow="fold"), "stream", "frames", "fps", "size", "seconds", "starts at",
                      "codec")  # fmt: skip
        for m in rows:
            for row in _stream_rows(m):
                table.add_row(escape(str(m.path)), *row)
        console = Console()
        # Piped, rich would fold long paths to its default of 80 columns: the table takes the width it needs.
        (console if console.is_terminal else Console(width=_PIPED_WIDTH)).print(table)
    return 2 if failed else 0


# Columns of the `info` table when it is not printed to a terminal: wide enough that nothing is folded.
_PIPED_WIDTH = 10_000


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
    if args.out.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"--out {args.out}: the manifest must be a .yaml, .yml or .json file")
    keywords = [p.name for p in inspect.signature(args.importer).parameters.values() if p.kind == p.KEYWORD_ONLY]
    result = args.importer(args.source, **{name: getattr(args, name) for name in keywords if hasattr(args, name)})
    path = result.save(args.out)
    print(f"{result.summary(path)}\nmanifest: {path}")
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
    options = parse_options(args.option)
    if args.codec is not None and options.setdefault("codec", args.codec) != args.codec:  # --codec X: codec=X
        raise ConfigError(f"--codec {args.codec} and --option codec={options['codec']} disagree: give one")
    options.update(engine=args.engine, ray_address=args.ray_address, shard=args.shard)
    result = predict(args.checkpoint, args.inputs, out=args.out, overrides=args.set, split=args.split, **options)
    for line in result.report_lines():
        _report(line)
    for name, reason in result.failures.items():
        _report(f"failed: {name}: {reason}", error=True)
    return 1 if result.failures else 0


def _extract(args: argparse.Namespace) -> int:
    result = extract(
        args.inputs, out=args.out, checkpoint=args.checkpoint, config=args.config, window=args.window,
        stride=args.stride, fused=args.fused, split=args.split, overrides=args.set, engine=args.engine,
        ray_address=args.ray_address, shard=args.shard,
    )  # fmt: skip
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
            frames=args.frames, batch=args.batch, precision=args.precision, checkpointing=args.checkpointing,
            vary=args.vary,
        )  # fmt: skip
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
            + (f" {best.variant.replace(' + ', ' ')}" if best.variant else "")
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
    if result.predictions.report_path is not None:
        print(f"report: {result.predictions.report_path}")
    return 0


def _report_command(args: argparse.Namespace) -> int:
    result = write_report(args.source, out=args.out, inputs=args.inputs, run_dir=args.run_dir)
    print(f"report: {result.path} ({result.num_videos} videos, {result.size_bytes / 2**20:.2f} MiB)")
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
        _add_set(sub, "train.lr=0.01", use_amp=True)
        sub.add_argument("--checkpoint", type=Path, required=needs_checkpoint, help="checkpoint (fit: resume from it)")
        handlers[name] = _fit if name == "fit" else _evaluate
    _add_predict(commands.add_parser("predict", help="predict videos, folders or manifests with a checkpoint"))
    _add_extract(commands.add_parser("extract", help="features of every window of every video, for a temporal model"))
    _add_prepare(
        commands.add_parser("prepare", help="transcode a manifest's videos to the training size with a short GOP")
    )
    mer = commands.add_parser("merge", help="join the shards of a --shard i/N run of predict, prepare or extract")
    mer.add_argument(
        "target",
        type=Path,
        help="what the unsharded run writes: predict's --out JSON, prepare's <--out>/<manifest>, extract's "
        "<--out>/features.yaml",
    )
    _add_plan(commands.add_parser("plan", help="peak memory of training steps over a grid, against a budget"))
    _add_demo(commands.add_parser("demo", help="generate demo videos, train the tiny model on them, predict"))
    _add_report(commands.add_parser("report", help="write one self-contained HTML page of a run or its predictions"))
    handlers.update(predict=_predict, extract=_extract, prepare=_prepare, merge=_merge, plan=_plan, demo=_demo)
    handlers.update(report=_report_command)
    for sub in commands.choices.values():  # also after the command: `vidfit fit ... --debug`
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
        )
    return parser, handlers


def _add_extract(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="manifests (every view), video files or folders")
    parser.add_argument("--out", type=Path, required=True, help="the feature folder (<id>.npz and features.yaml)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", type=Path, help="a trained action checkpoint: its backbone gives the features")
    model.add_argument("--config", type=Path, help="an action config, e.g. model.pretrained: kinetics400")
    parser.add_argument("--window", type=int, default=16, help="frames of each window (default 16)")
    parser.add_argument("--stride", type=int, default=4, help="frames between window starts (default 4)")
    parser.add_argument("--fused", action="store_true", help="one feature per window after the view fusion")
    parser.add_argument("--split", help="only the manifest videos of this split")
    _add_set(parser, "train.video_batch_size=32 (windows per forward pass)")
    _add_engine(parser, "actors that each load the model, one GPU each where there are GPUs")


def _add_prepare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest", help="the manifest: a path, or an http(s)/fsspec URL (the copies are written locally)"
    )
    parser.add_argument("--size", type=int, nargs=2, required=True, metavar=("H", "W"))
    parser.add_argument("--gop", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the local engine")
    _add_engine(parser, "one CPU task per view")


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a run folder (output_dir/name/version_N) or a predictions JSON")
    parser.add_argument("--out", type=Path, help="the page (default: report.html in the run folder, <stem>.html "
                        "beside a JSON)")  # fmt: skip
    parser.add_argument("--inputs", nargs="+", metavar="INPUT", help="where the videos are, as predict takes them "
                        "(default: the run's data.manifest), for the players beside the timelines")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, help="the training run of a predictions JSON (default: its folder)")


def _add_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--output-dir", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    parser.add_argument("--videos-per-class", type=int, default=DEMO_VIDEOS_PER_CLASS)
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


# `vidfit import` formats: name, importer, its first argument (nargs "+" for several files) and help. Each
# keyword-only parameter of the importer becomes the option `_IMPORT_OPTIONS` adds for it.
_IMPORT_FORMATS: tuple[tuple[str, Callable[..., ImportResult], str, str | None, str], ...] = (
    ("kinetics", import_kinetics, "CSV", "+", "Kinetics-400/600/700 CSVs: train, validate and test in one call"),
    ("ucf101", import_ucf101, "VIDEO_DIR", None, "UCF-101/<Class>/<clip>.avi with the ucfTrainTestlist folder"),
    ("hmdb51", import_hmdb51, "VIDEO_DIR", None, "HMDB51 <class>/<clip>.avi with testTrainMulti_7030_splits"),
    ("thumos14", import_thumos14, "ANNOTATION_DIR", "+", "THUMOS14 validation and test annotation folders"),
    ("activitynet", import_activitynet, "JSON", None, "ActivityNet 1.3 activity_net.v1-3.min.json"),
    ("segments", import_segments, "CSV", "+", "CSVs of labelled spans (EPIC-KITCHENS-100, Charades, ...)"),
    ("video-list", import_video_list, "LIST", "+", "MMAction2 video lists: '<path> <label>' per line"),
    ("folders", import_video_folders, "VIDEO_DIR", None, "class folders: <root>/[<split>/]<class>/<video>"),
    ("multiview", import_multiview, "VIDEO_DIR", None, "recordings as <id>/<view>.mp4"),
    ("frame-labels", import_frame_labels, "LABELS", "+", "<id>.txt files (or their folder), one label per frame"),
)


class _FramesAction(argparse.Action):
    """``--frames NUMBERING``: the start and stop columns are frame numbers, counted so."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:  # fmt: skip
        namespace.frame_numbering, namespace.unit = values, "frames"


def _column_map(text: str) -> dict[str, str]:
    pairs = [item.partition("=") for item in text.split(",") if item.strip()]
    if not pairs or any(not field.strip() or not column.strip() for field, _, column in pairs):
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=COLUMN,...: e.g. video=video_id,start=start_timestamp")
    return {field.strip(): column.strip() for field, _, column in pairs}


def _option(*flags: str, **settings: object) -> Callable[[argparse.ArgumentParser], object]:
    return lambda sub: sub.add_argument(*flags, **({"default": argparse.SUPPRESS} | settings))  # type: ignore[arg-type]


def _background(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--background", metavar="LABEL", default=argparse.SUPPRESS,
                     help="label of the frames no span covers (thumos14 default: background)")  # fmt: skip
    sub.add_argument("--no-background", dest="background", action="store_const", const=None,
                     default=argparse.SUPPRESS, help="leave the frames no span covers unlabelled")  # fmt: skip


_IMPORT_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], object]] = {
    "video_dir": _option("--video-dir", type=Path, required=True, help="the data root; videos are found under it"),
    "split_dir": _option("--splits", dest="split_dir", type=Path, required=True, help="the split files' folder"),
    "fold": _option("--fold", type=int, choices=(1, 2, 3), help="which official split (default 1)"),
    "missing": _option("--missing", choices=("skip", "error"),
                       help="videos not found: skip them, listed in <out>.skipped.csv (default), or fail"),
    "check_videos": _option("--check-videos", action="store_true", help="read each video; skip unreadable ones"),
    "overlap": _option("--overlap", choices=tuple(OVERLAP_POLICIES),
                       help="overlapping spans: error (default), keep (multi-label), first, longest"),
    "background": _background,
    "columns": _option("--columns", type=_column_map, metavar="FIELD=COLUMN,...",
                       help="e.g. video=video_id,start=start_timestamp,stop=stop_timestamp,label=verb"),
    "unit": _option("--unit", choices=("seconds", "frames"), help="unit of start and stop (default seconds)"),
    "frame_numbering": _option("--frames", choices=FRAME_NUMBERINGS, action=_FramesAction,
                               help="start and stop are frame numbers: zero-based-exclusive or one-based-inclusive"),
    "classes": _option("--classes", type=Path, help="label map: one class name per line (line i is class i)"),
    "split": _option("--split", help="the split of every video"),
    "views": _option("--views", nargs="+", help="view names in order (default: the first recording's)"),
    "view_name": _option("--view-name", help="name of the single view (default front)"),
}  # fmt: skip


def _add_import(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for name, importer, source, nargs, help_text in _IMPORT_FORMATS:
        about = (inspect.getdoc(importer) or "").split("\n\nArgs:")[0]  # the options below say the rest
        sub = formats.add_parser(
            name, help=help_text, description=about, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        sub.add_argument("source", type=Path, metavar=source, nargs=nargs)
        sub.add_argument("--out", type=Path, required=True, help="the manifest to write (.yaml or .json)")
        for parameter in inspect.signature(importer).parameters.values():
            if parameter.kind == parameter.KEYWORD_ONLY:
                _IMPORT_OPTIONS[parameter.name](sub)
        sub.set_defaults(importer=importer)


def _add_set(sub: argparse.ArgumentParser, example: str, *, use_amp: bool = False) -> None:
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override, e.g. {example}")
    if use_amp:
        sub.add_argument("--use-amp", action=_UseAmp, help=f"the training scripts' flag: {_USE_AMP}")


# The flag of the training scripts vidfit replaces, read (with a notice) as the override vidfit has for it.
_USE_AMP = "--set trainer.precision=16-mixed"


class _UseAmp(argparse.Action):
    """``--use-amp``: adds `_USE_AMP`'s override where the flag stands among the ``--set`` options."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *_: object) -> None:
        namespace.set = [*namespace.set, _USE_AMP.removeprefix("--set ")]
        setattr(namespace, self.dest, True)


def _add_predict(pred: argparse.ArgumentParser) -> None:
    pred.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders or manifests: paths, or http(s)/fsspec URLs"
    )
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
        help="super-resolution output: libx264 (H.264 4:2:0, even sizes only) or libx264rgb (RGB H.264, any size); "
        "the same as --option codec=...",
    )
    pred.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="an option of the checkpoint's task (TaskSpec.predict_options), the value read as YAML; repeatable",
    )  # fmt: skip
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
    plan.add_argument(
        "--vary", action="append", metavar="CHANGES",
        help="also plan the config with these changes, e.g. 'model.freeze=first:8' or "
        "'model.lora={rank: 16} + train.token_drop=0.5' (repeatable)",
    )  # fmt: skip
    plan.add_argument("--out", type=Path, default=Path("plan.json"), help="JSON; the PNG chart goes beside")
    _add_set(plan, "model.backbone=mc3_18")


def _show_library_log() -> None:
    """Prints what vidfit logs (chunking, auto-fit decisions), and not other libraries' INFO lines."""
    logger = logging.getLogger("vidfit")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.set_name(_LOG_HANDLER)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    for installed in logger.handlers:  # main called again (tests, a program embedding it): the stderr of now
        if isinstance(installed, logging.StreamHandler) and installed.get_name() == _LOG_HANDLER:
            installed.stream = sys.stderr


_LOG_HANDLER = "vidfit-cli"


def _show_plugin_warnings() -> None:
    """Prints a task plugin's warning as one ``warning:`` line, where Python's default adds a source line."""
    shown = warnings.showwarning
    if getattr(shown, "vidfit_plugins", False):
        return

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, TaskPluginWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    show.vidfit_plugins = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vidfit` console script; returns the exit code."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    _show_library_log()
    _show_plugin_warnings()
    if getattr(args, "use_amp", False):
        logging.getLogger("vidfit").warning("--use-amp is read as %s (vidfit's name for it)", _USE_AMP)
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt as interrupt:  # Ctrl-C: 130; SIGTERM (`Terminated`): 143, as its default would give
        print(interrupt if isinstance(interrupt, Terminated) else "interrupted", file=sys.stderr)
        return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_bounded(_describe(error))}", file=sys.stderr)
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
    origin = blame_task(error)
    if origin is not None:  # an installed task's code raised it: its package's bug, not vidfit's
        return (
            f"{type(error).__name__}: {error} (raised in the code of {origin}: run again with --debug and report "
            f"the traceback to the authors of {origin.distribution})"
        )
    return f"{type(error).__name__}: {error} (a bug in vidfit: run again with --debug and report the traceback)"


# Longest error message printed: messages quote values short, and this bounds any that does not (a value of
# millions of characters would otherwise take minutes and gigabytes of stderr).
MAX_ERROR_CHARACTERS = 100_000


def _bounded(message: str) -> str:
    if len(message) <= MAX_ERROR_CHARACTERS:
        return message
    return f"{message[:MAX_ERROR_CHARACTERS]}... ({len(message) - MAX_ERROR_CHARACTERS:,} more characters)"


if __name__ == "__main__":
    sys.exit(main())
