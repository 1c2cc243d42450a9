"""Deterministic shards of a corpus for any scheduler's job array, and the record each shard's output leaves.

Shard ``i/N`` takes every N-th video id from the i-th, in sorted order: the same ids whatever the order the
inputs list them in and wherever the job runs, and shards of sizes that differ by one at most. A shard writes
its outputs under a name of its own (``predictions.shard-2-of-8.json``) and, last, a record beside them
(``predictions.shard-2-of-8.record.json``) naming every video id of the corpus, its own failures, the settings
its outputs depend on (the checkpoint's SHA-256, the overrides) and the size of every file it wrote besides
its output, from which `vidfit merge` checks that no shard is missing, that all were made alike, and that
none of their files was cut short or removed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from vidfit.io._atomic import write_text_atomic

ShardKind = Literal["predictions", "manifest", "features"]
SHARD_KINDS: tuple[str, ...] = get_args(ShardKind)
SHARD_RECORD_SUFFIX = ".record.json"
_SHARD_TEXT = re.compile(r"(\d+)/(\d+)")


@dataclass(frozen=True)
class Shard:
    """The `index`-th of `count` shards, counted from 0 (as Slurm's and Kubernetes' array indices are)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count} must be i/N with N >= 1 and 0 <= i < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/N"``, e.g. ``f"{SLURM_ARRAY_TASK_ID}/{SLURM_ARRAY_TASK_COUNT}"``."""
        match = _SHARD_TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"shard={text!r} must be i/N, e.g. 0/4 (the first of 4 shards)")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def video_ids(self, all_ids: Sequence[str]) -> set[str]:
        """The ids of `all_ids` this shard takes."""
        return set(sorted(set(all_ids))[self.index :: self.count])

    def output_path(self, path: str | os.PathLike[str]) -> Path:
        """Where this shard writes what an unsharded run writes to `path`."""
        target = Path(path)
        return target.with_name(f"{target.stem}.shard-{self.index}-of-{self.count}{target.suffix}")


@dataclass(frozen=True)
class ShardRecord:
    """What a finished shard left beside its output.

    Attributes:
        shard: Which shard it was.
        kind: ``"predictions"`` (JSON and CSV), ``"manifest"`` (a prepared manifest) or ``"features"`` (the index of
            `vidfit extract`, its feature files listed in `files`).
        video_ids: Every video id of the corpus, in the order an unsharded run writes them.
        failures: Per video id (or input), why this shard could not process it.
        output: The shard's output file.
        settings: What the outputs depend on besides the videos (predictions: the checkpoint's SHA-256, the
            overrides and the split; a manifest: size, GOP and CRF): every shard of a corpus must agree.
        files: Size in bytes of each file the shard wrote besides its output (a prepared manifest's videos
            and keypoints), by path relative to the output's folder.
    """

    shard: Shard
    kind: ShardKind
    video_ids: tuple[str, ...]
    failures: dict[str, str]
    output: Path
    settings: dict[str, Any]
    files: dict[str, int]

    @property
    def path(self) -> Path:
        """The record file."""
        return record_path(self.output)

    def changed_files(self) -> list[str]:
        """The files of `files` removed or resized since the shard wrote them, each with what changed."""
        changes = []
        for name, size_bytes in self.files.items():
            path = self.output.parent / name
            if not path.is_file():
                changes.append(f"{name} is missing")
            elif path.stat().st_size != size_bytes:
                changes.append(f"{name} has {path.stat().st_size} bytes where the shard wrote {size_bytes}")
        return changes


def record_path(output: str | os.PathLike[str]) -> Path:
    """The record of the shard whose output is `output`."""
    return Path(output).with_name(f"{Path(output).stem}{SHARD_RECORD_SUFFIX}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in blocks (a checkpoint of gigabytes takes seconds, once per run)."""
    with Path(path).open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def prediction_settings(
    checkpoint: str | os.PathLike[str], *, overrides: Sequence[str], split: str | None
) -> dict[str, Any]:
    """What the predictions of a shard depend on besides its videos, for its record: `vidfit merge` joins only
    shards that agree (same weights, by the checkpoint's SHA-256; same overrides; same split)."""
    return {"checkpoint_sha256": file_sha256(checkpoint), "overrides": list(overrides), "split": split}


def file_sizes(paths: Iterable[str | os.PathLike[str]], *, folder: str | os.PathLike[str]) -> dict[str, int]:
    """Size in bytes of each file of `paths` (every file under a folder of them), by path relative to `folder`."""
    sizes = {}
    for given in paths:
        path = Path(given)
        for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
            sizes[Path(os.path.relpath(file.absolute(), Path(folder).absolute())).as_posix()] = file.stat().st_size
    return sizes


def write_shard_record(
    output: str | os.PathLike[str],
    *,
    shard: Shard,
    kind: ShardKind,
    video_ids: Sequence[str],
    failures: Mapping[str, str],
    settings: Mapping[str, Any],
    files: Mapping[str, int] | None = None,
) -> Path:
    """Writes the record of a finished shard, after its output: its presence says the output is complete.

    Args:
        output: The shard's output file.
        shard: Which shard it is.
        kind: What `output` is.
        video_ids: Every video id of the corpus, in the order an unsharded run writes them.
        failures: Per video id (or input), why this shard could not process it.
        settings: What the outputs depend on besides the videos (plain JSON data).
        files: Size in bytes of each file written besides `output`, by path relative to its folder (`file_sizes`).
    """
    document = {
        "shard": str(shard),
        "kind": kind,
        "output": Path(output).name,
        "video_ids": list(video_ids),
        "failures": dict(failures),
        "settings": dict(settings),
        "files": dict(files or {}),
    }
    return write_text_atomic(record_path(output), json.dumps(document, indent=2))


def read_shard_record(path: str | os.PathLike[str]) -> ShardRecord:
    """A shard's record; ValueError naming the file and field when it is not one."""
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
        shard, kind = Shard.parse(str(document["shard"])), document["kind"]
        if kind not in SHARD_KINDS:
            raise ValueError(f"kind={kind!r} is not one of {', '.join(map(repr, SHARD_KINDS))}")
        video_ids = tuple(str(i) for i in document["video_ids"])
        failures = {str(k): str(v) for k, v in dict(document["failures"]).items()}
        output = source.with_name(str(document["output"]))
        settings, files = dict(document["settings"]), {str(k): int(v) for k, v in dict(document["files"]).items()}
    except KeyError as error:
        raise ValueError(
            f"{source}: no {error} field: not a shard record of this vidfit (older ones lack the settings and file "
            "sizes merge checks): run the shard again"
        ) from error
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: not a shard record written by vidfit: {error}") from error
    return ShardRecord(shard, kind, video_ids, failures, output, settings, files)
