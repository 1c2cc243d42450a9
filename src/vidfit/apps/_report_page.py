"""The report's page: its sections as HTML (every text escaped), put into the packaged template with the script,
the style and the embedded data. Nothing on the page names a network address."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any

import numpy as np

from vidfit.apps._report_stats import ClassScores

# How the figures `predict` and `validate` log are named in the report (others keep their logged name).
METRIC_NAMES = {
    "top1": "top-1 (videos)", "top5": "top-5 (videos)", "acc": "accuracy (videos)",
    "mean_class_acc": "mean class accuracy", "frame_acc": "frame accuracy", "f1@0.5": "F1@0.5 (segments)",
    "mAP": "mAP (tIoU 0.3:0.7)", "loss": "loss", "psnr": "PSNR (dB)", "ssim": "SSIM",
    "bicubic_psnr": "bicubic PSNR (dB)", "bicubic_ssim": "bicubic SSIM",
}  # fmt: skip


def render(*, title: str, source: str, sections: Sequence[tuple[str, str, str]], data: Mapping[str, Any]) -> str:
    """The whole page: `sections` are (anchor, heading, HTML body); `data` is embedded as JSON for the script."""
    body = "\n".join(
        f'<section id="{escape(anchor)}"><h2>{escape(heading)}</h2>\n{html}\n</section>'
        for anchor, heading, html in sections
    )
    nav = "".join(f'<a href="#{escape(anchor)}">{escape(heading)}</a>' for anchor, heading, _ in sections)
    slots = {
        "title": escape(title), "source": escape(source), "nav": nav, "body": body, "data": embed_json(data),
        "style": _asset("report.css"), "script": _asset("report.js"), "version": _version(),
    }  # fmt: skip
    # One pass over the template: a slot's content is never searched for further slots.
    return re.sub(r"\{\{(\w+)\}\}", lambda match: slots[match.group(1)], _asset("report.html"))


def _asset(name: str) -> str:
    return resources.files("vidfit.apps").joinpath("report", name).read_text(encoding="utf-8")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return escape(version("vidfit"))
    except PackageNotFoundError:
        return "unknown"


def embed_json(data: Any) -> str:
    """`data` as JSON that is safe inside a ``<script>`` element: no ``<`` can end it or open a comment."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1, raw: int = 0) -> str:
    """An HTML table; cells are escaped, except the first `raw` columns of each row (already HTML)."""
    head = "".join(f'<th class="{"num" if i >= numeric_from else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{cell if i < raw else escape(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_label(name: str) -> str:
    """A logged figure's name as the report shows it (``mAP@0.5`` -> ``mAP@tIoU 0.5``)."""
    if name.startswith("mAP@"):
        return f"mAP@tIoU {name.removeprefix('mAP@')}"
    return METRIC_NAMES.get(name, name)


def number(value: float | None, *, share: bool = False) -> str:
    """A figure as text: a share as a percentage, others with 4 significant digits; missing as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.1%}" if share else f"{value:.4g}"


def metrics_table(columns: Mapping[str, Mapping[str, float]]) -> str:
    """The figures of several sources side by side (`columns`: heading -> {logged name: value}), one row each."""
    names: dict[str, None] = {}
    for figures in columns.values():
        names.update(dict.fromkeys(figures))
    rows = [
        [metric_label(name), *(number(figures.get(name), share=_is_share(name)) for figures in columns.values())]
        for name in names
    ]
    return table(["figure", *columns], rows)


def _is_share(name: str) -> bool:
    return any(key in name for key in ("acc", "top1", "top5"))


def class_table(
    names: Sequence[str], colours: Sequence[str], frames: ClassScores | None, videos: ClassScores | None
) -> str:
    """Per class: its colour, and its precision, recall and F1 over frames and over videos (where counted)."""
    header, parts = ["class"], []
    for heading, scores in (("frames", frames), ("videos", videos)):
        if scores is not None:
            header += [f"{heading}", "precision", "recall", "F1"]
            parts.append(scores)
    if not parts:
        return ""
    counted = np.zeros(len(names), dtype=bool)
    for scores in parts:  # classes with true frames (or videos), or predicted ones
        counted |= (scores.support > 0) | ~np.isnan(scores.precision)
    shown = np.flatnonzero(counted)
    rows = []
    for label in shown.tolist():
        cells = [f'<span class="swatch" style="background:{colours[label]}"></span>{escape(names[label])}']
        for scores in parts:
            cells += [f"{int(scores.support[label]):,}"] + [
                number(float(v[label])) for v in (scores.precision, scores.recall, scores.f1)
            ]
        rows.append(cells)
    return table(header, rows, raw=1)


def legend(names: Sequence[str], colours: Sequence[str]) -> str:
    """The class colours of the timelines."""
    items = "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{escape(name)}</span>'
        for name, colour in zip(names, colours, strict=True)
    )
    return f'<div class="legend">{items}</div>'


def video_controls(count: int) -> str:
    """The videos list's paging, filter and order controls."""
    pager = '<button class="prev" type="button">◀ previous</button><span class="page-label"></span>'
    pager += '<button class="next" type="button">next ▶</button>'
    return (
        f'<div class="controls">{pager}<input id="video-filter" type="search" placeholder="filter by video id" '
        f'aria-label="filter by video id"><label>order <select id="video-order"><option value="worst">worst first'
        f'</option><option value="id">video id</option></select></label><span class="note">{count:,} videos; '
        "click a strip to seek the video there</span></div>"
    )


def videos_section(count: int, names: Sequence[str], colours: Sequence[str]) -> str:
    """The container the script fills with one page of timeline strips."""
    note = (
        '<p class="note">Each strip: the true segments above, the predicted ones below, coloured by class, with the '
        "prediction's confidence as opacity; sorted worst first (share of frames predicted wrong). Clicking a "
        "segment seeks the video to its start; the views of a multi-view video play side by side, in sync.</p>"
    )
    pager = '<div class="controls"><button class="prev" type="button">◀ previous</button>'
    pager += '<span class="page-label"></span><button class="next" type="button">next ▶</button></div>'
    return f'{note}{legend(names, colours)}{video_controls(count)}<div id="video-list"></div>{pager}'
