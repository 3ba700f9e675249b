"""The report as one self-contained HTML page: inline SVG charts, no scripts, print CSS."""

from __future__ import annotations

from html import escape as _html_escape

from ..core.safe_output import for_terminal
from .fmt import QUEUE_HEAD, iso, last_run_cells, pct, queue_cells
from .md import FIG_HEAD, _fig
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
