"""Small self-contained SVG charts (bar, grouped bar, line) as strings, for the iteration report.

No plotting library: the report's HTML must open anywhere with nothing to fetch, and the charts
are few and simple. Pure functions; every text is escaped. Each chart is one `<svg>` element
carrying `data-chart="<name>"`, so a page (and a test) can find it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

WIDTH = 560
HEIGHT = 260
# Plot area margins: left for the y labels, bottom for the x labels and the legend.
MARGIN_LEFT = 48
MARGIN_RIGHT = 16
MARGIN_TOP = 30
MARGIN_BOTTOM = 56
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
REFERENCE_COLOUR = "#888888"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _num(value: float) -> str:
    """A coordinate with at most one decimal (keeps the markup short and stable)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_max(value: float) -> float:
    """A round upper bound for an axis: 1, 2, 2.5, 5 or 10 times a power of ten, at least `value`."""
    if value <= 0 or math.isnan(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power + 1e-12:
            return step * power
    return 10 * power


def count_max(value: float) -> float:
    """An upper bound for an axis of counts: a multiple of 4 (the frame draws 4 intervals), so every
    grid line is a whole number."""
    return float(max(4, math.ceil(value / 4) * 4))


def _frame(name: str, title: str, y_min: float, y_max: float, y_format: str) -> list[str]:
    """The svg opening, title, y grid lines with labels; the caller closes it."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{_esc(name)}" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'font-family="sans-serif" font-size="11">',
        f"<title>{_esc(title)}</title>",
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{_esc(title)}</text>",
    ]
    bottom = HEIGHT - MARGIN_BOTTOM
    for i in range(5):
        value = y_min + (y_max - y_min) * i / 4
        y = _y(value, y_min, y_max)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{_num(y)}" y2="{_num(y)}" '
            f'stroke="#dddddd" stroke-width="1"/>'
        )
        label = _esc(y_format.format(value))
        parts.append(f'<text x="{MARGIN_LEFT - 4}" y="{_num(y + 4)}" text-anchor="end">{label}</text>')
    parts.append(
        f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#444444"/>'
    )
    return parts


def _y(value: float, y_min: float, y_max: float) -> float:
    span = (y_max - y_min) or 1.0
    share = min(max((value - y_min) / span, 0.0), 1.0)
    return HEIGHT - MARGIN_BOTTOM - share * (HEIGHT - MARGIN_BOTTOM - MARGIN_TOP)


def _x_labels(labels: Sequence[str], centres: Sequence[float]) -> list[str]:
    y = HEIGHT - MARGIN_BOTTOM + 14
    return [
        f'<text x="{_num(x)}" y="{y}" text-anchor="middle">{_esc(label)}</text>'
        for label, x in zip(labels, centres, strict=True)
    ]


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    x = float(MARGIN_LEFT)
    y = HEIGHT - 14
    for i, name in enumerate(names):
        parts.append(f'<rect x="{_num(x)}" y="{y - 9}" width="10" height="10" fill="{colour(i)}"/>')
        parts.append(f'<text x="{_num(x + 14)}" y="{y}">{_esc(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def _empty(name: str, title: str, message: str) -> str:
    parts = _frame(name, title, 0.0, 1.0, "{:g}")
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#888888">{_esc(message)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def grouped_bar_chart(
    name: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    y_max: float | None = None,
    y_format: str = "{:g}",
    counts: bool = False,
    empty_message: str = "no data",
) -> str:
    """Bars per category, one per series (side by side, coloured by series, with a legend).

    A single series is a plain bar chart. Every series has one value per category. With `counts`
    the axis gets whole-number grid lines.
    """
    for label, values in series:
        if len(values) != len(categories):
            raise ValueError(f"series {label!r}: {len(values)} values for {len(categories)} categories")
    if not categories or not series:
        return _empty(name, title, empty_message)
    highest = max((max(v) for _, v in series if v), default=0.0)
    top = y_max if y_max is not None else (count_max(highest) if counts else nice_max(highest))
    parts = _frame(name, title, 0.0, top, y_format)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    group = plot_width / len(categories)
    bar = group * 0.8 / len(series)
    centres = []
    for c in range(len(categories)):
        start = MARGIN_LEFT + group * c + group * 0.1
        centres.append(start + group * 0.4)
        for s, (label, values) in enumerate(series):
            value = values[c]
            y = _y(value, 0.0, top)
            height = HEIGHT - MARGIN_BOTTOM - y
            parts.append(
                f'<rect class="bar" x="{_num(start + s * bar)}" y="{_num(y)}" '
                f'width="{_num(max(bar - 1, 1))}" height="{_num(height)}" fill="{colour(s)}">'
                f"<title>{_esc(f'{label}, {categories[c]}: {value:g}')}</title></rect>"
            )
    parts += _x_labels(categories, centres)
    if len(series) > 1:
        parts += _legend([label for label, _ in series])
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    y_max: float | None = None,
    y_format: str = "{:g}",
    empty_message: str = "no data",
) -> str:
    """One bar per label."""
    return grouped_bar_chart(
        name, title, labels, [(title, values)], y_max=y_max, y_format=y_format, empty_message=empty_message
    )


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    y_min: float = 0.0,
    y_max: float | None = None,
    y_format: str = "{:g}",
    references: Sequence[tuple[str, float]] = (),
    empty_message: str = "no data",
) -> str:
    """One line per series over the labels (None = not measured: the line breaks there), with dots
    at the points and dashed horizontal reference lines (e.g. a threshold)."""
    for label, values in series:
        if len(values) != len(labels):
            raise ValueError(f"series {label!r}: {len(values)} values for {len(labels)} labels")
    measured = [v for _, values in series for v in values if v is not None]
    if not labels or not measured:
        return _empty(name, title, empty_message)
    top = y_max if y_max is not None else nice_max(max([*measured, *(v for _, v in references)]))
    parts = _frame(name, title, y_min, top, y_format)
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    step = plot_width / len(labels)
    centres = [MARGIN_LEFT + step * (i + 0.5) for i in range(len(labels))]
    for ref_label, ref_value in references:
        y = _y(ref_value, y_min, top)
        parts.append(
            f'<line class="reference" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{_num(y)}" '
            f'y2="{_num(y)}" stroke="{REFERENCE_COLOUR}" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{WIDTH - MARGIN_RIGHT - 2}" y="{_num(y - 3)}" text-anchor="end" '
            f'fill="{REFERENCE_COLOUR}">{_esc(ref_label)}</text>'
        )
    for s, (label, values) in enumerate(series):
        run: list[str] = []
        runs: list[list[str]] = []
        for x, value in zip(centres, values, strict=True):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{_num(x)},{_num(_y(value, y_min, top))}")
        if run:
            runs.append(run)
        for points in runs:
            if len(points) > 1:
                parts.append(
                    f'<polyline class="line" fill="none" stroke="{colour(s)}" stroke-width="2" '
                    f'points="{" ".join(points)}"/>'
                )
        for x, value in zip(centres, values, strict=True):
            if value is not None:
                parts.append(
                    f'<circle class="point" cx="{_num(x)}" cy="{_num(_y(value, y_min, top))}" r="3.5" '
                    f'fill="{colour(s)}"><title>{_esc(f"{label}: {y_format.format(value)}")}</title></circle>'
                )
    parts += _x_labels(labels, centres)
    if len(series) > 1:
        parts += _legend([label for label, _ in series])
    parts.append("</svg>")
    return "\n".join(parts)
