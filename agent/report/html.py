"""The report as one self-contained HTML page: inline SVG charts, no scripts, print CSS."""

from __future__ import annotations

from html import escape as _html_escape

from ..core.safe_output import for_terminal
from .fmt import (APPLICATION_HEAD, DUPLICATE_HEAD, QUEUE_HEAD, application_cells, duplicate_cells, iso,
                  last_run_cells, pct, queue_cells)
from .md import FIG_HEAD, _fig, trend_intro, trend_tables
from .model import REASONS, Report

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.bad{color:#b00020;font-weight:600}.note{color:#555}
svg{max-width:100%;height:auto}svg text{font-size:11px;font-family:inherit}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{page-break-after:avoid}
 table,svg,figure{page-break-inside:avoid}th{background:#eee !important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def escape(value) -> str:
    """HTML-escaped, and without control characters (a process name's ESC sequences are not
    printed raw by `--out -`)."""
    return _html_escape(for_terminal(value))


def _table(head, rows) -> str:
    out = ["<table><thead><tr>", *(f"<th>{escape(str(h))}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(c if isinstance(c, _Raw) else f"<td>{escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class _Raw(str):
    """A cell already rendered (<td ...>...</td>)."""


def ratio_chart(groups, slo: float, title: str) -> str:
    """Horizontal bars of success ratio per group, with a dashed line at the SLO."""
    label_w, bar_w, row_h, top = 160, 420, 22, 24
    h = top + row_h * max(len(groups), 1) + 24
    x0 = label_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 70}" height="{h}" '
             f'viewBox="0 0 {label_w + bar_w + 70} {h}"><title>{escape(title)}</title>']
    for i, g in enumerate(groups):
        y = top + i * row_h
        ratio = g.figures.success_ratio
        w = 0 if ratio is None else ratio * bar_w
        colour = "#999" if ratio is None else ("#2e7d32" if ratio >= slo else "#c62828")
        parts.append(f'<text x="{x0 - 6}" y="{y + 14}" text-anchor="end">{escape(g.name)}</text>'
                     f'<rect x="{x0}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>'
                     f'<text x="{x0 + w + 4:.1f}" y="{y + 14}">{pct(ratio)}</text>')
    sx = x0 + slo * bar_w
    parts.append(f'<line x1="{sx:.1f}" y1="{top - 6}" x2="{sx:.1f}" y2="{h - 18}" stroke="#1565c0" '
                 f'stroke-width="2" stroke-dasharray="5,3"/>'
                 f'<text x="{sx:.1f}" y="{top - 10}" text-anchor="middle" fill="#1565c0">SLO {pct(slo)}</text>'
                 f'<line x1="{x0}" y1="{h - 18}" x2="{x0 + bar_w}" y2="{h - 18}" stroke="#666"/>'
                 f'<text x="{x0}" y="{h - 4}">0%</text><text x="{x0 + bar_w}" y="{h - 4}" text-anchor="end">100%</text>')
    parts.append("</svg>")
    return "".join(parts)


def reason_chart(by_reason: dict[str, int]) -> str:
    """Vertical bars of failed runs per reason."""
    w_bar, gap, height, top, bottom = 56, 14, 180, 20, 34
    most = max(by_reason.values(), default=0) or 1
    width = (w_bar + gap) * len(REASONS) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{top + height + bottom}" '
             f'viewBox="0 0 {width} {top + height + bottom}"><title>Failed runs by reason</title>']
    for i, reason in enumerate(REASONS):
        n = by_reason.get(reason, 0)
        bh = height * n / most
        x = gap + i * (w_bar + gap)
        y = top + height - bh
        parts.append(f'<rect x="{x}" y="{y:.1f}" width="{w_bar}" height="{bh:.1f}" fill="#ef6c00"/>'
                     f'<text x="{x + w_bar / 2}" y="{y - 4:.1f}" text-anchor="middle">{n}</text>'
                     f'<text x="{x + w_bar / 2}" y="{top + height + 16}" text-anchor="middle">{reason}</text>')
    parts.append(f'<line x1="0" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#666"/></svg>')
    return "".join(parts)


PALETTE = ("#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#9e9d24", "#5d4037", "#ad1457",
           "#546e7a")


def _x_labels(periods, x0: float, step: float, y: float) -> str:
    """The periods' labels under a chart, a partial one with an asterisk."""
    return "".join(f'<text x="{x0 + (i + 0.5) * step:.1f}" y="{y}" text-anchor="middle">'
                   f'{escape(p.label + ("*" if p.partial else ""))}</text>' for i, p in enumerate(periods))


def trend_ratio_chart(periods, slo: float, title: str) -> str:
    """The success ratio per period as a line against a dashed SLO line; the scale starts a little
    below the lowest value (ratios near the SLO would otherwise look flat)."""
    left, plot_h, top, bottom = 56, 200, 20, 34
    step = max(40.0, min(90.0, 720 / max(len(periods), 1)))
    width = left + step * len(periods) + 20
    ratios = [p.figures.success_ratio for p in periods]
    low = min([r for r in ratios if r is not None] + [slo])
    floor = max(0.0, int(low * 20) / 20 - 0.05)  # a 5% step below the lowest

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - floor) / (1 - floor))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" height="{top + plot_h + bottom}" '
             f'viewBox="0 0 {width:.0f} {top + plot_h + bottom}"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10:.1f}" y2="{top + plot_h}" stroke="#666"/>'
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{pct(floor)}</text>'
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">100%</text>']
    sy = y(slo)
    parts.append(f'<line x1="{left}" y1="{sy:.1f}" x2="{width - 10:.1f}" y2="{sy:.1f}" stroke="#1565c0" '
                 f'stroke-width="2" stroke-dasharray="5,3"/>'
                 f'<text x="{width - 10:.1f}" y="{sy - 4:.1f}" text-anchor="end" fill="#1565c0">SLO {pct(slo)}</text>')
    points = [(left + (i + 0.5) * step, y(r), r, p) for i, (r, p) in enumerate(zip(ratios, periods)) if r is not None]
    if len(points) > 1:
        parts.append('<polyline fill="none" stroke="#444" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{py:.1f}" for x, py, _, _ in points) + '"/>')
    for x, py, r, p in points:
        colour = "#2e7d32" if r >= slo else "#c62828"
        fill = "#fff" if p.partial else colour  # a partial period: a hollow point
        parts.append(f'<circle cx="{x:.1f}" cy="{py:.1f}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{x:.1f}" y="{py - 8:.1f}" text-anchor="middle">{pct(r)}</text>')
    parts.append(_x_labels(periods, left, step, top + plot_h + 16) + "</svg>")
    return "".join(parts)


def stacked_chart(periods, series: list[str], value, title: str) -> str:
    """Stacked bars per period, one colour per series (`value(period, name)` its height), with the
    total above each bar and a legend."""
    left, plot_h, top, bottom = 40, 180, 20, 34
    step = max(40.0, min(90.0, 720 / max(len(periods), 1)))
    width = left + step * len(periods) + 20
    totals = [sum(value(p, n) for n in series) for p in periods]
    most = max(totals, default=0) or 1
    legend_y = top + plot_h + bottom
    height = legend_y + 18 * ((len(series) + 3) // 4)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{max(width, 560):.0f}" height="{height}" '
             f'viewBox="0 0 {max(width, 560):.0f} {height}"><title>{escape(title)}</title>']
    for i, p in enumerate(periods):
        x, base = left + i * step + step * 0.15, top + plot_h
        for k, name in enumerate(series):
            n = value(p, name)
            if not n:
                continue
            h = plot_h * n / most
            base -= h
            parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(f"{p.label} {name}: {n}")}</title></rect>')
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{base - 4:.1f}" text-anchor="middle">{totals[i]}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10:.1f}" y2="{top + plot_h}" stroke="#666"/>')
    parts.append(_x_labels(periods, left, step, top + plot_h + 16))
    for k, name in enumerate(series):
        lx, ly = 10 + (k % 4) * 140, legend_y + 18 * (k // 4)
        parts.append(f'<rect x="{lx}" y="{ly - 10}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                     f'<text x="{lx + 14}" y="{ly}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _trends(r: Report) -> list[str]:
    per = r.period
    platforms = r.trend_names("platform")
    titles = (f"Success ratio per {per} against the SLO", f"Failed runs by reason per {per}",
              f"Bots by platform per {per}")
    charts = (trend_ratio_chart(r.trends, r.slo, titles[0]),
              stacked_chart(r.trends, list(REASONS), lambda p, n: p.figures.failures_by_reason.get(n, 0), titles[1]),
              stacked_chart(r.trends, platforms, lambda p, n: p.groups[("platform", n)].bots
                            if ("platform", n) in p.groups else 0, titles[2]))
    body = ["<h2>Trends</h2>", f"<p>{escape(trend_intro(r))} In the charts, * marks a partial period.</p>",
            *(f"<figure>{chart}<figcaption>{escape(title)}</figcaption></figure>"
              for title, chart in zip(titles, charts))]
    for title, table in trend_tables(r, _table):
        body += [f"<h3>{escape(title)}</h3>", table]
    return body


def _fig_cells(f) -> list:
    cells = _fig(f)
    budget = f.error_budget_left
    cls = ' class="bad"' if budget is not None and budget < 0 else ""
    cells[2] = _Raw(f"<td{cls}>{escape(str(cells[2]))}</td>")
    return cells


def render_html(report: Report) -> str:
    r = report
    body = ["<h1>Estate reliability report</h1>",
            f"<p>Window: {iso(r.start)} to {iso(r.end)}. SLO: {pct(r.slo)} successful runs. "
            f"Source: {escape(r.source)}.</p>",
            "<h2>Estate</h2>", _table(["bots", *FIG_HEAD], [[len(r.bots), *_fig_cells(r.estate)]]),
            *_trends(r),
            "<h2>Success ratio per team against the SLO</h2>",
            f"<figure>{ratio_chart(r.group('team'), r.slo, 'Success ratio per team')}</figure>",
            "<h2>Failures by reason</h2>",
            f"<figure>{reason_chart(r.estate.failures_by_reason)}</figure>",
            _table(["reason", "failures"], [[k, r.estate.failures_by_reason.get(k, 0)] for k in REASONS])]
    for dim in ("team", "platform", "lifecycle"):
        body += [f"<h2>By {dim}</h2>",
                 _table([dim, "bots", *FIG_HEAD], [[g.name, g.bots, *_fig_cells(g.figures)] for g in r.group(dim)])]
    body += ["<h2>Top 10 fragile bots</h2>",
             _table(["bot", "fragility score"], [[b, f"{s:.3f}"] for b, s in r.fragile]) if r.fragile
             else "<p>No bots.</p>",
             "<h2>UI drift warnings</h2>",
             _table(["bot", "screen", "kind", "score", "threshold", "at"],
                    [[d.bot, d.screen, d.kind, f"{d.score:.2f}", f"{d.threshold:.2f}", iso(d.time)]
                     for d in r.drift_warnings]) if r.drift_warnings else "<p>None in the window.</p>",
             "<h2>Prototypes on production schedules</h2>",
             _table(["bot", "schedule"], r.prototypes_on_schedule) if r.prototypes_on_schedule else "<p>None.</p>",
             "<h2>Unregistered bots</h2>"]
    if r.unregistered is None:
        body.append("<p class=note>Not listed (see the notes).</p>")
    elif r.unregistered:
        body.append(_table(["name", "platform", "pid", "user", "command"],
                           [[p.get("name") or p.get("runtime") or "?", p.get("platform") or "", p.get("pid") or "",
                             p.get("user") or "", p.get("cmdline") or ""] for p in r.unregistered]))
    else:
        body.append("<p>None seen by the agent.</p>")
    body.append("<h2>Work queues</h2>")
    if r.queues is None:
        body.append("<p class=note>Not in this source (the agent's journal keeps them).</p>")
    elif r.queues:
        body.append(_table(QUEUE_HEAD, [queue_cells(q) for q in r.queues]))
    else:
        body.append("<p>No queue items ended in the window.</p>")
    body.append("<h2>Applications and their bots</h2>")
    if r.applications is None:
        body.append("<p class=note>Not read (no estate file).</p>")
    elif r.applications:
        body.append(_table(APPLICATION_HEAD, [application_cells(a) for a in r.applications]))
    else:
        body.append("<p>No bot's <code>source:</code> names an application or site.</p>")
    body.append("<h2>Duplicate candidates</h2>")
    if r.duplicates is None:
        body.append("<p class=note>Not read (no bot in the estate file has a <code>source:</code>).</p>")
    elif r.duplicates:
        body.append(_table(DUPLICATE_HEAD, [duplicate_cells(d) for d in r.duplicates]))
    else:
        body.append("<p>None found.</p>")
    body.append("<h2>Governance findings</h2>")
    if r.governance is None:
        body.append("<p class=note>Not checked (no estate file).</p>")
    elif r.governance:
        body.append(_table(["bot", "check", "detail", "where"],
                           [[b, c, d, w] for b, fs in sorted(r.governance.items()) for c, d, w in fs]))
    else:
        body.append("<p>Every check passes.</p>")
    body += ["<h2>Bots</h2>",
             _table(["bot", "team", "platform", "lifecycle", *FIG_HEAD, "fragility", "last run", "scheduled"],
                    [[b.bot, b.team, b.platform, b.lifecycle, *_fig_cells(b.figures),
                      "n/a" if b.fragility is None else f"{b.fragility:.3f}", *last_run_cells(b)] for b in r.bots])]
    if r.notes:
        body += ["<h2>Notes</h2><ul>", *(f"<li>{escape(n)}</li>" for n in r.notes), "</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Estate reliability report {iso(r.end)[:10]}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
