"""Inline SVG charts for the replay report, drawn in Python: no script, no library, no request.

Each function returns one ``<svg>`` element as text, styled by the page's stylesheet
through class names (``band``, ``interval``, ``better``…) so the report has one
place for colours, including its print colours. Every string from the data goes
through ``html.escape``; numbers are written with at most two decimals of a pixel.

- ``forest``: one row per (candidate, estimator), a point and its interval, with the
  baseline's interval as a vertical band or a zero line (a forest plot: Lewis &
  Clarke 2001, "Forest plots: trying to see the wood and the trees", BMJ 322);
- ``cumulative``: the log's mean reward so far over time, its event counts below;
- ``histogram``: counts in equal bins on [0, 1].

Axis ticks are Heckbert's "nice numbers" (Graphics Gems, 1990): steps of 1, 2 or 5
times a power of ten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from itertools import pairwise

# Time-axis steps, in seconds: the first that gives at most _MAX_TIME_TICKS ticks wins.
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
               21600, 43200, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
               91 * 86400, 182 * 86400, 365 * 86400)
_MAX_TIME_TICKS = 8
_DAY = 86400

# Half the width of a long time label, in pixels: closer to an edge, it is anchored inside.
_EDGE_LABEL = 45

# Longest label drawn in full in a forest plot's name column; longer ones end in "…"
# and keep the whole name in their tooltip.
_LABEL_CHARS = 30


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One row of a forest plot: a point and its interval, labelled and toned."""

    group: str  # the candidate: written on the group's first row
    label: str  # the estimator
    value: float | None
    lower: float | None
    upper: float | None
    figures: str  # the numbers written at the right
    tone: str = "neutral"  # class of the mark: neutral, better, worse
    notes: tuple[str, ...] = ()  # flags written under the group's name


@dataclass(frozen=True, slots=True)
class Reference:
    """What the rows are compared with: a value and, for a band, its interval."""

    value: float
    lower: float | None = None
    upper: float | None = None
    label: str = ""


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round tick values covering [low, high] (Heckbert 1990)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    step = _nice((high - low) / max(count - 1, 1))
    first = math.floor(low / step) * step
    ticks = []
    tick = first
    while tick <= high + step * 0.5:
        ticks.append(round(tick, 12))
        tick += step
    return ticks


def _nice(value: float) -> float:
    """1, 2 or 5 times a power of ten, the nearest to ``value``."""
    exponent = math.floor(math.log10(value))
    fraction = value / 10.0 ** exponent
    nice = 1.0 if fraction < 1.5 else 2.0 if fraction < 3.0 else 5.0 if fraction < 7.0 else 10.0
    return nice * 10.0 ** exponent


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's text with as many decimals as the step between ticks needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    places = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(value) < step * 1e-6:  # 0, not −0.00 from accumulated steps
        value = 0.0
    return f"{value:.{places}f}".replace("-", "−")


def compact(count: float) -> str:
    """A count in at most five characters: 980, 9,870, 98.7k, 9.9M."""
    if count < 10_000:
        return f"{count:,.0f}"
    if count < 1_000_000:
        return f"{count / 1000:.1f}k".replace(".0k", "k")
    return f"{count / 1_000_000:.1f}M".replace(".0M", "M")


def _f(number: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    return f"{number:.2f}".rstrip("0").rstrip(".")


def _shorten(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[:_LABEL_CHARS - 1] + "…"


class _Scale:
    """A linear map from data to pixels."""

    def __init__(self, low: float, high: float, start: float, end: float) -> None:
        self.low, self.high, self.start, self.end = low, high, start, end

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def forest(rows: Sequence[ForestRow], *, reference: Reference, label: str,
           width: int = 1100) -> str:
    """A forest plot of ``rows`` against ``reference`` (a band when it has an interval)."""
    row_height, group_gap, top, bottom = 24, 12, 34, 34
    names, labels, right = 250, 64, 210
    plot_start, plot_end = names + labels, width - right
    groups = _groups(rows)
    # A group is as tall as its rows, or as its name and flags if those are more.
    lines = [max(len(group), 1 + len(group[0].notes)) for group in groups]
    height = top + bottom + row_height * sum(lines) + group_gap * max(len(groups) - 1, 0)
    values = [v for row in rows for v in (row.value, row.lower, row.upper) if v is not None]
    values += [v for v in (reference.value, reference.lower, reference.upper) if v is not None]
    ticks = nice_ticks(min(values), max(values)) if values else [0.0, 1.0]
    x = _Scale(ticks[0], ticks[-1], plot_start, plot_end)
    bottom_y = height - bottom
    out = [f'<svg class="chart forest" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(label)}">']
    for tick in ticks:  # the grid first, under everything
        out.append(f'<line class="grid" x1="{_f(x(tick))}" y1="{top - 6}" x2="{_f(x(tick))}" '
                   f'y2="{bottom_y}"/>')
        out.append(f'<text class="tick" x="{_f(x(tick))}" y="{bottom_y + 18}" '
                   f'text-anchor="middle">{escape(tick_label(tick, ticks))}</text>')
    out.append(_reference(reference, x, top - 6, bottom_y))
    y = float(top)
    for index, group in enumerate(groups):
        if index:
            out.append(f'<line class="separator" x1="0" y1="{_f(y + group_gap / 2 - 1)}" '
                       f'x2="{width}" y2="{_f(y + group_gap / 2 - 1)}"/>')
            y += group_gap
        head = group[0]
        out.append(f'<text class="name" x="0" y="{_f(y + row_height / 2 + 4)}"><title>'
                   f'{escape(head.group)}</title>{escape(_shorten(head.group))}</text>')
        for position, note in enumerate(head.notes, start=1):
            out.append(f'<text class="note" x="0" y="{_f(y + row_height * (position + 0.5) + 4)}">'
                       f'{escape(note)}</text>')
        for position, row in enumerate(group):
            middle = y + row_height * (position + 0.5)
            out.append(f'<text class="label" x="{names}" y="{_f(middle + 4)}">'
                       f'{escape(row.label)}</text>')
            out.append(_mark(row, x, middle))
            out.append(f'<text class="figures {row.tone}" x="{width}" y="{_f(middle + 4)}" '
                       f'text-anchor="end">{escape(row.figures)}</text>')
        y += row_height * lines[index]
    out.append("</svg>")
    return "".join(out)


def _groups(rows: Sequence[ForestRow]) -> list[list[ForestRow]]:
    groups: list[list[ForestRow]] = []
    for row in rows:
        if groups and groups[-1][0].group == row.group:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _reference(reference: Reference, x: _Scale, top: float, bottom: float) -> str:
    parts = []
    if reference.lower is not None and reference.upper is not None:
        left, right = x(reference.lower), x(reference.upper)
        parts.append(f'<rect class="band" x="{_f(left)}" y="{_f(top)}" '
                     f'width="{_f(max(right - left, 1.0))}" height="{_f(bottom - top)}"/>')
        parts.append(f'<line class="reference" x1="{_f(x(reference.value))}" y1="{_f(top)}" '
                     f'x2="{_f(x(reference.value))}" y2="{_f(bottom)}"/>')
    else:
        parts.append(f'<line class="zero" x1="{_f(x(reference.value))}" y1="{_f(top)}" '
                     f'x2="{_f(x(reference.value))}" y2="{_f(bottom)}"/>')
    if reference.label:
        parts.append(f'<text class="reference-label" x="{_f(x(reference.value))}" '
                     f'y="{_f(top - 8)}" text-anchor="middle">{escape(reference.label)}</text>')
    return "".join(parts)


def _mark(row: ForestRow, x: _Scale, middle: float) -> str:
    if row.value is None:
        return (f'<text class="missing" x="{_f(x.start)}" y="{_f(middle + 4)}">'
                f'not available</text>')
    tip = f"<title>{escape(f'{row.group} · {row.label}: {row.figures}')}</title>"
    parts = [f'<g class="mark {row.tone}">{tip}']
    if row.lower is not None and row.upper is not None:
        left, right = x(row.lower), x(row.upper)
        parts.append(f'<line class="interval" x1="{_f(left)}" y1="{_f(middle)}" '
                     f'x2="{_f(right)}" y2="{_f(middle)}"/>')
        for end in (left, right):
            parts.append(f'<line class="interval" x1="{_f(end)}" y1="{_f(middle - 5)}" '
                         f'x2="{_f(end)}" y2="{_f(middle + 5)}"/>')
    parts.append(f'<circle class="point" cx="{_f(x(row.value))}" cy="{_f(middle)}" r="5"/>')
    parts.append("</g>")
    return "".join(parts)


def cumulative(timestamps: Sequence[float], events: Sequence[float], rewards: Sequence[float],
               *, reference: Reference | None = None, width: int = 1100,
               height: int = 330) -> str:
    """The mean reward so far (``rewards``/``events``) over time, events per bucket below."""
    points = [(t, e, r) for t, e, r in zip(timestamps, events, rewards, strict=False) if e > 0]
    aria = "mean reward of the log so far, over time"
    if not points:
        return (f'<svg class="chart" viewBox="0 0 {width} 80" role="img" aria-label="{aria}">'
                f'<text class="missing" x="{width / 2}" y="44" text-anchor="middle">'
                f'no events</text></svg>')
    left, right, top, strip, gap = 64, 16, 28, 60, 26
    plot_bottom = height - strip - gap - 28
    times = [t for t, _, _ in points]
    means = [r / e for _, e, r in points]
    counts = [points[0][1]] + [b[1] - a[1] for a, b in pairwise(points)]
    y_values = means + ([reference.value] if reference is not None else [])
    y_ticks = nice_ticks(min(y_values), max(y_values), 5)
    x = _Scale(times[0], times[-1] if times[-1] > times[0] else times[0] + 1.0,
               left, width - right)
    y = _Scale(y_ticks[0], y_ticks[-1], plot_bottom, top)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{aria}">']
    for tick in y_ticks:
        out.append(f'<line class="grid" x1="{left}" y1="{_f(y(tick))}" x2="{width - right}" '
                   f'y2="{_f(y(tick))}"/>')
        out.append(f'<text class="tick" x="{left - 8}" y="{_f(y(tick) + 4)}" '
                   f'text-anchor="end">{escape(tick_label(tick, y_ticks))}</text>')
    if reference is not None:
        out.append(f'<line class="reference" x1="{left}" y1="{_f(y(reference.value))}" '
                   f'x2="{width - right}" y2="{_f(y(reference.value))}"/>')
        if reference.label:
            out.append(f'<text class="reference-label" x="{width - right}" '
                       f'y="{_f(y(reference.value) - 6)}" text-anchor="end">'
                       f'{escape(reference.label)}</text>')
    path = "M" + "L".join(f"{_f(x(t))},{_f(y(m))}" for t, m in zip(times, means, strict=True))
    out.append(f'<path class="line" d="{path}"/>')
    # Events per bucket, a strip under the curve: where the log is thin, the curve moves.
    strip_top, strip_bottom = plot_bottom + gap, plot_bottom + gap + strip
    most = max(counts) or 1
    bar = max((width - left - right) / max(len(points), 1) * 0.7, 1.0)
    for t, n in zip(times, counts, strict=True):
        tall = (strip_bottom - strip_top) * n / most
        out.append(f'<rect class="volume" x="{_f(x(t) - bar / 2)}" y="{_f(strip_bottom - tall)}" '
                   f'width="{_f(bar)}" height="{_f(tall)}"/>')
    out.append(f'<text class="tick" x="{left - 8}" y="{_f(strip_top + 10)}" text-anchor="end">'
               f'{escape(compact(most))}</text>')
    out.append(f'<text class="tick" x="{left - 8}" y="{_f(strip_bottom)}" text-anchor="end">'
               f'events</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{_f(strip_bottom)}" x2="{width - right}" '
               f'y2="{_f(strip_bottom)}"/>')
    for tick, text in time_ticks(times[0], times[-1]):
        # A label at an edge of the plot is anchored inside it, not cut by the frame.
        anchor = ("end" if x(tick) > width - right - _EDGE_LABEL else
                  "start" if x(tick) < left + _EDGE_LABEL else "middle")
        out.append(f'<text class="tick" x="{_f(x(tick))}" y="{_f(strip_bottom + 18)}" '
                   f'text-anchor="{anchor}">{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def time_ticks(start: float, end: float) -> list[tuple[float, str]]:
    """Round UTC instants between ``start`` and ``end`` and their labels."""
    span = end - start
    if span <= 0:
        return [(start, datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M:%S"))]
    step = next((s for s in _TIME_STEPS if span / s <= _MAX_TIME_TICKS), _TIME_STEPS[-1])
    if step >= _DAY:
        fmt = "%Y-%m-%d" if span > 300 * _DAY else "%b %d"
    elif step >= 60:
        fmt = "%b %d %H:%M" if span > _DAY else "%H:%M"
    else:
        fmt = "%H:%M:%S"
    first = math.ceil(start / step) * step
    ticks = []
    tick = float(first)
    while tick <= end:
        ticks.append((tick, datetime.fromtimestamp(tick, UTC).strftime(fmt)))
        tick += step
    return ticks


def histogram(edges: Sequence[float], counts: Sequence[float], *, label: str,
              width: int = 360, height: int = 170) -> str:
    """Bars of ``counts`` over the bins that ``edges`` bound, on an axis from 0 to 1."""
    left, right, top, bottom = 44, 10, 10, 26
    out = [f'<svg class="chart histogram" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(label)}">']
    x = _Scale(0.0, 1.0, left, width - right)
    most = max(counts, default=0)
    y = _Scale(0.0, float(most) or 1.0, height - bottom, top)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<text class="tick" x="{_f(x(tick))}" y="{height - 8}" '
                   f'text-anchor="middle">{tick:g}</text>')
    out.append(f'<text class="tick" x="{left - 6}" y="{top + 8}" text-anchor="end">'
               f'{escape(compact(most))}</text>')
    for (low, high), n in zip(pairwise(edges), counts, strict=False):
        if n <= 0:
            continue
        bar_left, bar_right = x(low), x(high)
        out.append(f'<rect class="bar" x="{_f(bar_left + 0.5)}" y="{_f(y(n))}" '
                   f'width="{_f(max(bar_right - bar_left - 1.0, 0.5))}" '
                   f'height="{_f(y(0.0) - y(n))}"><title>'
                   f'{escape(f"μ in [{low:g}, {high:g}): {n:,.0f} events")}</title></rect>')
    out.append(f'<line class="axis" x1="{left}" y1="{_f(y(0.0))}" x2="{width - right}" '
               f'y2="{_f(y(0.0))}"/>')
    out.append("</svg>")
    return "".join(out)
