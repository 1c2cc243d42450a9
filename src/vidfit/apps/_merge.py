"""`merge`: the shards of a `--shard i/N` run joined into the output an unsharded run writes, none missing."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vidfit.data import load_manifest, save_manifest
from vidfit.infer._shards import SHARD_RECORD_SUFFIX, ShardKind, ShardRecord, read_shard_record
from vidfit.io import write_files_atomic

# The sections of a predictions document keyed by video id; the others are the same in every shard.
_PER_VIDEO_SECTIONS = ("results", "vidfit")


@dataclass(frozen=True)
class MergeResult:
    """What `merge` wrote.

    Attributes:
        kind: ``"predictions"`` or ``"manifest"``.
        outputs: The files written: the JSON and the CSV, or the manifest.
        num_shards: Shards joined.
        num_videos: Videos in the merged output.
        failures: Per video id (or input), why its shard could not process it.
    """

    kind: ShardKind
    outputs: tuple[Path, ...]
    num_shards: int
    num_videos: int
    failures: dict[str, str]

    def report_lines(self) -> list[str]:
        """What the command line prints of the merge (failures apart)."""
        written = ", ".join(map(str, self.outputs))
        return [f"{self.num_shards} shards, {self.num_videos} videos -> {written}"]


def merge(target: str | os.PathLike[str]) -> MergeResult:
    """Joins the shards written for `target` into it, as the unsharded run would have written it.

    The shards are found beside `target` by name (``predictions.shard-<i>-of-<N>.json`` for
    ``predictions.json``, ``manifest.shard-<i>-of-<N>.yaml`` for ``manifest.yaml``), each with the record it
    wrote last. Every shard of ``0..N-1`` must have finished, all over the same videos; videos come out in the
    order the unsharded run gives them.

    Args:
        target: What an unsharded run would have written: ``vidfit predict --out`` or ``<prepare --out>/<manifest>``.

    Raises:
        ValueError: Naming the missing shards, or the shards that disagree.
    """
    path = Path(target)
    records = _shard_records(path)
    kind = records[0].kind
    if kind == "manifest":
        outputs, num_videos = _merge_manifests(records, path), len(records[0].video_ids)
    else:
        outputs, num_videos = _merge_predictions(records, path)
    failures = {name: reason for record in records for name, reason in record.failures.items()}
    return MergeResult(kind, outputs, len(records), num_videos, failures)


def _shard_records(target: Path) -> list[ShardRecord]:
    """Every shard's record for `target`, by index; ValueError when one is missing or they disagree."""
    pattern = re.compile(rf"{re.escape(target.stem)}\.shard-(\d+)-of-(\d+){re.escape(SHARD_RECORD_SUFFIX)}")
    found = sorted(p for p in target.parent.glob(f"{target.stem}.shard-*") if pattern.fullmatch(p.name))
    records = sorted((read_shard_record(p) for p in found), key=lambda r: r.shard.index)
    if not records:
        raise ValueError(
            f"{target}: no finished shard beside it (no {target.stem}.shard-<i>-of-<N>{SHARD_RECORD_SUFFIX}): "
            "run the shards with --shard i/N and --out (or prepare's manifest) naming this file"
        )
    counts = sorted({r.shard.count for r in records})
    if len(counts) > 1:
        raise ValueError(f"{target}: shards of runs split {counts} ways lie side by side: remove the older run's")
    count = counts[0]
    missing = sorted(set(range(count)) - {r.shard.index for r in records})
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise ValueError(f"{target}: shards {names} have not finished (no record): run them before merging")
    for record in records:
        if record.output.name != record.shard.output_path(target).name:
            raise ValueError(
                f"{record.output}: shard {record.shard} of {target} must be named "
                f"{record.shard.output_path(target).name}"
            )
    for record in records[1:]:
        if (record.kind, record.video_ids) != (records[0].kind, records[0].video_ids):
            raise ValueError(
                f"{target}: shard {record.shard} was run over other inputs than shard {records[0].shard} "
                "(its record lists other videos): run every shard over the same inputs"
            )
    return records


def _merge_predictions(records: list[ShardRecord], target: Path) -> tuple[tuple[Path, ...], int]:
    """The shards' JSON and CSV joined, videos in the unsharded order, written as one output set."""
    documents = [json.loads(r.output.read_text(encoding="utf-8")) for r in records]
    sections: dict[str, dict[str, Any]] = {name: {} for name in _PER_VIDEO_SECTIONS}
    for record, document in zip(records, documents, strict=True):
        _check_videos(record, set(document["results"]))
        for name in _PER_VIDEO_SECTIONS:
            sections[name].update(document[name])
    order = [video_id for video_id in records[0].video_ids if video_id in sections["results"]]
    merged = {
        key: {i: sections[key][i] for i in order} if key in _PER_VIDEO_SECTIONS else value
        for key, value in documents[0].items()
    }
    csv_target = target.with_suffix(".csv")
    texts = {target: json.dumps(merged, indent=2), csv_target: _merged_csv(records, order)}
    written = write_files_atomic({path: functools.partial(_write, text=text) for path, text in texts.items()})
    return tuple(written), len(order)


def _merged_csv(records: list[ShardRecord], order: list[str]) -> str:
    """The shards' per-frame rows, video by video in `order`, as `write_predictions` writes them."""
    header: list[str] = []
    rows: dict[str, list[list[str]]] = {}
    for record in records:
        with record.output.with_suffix(".csv").open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file)
            header = next(reader)
            for row in reader:
                rows.setdefault(row[0], []).append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for video_id in order:
        writer.writerows(rows.get(video_id, []))
    return buffer.getvalue()


def _merge_manifests(records: list[ShardRecord], target: Path) -> tuple[Path, ...]:
    """The shards' manifests joined over their common root, videos in the original manifest's order."""
    manifests = [load_manifest(r.output) for r in records]
    for record, manifest in zip(records, manifests, strict=True):
        _check_videos(record, {video.id for video in manifest.videos})
        if (manifest.root, manifest.labels) != (manifests[0].root, manifests[0].labels):
            raise ValueError(
                f"{record.output}: its root or labels differ from {records[0].output}'s: "
                "prepare every shard with the same --out"
            )
    videos = {video.id: video for manifest in manifests for video in manifest.videos}
    merged = replace(manifests[0], videos=tuple(videos[i] for i in records[0].video_ids), path=None)
    return (save_manifest(merged, target),)


def _check_videos(record: ShardRecord, found: set[str]) -> None:
    """A shard's output holds its videos: each one it did not fail on, and no other."""
    expected = record.shard.video_ids(record.video_ids)
    missing, foreign = expected - found - set(record.failures), found - expected
    if missing or foreign:
        raise ValueError(
            f"{record.output}: shard {record.shard} should hold {len(expected)} videos: "
            + (f"missing {sorted(missing)[:5]}" if missing else f"others' {sorted(foreign)[:5]}")
            + ": run the shard again"
        )


def _write(path: Path, *, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")
