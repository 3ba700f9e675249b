"""The report as CSV: one row per bot, then one per group (team, platform, lifecycle) and the estate,
then the trends: one row per period, and per period one per platform and per lifecycle.

Columns (docs/report.md): `scope` (bot | team | platform | lifecycle | estate), `name`, `team`,
`platform`, `lifecycle` (of a bot; empty for groups), `bots`, `runs`, `successes`, `failures`,
`success_ratio`, `slo`, `error_budget_left`, one `failures_<reason>` per reason, `missed_runs`,
`recoveries`, `mttr_seconds`, `open_incidents`, `mtbf_seconds`, `fragility`,
`governance_failed` (failed checks, `;`-separated); then, filled on the trend rows only,
`period_start`, `period_end` (ISO 8601 UTC), `partial` (1 when the window cuts the period, else
0), `items_processed`, `items_from_runs`, `items_from_queues`. The trend rows' `scope` is
`period` (`name`: 2026-W23 or 2026-06; `bots`: the estate's size), `period_platform` or
`period_lifecycle` (`name` and `platform` or `lifecycle`: the group's). Ratios are fractions (0..1), durations
seconds; an empty cell has no value (no runs, no incident). Text cells that a spreadsheet would
read as a formula (a team named `=HYPERLINK(...)`) start with a single quote (botwatch.core.safe_output).
"""

from __future__ import annotations

import csv
import io

from ..core.safe_output import csv_cell
from .fmt import iso
from .model import REASONS, Figures, Report

COLUMNS = ("scope", "name", "team", "platform", "lifecycle", "bots", "runs", "successes", "failures",
           "success_ratio", "slo", "error_budget_left", *(f"failures_{r}" for r in REASONS), "missed_runs",
           "recoveries", "mttr_seconds", "open_incidents", "mtbf_seconds", "fragility", "governance_failed",
           # the trend rows' (appended, so that the columns before keep their places)
           "period_start", "period_end", "partial", "items_processed", "items_from_runs", "items_from_queues")


def _num(v: float | None, digits: int = 6) -> str:
    return "" if v is None else str(round(v, digits))


def _figures(f: Figures) -> list:
    return [f.runs, f.successes, f.failures, _num(f.success_ratio), f.slo, _num(f.error_budget_left),
            *(f.failures_by_reason.get(r, 0) for r in REASONS), f.missed_runs, f.recoveries,
            _num(f.mttr_seconds, 3), f.open_incidents, _num(f.mtbf_seconds, 3)]


def _iso(ts: float) -> str:
    return iso(ts).replace(" ", "T")


def render_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")

    def row(cells) -> None:  # every row has every column (the trend columns empty on the others)
        w.writerow([csv_cell(c) for c in cells] + [""] * (len(COLUMNS) - len(cells)))

    row(COLUMNS)
    for b in report.bots:
        row(["bot", b.bot, b.team, b.platform, b.lifecycle, 1, *_figures(b.figures),
             _num(b.fragility, 4), ";".join(b.governance_failed)])
    for g in report.groups:
        row([g.dimension, g.name, "", "", "", g.bots, *_figures(g.figures), "", ""])
    row(["estate", "estate", "", "", "", len(report.bots), *_figures(report.estate), "", ""])
    for p in report.trends:
        when = [_iso(p.start), _iso(p.end), int(p.partial)]
        queued = "" if p.items_from_queues is None else p.items_from_queues
        row(["period", p.label, "", "", "", p.bots, *_figures(p.figures), "", "", *when, p.items_processed,
             p.items_from_runs, queued])
        for dim in ("platform", "lifecycle"):
            for g in p.group(dim):
                names = [g.name if d == dim else "" for d in ("platform", "lifecycle")]
                row([f"period_{dim}", g.name, "", *names, g.bots, *_figures(g.figures), "", "", *when, "", "", ""])
    return out.getvalue()
