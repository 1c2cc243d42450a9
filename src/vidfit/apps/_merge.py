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

from vidfit.apps._merge_features import merge_feature_indexes
from vidfit.data import load_manifest, save_manifest
from vidfit.infer import EvaluationMetrics, evaluation_metrics
from vidfit.infer._scores import scores_from_document
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
        metrics: The figures of the merged predictions (as `predict` reports them for all the videos at once),
            from the scoring record each shard kept per video; None without labelled videos.
    """

    kind: ShardKind
    outputs: tuple[Path, ...]
    num_shards: int
    num_videos: int
    failures: dict[str, str]
    metrics: EvaluationMetrics | None = None

    def report_lines(self) -> list[str]:
        """What the command line prints of the merge (failures apart): what was written, then the figures."""
        written = ", ".join(map(str, self.outputs))
        figures = [] if self.metrics is None else self.metrics.report_lines()
        return [f"{self.num_shards} shards, {self.num_videos} videos -> {written}", *figures]


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
    elif kind == "features":  # `vidfit extract --shard`: the indexes of one feature folder
        outputs, num_videos = merge_feature_indexes(records, path)
    else:
        outputs, num_videos = _merge_predictions(records, path)
    failures = {name: reason for record in records for name, reason in record.failures.items()}
    metrics = _merged_figures(outputs[0]) if kind == "predictions" else None
    return MergeResult(kind, outputs, len(records), num_videos, failures, metrics)


def _merged_figures(path: Path) -> EvaluationMetrics | None:
    """The figures of the merged predictions document: every shard's videos scored together, each once."""
    scores, label_names = scores_from_document(json.loads(path.read_text(encoding="utf-8")))
    return evaluation_metrics(scores, num_classes=len(label_names)) if scores else None


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
    _check_alike(records)
    return records


def _check_alike(records: list[ShardRecord]) -> None:
    """Every shard ran over the same videos with the same checkpoint and settings; ValueError naming the odd one."""
    first = records[0]
    for record in records[1:]:
        if (record.kind, record.video_ids) != (first.kind, first.video_ids):
            raise ValueError(
                f"{record.path}: shard {record.shard} was run over other inputs than shard {first.shard} "
                f"({first.path.name} lists other videos): run every shard over the same inputs"
            )
        keys = sorted({*first.settings, *record.settings})
        differing = [key for key in keys if record.settings.get(key) != first.settings.get(key)]
        if differing:
            found = "; ".join(f"{k}={record.settings.get(k)!r} where {first.path.name} has {first.settings.get(k)!r}"
                              for k in differing)  # fmt: skip
            raise ValueError(
                f"{record.path}: shard {record.shard} was made with other settings than shard {first.shard}: "
                f"{found}: run every shard with the same checkpoint and settings"
            )


def _merge_predictions(records: list[ShardRecord], target: Path) -> tuple[tuple[Path, ...], int]:
    """The shards' JSON and CSV joined, videos in the unsharded order, written as one output set."""
    documents = [_read_predictions(r) for r in records]
    sections: dict[str, dict[str, Any]] = {name: {} for name in _PER_VIDEO_SECTIONS}
    tables = []
    for record, document in zip(records, documents, strict=True):
        _check_videos(record, set(document["results"]))
        tables.append(_shard_rows(record, document))
        for name in _PER_VIDEO_SECTIONS:
            sections[name].update(document[name])
    order = [video_id for video_id in records[0].video_ids if video_id in sections["results"]]
    merged = {
        key: {i: sections[key][i] for i in order} if key in _PER_VIDEO_SECTIONS else value
        for key, value in documents[0].items()
    }
    csv_target = target.with_suffix(".csv")
    texts = {target: json.dumps(merged, indent=2), csv_target: _merged_csv(records, tables, order)}
    written = write_files_atomic({path: functools.partial(_write, text=text) for path, text in texts.items()})
    return tuple(written), len(order)


def _read_predictions(record: ShardRecord) -> dict[str, Any]:
    """A shard's predictions JSON; ValueError naming the file when it is unreadable or not one."""
    try:
        document = json.loads(record.output.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not all(isinstance(document.get(k), dict) for k in _PER_VIDEO_SECTIONS):
            raise ValueError(f"no {' and '.join(_PER_VIDEO_SECTIONS)} sections")
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{record.output}: not the predictions of shard {record.shard}: {error}: predict the shard again"
        ) from error
    return document


def _shard_rows(record: ShardRecord, document: dict[str, Any]) -> tuple[list[str], dict[str, list[list[str]]]]:
    """A shard's CSV (header, rows by video id), checked whole against its JSON; ValueError naming the CSV."""
    path = record.output.with_suffix(".csv")
    again = f"predict shard {record.shard} again"
    try:
        with path.open(encoding="utf-8", newline="") as file:  # line ends as written: a cut after "\r" shows
            text = file.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read the CSV of shard {record.shard}: {error.strerror}: {again}") from error
    table = list(csv.reader(io.StringIO(text, newline="")))
    if not table or not text.endswith("\n"):
        raise ValueError(f"{path}: the file ends inside a row (it was cut short): {again}")
    header, rows = table[0], dict[str, list[list[str]]]()
    for number, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {number} has {len(row)} fields where the header has {len(header)}: {again}")
        rows.setdefault(row[0], []).append(row)
    foreign = sorted(set(rows) - set(document["results"]))
    if foreign:
        raise ValueError(f"{path}: rows of videos {foreign[:5]} that {record.output.name} does not list: {again}")
    for video_id in document["results"]:
        _check_video_rows(path, video_id, rows.get(video_id, []), header, document["vidfit"].get(video_id), again)
    return header, rows


def _check_video_rows(
    path: Path, video_id: str, rows: list[list[str]], header: list[str], video: Any, again: str
) -> None:
    """One video's rows: one per frame of the JSON's frame range, in order, each once (one in all without frames)."""
    if "frame" not in header:
        if len(rows) == 1:
            return
        expected = "1 (a row per video)"
    else:
        frames = video.get("frames") if isinstance(video, dict) else None
        if not (isinstance(frames, list) and len(frames) == 2 and all(isinstance(f, int) for f in frames)):
            raise ValueError(f"{path.with_suffix('.json')}: no frame range vidfit.{video_id}.frames: {again}")
        column = header.index("frame")
        if [row[column] for row in rows] == [str(frame) for frame in range(*frames)]:
            return
        expected = f"{frames[1] - frames[0]} (frames [{frames[0]}, {frames[1]}), each once and in order)"
    raise ValueError(
        f"{path}: video {video_id!r} has {len(rows)} rows where its JSON gives {expected}: "
        f"the CSV was cut short, repeated or edited: {again}"
    )


def _merged_csv(
    records: list[ShardRecord], tables: list[tuple[list[str], dict[str, list[list[str]]]]], order: list[str]
) -> str:
    """The shards' per-frame rows, video by video in `order`, as `write_predictions` writes them."""
    header = tables[0][0]
    rows: dict[str, list[list[str]]] = {}
    for record, (own_header, own_rows) in zip(records, tables, strict=True):
        if own_header != header:
            raise ValueError(
                f"{record.output.with_suffix('.csv')}: its columns {own_header} are not those of "
                f"{records[0].output.with_suffix('.csv').name} {header}: predict every shard with the same checkpoint"
            )
        rows.update(own_rows)
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
        changed = record.changed_files()
        if changed:
            raise ValueError(
                f"{record.path}: files of shard {record.shard} changed since it was prepared: "
                f"{'; '.join(changed[:5])}: prepare the shard again"
            )
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
