"""The shards of a `vidfit extract --shard i/N` run joined into the index one process writes, byte for byte."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from vidfit.infer._features import FeatureEntry, FeatureIndex, load_feature_index, save_feature_index
from vidfit.infer._shards import ShardRecord


def ordered_failures(failures: Mapping[str, str], video_ids: Sequence[str]) -> dict[str, str]:
    """Failures of videos in `video_ids` order, then the others (inputs, videos without the views) as found."""
    order = {video_id: position for position, video_id in enumerate(video_ids)}
    return dict(sorted(failures.items(), key=lambda item: order.get(item[0], len(order))))


def merge_feature_indexes(records: list[ShardRecord], target: Path) -> tuple[tuple[Path, ...], int]:
    """Every shard's index joined (each shard's files checked unchanged), videos in the unsharded order.

    Raises:
        ValueError: A shard's files changed or went missing since it wrote them, or its index lists other videos
            than its share.
    """
    videos: dict[str, FeatureEntry] = {}
    failures: dict[str, str] = {}
    settings = None
    for record in records:
        changed = record.changed_files()
        if changed:
            raise ValueError(
                f"{record.path}: feature files of shard {record.shard} changed since it wrote them: "
                f"{'; '.join(changed[:5])}: extract the shard again"
            )
        index = load_feature_index(record.output)
        expected = record.shard.video_ids(record.video_ids)
        missing = expected - set(index.videos) - set(index.failures)
        foreign = set(index.videos) - expected
        if missing or foreign:
            found = f"missing {sorted(missing)[:5]}" if missing else f"others' {sorted(foreign)[:5]}"
            raise ValueError(f"{record.output}: shard {record.shard} should hold {len(expected)} videos: {found}")
        settings = index.settings if settings is None else settings
        videos.update(index.videos)
        for name, reason in index.failures.items():
            failures.setdefault(name, reason)
    order = records[0].video_ids
    merged = FeatureIndex(
        settings or {}, {i: videos[i] for i in order if i in videos}, ordered_failures(failures, order), target.parent
    )
    return (save_feature_index(merged, target),), len(merged.videos)
