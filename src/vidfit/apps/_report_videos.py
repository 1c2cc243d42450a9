"""The report's per-video data for the page's script: timelines as encoded lanes, labels, scores, players.

Everything a strip needs travels in one JSON document inside the page; the script draws one page of strips at
a time, so 1,000 videos cost the page their data (kept under `RUN_BUDGET` runs), not 1,000 canvases.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vidfit.apps._report_data import VideoRecord, video_order
from vidfit.apps._report_runs import encode_lane, lane_bins, pack_lanes, resample

# Strips drawn per page of the videos list.
PAGE_SIZE = 20


def videos_payload(
    videos: Sequence[VideoRecord], *, label_names: Sequence[str], views: Mapping[str, Mapping[str, Path]], out_dir: Path
) -> list[dict[str, Any]]:
    """Each video's entry for the page, worst first (`video_order`).

    Lanes sharing the page's run budget are resampled to screen resolution (`resample`); a video's local view
    files are named relative to `out_dir`, where the page is, so the folder can move with its videos.
    """
    ordered = video_order(videos)
    packed = [(video, pack_lanes(video.true), pack_lanes(video.predicted)) for video in ordered]
    bins = lane_bins(sum(len(true) + len(predicted) for _, true, predicted in packed))
    return [
        _entry(video, true, predicted, bins=bins, label_names=label_names, views=views.get(video.video_id), out=out_dir)
        for video, true, predicted in packed
    ]


def _entry(
    video: VideoRecord,
    true: list[Any],
    predicted: list[Any],
    *,
    bins: int,
    label_names: Sequence[str],
    views: Mapping[str, Path] | None,
    out: Path,
) -> dict[str, Any]:
    start, stop = video.frames
    lanes = {
        name: [resample(lane, start=start, stop=stop, bins=bins) for lane in found]
        for name, found in (("true", true), ("pred", predicted))
    }
    resampled = any(
        len(new) != len(old) for new, old in zip(lanes["true"] + lanes["pred"], true + predicted, strict=True)
    )
    entry: dict[str, Any] = {
        "id": video.video_id,
        "frames": [start, stop],
        "true": [encode_lane(lane, origin=start) for lane in lanes["true"]],
        "pred": [encode_lane(lane, origin=start) for lane in lanes["pred"]],
        "label": [label_names[i] for i in video.label],
        "predicted": [label_names[i] for i in video.predicted_label],
    }
    if video.error is not None:
        entry["error"] = round(video.error, 4)
    if video.segment_f1 is not None:
        entry["f1"] = round(video.segment_f1, 4)
    if len(video.seconds) == 2 and video.seconds[1][0] > video.seconds[0][0]:
        (first, first_seconds), (last, last_seconds) = video.seconds
        entry["clock"] = [first, round(first_seconds, 6), last, round(last_seconds, 6)]
    if resampled:
        entry["resampled"] = True
    if views:
        entry["views"] = {name: video_url(path, out) for name, path in views.items()}
    return entry


def video_url(path: Path, out_dir: Path) -> str:
    """The URL of a local video as the page in `out_dir` names it: relative where it can be, else ``file://``."""
    try:
        relative = os.path.relpath(path.resolve(), out_dir.resolve())
    except ValueError:  # another drive (Windows): no relative path
        return path.resolve().as_uri()
    return quote(Path(relative).as_posix())
