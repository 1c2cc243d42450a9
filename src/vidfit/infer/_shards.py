"""Deterministic shards of a corpus for any scheduler's job array, and the record each shard's output leaves.

Shard ``i/N`` takes every N-th video id from the i-th, in sorted order: the same ids whatever the order the
inputs list them in and wherever the job runs, and shards of sizes that differ by one at most. A shard writes
its outputs under a name of its own (``predictions.shard-2-of-8.json``) and, last, a record beside them
(``predictions.shard-2-of-8.record.json``) naming every video id of the corpus and its own failures, from
which `vidfit merge` checks that no shard is missing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidfit.io._atomic import write_text_atomic

ShardKind = Literal["predictions", "manifest"]
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
        kind: ``"predictions"`` (JSON and CSV) or ``"manifest"`` (a prepared manifest).
        video_ids: Every video id of the corpus, in the order an unsharded run writes them.
        failures: Per video id (or input), why this shard could not process it.
        output: The shard's output file.
    """

    shard: Shard
    kind: ShardKind
    video_ids: tuple[str, ...]
    failures: dict[str, str]
    output: Path


def record_path(output: str | os.PathLike[str]) -> Path:
    """The record of the shard whose output is `output`."""
    return Path(output).with_name(f"{Path(output).stem}{SHARD_RECORD_SUFFIX}")


def write_shard_record(
    output: str | os.PathLike[str],
    *,
    shard: Shard,
    kind: ShardKind,
    video_ids: Sequence[str],
    failures: Mapping[str, str],
) -> Path:
    """Writes the record of a finished shard, after its output: its presence says the output is complete."""
    document = {
        "shard": str(shard),
        "kind": kind,
        "output": Path(output).name,
        "video_ids": list(video_ids),
        "failures": dict(failures),
    }
    return write_text_atomic(record_path(output), json.dumps(document, indent=2))


def read_shard_record(path: str | os.PathLike[str]) -> ShardRecord:
    """A shard's record; ValueError naming the file and field when it is not one."""
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
        shard, kind = Shard.parse(str(document["shard"])), document["kind"]
        if kind not in ("predictions", "manifest"):
            raise ValueError(f"kind={kind!r} is not one of 'predictions', 'manifest'")
        video_ids = tuple(str(i) for i in document["video_ids"])
        failures = {str(k): str(v) for k, v in dict(document["failures"]).items()}
        output = source.with_name(str(document["output"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{source}: not a shard record written by vidfit: {error}") from error
    return ShardRecord(shard, kind, video_ids, failures, output)
