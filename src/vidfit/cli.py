"""The `vidfit` command line: parses arguments, calls the library's public functions, prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vidfit.io import VideoDecodeError, probe

Command = Callable[[argparse.Namespace], int]


def _info(args: argparse.Namespace) -> int:
    rows, failures = [], 0
    err = Console(stderr=True)
    for path in args.videos:
        try:
            rows.append(probe(path))
        except (FileNotFoundError, VideoDecodeError) as error:
            err.print(f"[red]error[/red] {error}")
            failures += 1
    if args.json:
        records = [{**vars(m), "path": str(m.path)} for m in rows]
        print(json.dumps(records, indent=2))
    else:
        table = Table("video", "frames", "fps", "size", "seconds", "starts at", "codec")
        for m in rows:
            size = f"{m.width}x{m.height}"
            table.add_row(
                str(m.path), str(m.num_frames), f"{m.fps:.3f}", size, f"{m.duration_seconds:.3f}",
                f"{m.begin_seconds:.3f}", m.codec,
            )  # fmt: skip
        Console().print(table)
    return 1 if failures else 0


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="vidfit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Command] = {}

    info = commands.add_parser("info", help="print the metadata of videos (from their packet index)")
    info.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    handlers["info"] = _info
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vidfit` console script; returns the exit code."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
