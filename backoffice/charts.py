"""Server-rendered SVG charts for the back office.

The admin stays free of JavaScript and of external assets: a chart is a string of SVG markup
built here and inlined in the page. Every piece of text (titles, labels, series names) is
escaped with `django.utils.html.escape` before it enters the markup; only the finished string is
marked safe. Each data point carries a `<title>` so a browser shows its exact value on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
TEXT_COLOUR = "#333"
GRID_COLOUR = "#e5e5e5"
AXIS_COLOUR = "#999"

Number = float | int | Decimal


@dataclass(frozen=True)
class Series:
    """One named line: a value per x label, None where nothing was measured (drawn as a gap)."""

    name: str
    values: Sequence[Number | None]


def _fmt(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel and keeps the markup short."""
    return f"{value:.1f}"


def default_number_format(value: float) -> str:
    """Grouped thousands, at most two decimals (three significant digits below 1), no trailing zeros."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, *, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        # A flat line still needs an axis: centre it in a unit-wide range.
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw_step = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    ticks = []
    k = 0
    while (value := first + k * step) <= last + step * 1e-9:
        # Rounding keeps 0.1 + 0.2 from printing as 0.30000000000000004.
        ticks.append(round(value, 10))
        k += 1
    return ticks


def svg_open(*, width: int, height: int, title: str, css_class: str) -> str:
    """The root element, accessible (role and title) and sized both intrinsically and by viewBox."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css_class)}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT} font-size="12">'
        f"<title>{escape(title)}</title>"
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" fill="#fff"/>'
        f'<text class="chart-title" x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="14" '
        f'font-weight="600" fill="{TEXT_COLOUR}">{escape(title)}</text>'
    )


def no_data_chart(*, title: str, width: int, height: int, css_class: str = "chart-empty") -> SafeString:
    """The chart a page shows when there is nothing to plot: same size, says so plainly."""
    return mark_safe(  # every text fragment is escaped in svg_open and here
        svg_open(width=width, height=height, title=title, css_class=f"{css_class} no-data")
        + f'<text class="no-data" x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
        f'fill="#777">{escape("No data")}</text></svg>'
    )


def legend(names: Sequence[str], *, x: float, y: float, max_width: float) -> str:
    """Colour swatch and name per series, wrapping to a new row when the width runs out."""
    parts = ['<g class="legend">']
    cx, cy = x, y
    for i, name in enumerate(names):
        label = name if len(name) <= 40 else name[:39] + "…"
        item_width = 22 + 7 * len(label)
        if cx > x and cx + item_width > x + max_width:
            cx, cy = x, cy + 16
        parts.append(
            f'<g class="legend-item"><rect x="{_fmt(cx)}" y="{_fmt(cy - 9)}" width="12" height="10" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{_fmt(cx + 16)}" y="{_fmt(cy)}" '
            f'fill="{TEXT_COLOUR}">{escape(label)}</text></g>'
        )
        cx += item_width
    parts.append("</g>")
    return "".join(parts)


def legend_height(names: Sequence[str], *, max_width: float) -> float:
    rows, used = 1, 0.0
    for name in names:
        item_width = 22 + 7 * min(len(name), 40)
        if used and used + item_width > max_width:
            rows, used = rows + 1, 0.0
        used += item_width
    return rows * 16.0


def _x_anchor(index: int, count: int) -> str:
    """The first and last labels are drawn inwards so that they stay inside the plot."""
    if count > 1 and index == 0:
        return "start"
    return "end" if count > 1 and index == count - 1 else "middle"


def _x_label_indices(labels: Sequence[str], positions: Sequence[float], *, gap: float = 10.0) -> list[int]:
    """The labels to show: evenly spaced ones that do not overlap, always the first and the last.

    Text width is estimated (7 px a character at 12 px); the latest label (usually today) wins
    over a neighbour it would collide with.
    """
    count = len(labels)
    if count == 0:
        return []

    def extent(i: int) -> tuple[float, float]:
        x, w = positions[i], 7.0 * len(labels[i])
        anchor = _x_anchor(i, count)
        return (x, x + w) if anchor == "start" else (x - w, x) if anchor == "end" else (x - w / 2, x + w / 2)

    span = positions[-1] - positions[0]
    widest = max(7.0 * len(label) for label in labels) + gap
    fits = max(int(span // widest), 1) if span > 0 else 1
    stride = max(math.ceil((count - 1) / fits), 1)
    last = count - 1
    chosen: list[int] = []
    for i in range(0, last, stride):
        low, high = extent(i)
        if chosen and low < extent(chosen[-1])[1] + gap:
            continue
        if high > extent(last)[0] - gap:
            break
        chosen.append(i)
    chosen.append(last)
    return chosen


def line_chart(
    *,
    series: Sequence[Series],
    x_labels: Sequence[str],
    title: str,
    y_label: str,
    invert_y: bool = False,
    width: int = 720,
    height: int = 280,
    y_min: float | None = None,
    value_format: Callable[[float], str] = default_number_format,
) -> SafeString:
    """Several series over shared x labels (dates, usually), as polylines with point markers.

    A None value breaks its line: each unbroken run is one `<polyline>` inside the series'
    `<g class="series">`, and every measured point is a `<circle>`, so a lone point between two
    gaps is still visible. `invert_y` puts the smallest value at the top (a search position of 1
    is the best). `y_min` pins the bottom of the value range (1 for positions); otherwise
    magnitudes start at zero so that a small change does not look like a collapse.
    """
    for s in series:
        if len(s.values) != len(x_labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(x_labels)} x labels")
    measured = [float(v) for s in series for v in s.values if v is not None]
    if not measured or not x_labels:
        return no_data_chart(title=title, width=width, height=height, css_class="line-chart")

    low, high = min(measured), max(measured)
    if y_min is not None:
        low = min(low, y_min)
    elif not invert_y and low > 0:
        low = 0.0
    ticks = nice_ticks(low, high)
    if y_min is not None:
        ticks = [t for t in ticks if t >= y_min]
        if not ticks or ticks[0] > y_min:
            ticks.insert(0, y_min)
        if len(ticks) == 1:
            ticks.append(y_min + 1)
    domain_low, domain_high = ticks[0], ticks[-1]

    margin_left = 16 + 7 * max(len(value_format(t)) for t in ticks) + 18
    margin_right = 16
    legend_top = 34.0
    legend_rows_height = legend_height([s.name for s in series], max_width=width - margin_left - margin_right)
    margin_top = legend_top + legend_rows_height + 6
    margin_bottom = 36.0
    plot_left, plot_right = float(margin_left), float(width - margin_right)
    plot_top, plot_bottom = margin_top, float(height) - margin_bottom
    plot_width, plot_height = plot_right - plot_left, plot_bottom - plot_top

    def y_of(value: float) -> float:
        share = (value - domain_low) / (domain_high - domain_low)
        return plot_top + share * plot_height if invert_y else plot_bottom - share * plot_height

    n = len(x_labels)

    def x_of(index: int) -> float:
        return plot_left + plot_width / 2 if n == 1 else plot_left + index * plot_width / (n - 1)

    parts = [svg_open(width=width, height=height, title=title, css_class="line-chart")]
    parts.append(legend([s.name for s in series], x=plot_left, y=legend_top, max_width=plot_width))

    # Value axis: grid lines with their labels, and the axis name written vertically.
    parts.append('<g class="y-axis">')
    for tick in ticks:
        ty = y_of(tick)
        parts.append(
            f'<line x1="{_fmt(plot_left)}" y1="{_fmt(ty)}" x2="{_fmt(plot_right)}" y2="{_fmt(ty)}" '
            f'stroke="{GRID_COLOUR}"/><text class="tick" x="{_fmt(plot_left - 6)}" y="{_fmt(ty + 4)}" '
            f'text-anchor="end" fill="{TEXT_COLOUR}">{escape(value_format(tick))}</text>'
        )
    mid = (plot_top + plot_bottom) / 2
    parts.append(
        f'<text class="axis-label" transform="translate(12 {_fmt(mid)}) rotate(-90)" text-anchor="middle" '
        f'fill="{TEXT_COLOUR}">{escape(y_label)}</text></g>'
    )

    # Category axis: the baseline and as many evenly spaced labels as fit, first and last included.
    parts.append(
        f'<g class="x-axis"><line x1="{_fmt(plot_left)}" y1="{_fmt(plot_bottom)}" x2="{_fmt(plot_right)}" '
        f'y2="{_fmt(plot_bottom)}" stroke="{AXIS_COLOUR}"/>'
    )
    for i in _x_label_indices(x_labels, [x_of(i) for i in range(n)]):
        tx = x_of(i)
        anchor = _x_anchor(i, n)
        parts.append(
            f'<line x1="{_fmt(tx)}" y1="{_fmt(plot_bottom)}" x2="{_fmt(tx)}" y2="{_fmt(plot_bottom + 4)}" '
            f'stroke="{AXIS_COLOUR}"/><text class="tick" x="{_fmt(tx)}" y="{_fmt(plot_bottom + 18)}" '
            f'text-anchor="{anchor}" fill="{TEXT_COLOUR}">{escape(x_labels[i])}</text>'
        )
    parts.append("</g>")

    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<g class="series" data-series="{escape(s.name)}">')
        runs: list[list[str]] = [[]]
        points = []
        for i, raw in enumerate(s.values):
            if raw is None:
                if runs[-1]:
                    runs.append([])
                continue
            value = float(raw)
            px, py = x_of(i), y_of(value)
            runs[-1].append(f"{_fmt(px)},{_fmt(py)}")
            points.append(
                f'<circle cx="{_fmt(px)}" cy="{_fmt(py)}" r="2.5" fill="{colour}">'
                f"<title>{escape(f'{s.name} · {x_labels[i]}: {value_format(value)}')}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="2" '
                    'stroke-linejoin="round"/>'
                )
        parts.extend(points)
        parts.append("</g>")

    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text fragment above went through escape()


def stacked_bar_chart(
    *,
    categories: Sequence[str],
    stacks: Sequence[Series],
    title: str,
    width: int = 720,
    height: int | None = None,
    value_format: Callable[[float], str] = default_number_format,
) -> SafeString:
    """Horizontal bars, one per category, split into one segment per stack (its share).

    `stacks[k].values[i]` is the size of stack k in category i; None counts as zero. Segments
    of zero are left out; the bar's total is written at its end.
    """
    for s in stacks:
        if len(s.values) != len(categories):
            raise ValueError(f"stack {s.name!r} has {len(s.values)} values for {len(categories)} categories")
    totals = [sum(float(s.values[i] or 0) for s in stacks) for i in range(len(categories))]
    bar_height, gap = 22.0, 10.0
    label_width = 16 + 7 * max((min(len(c), 40) for c in categories), default=0)
    legend_top = 34.0
    if height is None:
        height = int(
            legend_top
            + legend_height([s.name for s in stacks], max_width=width - 32)
            + 12
            + len(categories) * (bar_height + gap)
            + 16
        )
    if not categories or not any(totals):
        return no_data_chart(title=title, width=width, height=height, css_class="bar-chart")

    plot_left = float(label_width)
    plot_right = float(width - 16 - 7 * len(value_format(max(totals))) - 8)
    plot_width = plot_right - plot_left
    top = legend_top + legend_height([s.name for s in stacks], max_width=width - 32) + 12
    scale = plot_width / max(totals)

    parts = [svg_open(width=width, height=height, title=title, css_class="bar-chart")]
    parts.append(legend([s.name for s in stacks], x=plot_left, y=legend_top, max_width=plot_width))
    for i, category in enumerate(categories):
        y = top + i * (bar_height + gap)
        label = category if len(category) <= 40 else category[:39] + "…"
        parts.append(
            f'<g class="bar" data-category="{escape(category)}"><text class="category" x="{_fmt(plot_left - 8)}" '
            f'y="{_fmt(y + bar_height / 2 + 4)}" text-anchor="end" fill="{TEXT_COLOUR}">{escape(label)}</text>'
        )
        x = plot_left
        for k, s in enumerate(stacks):
            value = float(s.values[i] or 0)
            if value <= 0:
                continue
            w = value * scale
            parts.append(
                f'<rect class="segment" data-stack="{escape(s.name)}" x="{_fmt(x)}" y="{_fmt(y)}" '
                f'width="{_fmt(w)}" height="{_fmt(bar_height)}" fill="{PALETTE[k % len(PALETTE)]}">'
                f"<title>{escape(f'{category} · {s.name}: {value_format(value)}')}</title></rect>"
            )
            x += w
        parts.append(
            f'<text class="total" x="{_fmt(x + 6)}" y="{_fmt(y + bar_height / 2 + 4)}" '
            f'fill="{TEXT_COLOUR}">{escape(value_format(totals[i]))}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text fragment above went through escape()


@dataclass(frozen=True)
class IntervalRow:
    """One estimate with its interval (a variant's conversion rate and its confidence interval).

    None for the value means nothing was measured: the row is labelled "no data". None for a
    bound means the interval is undefined (no participants): only the estimate is drawn.
    """

    label: str
    value: Number | None
    lower: Number | None = None
    upper: Number | None = None
    # Written after the value, e.g. "n = 1,204".
    detail: str = ""
    # Drawn bold: the row the reader should find first (a declared winner).
    highlight: bool = False


def interval_chart(
    *,
    rows: Sequence[IntervalRow],
    title: str,
    value_label: str,
    reference: Number | None = None,
    reference_label: str = "",
    zero_based: bool = False,
    width: int = 720,
    value_format: Callable[[float], str] = default_number_format,
) -> SafeString:
    """Estimates with their intervals on one horizontal value axis, one row per estimate.

    Each measured row is a `<g class="interval-row">` holding a `<line class="interval">` from
    its lower to its upper bound (with end caps) and a `<circle class="estimate">` at its value;
    the exact figures are written at the row's end and in its `<title>`. `reference` draws a
    dashed vertical line (control's rate), so overlap with it reads at a glance. The axis is
    zoomed to the intervals unless `zero_based`: what matters is how intervals overlap.
    """
    row_height, label_limit, min_plot_width = 30.0, 44, 260.0
    # Text is measured at ~7 px a character (7.7 in bold, for the highlighted row).
    label_width = 16 + max((7.7 * min(len(r.label), label_limit) for r in rows), default=0.0)
    texts = [_interval_text(r, value_format) for r in rows]
    text_width = 24 + max((7.7 * len(t) for t in texts), default=0.0)
    # Long labels widen the chart rather than squeeze its plot.
    width = max(width, int(label_width + min_plot_width + text_width))
    top = 34.0
    axis_height = 44.0
    height = int(top + max(len(rows), 1) * row_height + axis_height)

    figures = [
        float(v)
        for r in rows
        if r.value is not None
        for v in (r.value, r.lower, r.upper)
        if v is not None and math.isfinite(float(v))
    ]
    if reference is not None:
        figures.append(float(reference))
    if not rows or not figures:
        return no_data_chart(title=title, width=width, height=height, css_class="interval-chart")
    low, high = min(figures), max(figures)
    if zero_based and low > 0:
        low = 0.0
    ticks = nice_ticks(low, high)
    domain_low, domain_high = ticks[0], ticks[-1]

    plot_left = float(label_width)
    plot_right = float(width) - text_width
    plot_bottom = top + len(rows) * row_height

    def x_of(value: float) -> float:
        return plot_left + (value - domain_low) / (domain_high - domain_low) * (plot_right - plot_left)

    parts = [svg_open(width=width, height=height, title=title, css_class="interval-chart")]
    parts.append('<g class="x-axis">')
    for tick in ticks:
        tx = x_of(tick)
        parts.append(
            f'<line x1="{_fmt(tx)}" y1="{_fmt(top)}" x2="{_fmt(tx)}" y2="{_fmt(plot_bottom)}" stroke="{GRID_COLOUR}"/>'
            f'<text class="tick" x="{_fmt(tx)}" y="{_fmt(plot_bottom + 16)}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}">{escape(value_format(tick))}</text>'
        )
    parts.append(
        f'<line x1="{_fmt(plot_left)}" y1="{_fmt(plot_bottom)}" x2="{_fmt(plot_right)}" y2="{_fmt(plot_bottom)}" '
        f'stroke="{AXIS_COLOUR}"/><text class="axis-label" x="{_fmt((plot_left + plot_right) / 2)}" '
        f'y="{_fmt(plot_bottom + 34)}" text-anchor="middle" fill="{TEXT_COLOUR}">{escape(value_label)}</text></g>'
    )
    if reference is not None:
        rx = x_of(float(reference))
        note = f"{reference_label}: {value_format(float(reference))}" if reference_label else ""
        parts.append(
            f'<line class="reference" x1="{_fmt(rx)}" y1="{_fmt(top - 4)}" x2="{_fmt(rx)}" y2="{_fmt(plot_bottom)}" '
            f'stroke="{AXIS_COLOUR}" stroke-dasharray="4 3">'
            + (f"<title>{escape(note)}</title>" if note else "")
            + "</line>"
        )

    for index, (row, text) in enumerate(zip(rows, texts, strict=True)):
        y = top + index * row_height + row_height / 2
        colour = PALETTE[index % len(PALETTE)]
        label = row.label if len(row.label) <= label_limit else row.label[: label_limit - 1] + "…"
        weight = ' font-weight="700"' if row.highlight else ""
        parts.append(
            f'<g class="interval-row" data-label="{escape(row.label)}"><title>{escape(f"{row.label}: {text}")}</title>'
            f'<text class="row-label" x="{_fmt(plot_left - 8)}" y="{_fmt(y + 4)}" text-anchor="end"'
            f'{weight} fill="{TEXT_COLOUR}">{escape(label)}</text>'
        )
        if row.value is not None:
            if row.lower is not None and row.upper is not None:
                x1, x2 = x_of(float(row.lower)), x_of(float(row.upper))
                parts.append(
                    f'<line class="interval" x1="{_fmt(x1)}" y1="{_fmt(y)}" x2="{_fmt(x2)}" y2="{_fmt(y)}" '
                    f'stroke="{colour}" stroke-width="{4 if row.highlight else 3}" stroke-linecap="butt"/>'
                )
                for cap in (x1, x2):
                    parts.append(
                        f'<line class="cap" x1="{_fmt(cap)}" y1="{_fmt(y - 6)}" x2="{_fmt(cap)}" '
                        f'y2="{_fmt(y + 6)}" stroke="{colour}" stroke-width="2"/>'
                    )
            parts.append(
                f'<circle class="estimate" cx="{_fmt(x_of(float(row.value)))}" cy="{_fmt(y)}" r="5" '
                f'fill="#fff" stroke="{colour}" stroke-width="2.5"/>'
            )
        parts.append(
            f'<text class="value" x="{_fmt(plot_right + 12)}" y="{_fmt(y + 4)}"{weight} '
            f'fill="{TEXT_COLOUR}">{escape(text)}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text fragment above went through escape()


def _interval_text(row: IntervalRow, value_format: Callable[[float], str]) -> str:
    if row.value is None:
        return "no data"
    text = value_format(float(row.value))
    if row.lower is not None and row.upper is not None:
        text += f" [{value_format(float(row.lower))} to {value_format(float(row.upper))}]"
    return f"{text} · {row.detail}" if row.detail else text
