"""A small bar chart drawn as SVG on the server: no charting library, no script."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 560
HEIGHT = 170
LEFT = 44  # room for the y-axis labels
RIGHT = 8
TOP = 12
BOTTOM = 24  # room for the hour labels
LABEL_EVERY_HOURS = 3


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (at least 1), so
    the axis ends on a round number."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def hourly_bar_chart(
    series: Sequence[tuple[datetime, int]], *, title: str, unit: str = "pages"
) -> SafeString:
    """One bar per hour, oldest on the left; each bar names its hour and value on hover (and to
    screen readers), the axis is labelled every few hours."""
    total = sum(value for _, value in series)
    top = nice_ceiling(max((value for _, value in series), default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(series), 1)
    gap = min(4.0, slot * 0.2)

    bars = format_html_join(
        "",
        '<rect class="fca-bar" x="{}" y="{}" width="{}" height="{}">'
        "<title>{}–{}: {} {}</title></rect>",
        (
            (
                _n(LEFT + i * slot + gap / 2),
                _n(TOP + plot_height - _bar_height(value, top, plot_height)),
                _n(slot - gap),
                _n(_bar_height(value, top, plot_height)),
                hour.strftime("%H:00"),
                f"{(hour.hour + 1) % 24:02d}:00",
                value,
                unit,
            )
            for i, (hour, value) in enumerate(series)
        ),
    )
    hour_labels = format_html_join(
        "",
        '<text class="fca-axis-label" x="{}" y="{}" text-anchor="middle">{}</text>',
        (
            (_n(LEFT + i * slot + slot / 2), HEIGHT - 6, hour.strftime("%H:00"))
            for i, (hour, _) in enumerate(series)
            if hour.hour % LABEL_EVERY_HOURS == 0
        ),
    )
    grid = format_html_join(
        "",
        '<line class="fca-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
        '<text class="fca-axis-label" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (
                LEFT,
                WIDTH - RIGHT,
                _n(TOP + plot_height * (1 - fraction)),
                _n(TOP + plot_height * (1 - fraction)),
                LEFT - 6,
                _n(TOP + plot_height * (1 - fraction) + 4),
                _axis_value(top * fraction),
            )
            # The middle line only when it falls on a whole number: pages come in units.
            for fraction in ((0, 0.5, 1) if top % 2 == 0 else (0, 1))
        ),
    )
    empty = (
        format_html(
            '<text class="fca-chart-empty" x="{}" y="{}" text-anchor="middle">'
            "Nothing ingested in this period</text>",
            LEFT + plot_width / 2,
            TOP + plot_height / 2,
        )
        if total == 0
        else ""
    )
    summary = f"{title}: {total} {unit} in all, at most {max(v for _, v in series or [(0, 0)])}"
    return format_html(
        '<svg class="fca-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'preserveAspectRatio="xMidYMid meet" aria-label="{}"><title>{}</title>{}{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        summary,
        summary,
        grid,
        bars,
        hour_labels,
        empty,
    )


def _bar_height(value: int, top: int, plot_height: float) -> float:
    if value <= 0:
        return 0.0
    # A bar for any work at all, however small next to the busiest hour.
    return max(1.5, plot_height * value / top)


def _n(value: float) -> str:
    """A coordinate with one decimal: enough for a crisp bar, short in the markup."""
    return f"{value:.1f}"


def _axis_value(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))
