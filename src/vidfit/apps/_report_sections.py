"""The report's sections drawn on the server: summary tables, training curves, classes, super-resolution."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from vidfit.apps._report_data import MAX_DETECTION_SEGMENTS, Predictions
from vidfit.apps._report_page import class_table, metrics_table, number, table
from vidfit.apps._report_run import RunFolder, curve_charts, setting
from vidfit.apps._report_sr import FRAMES_PER_VIDEO, MAX_SIDE_PIXELS, SREvaluation
from vidfit.apps._report_stats import (
    confusion_scores,
    frame_confusion,
    multi_label_frame_scores,
    video_confusion,
)
from vidfit.apps._report_svg import confusion_chart, line_chart


def summary_section(run: RunFolder | None, predictions: Predictions | None) -> str:
    """Config highlights, the figures of the predictions and of the run's last validation, and the data."""
    parts = []
    if run is not None:
        rows = [[key, value] for key, value in run.highlights()]
        parts.append(f"<div><h3>Run</h3>{table(['setting', 'value'], rows, numeric_from=9)}</div>")
    columns = {}
    if predictions is not None and predictions.metrics:
        columns["predictions"] = predictions.metrics
    if run is not None and run.last_validation:
        columns["last validation (metrics.csv)"] = {
            name.removeprefix("val/"): value for name, value in run.last_validation.items()
        }
    if columns:
        note = ""
        if predictions is not None and (count := sum(len(v.predicted) for v in predictions.videos)) > (
            MAX_DETECTION_SEGMENTS
        ):
            note = f'<p class="note">mAP not recomputed over {count:,} segments: vidfit predict printed it.</p>'
        parts.append(f"<div><h3>Figures</h3>{metrics_table(columns)}{note}</div>")
    if predictions is not None or run is not None:
        parts.append(f"<div><h3>Data</h3>{table(['', ''], _data_rows(run, predictions), numeric_from=1)}</div>")
    return f'<div class="tables">{"".join(parts)}</div>'


def _data_rows(run: RunFolder | None, predictions: Predictions | None) -> list[list[str]]:
    rows = []
    if predictions is not None:
        videos = predictions.videos
        rows += [
            ["predictions", str(predictions.path)],
            ["videos", f"{len(videos):,}"],
            ["frames predicted", f"{sum(v.frames[1] - v.frames[0] for v in videos):,}"],
            ["videos with a timeline", f"{sum(bool(v.true) for v in videos):,}"],
            ["labelled frames", f"{sum(v.labelled_frames for v in videos):,}"],
            ["classes", f"{len(predictions.label_names):,}" + (" (multi-label)" if predictions.multi_label else "")],
        ]
    if run is not None:
        rows.append(["run folder", str(run.path)])
        if (manifest := setting(run.config, "data.manifest")) is not None:
            rows.append(["manifest", str(manifest)])
    return rows


def training_section(run: RunFolder) -> str:
    """A chart per group of `metrics.csv` columns: loss, accuracy, learning rate, data-time fraction, memory..."""
    charts = "".join(line_chart(title, series) for title, series in curve_charts(run.curves))
    source = escape(str(run.path / "metrics.csv"))
    return f'<p class="note">From {source}, by training step.</p><div class="charts">{charts}</div>'


def classes_section(predictions: Predictions, colours: Sequence[str]) -> str:
    """Confusion matrices of frames and videos, and per-class precision, recall and F1; empty without labels."""
    names, count = predictions.label_names, len(predictions.label_names)
    if predictions.multi_label:
        scores = multi_label_frame_scores(predictions.videos, count)
        rows = class_table(names, colours, scores, None)
        note = '<p class="note">Multi-label: each class\'s predicted frames against its true frames.</p>'
        return note + rows if rows else ""
    frames, videos = frame_confusion(predictions.videos, count), video_confusion(predictions.videos, count)
    charts = [
        confusion_chart(title, matrix, names, colours)
        for title, matrix in (("Frames", frames), ("Videos", videos))
        if matrix is not None and matrix.any()
    ]
    per_class = class_table(
        names, colours, None if frames is None else confusion_scores(frames),
        None if videos is None else confusion_scores(videos),
    )  # fmt: skip
    if not charts and not per_class:
        return ""
    return f'<div class="charts">{"".join(charts)}</div><h3>Per class</h3>{per_class}'


def sr_section(found: SREvaluation, png_base64: str | None) -> str:
    """PSNR and SSIM per video, the model against bicubic, and the crop side by side."""
    rows = [
        [
            s.video_id, str(s.num_frames), number(s.psnr), number(s.bicubic_psnr), f"{s.psnr - s.bicubic_psnr:+.2f}",
            number(s.ssim), number(s.bicubic_ssim), f"{s.ssim - s.bicubic_ssim:+.4f}",
        ]
        for s in found.scores
    ]  # fmt: skip
    header = ["video", "frames", "PSNR (dB)", "bicubic", "gain", "SSIM", "bicubic", "gain"]
    note = (
        f'<p class="note">{escape(str(found.checkpoint))}: {FRAMES_PER_VIDEO} frames of each validation video '
        f"(their centre {MAX_SIDE_PIXELS}-pixel square), bicubic-downsampled by the model's scale, then upscaled by "
        "the model and by bicubic interpolation; Y channel (BT.601), worst gain first.</p>"
    )
    image = ""
    if png_base64 is not None:
        image = (
            f"<h3>{escape(found.crop_video_id or '')}</h3>"
            f'<img alt="original, bicubic and model, side by side" src="data:image/png;base64,{png_base64}">'
            '<p class="note">Left to right: the original, bicubic, the model (middle frame, centre crop).</p>'
        )
    return f'<div class="sr">{note}{table(header, rows)}{image}</div>'
