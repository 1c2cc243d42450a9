"""Inline SVG charts of the report: line charts of training curves and confusion-matrix heat maps.

Hand-written SVG keeps the page self-contained and small (a chart is a few kilobytes); every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

import numpy as np

# Series colours (colour-blind friendly, Okabe-Ito), reused in order.
SERIES_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442")
# Classes a confusion matrix shows at most: the rest (fewest frames or videos) are left out, and the chart says so.
MAX_MATRIX_CLASSES = 40
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 460, 230, 58, 12, 26, 58
# Room of a confusion matrix for the class names on its left and under it, and for its title above.
_MATRIX_MARGIN, _MATRIX_TOP = 110, 40


def line_chart(title: str, series: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """One chart of (step, value) series against the training step, with a legend under it."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x0, x1 = _span(min(xs), max(xs))
    y0, y1 = _span(min(ys), max(ys))
    y0, y1 = y0 - (y1 - y0) * 0.05, y1 + (y1 - y0) * 0.05  # lines clear of the frame
    width, height = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return _LEFT + (x - x0) / (x1 - x0) * width, _TOP + (1 - (y - y0) / (y1 - y0)) * height

    legend_top = _TOP + height + 44
    full = max(_HEIGHT, legend_top + 14 * ((len(series) - 1) // 3) + 6)  # room for every legend row
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {full}" width="{_WIDTH}" height="{full}" role="img">',
        f'<text x="{_LEFT}" y="16" class="chart-title">{escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{width}" height="{height}" class="plot"/>',
        *_axes(at, (x0, x1), (y0, y1)),
    ]
    for number, (name, points) in enumerate(series.items()):
        parts += _series(number, name, [at(x, y) for x, y in points], legend_top=legend_top)
    parts.append("</svg>")
    return "".join(parts)


def _axes(
    at: Callable[[float, float], tuple[float, float]], x_span: tuple[float, float], y_span: tuple[float, float]
) -> list[str]:
    """Grid lines and tick labels of both axes, and the x axis's name."""
    (x0, x1), (y0, y1) = x_span, y_span
    (left, bottom), (right, _) = at(x0, y0), at(x1, y1)
    parts = []
    ticks, step = _ticks(y0, y1)
    for tick in ticks:
        y = at(x0, tick)[1]
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_label(tick, step)}</text>')
    ticks, step = _ticks(x0, x1)
    for tick in ticks:
        x = at(tick, y0)[0]
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle">{_label(tick, step)}</text>'
        )
    parts.append(f'<text x="{(left + right) / 2}" y="{bottom + 28}" class="tick" text-anchor="middle">step</text>')
    return parts


def _series(number: int, name: str, points: Sequence[tuple[float, float]], *, legend_top: float) -> list[str]:
    """One series (a line, or a dot when it has one point) in its colour, and its legend entry."""
    colour, title = SERIES_COLOURS[number % len(SERIES_COLOURS)], f"<title>{escape(name)}</title>"
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts = [f'<polyline points="{path}" stroke="{colour}" class="line">{title}</polyline>']
    else:
        (x, y), *_ = points
        parts = [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">{title}</circle>']
    row, column = divmod(number, 3)
    lx, ly = _LEFT + column * 135, legend_top + row * 14
    parts.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{colour}"/>')
    parts.append(f'<text x="{lx + 14}" y="{ly - 3}" class="tick">{escape(_short(name, 20))}</text>')
    return parts


def _span(low: float, high: float) -> tuple[float, float]:
    if high > low:
        return low, high
    pad = abs(low) * 0.1 or 1.0
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5) -> tuple[list[float], float]:
    """Round values between `low` and `high`, about `count` of them, and their step."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)], step


def _label(value: float, step: float) -> str:
    """A tick's value with the decimals its step needs: thousands as ``k``, millions as ``M``, tiny ones in
    exponent form."""
    for unit, suffix in ((1e6, "M"), (1e3, "k")):
        if step >= unit / 10 and step >= 1000:
            return f"{value / unit:.{_decimals(step / unit)}f}{suffix}"
    decimals = _decimals(step)
    return f"{value:.1e}" if decimals > 4 and value != 0 else f"{value:.{decimals}f}"


def _decimals(step: float) -> int:
    """Decimals that show every multiple of `step` (a 1, 2, 2.5 or 5 times a power of ten) exactly."""
    return max(0, math.ceil(-math.log10(step) - 1e-9) + (1 if f"{step:.1e}"[2] == "5" else 0))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def matrix_classes(matrix: np.ndarray) -> np.ndarray:
    """The classes a confusion matrix chart shows: those with any count, at most `MAX_MATRIX_CLASSES` of the
    most frequent (true and predicted together), in class order."""
    weight = matrix.sum(axis=0) + matrix.sum(axis=1)
    present = np.flatnonzero(weight > 0)
    if len(present) > MAX_MATRIX_CLASSES:
        present = np.sort(present[np.argsort(-weight[present], kind="stable")[:MAX_MATRIX_CLASSES]])
    return present


def confusion_chart(title: str, matrix: np.ndarray, names: Sequence[str], colours: Sequence[str]) -> str:
    """A heat map of `matrix` (rows true, columns predicted), each row shaded by its share; counts on hover (and
    in the cells when there are few classes)."""
    shown = matrix_classes(matrix)
    size = len(shown)
    cell = max(8, min(36, 520 // max(size, 1)))
    side = _MATRIX_MARGIN + cell * size + 10
    rows = matrix[np.ix_(shown, shown)]
    totals = rows.sum(axis=1, keepdims=True)
    shares = np.divide(rows, totals, out=np.zeros(rows.shape), where=totals > 0)
    left_out = len(np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))) - size
    note = f" ({left_out} rarer classes not shown)" if left_out > 0 else ""
    parts = [
        f'<svg class="chart" viewBox="0 0 {side} {_MATRIX_TOP + cell * size + _MATRIX_MARGIN}" width="{side}" '
        f'role="img"><text x="4" y="16" class="chart-title">{escape(title + note)}</text>',
        '<text x="4" y="32" class="tick">rows: true class; columns: predicted</text>',
    ]
    for i, row in enumerate(shown.tolist()):
        y = _MATRIX_TOP + i * cell
        parts.append(
            f'<rect x="{_MATRIX_MARGIN - 10}" y="{y + cell / 2 - 4:.1f}" width="8" height="8" fill="{colours[row]}"/>'
            f'<text x="{_MATRIX_MARGIN - 14}" y="{y + cell / 2 + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(_short(names[row], 14))}</text>"
        )
        for j, column in enumerate(shown.tolist()):
            tip = f"{names[row]} → {names[column]}: {int(rows[i, j]):,} ({shares[i, j]:.1%} of {names[row]})"
            parts.append(_cell(_MATRIX_MARGIN + j * cell, y, cell, int(rows[i, j]), shares[i, j], tip, size <= 12))
    base = _MATRIX_TOP + cell * size + 6
    for j, column in enumerate(shown.tolist()):
        x = _MATRIX_MARGIN + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{base}" class="tick" text-anchor="end" transform="rotate(-60 {x:.1f} {base})">'
            f"{escape(_short(names[column], 14))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(x: float, y: float, side: int, count: int, share: float, tip: str, with_count: bool) -> str:
    """One square of the heat map, shaded by `share`, with `tip` on hover and the count inside when asked."""
    shape = (
        f'<rect x="{x}" y="{y}" width="{side}" height="{side}" class="cell" fill="{_shade(share)}">'
        f"<title>{escape(tip)}</title></rect>"
    )
    if not (with_count and count):
        return shape
    ink = "#fff" if share > 0.55 else "#222"
    return shape + (
        f'<text x="{x + side / 2}" y="{y + side / 2 + 4}" class="count" fill="{ink}" text-anchor="middle">'
        f"{_count(count)}</text>"
    )


def _shade(share: float) -> str:
    """White to dark blue with the share of the row."""
    low, high = np.array([255, 255, 255]), np.array([8, 69, 148])
    red, green, blue = (low + (high - low) * min(max(share, 0.0), 1.0)).round().astype(int)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _count(count: int) -> str:
    return f"{count / 1000:.0f}k" if count >= 10_000 else str(count)


# Class colours: Tableau's ten, then hues a golden angle apart (distinct however many classes there are).
_FIRST_CLASS_COLOURS = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip


def class_colours(count: int) -> list[str]:
    """A colour per class, as ``#rrggbb``: the timelines, the legend and the tables use the same."""
    colours = list(_FIRST_CLASS_COLOURS[:count])
    for index in range(len(colours), count):
        hue = (index * 137.508) % 360
        colours.append(_hsl(hue, 0.55 + 0.2 * (index % 2), 0.45 + 0.1 * (index % 3)))
    return colours


def _hsl(hue: float, saturation: float, lightness: float) -> str:
    chroma = (1 - abs(2 * lightness - 1)) * saturation
    x = chroma * (1 - abs((hue / 60) % 2 - 1))
    sector = int(hue // 60) % 6
    red, green, blue = [(chroma, x, 0), (x, chroma, 0), (0, chroma, x), (0, x, chroma), (x, 0, chroma), (chroma, 0, x)][
        sector
    ]
    base = lightness - chroma / 2
    return "#" + "".join(f"{round((value + base) * 255):02x}" for value in (red, green, blue))
