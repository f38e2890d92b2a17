"""Charts as inline SVG, drawn on the server (no JavaScript, no chart library, no CDN).

Every label is escaped; the markup is returned as ``markupsafe.Markup`` for the templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2f6fb3", "#e07b39", "#3a9a5b", "#b23a48", "#7a5aa6", "#8c8c8c")


def _frame(width: int, height: int, title: str, body: list[str], *, fill: bool = False) -> Markup:
    """``fill``: as wide as its container (a time series); else its own size, shrunk to fit
    (a short list of bars in a narrow card keeps readable text)."""
    size = 'class="chart wide"' if fill else f'class="chart" width="{width}" height="{height}"'
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" {size} role="img" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    title: str,
    *,
    width: int = 640,
    height: int = 220,
    stacked: bool = False,
) -> Markup:
    """Vertical bars per label; several series side by side (or stacked), with a legend."""
    left, right, top, bottom = 36, 8, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(labels), 1)
    totals = [
        sum(values[i] for _, values in series) if stacked else max(v[i] for _, v in series)
        for i in range(len(labels))
    ]
    peak = max([*totals, 1.0])
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{peak:g}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    slot = plot_w / count
    bar_w = slot * 0.8 / (1 if stacked else max(len(series), 1))
    step = max(1, count // 10)
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        base: float = top + plot_h
        for j, (name, values) in enumerate(series):
            value = values[i]
            h = plot_h * value / peak
            x = x0 if stacked else x0 + j * bar_w
            y = base - h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(label)} · '
                f"{escape(name)}: {value:g}</title></rect>"
            )
            if stacked:
                base = y
        if i % step == 0:
            body.append(
                f'<text x="{x0 + slot * 0.4:.1f}" y="{height - bottom + 14}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    x = left
    for j, (name, _) in enumerate(series):
        body.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="15" font-size="11">{escape(name)}</text>'
        )
        x += 24 + text_width(name, 11)
    return _frame(width, height, title, body, fill=True)


def text_width(text: str, size: float) -> int:
    """About how wide ``text`` is drawn at font ``size``: a Chinese character is a full em,
    a Latin letter or digit about 0.6 of one (a legend must not run into the next)."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return round(size * (wide + 0.6 * (len(text) - wide)))


def hbars(items: Sequence[tuple[str, float]], title: str, *, width: int = 420) -> Markup:
    """Horizontal bars: one labelled row per item (top topics, languages, ratings)."""
    row, left = 22, 130
    height = max(len(items), 1) * row + 10
    peak = max([value for _, value in items] + [1.0])
    body = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = (width - left - 50) * value / peak
        body.append(
            f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="11">{value:g}</text>'
        )
    return _frame(width, height, title, body)
