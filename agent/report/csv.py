"""The report as CSV: one row per bot, then one per group (team, platform, lifecycle) and the estate.

Columns (docs/report.md): `scope` (bot | team | platform | lifecycle | estate), `name`, `team`,
`platform`, `lifecycle` (of a bot; empty for groups), `bots`, `runs`, `successes`, `failures`,
`success_ratio`, `slo`, `error_budget_left`, one `failures_<reason>` per reason, `missed_runs`,
`recoveries`, `mttr_seconds`, `open_incidents`, `mtbf_seconds`, `fragility`,
`governance_failed` (failed checks, `;`-separated). Ratios are fractions (0..1), durations
seconds; an empty cell has no value (no runs, no incident). Text cells that a spreadsheet would
read as a formula (a team named `=HYPERLINK(...)`) start with a single quote (botwatch.core.safe_output).
"""

from __future__ import annotations

import csv
import io

from ..core.safe_output import csv_cell
from .model import REASONS, Figures, Report

COLUMNS = ("scope", "name", "team", "platform", "lifecycle", "bots", "runs", "successes", "failures",
           "success_ratio", "slo", "error_budget_left", *(f"failures_{r}" for r in REASONS), "missed_runs",
           "recoveries", "mttr_seconds", "open_incidents", "mtbf_seconds", "fragility", "governance_failed")


def _num(v: float | None, digits: int = 6) -> str:
    return "" if v is None else str(round(v, digits))


def _figures(f: Figures) -> list:
    return [f.runs, f.successes, f.failures, _num(f.success_ratio), f.slo, _num(f.error_budget_left),
            *(f.failures_by_reason.get(r, 0) for r in REASONS), f.missed_runs, f.recoveries,
            _num(f.mttr_seconds, 3), f.open_incidents, _num(f.mtbf_seconds, 3)]


def render_csv(report: Report) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")

    def row(cells) -> None:
        w.writerow([csv_cell(c) for c in cells])

    row(COLUMNS)
    for b in report.bots:
        row(["bot", b.bot, b.team, b.platform, b.lifecycle, 1, *_figures(b.figures),
             _num(b.fragility, 4), ";".join(b.governance_failed)])
    for g in report.groups:
        row([g.dimension, g.name, "", "", "", g.bots, *_figures(g.figures), "", ""])
    row(["estate", "estate", "", "", "", len(report.bots), *_figures(report.estate), "", ""])
    return out.getvalue()
