"""The GPU acceptance suite: every GPU figure vidfit is held to, in one run sized for a short loan of one GPU machine.

Run (repository root): `python benchmarks/gpu_suite.py [--only SECTION ...] [--smoke] [--out DIR]` (`make bench-gpu`)

First installs the wheels of `.gpu-bundle/` (`make gpu-bundle`, downloaded where there is a network) that the
image lacks, into a temporary folder, and runs vidfit from `src/` with the image's torch. Then each section runs
in its own process, forked from this one once it has imported torch and vidfit (never CUDA), and is killed at its
time limit (they add up to 14 minutes), so one stuck stage cannot eat the rest. Rows print as they finish, with the
target and its verdict beside them, and go into `DIR/gpu-results.json` (one entry per run, rewritten whole after each
row) and `DIR/gpu-results.md` (appended). DIR: `--out`, else `$OUT`, else `gpu-results`. `--smoke` runs the
same code on the CPU with tiny settings (in `make test`); its verdicts say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _bundle import Installed, install_bundle, missing_modules

ROOT = Path(__file__).resolve().parent.parent


class Results:
    """The run's rows, kept in `gpu-results.json` (every run, this one last) and appended to `gpu-results.md`."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.json_path, self.md_path = folder / "gpu-results.json", folder / "gpu-results.md"
        try:
            self.runs = json.loads(self.json_path.read_text(encoding="utf-8"))["runs"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            self.runs = []
        self.run: dict[str, Any] = {**header, "sections": {}}
        self.runs.append(self.run)
        lines = [f"\n## GPU suite run of {header['started']}\n", f"Command: `{header['command']}`  "]
        lines += [f"Machine: {header['machine']}  ", f"Installed from the bundle: {header['installed']}\n"]
        self._append("\n".join(lines))
        self._save()

    def begin(self, name: str, budget_s: float) -> None:
        self.run["sections"][name] = {"budget_s": budget_s, "status": "running", "rows": []}
        self._append(
            f"\n### {name} (limit {budget_s:.0f} s)\n\n| row | figures | target | verdict |\n|---|---|---|---|"
        )
        print(f"\n== {name} (limit {budget_s:.0f} s)", flush=True)

    def add(self, name: str, row: dict[str, Any]) -> None:
        self.run["sections"][name]["rows"].append(row)
        figures = ", ".join(f"{key} {_text(value)}" for key, value in row["figures"].items() if value is not None)
        verdict = {True: "pass", False: "FAIL", None: ""}[row["passed"]]
        self._append(f"| {row['name']} | {figures} | {row['target']} | {verdict} |")
        print(f"  {row['name']}: {figures}" + (f"  [target {row['target']}: {verdict}]" if row["target"] else ""))
        sys.stdout.flush()
        self._save()

    def end(self, name: str, status: str, seconds: float) -> None:
        self.run["sections"][name] |= {"status": status, "seconds": round(seconds, 1)}
        self._append(f"\n{name}: {status} in {seconds:.1f} s")
        print(f"== {name}: {status} in {seconds:.1f} s", flush=True)
        self._save()

    def _append(self, text: str) -> None:
        with self.md_path.open("a", encoding="utf-8") as md:
            md.write(text + "\n")

    def _save(self) -> None:
        from vidfit.io._atomic import write_text_atomic

        write_text_atomic(self.json_path, json.dumps({"runs": self.runs}, indent=1) + "\n")


def _text(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _child(name: str, smoke: bool, work: str, budget_s: float, log: str, rows: Connection) -> None:
    """Runs one section in this forked process, sending its rows; output goes to the section's log."""
    os.setsid()  # its own process group: the time limit kills the DataLoader workers and pytest with it
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from _sections import SECTIONS, Context

    try:
        for row in SECTIONS[name][0](Context(smoke=smoke, work=Path(work), budget_s=budget_s)):
            rows.send(asdict(row))
        rows.send(None)
    except BaseException as error:
        traceback.print_exc()
        rows.send({"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]})


def run_section(name: str, budget_s: float, args: argparse.Namespace, results: Results) -> None:
    """Runs a section in a fresh process, passing on its rows until it ends or its time is up."""
    results.begin(name, budget_s)
    context = mp.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    log = args.out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    child_args = (name, args.smoke, str(args.work), budget_s, str(log), sender)
    process = context.Process(target=_child, args=child_args, daemon=False)
    started = time.monotonic()
    process.start()
    sender.close()
    status = _receive(name, receiver, process, started + budget_s, results)
    if process.is_alive():
        _kill_group(process)
    process.join()
    results.end(name, status, time.monotonic() - started)


def _receive(name: str, receiver: Connection, process: Any, deadline: float, results: Results) -> str:
    while (remaining := deadline - time.monotonic()) > 0:
        if not receiver.poll(min(remaining, 1.0)):
            continue
        try:
            message = receiver.recv()
        except EOFError:
            process.join(5)
            return f"error: the process ended (exit code {process.exitcode}) before its last row; see logs/{name}.log"
        if message is None:
            return "ok"
        if "error" in message:
            return f"error: {message['error']} (logs/{name}.log)"
        results.add(name, message)
    return "timeout: killed at its time limit"


def _kill_group(process: Any) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def _machine() -> str:
    """CPU and GPU in words, without initializing CUDA here (the sections' processes are forked after this)."""
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip() or gpu
    return f"{platform.node()}: {os.cpu_count()} CPUs, {gpu}, Python {platform.python_version()}"


def _header(args: argparse.Namespace, installed: Installed) -> dict[str, Any]:
    import av
    import torch

    return {
        "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", *sys.argv]),
        "smoke": args.smoke,
        "machine": f"{_machine()}, torch {torch.__version__}, PyAV {av.__version__}",
        "installed": ", ".join(installed.wheels) or "nothing (the image had every package)",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


def _check_modules(bundle: Path) -> None:
    """Exits with one line naming the modules missing and `make gpu-bundle`, rather than a section's traceback."""
    if not (missing := missing_modules()):
        return
    bundled = f"the bundle {bundle} lacks them" if bundle.is_dir() else f"there is no bundle at {bundle}"
    print(
        f"error: this Python ({sys.executable}) cannot import {', '.join(missing)} and {bundled}: run "
        "`make gpu-bundle` where there is a network (it downloads their wheels into .gpu-bundle), then run the "
        "suite again (torch, torchvision, lightning, torchmetrics and numpy come from the GPU image)",
        file=sys.stderr,
    )
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="SECTION", help="run only this section (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings on the CPU: the same code in seconds")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-results"))
    parser.add_argument("--bundle", type=Path, default=ROOT / ".gpu-bundle", help="the wheels of `make gpu-bundle`")
    args = parser.parse_args()
    os.chdir(ROOT)
    # Lightning and torch ask NVML, not the CUDA driver, whether there is a GPU: a forked process can still use it.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    installed = install_bundle(args.bundle)
    print(f"bundle: installed {', '.join(installed.wheels) or 'nothing'} into {installed.target or '-'}", flush=True)
    _check_modules(args.bundle)
    from _sections import SECTIONS, SMOKE_BUDGET_S

    unknown = sorted(set(args.only or ()) - SECTIONS.keys())
    if unknown:
        parser.error(f"--only {unknown[0]!r} is not one of {', '.join(SECTIONS)}")
    args.out = args.out.resolve()
    args.work = Path(tempfile.mkdtemp(prefix="vidfit-gpu-suite-"))  # runs and checkpoints stay out of DIR
    results = Results(args.out, _header(args, installed))
    for name, (_, budget_s) in SECTIONS.items():
        if not args.only or name in args.only:
            run_section(name, SMOKE_BUDGET_S if args.smoke else budget_s, args, results)
    print(f"\nresults: {results.json_path} and {results.md_path}")


if __name__ == "__main__":
    main()
