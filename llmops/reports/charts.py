"""Small server-side SVG charts for the self-contained HTML report (no JS library, no network).

Every label that reaches the SVG is escaped: model names and case ids are user data.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 560, 300, 56, 44, 24, 16


def color(index: int) -> str:
    """Palette color for the i-th series."""
    return PALETTE[index % len(PALETTE)]


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi - lo < 1e-12:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) * (out_hi - out_lo) / (hi - lo)


def _axes(title: str, xlabel: str, ylabel: str, xticks: list[tuple[float, str]],
          yticks: list[tuple[float, str]]) -> list[str]:
    parts = [f'<text x="{W / 2}" y="14" text-anchor="middle" class="ct">{escape(title)}</text>',
             f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="ax"/>',
             f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="ax"/>',
             f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" text-anchor="middle" class="al">{escape(xlabel)}</text>',
             f'<text x="14" y="{(PAD_T + H - PAD_B) / 2}" text-anchor="middle" class="al" '
             f'transform="rotate(-90 14 {(PAD_T + H - PAD_B) / 2})">{escape(ylabel)}</text>']
    for x, text in xticks:
        parts.append(f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle" class="tk">{escape(text)}</text>')
    for y, text in yticks:
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" class="gr"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" class="tk">{escape(text)}</text>')
    return parts


def _svg(parts: list[str], label: str, height: float = H) -> str:
    return (f'<svg viewBox="0 0 {W} {height:.0f}" width="{W}" height="{height:.0f}" role="img" '
            f'aria-label="{escape(label)}" class="chart">' + "".join(parts) + "</svg>")


LEGEND_ROW = 16
_CHAR_W = 6.2  # generous average glyph width of the 11px legend font


def _fit(text: str, width: float) -> str:
    """Shorten ``text`` with an ellipsis so that it fits ``width`` pixels (the full text stays in a tooltip)."""
    limit = max(4, int(width / _CHAR_W))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def legend(entries: list[tuple[str, str]], top: float) -> tuple[list[str], float]:
    """A legend drawn inside the chart below the plot: (svg parts, height used).

    Entries are laid out in as many equal columns as the longest label allows (1 to 3), so
    labels never overlap each other or the plot; a label too long for its column is shortened,
    with the full text in its tooltip.
    """
    if not entries:
        return [], 0.0
    longest = max(len(f"{i + 1} {label}") for i, (label, _) in enumerate(entries)) * _CHAR_W + 24
    columns = max(1, min(3, int((W - 16) // max(longest, 1.0)), len(entries)))
    col_w = (W - 16) / columns
    parts: list[str] = []
    for i, (label, fill) in enumerate(entries):
        row, col = divmod(i, columns)
        x = 8 + col * col_w
        y = top + row * LEGEND_ROW
        parts.append(f'<g class="lgd"><title>{escape(label)}</title>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="10" height="10" fill="{fill}"/>'
                     f'<text x="{x + 14:.1f}" y="{y + 9:.1f}" class="pl">{escape(_fit(f"{i + 1} {label}", col_w - 20))}'
                     f"</text></g>")
    rows = math.ceil(len(entries) / columns)
    return parts, rows * LEGEND_ROW + 6


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi - lo < 1e-12:
        return [lo]
    step = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(step))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step), default=step)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(count + 2) if start + i * step <= hi + 1e-9]


def scatter(points: dict[str, tuple[float, float]], front: list[str], *, title: str, xlabel: str,
            ylabel: str, xfmt: str = "{:.3g}", yfmt: str = "{:.0%}") -> str:
    """Quality (y) vs cost or latency (x) per variant, with the Pareto front drawn as a line."""
    usable = {k: v for k, v in points.items() if math.isfinite(v[0]) and math.isfinite(v[1])}
    if not usable:
        return f'<p class="muted">{escape(title)}: no measured points.</p>'
    xs = [v[1] for v in usable.values()]
    x_lo, x_hi = min(0.0, min(xs)), max(xs) * 1.1 or 1.0
    y_lo, y_hi = 0.0, 1.0
    xt = [(_scale(t, x_lo, x_hi, PAD_L, W - PAD_R), xfmt.format(t)) for t in _nice_ticks(x_lo, x_hi)]
    yt = [(_scale(t, y_lo, y_hi, H - PAD_B, PAD_T), yfmt.format(t)) for t in (0, 0.25, 0.5, 0.75, 1.0)]
    parts = _axes(title, xlabel, ylabel, xt, yt)
    line = [(k, usable[k]) for k in front if k in usable]
    if len(line) > 1:
        pts = " ".join(f"{_scale(c, x_lo, x_hi, PAD_L, W - PAD_R):.1f},{_scale(q, y_lo, y_hi, H - PAD_B, PAD_T):.1f}"
                       for _, (q, c) in line)
        parts.append(f'<polyline points="{pts}" class="front"/>')
    # Points carry their legend number, not their label: names of 8 variants would collide
    # wherever points lie close; the legend inside the chart maps numbers to names.
    index = {label: i for i, label in enumerate(points)}
    for label, (quality, cost) in usable.items():
        i = index[label]
        x = _scale(cost, x_lo, x_hi, PAD_L, W - PAD_R)
        y = _scale(quality, y_lo, y_hi, H - PAD_B, PAD_T)
        ring = ' stroke="#111" stroke-width="2"' if label in front else ""
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{color(i)}"{ring}>'
                     f'<title>{escape(label)}: {escape(yfmt.format(quality))}, {escape(xfmt.format(cost))}'
                     f'</title></circle><text x="{x:.1f}" y="{y + 3.5:.1f}" text-anchor="middle" class="pn">'
                     f"{i + 1}</text>")
    items, height = legend([(label, color(i)) for label, i in index.items()], H + 4)
    return _svg(parts + items, title, H + 4 + height)


def bars(groups: dict[str, dict[str, float | None]], *, title: str, ylabel: str = "pass rate") -> str:
    """Grouped bars: one group per category (e.g. prompt version), one bar per series (e.g. model)."""
    series: list[str] = []
    for values in groups.values():
        for name in values:
            if name not in series:
                series.append(name)
    if not groups or not series:
        return f'<p class="muted">{escape(title)}: nothing to plot.</p>'
    yt = [(_scale(t, 0, 1, H - PAD_B, PAD_T), f"{t:.0%}") for t in (0, 0.25, 0.5, 0.75, 1.0)]
    group_w = (W - PAD_L - PAD_R) / len(groups)
    bar_w = max(4.0, (group_w * 0.8) / len(series))
    xt = [(PAD_L + group_w * (i + 0.5), _fit(name, group_w - 4)) for i, name in enumerate(groups)]
    parts = _axes(title, "", ylabel, xt, yt)
    for gi, values in enumerate(groups.values()):
        for si, name in enumerate(series):
            value = values.get(name)
            if value is None:
                continue
            x = PAD_L + group_w * gi + group_w * 0.1 + si * bar_w
            y = _scale(value, 0, 1, H - PAD_B, PAD_T)
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{H - PAD_B - y:.1f}" '
                         f'fill="{color(si)}"><title>{escape(name)}: {value:.0%}</title></rect>')
    items, height = legend([(name, color(i)) for i, name in enumerate(series)], H + 4)
    return _svg(parts + items, title, H + 4 + height)


def strips(distributions: dict[str, list[float]], *, title: str, ylabel: str) -> str:
    """Score distribution per variant: jittered points plus the mean as a bar."""
    if not any(distributions.values()):
        return f'<p class="muted">{escape(title)}: no measured scores.</p>'
    yt = [(_scale(t, 0, 1, H - PAD_B, PAD_T), f"{t:.2f}") for t in (0, 0.25, 0.5, 0.75, 1.0)]
    col_w = (W - PAD_L - PAD_R) / len(distributions)
    # Columns are numbered; the names go to the legend (long variant names would overlap as ticks).
    xt = [(PAD_L + col_w * (i + 0.5), str(i + 1)) for i in range(len(distributions))]
    parts = _axes(title, "", ylabel, xt, yt)
    for i, values in enumerate(distributions.values()):
        center = PAD_L + col_w * (i + 0.5)
        for j, v in enumerate(values):
            # Deterministic jitter (golden-ratio sequence) so identical scores stay visible.
            dx = ((j * 0.618034) % 1 - 0.5) * col_w * 0.5
            y = _scale(v, 0, 1, H - PAD_B, PAD_T)
            parts.append(f'<circle cx="{center + dx:.1f}" cy="{y:.1f}" r="3" fill="{color(i)}" opacity="0.6"/>')
        if values:
            mean = sum(values) / len(values)
            y = _scale(mean, 0, 1, H - PAD_B, PAD_T)
            parts.append(f'<line x1="{center - col_w * 0.3:.1f}" y1="{y:.1f}" x2="{center + col_w * 0.3:.1f}" '
                         f'y2="{y:.1f}" class="mean"><title>mean {mean:.2f}</title></line>')
    items, height = legend([(name, color(i)) for i, name in enumerate(distributions)], H + 4)
    return _svg(parts + items, title, H + 4 + height)
