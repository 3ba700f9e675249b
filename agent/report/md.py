"""The report as Markdown (GitHub/GitLab/Confluence-style pipe tables), for wikis."""

from __future__ import annotations

from ..core.safe_output import for_terminal
from .fmt import (APPLICATION_HEAD, DUPLICATE_HEAD, QUEUE_HEAD, application_cells, dur, duplicate_cells, iso,
                  last_run_cells, pct, queue_cells)
from .model import REASONS, Figures, Period, Report


def _esc(v) -> str:
    # names and command lines come from processes and estate files: no control characters
    # reach a terminal (`--out -`) or a wiki
    return for_terminal(str(v).replace("\n", " ")).replace("|", "\\|")


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in rows]
    return out + [""]


def _fig(f: Figures) -> list:
    return [f.runs, pct(f.success_ratio), pct(f.error_budget_left), f.failures, f.missed_runs,
            dur(f.mttr_seconds), dur(f.mtbf_seconds), f.open_incidents]


FIG_HEAD = ["runs", "success ratio", "error budget left", "failures", "missed runs", "MTTR", "MTBF",
            "open incidents"]
TREND_HEAD = ["runs", "success ratio", "error budget left", "failures", "missed runs", "recoveries", "MTTR",
              "open incidents", "work items processed"]


def period_name(p: Period) -> str:
    return f"{p.label} (partial)" if p.partial else p.label


def trend_cells(p: Period) -> list:
    f = p.figures
    return [f.runs, pct(f.success_ratio), pct(f.error_budget_left), f.failures, f.missed_runs, f.recoveries,
            dur(f.mttr_seconds), f.open_incidents, p.items_processed]


def trend_intro(r: Report) -> str:
    """What the trend tables hold, in a sentence (Markdown and HTML)."""
    unit = "ISO week (Monday to Sunday)" if r.period == "week" else "calendar month"
    queues = ("(work-queue items are not in this source)" if any(p.items_from_queues is None for p in r.trends)
              else "plus the control-plane work-queue items that ended successfully in it")
    return (f"Per {unit}, UTC. A partial period is one the window cuts: its figures cover only the "
            f"window's part. Bots: those that existed by the period's end. Work items processed: the "
            f"items the runs that ended in the period reported processing, {queues}.")


def trend_tables(r: Report, table) -> list:
    """The trend tables, drawn by `table(head, rows)` (Markdown or HTML): each a (title, table)."""
    per = r.period
    out = [(f"Reliability per {per}", table(["period", "from", "to", *TREND_HEAD],
                                             [[period_name(p), iso(p.first), iso(p.last), *trend_cells(p)]
                                              for p in r.trends])),
           (f"Failures by reason per {per}", table(["period", *REASONS],
                                                    [[period_name(p), *(p.figures.failures_by_reason.get(k, 0)
                                                                         for k in REASONS)] for p in r.trends]))]
    for dim in ("platform", "lifecycle"):
        names = r.trend_names(dim)
        rows = []
        for p in r.trends:
            by = {g.name: g.bots for g in p.group(dim)}
            rows.append([period_name(p), p.bots, *(by.get(n, 0) for n in names)])
        out.append((f"Bots per {per} by {dim}", table(["period", "bots", *names], rows)))
    return out


def render_md(report: Report) -> str:
    r = report
    lines = ["# Estate reliability report", "",
             f"Window: {iso(r.start)} to {iso(r.end)}. SLO: {pct(r.slo)} successful runs. "
             f"Source: {for_terminal(r.source)}.", "",
             "## Estate", ""]
    lines += _table(["bots", *FIG_HEAD], [[len(r.bots), *_fig(r.estate)]])
    lines += ["## Trends", "", trend_intro(r), ""]
    for title, table in trend_tables(r, _table):
        lines += [f"### {title}", "", *table]
    for dim in ("team", "platform", "lifecycle"):
        lines += [f"## By {dim}", ""]
        lines += _table([dim, "bots", *FIG_HEAD], [[g.name, g.bots, *_fig(g.figures)] for g in r.group(dim)])
    lines += ["## Failures by reason", ""]
    lines += _table(["reason", "failures"], [[k, r.estate.failures_by_reason.get(k, 0)] for k in REASONS])
    lines += ["## Top 10 fragile bots", ""]
    lines += _table(["bot", "fragility score"], [[b, f"{s:.3f}"] for b, s in r.fragile]) if r.fragile \
        else ["No bots.", ""]
    lines += ["## UI drift warnings", ""]
    lines += _table(["bot", "screen", "kind", "score", "threshold", "at"],
                    [[d.bot, d.screen, d.kind, f"{d.score:.2f}", f"{d.threshold:.2f}", iso(d.time)]
                     for d in r.drift_warnings]) if r.drift_warnings else ["None in the window.", ""]
    lines += ["## Prototypes on production schedules", ""]
    lines += _table(["bot", "schedule"], [list(p) for p in r.prototypes_on_schedule]) \
        if r.prototypes_on_schedule else ["None.", ""]
    lines += ["## Unregistered bots", ""]
    if r.unregistered is None:
        lines += ["Not listed (see the notes).", ""]
    elif r.unregistered:
        lines += _table(["name", "platform", "pid", "user", "command"],
                        [[p.get("name") or p.get("runtime") or "?", p.get("platform") or "", p.get("pid") or "",
                          p.get("user") or "", p.get("cmdline") or ""] for p in r.unregistered])
    else:
        lines += ["None seen by the agent.", ""]
    lines += ["## Work queues", ""]
    if r.queues is None:
        lines += ["Not in this source (the agent's journal keeps them).", ""]
    elif r.queues:
        lines += _table(QUEUE_HEAD, [queue_cells(q) for q in r.queues])
    else:
        lines += ["No queue items ended in the window.", ""]
    lines += ["## Applications and their bots", ""]
    if r.applications is None:
        lines += ["Not read (no estate file).", ""]
    elif r.applications:
        lines += _table(APPLICATION_HEAD, [application_cells(a) for a in r.applications])
    else:
        lines += ["No bot's `source:` names an application or site.", ""]
    lines += ["## Duplicate candidates", ""]
    if r.duplicates is None:
        lines += ["Not read (no bot in the estate file has a `source:`).", ""]
    elif r.duplicates:
        lines += _table(DUPLICATE_HEAD, [duplicate_cells(d) for d in r.duplicates])
    else:
        lines += ["None found.", ""]
    lines += ["## Governance findings", ""]
    if r.governance is None:
        lines += ["Not checked (no estate file).", ""]
    elif r.governance:
        lines += _table(["bot", "check", "detail", "where"],
                        [[b, c, d, w] for b, fs in sorted(r.governance.items()) for c, d, w in fs])
    else:
        lines += ["Every check passes.", ""]
    lines += ["## Bots", ""]
    lines += _table(["bot", "team", "platform", "lifecycle", *FIG_HEAD, "fragility", "last run", "scheduled"],
                    [[b.bot, b.team, b.platform, b.lifecycle, *_fig(b.figures),
                      "n/a" if b.fragility is None else f"{b.fragility:.3f}", *last_run_cells(b)] for b in r.bots])
    if r.notes:
        lines += ["## Notes", ""] + [f"- {for_terminal(n)}" for n in r.notes] + [""]
    return "\n".join(lines)
