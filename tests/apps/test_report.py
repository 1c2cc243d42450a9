"""`vidfit report`: timelines as runs at screen resolution, counts from segments, a small self-contained page."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.apps.report_documents import (
    long_video_document,
    many_videos_document,
    runs_of,
    video_record,
    write_document,
)
from tests.conftest import tiny_overrides
from vidfit.apps import write_report
from vidfit.apps._report_data import read_predictions, video_order
from vidfit.apps._report_runs import (
    MIN_BINS,
    RUN_BUDGET,
    SCREEN_BINS,
    Lane,
    decode_lane,
    encode_lane,
    lane_bins,
    pack_lanes,
    resample,
)
from vidfit.apps._report_stats import confusion_scores, frame_confusion, multi_label_frame_scores, video_confusion
from vidfit.cli import main
from vidfit.config import load_config
from vidfit.data import load_manifest
from vidfit.train import fit

CLASSES = ["idle", "left", "right"]


def page_data(html: str) -> dict:
    """The JSON the page embeds for its script."""
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_one_label_a_frame_is_one_lane_and_overlapping_segments_stack() -> None:
    (lane,) = pack_lanes([(10, 20, 1, 0.5), (0, 10, 0, 1.0), (20, 25, 2, 0.26)])
    assert lane.starts.tolist() == [0, 10, 20] and lane.stops.tolist() == [10, 20, 25]
    assert lane.labels.tolist() == [0, 1, 2] and lane.alphas.tolist() == [100, 50, 26]
    lanes = pack_lanes([(0, 10, 0, 1.0), (5, 20, 1, 1.0), (12, 30, 0, 1.0), (6, 8, 2, 1.0)])
    assert [list(zip(lane.starts.tolist(), lane.stops.tolist(), strict=True)) for lane in lanes] == [
        [(0, 10), (12, 30)], [(5, 20)], [(6, 8)]
    ]  # fmt: skip


def test_a_lane_with_more_runs_than_pixels_takes_each_bins_majority_class() -> None:
    # 100,000 frames alternating between class 1 (3 frames of 4) and class 2: one run per frame or so.
    frames = np.arange(100_000)
    labels = np.where(frames % 4 == 3, 2, 1)
    labels[50_000:60_000] = 0  # a long stretch of class 0
    runs = runs_of(labels, ["a", "b", "c"])
    (lane,) = pack_lanes([(start, stop, ["a", "b", "c"].index(name), 0.5) for start, stop, name, _ in runs])
    drawn = resample(lane, start=0, stop=100_000, bins=SCREEN_BINS)
    assert len(drawn) <= SCREEN_BINS < len(lane)
    assert drawn.labels.tolist() == [1, 0, 1]  # bins join into runs; the minority class never wins a bin
    assert abs(int(drawn.starts[1]) - 50_000) <= 100_000 // SCREEN_BINS and drawn.alphas.tolist() == [50, 50, 50]


def test_a_bin_mostly_unlabelled_stays_empty_and_a_short_lane_is_kept_exactly() -> None:
    lane = Lane(np.array([0, 1000]), np.array([10, 1010]), np.array([1, 2]), np.array([100, 100]))
    assert resample(lane, start=0, stop=2000, bins=4) is lane  # two runs: fewer than the bins
    sparse = Lane(np.arange(0, 2000, 100), np.arange(0, 2000, 100) + 10, np.ones(20, int), np.full(20, 100))
    assert len(resample(sparse, start=0, stop=2000, bins=10)) == 0  # each bin is 90% unlabelled


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 50), st.integers(0, 9), st.integers(0, 100)), max_size=40))
def test_encoded_lanes_decode_to_themselves(runs: list[tuple[int, int, int, int]]) -> None:
    starts, at = [], 7
    for gap, length, _, _ in runs:
        starts.append(at + gap)
        at += gap + length
    table = np.asarray(runs, dtype=np.int64).reshape(-1, 4)
    lane = Lane(np.asarray(starts, dtype=np.int64), np.asarray(starts, dtype=np.int64) + table[:, 1], table[:, 2],
                table[:, 3])  # fmt: skip
    back = decode_lane(encode_lane(lane, origin=7), origin=7)
    for name in ("starts", "stops", "labels", "alphas"):
        assert getattr(back, name).tolist() == getattr(lane, name).tolist()


def test_the_budget_of_runs_shrinks_lanes_as_videos_add_up() -> None:
    assert lane_bins(2) == SCREEN_BINS  # a video or two: full screen resolution
    assert lane_bins(1000) == RUN_BUDGET // 1000  # 500 videos of two lanes share the budget
    assert lane_bins(10**6) == MIN_BINS  # never coarser than this


def _document(tmp_path: Path) -> Path:
    """Three videos: one right, one half wrong, one without labels."""
    right = [(0, 40, "idle", 0.9), (40, 100, "left", 0.8)]
    half = [(0, 50, "idle", 0.6), (50, 100, "left", 0.4)]
    return write_document(
        tmp_path / "predictions.json",
        {
            "right": (right, video_record(classes=CLASSES, frames=(0, 100), label="left", predicted="left",
                                          true=[(0, 40, "idle", 1.0), (40, 100, "left", 1.0)], correct=100)),
            "half": (half, video_record(classes=CLASSES, frames=(0, 100), label="right", predicted="idle",
                                        true=[(0, 50, "idle", 1.0), (50, 100, "right", 1.0)], correct=50)),
            "unlabelled": ([(0, 30, "right", 0.7)], video_record(classes=CLASSES, frames=(0, 30), label=None,
                                                                predicted="right", true=None)),
        },
    )  # fmt: skip


def test_confusions_and_class_scores_count_frames_from_the_segments(tmp_path: Path) -> None:
    predictions = read_predictions(_document(tmp_path))
    assert predictions.label_names == CLASSES
    frames = frame_confusion(predictions.videos, 3)
    assert frames is not None and frames.tolist() == [[90, 0, 0], [0, 60, 0], [0, 50, 0]]
    videos = video_confusion(predictions.videos, 3)
    assert videos is not None and videos.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0]]
    scores = confusion_scores(frames)
    assert scores.precision[1] == pytest.approx(60 / 110) and scores.recall[1] == 1.0
    assert scores.recall[2] == 0.0 and np.isnan(scores.precision[2]) and scores.support.tolist() == [90, 60, 50]
    assert [v.video_id for v in video_order(predictions.videos)] == ["half", "right", "unlabelled"]
    assert predictions.metrics["frame_acc"] == pytest.approx(150 / 200) and predictions.metrics["top1"] == 0.5


def test_multi_label_scores_count_each_class_where_segments_overlap(tmp_path: Path) -> None:
    true = [(0, 60, "idle", 1.0), (40, 100, "left", 1.0)]
    predicted = [(0, 50, "idle", 0.9), (30, 100, "left", 0.7)]
    record = video_record(classes=CLASSES, frames=(0, 100), label=None, predicted="idle", true=true)
    record["multi_label"], record["labels"] = True, ["idle", "left"]
    path = write_document(tmp_path / "multi.json", {"m": (predicted, record)})
    predictions = read_predictions(path)
    assert predictions.multi_label and predictions.metrics == {}
    scores = multi_label_frame_scores(predictions.videos, 3)
    assert scores is not None
    assert scores.recall[:2].tolist() == [50 / 60, 1.0] and scores.precision[:2].tolist() == [1.0, 60 / 70]
    report = write_report(path)
    entry = page_data(report.path.read_text())["videos"][0]
    assert len(entry["pred"]) == 2 and len(entry["true"]) == 2  # overlapping segments drawn in lanes


def test_the_page_is_self_contained_and_escapes_what_the_data_says(tmp_path: Path) -> None:
    hostile = '</script><script>alert("x")</script><img src=http://example.com/a.png>'
    path = write_document(
        tmp_path / "p.json",
        {hostile: ([(0, 10, "idle", 0.5)], video_record(classes=CLASSES, frames=(0, 10), label="idle",
                                                        predicted="idle", true=[(0, 10, "idle", 1.0)], correct=10))},
    )  # fmt: skip
    html = write_report(path).path.read_text()
    assert "<script>alert" not in html and "<img src=http" not in html
    assert page_data(html)["videos"][0]["id"] == hostile

    class References(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.found += [f"{tag} {name}={value}" for name, value in attrs if name in ("src", "href") and value]

    parser = References()
    parser.feed(html)
    assert [ref for ref in parser.found if re.search(r"=\s*(https?:)?//", ref)] == []
    assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import", html)  # nor from the style sheet


@pytest.mark.slow
def test_a_video_of_100000_frames_is_drawn_at_screen_resolution(tmp_path: Path) -> None:
    report = write_report(long_video_document(tmp_path / "long.json", num_frames=100_000))
    (entry,) = page_data(report.path.read_text())["videos"]
    assert entry["resampled"] and len(entry["pred"][0]) // 4 <= SCREEN_BINS and report.size_bytes < 1_000_000


@pytest.mark.slow
def test_a_thousand_videos_make_a_paged_page_under_5_mb(tmp_path: Path) -> None:
    report = write_report(many_videos_document(tmp_path / "many.json", num_videos=1000))
    assert report.num_videos == 1000 and report.size_bytes < 5 * 2**20
    data = page_data(report.path.read_text())
    assert data["pageSize"] == 20 and len(data["videos"]) == 1000
    errors = [video.get("error", 0) for video in data["videos"]]
    assert errors == sorted(errors, reverse=True)  # worst first


def test_a_run_folder_without_predictions_shows_its_config_and_curves(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    run.mkdir()
    (run / "config.yaml").write_text("experiment: {name: mine, task: action}\nmodel: {backbone: r3d_18}\n")
    rows = ["epoch,lr-AdamW,perf/data_fraction,step,train/loss,val/acc,val/loss,memory/peak_gib"]
    rows += [f"0,,0.{i},{i},{2 - i / 10},,,1.5" for i in range(1, 6)] + ["0,0.001,,5,,0.75,1.2,"]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    report = write_report(run)
    assert report.path == run / "report.html" and report.sections == ("summary", "training")
    html = report.path.read_text()
    for text in ("r3d_18", "data-time fraction", "peak memory (GiB)", "learning rate", "75.0%", "train/loss"):
        assert text in html


def test_bad_sources_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "missing: not a run folder (with config.yaml or metrics.csv) nor a predictions JSON file" in (
        capsys.readouterr().err
    )
    (tmp_path / "x.json").write_text('{"results": [1, 2]}')
    assert main(["report", str(tmp_path / "x.json")]) == 2
    assert "x.json: not a vidfit predictions JSON" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_predict_writes_the_report_beside_its_outputs_and_prints_its_path(
    tiny_checkpoint: Path, tiny_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "preds.json"
    assert main(["predict", str(tiny_manifest), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 0
    page = out.with_suffix(".html")
    assert f"report: {page}" in capsys.readouterr().out
    html = page.read_text()
    data = page_data(html)
    assert sorted(v["id"] for v in data["videos"]) == sorted(json.loads(out.read_text())["results"])
    for video in data["videos"]:  # the players name the manifest's files, relative to the page
        assert set(video["views"]) == {"front", "left"}
        assert all((page.parent / unquote(url)).resolve().is_file() for url in video["views"].values())
    assert 'id="training"' in html  # the curves of the checkpoint's run folder
    assert main(["predict", str(tiny_manifest), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--shard", "0/2"]) == 0  # fmt: skip
    assert "report:" not in capsys.readouterr().out  # a shard's report waits for the merged results


@pytest.mark.slow
def test_a_super_resolution_run_shows_psnr_and_ssim_against_bicubic_and_a_crop(
    tiny_manifest: Path, tmp_path: Path
) -> None:
    sr = ["experiment.task=super_resolution", "model.scale=2", "model.espcn_features=[16, 8]", "data.num_frames=3"]
    result = fit(load_config(None, tiny_overrides(tiny_manifest, tmp_path, *sr, "data.patch_size=16")))
    report = write_report(result.run_dir)
    assert report.sections == ("summary", "training", "sr") and report.num_videos == 0
    html = report.path.read_text()
    section = html[html.index('<section id="sr">') :]
    val = [v.id for v in load_manifest(tiny_manifest).videos if v.split == "val"]
    rows = re.findall(r"<tr><td[^>]*>([^<]+)</td><td[^>]*>3</td>((?:<td[^>]*>[^<]*</td>){6})</tr>", section)
    assert sorted(video for video, _ in rows) == sorted(val)
    for _, cells in rows:
        psnr, bicubic, gain, ssim, bicubic_ssim, _ = re.findall(r"<td[^>]*>([^<]*)</td>", cells)
        assert float(gain) == pytest.approx(float(psnr) - float(bicubic), abs=0.02) and 10 < float(bicubic) < 60
        assert 0 < float(ssim) <= 1 and 0 < float(bicubic_ssim) <= 1
    crop = re.search(r'src="data:image/png;base64,([^"]+)"', section)
    assert crop is not None
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(crop.group(1))))
    assert image.size == (3 * (32 * 3) + 2 * 2 * 3, 32 * 3)  # three 32-pixel frames, 2-pixel gaps, zoomed 3 times
