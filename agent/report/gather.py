"""Gather the report's figures from the agent's journal (read-only) and the estate file.

Definitions (also in docs/report.md). The window is (end - since, end]; a run counts when it
*ended* in the window, a flip when it happened in it.

- runs: finished runs; successes and failures by outcome (a run of outcome `unknown` counts
  as a run but in neither).
- success ratio: successes / (successes + failures). error budget left:
  1 - (1 - ratio) / (1 - SLO): 1 untouched, 0 spent, below 0 overspent.
- failures by reason: failed runs by their `reason` (none or an unknown one counts as `unknown`).
- missed runs: state flips into `down` (a scheduled run that did not come within its grace).
- incident: a spell of the `failing` state, from the state flip into `failing` to the first
  later state flip into `up` (the next good run), whatever states lay between.
- MTTR (mean time to recovery): the mean duration of the incidents that recovered in the
  window (measured from the flip that opened them, even if that was before the window).
  Incidents still open at the end are counted as open, not in the mean.
- MTBF (mean time between failures): the mean time from a recovery to the bot's next flip into
  `failing`, over the failures that began in the window and had an earlier recovery.
- groups (team, platform, lifecycle): sums of their bots' counts; ratios and means are of the
  pooled counts (every run or incident weighs the same), not means of the bots' figures.
- work queues: the items of each control-plane queue (Orchestrator) that ended on the UTC days
  the window touches (the journal keeps daily totals), successful and failed, failures by
  exception, retries and mean processing time.
- trends: the same figures per ISO week or calendar month (UTC) of the window (trends.py), each
  period (start, end] clipped to the window. A bot counts in a period's estate size when it
  existed by the period's end: its first trace in the journal (first seen, first run or first
  flip) is at or before it. Its team, platform and lifecycle are today's (the estate file's).
  Work items processed: the items the runs that ended in the period reported processing, plus
  the control-plane queue items that ended successfully on its UTC days.
- duplicate candidates: the pairs of `botwatch duplicates` (botwatch.deps.duplicates) among the
  estate's bots that have a `source:`, each with its score and its weightiest evidence.
- applications and their bots: per application (named by the bots' sources: an application, the
  application of a screen or selector) or site (a URL's host), the bots of the estate file whose
  `source:` depends on it, most depended-on first (botwatch.deps); read when the report is made.
- fragility: the score of botwatch.state.fragility (the last day up to the end of the window, as the
  recording rule computes it); top 10.
"""

from __future__ import annotations

import bisect
import contextlib
import fnmatch
import json
import sys
import time
import urllib.request
from collections import defaultdict

from ..state.journal import STATE_FLIP, Journal
from ..core.redact import redact_url
from . import trends
from .applications import applications_of_estate
from .model import REASONS, BotRow, DriftWarning, DuplicateRow, Figures, GroupRow, QueueRow, Report

NONE = "(none)"
DIMENSIONS = ("team", "platform", "lifecycle")


def bot_figures(runs, flips, start: float, end: float, slo: float) -> Figures:
    """One bot's figures from its runs (RunFinished-like) and its state flips (in order)."""
    f = Figures(slo=slo)
    for r in runs:
        if not start < r.ended <= end:
            continue
        f.runs += 1
        if r.outcome == "success":
            f.successes += 1
        elif r.outcome == "failure":
            f.failures += 1
            reason = r.reason if r.reason in REASONS else "unknown"
            f.failures_by_reason[reason] += 1
    opened: float | None = None  # the open incident's start
    recovered: float | None = None  # the latest recovery
    for fl in flips:
        if getattr(fl, "kind", STATE_FLIP) != STATE_FLIP or fl.at > end:
            continue
        inside = fl.at > start
        if fl.new_state == "down" and inside:
            f.missed_runs += 1
        if fl.new_state == "failing" and opened is None:
            opened = fl.at
            if inside and recovered is not None:
                f.uptimes += 1
                f.uptime_seconds += fl.at - recovered
        elif fl.new_state == "up" and opened is not None:
            if inside:
                f.recoveries += 1
                f.recovery_seconds += fl.at - opened
            opened, recovered = None, fl.at
    if opened is not None:
        f.open_incidents += 1
    return f


class _Progress:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def task(self, what: str, total: int):
        return self._bar.add_task(what, total=total) if self._bar else None

    def advance(self, task, n: int = 1) -> None:
        if self._bar is not None and task is not None:
            self._bar.advance(task, n)


def gather(journal_path, loaded=None, *, since: float, slo: float = 0.95, end: float | None = None,
           agent_url: str | None = None, progress: bool = True, period: str | None = None) -> Report:
    """The report over (end - since, end] from the journal at `journal_path`; `loaded`: the
    estate (a LoadedEstate) for teams, platforms, lifecycles and governance, or None; `period`:
    of the trends, week | month (default trends.choose)."""
    from ..state.fragility import estate_fragility

    end = time.time() if end is None else end
    start = end - since
    report = Report(start=start, end=end, slo=slo, source=f"journal {journal_path}",
                    period=trends.choose(since, period))
    configs = {b.name: b for b in loaded.estate.bots} if loaded is not None else {}
    if loaded is None:
        report.notes.append("no estate file: teams, platforms and lifecycles unknown, no governance findings")
    journal = Journal(journal_path, readonly=True)
    try:
        with _Progress(progress) as bar:
            reading = bar.task("reading the journal", 3)
            runs = defaultdict(list)
            for r in journal.iter_runs():
                runs[r.bot].append(r)
            bar.advance(reading)
            flips = defaultdict(list)
            for fl in journal.flips(None, limit=-1):  # every flip, oldest first
                flips[fl.bot].append(fl)
            bar.advance(reading)
            drift_rows = journal.ui_drift()
            bar.advance(reading)
            first_seen = journal.first_seen()
            names = sorted(set(configs) | set(runs) | set(flips) | set(first_seen))
            per_bot = bar.task("computing per bot", len(names))
            for name in names:
                cfg = configs.get(name)
                report.bots.append(BotRow(
                    bot=name,
                    team=(cfg.team if cfg and cfg.team else NONE),
                    platform=(cfg.platform if cfg else NONE),
                    lifecycle=(cfg.lifecycle if cfg and cfg.lifecycle else NONE),
                    owner=cfg.owner if cfg else None,
                    figures=bot_figures(runs.get(name, ()), flips.get(name, ()), start, end, slo)))
                bar.advance(per_bot)
            frag_task = bar.task("fragility", 1)
            frag = estate_fragility(journal, names, end)
            bar.advance(frag_task)
            for row in report.bots:
                if row.bot in frag:
                    row.fragility = frag[row.bot].score
            report.fragile = sorted(((b, s.score) for b, s in frag.items()), key=lambda t: (-t[1], t[0]))[:10]
            for d in drift_rows:
                cfg = configs.get(d["bot"])
                threshold = cfg.ui.drift_warning if cfg else 0.3
                if start < d["time"] <= end and d["score"] >= threshold:
                    report.drift_warnings.append(DriftWarning(d["bot"], d["screen"], d["kind"], d["score"],
                                                              d["time"], threshold))
            if not drift_rows:
                report.notes.append("no UI drift records in the journal")
            queue_days = _queue_days(journal, start, end)
            report.queues = _queues(queue_days, loaded)
            _trends(report, runs, flips, first_seen, queue_days)
            if loaded is not None:
                reading_sources = bar.task("reading the bots' sources", 1)
                report.applications = applications_of_estate(loaded)
                bar.advance(reading_sources)
                gov = bar.task("governance checks", 1)
                report.governance = _governance(loaded)
                for row in report.bots:
                    row.governance_failed = sorted({c for c, _, _ in report.governance.get(row.bot, [])})
                bar.advance(gov)
                report.duplicates = _duplicates(loaded)
            for row in report.bots:
                ended = [r.ended for r in runs.get(row.bot, ())]
                row.last_run = max(ended) if ended else None
                cfg = configs.get(row.bot)
                if cfg is not None:
                    row.scheduled = bool(cfg.schedule or cfg.every)
            if agent_url:
                _from_agent(agent_url, report, set(configs))
                report.unregistered = _unregistered(agent_url, report)
            else:
                report.notes.append("unregistered bots omitted: give --agent URL to list the processes "
                                    "a running agent has seen")
    finally:
        journal.close()
    for name, cfg in configs.items():
        if cfg.lifecycle == "prototype" and (cfg.schedule or cfg.every):
            report.prototypes_on_schedule.append((name, cfg.schedule or f"every {int(cfg.every)}s"))
    _group(report)
    return report


def _group(report: Report) -> None:
    for dim in DIMENSIONS:
        groups: dict[str, GroupRow] = {}
        for row in report.bots:
            key = getattr(row, dim)
            g = groups.setdefault(key, GroupRow(dim, key, 0, Figures(slo=report.slo)))
            g.bots += 1
            g.figures.add(row.figures)
        report.groups.extend(groups[k] for k in sorted(groups))
    report.estate = Figures(slo=report.slo)
    for row in report.bots:
        report.estate.add(row.figures)


def _trends(report: Report, runs, flips, first_seen: dict[str, float], queue_days) -> None:
    """The report's figures per period (trends.py), from the runs and flips already read."""
    report.trends = trends.periods(report.start, report.end, report.period, report.slo)
    for row in report.bots:
        bot_runs, bot_flips = runs.get(row.bot, []), flips.get(row.bot, [])
        traces = [t for t in (first_seen.get(row.bot), bot_runs[0].ended if bot_runs else None,
                              min((r.started for r in bot_runs if r.started is not None), default=None),
                              bot_flips[0].at if bot_flips else None) if t is not None]
        born = min(traces, default=None)
        ends = [r.ended for r in bot_runs]  # the journal gives them in the order they ended
        for p in report.trends:
            inside = bot_runs[bisect.bisect_right(ends, p.first):bisect.bisect_right(ends, p.last)]
            f = bot_figures(inside, bot_flips, p.first, p.last, report.slo)
            trends.add_bot(p, row, f, exists=born is not None and born <= p.last,
                           items=sum(r.items_processed or 0 for r in inside))
    if report.trends:
        for t in queue_days:
            if t.status == "successful":
                p = trends.period_of(report.trends, trends.day_start(t.day))
                p.items_from_queues = (p.items_from_queues or 0) + t.items


def _queue_days(journal: Journal, start: float, end: float) -> list:
    """The work queues' daily totals (ItemTotals) of the UTC days the window touches."""
    first, last = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (start, end))
    return [t for t in journal.queue_item_days(first) if t.day <= last]


def _queues(queue_days, loaded) -> list[QueueRow]:
    """The work queues' items that ended in the window, from the journal's daily totals (the
    days the window touches, UTC), with each queue's team from its connection's folder_teams."""
    teams = {c.name: c.folder_teams for c in loaded.estate.platforms.uipath} if loaded is not None else {}
    rows: dict[tuple[str, str, str, str], QueueRow] = {}
    for t in queue_days:
        platform, connection, folder, queue = t.queue
        row = rows.get(t.queue)
        if row is None:
            team = next((v for k, v in teams.get(connection, {}).items() if fnmatch.fnmatchcase(folder, k)), NONE)
            row = rows[t.queue] = QueueRow(platform, connection, folder, queue, team)
        if t.status == "successful":
            row.successful += t.items
        else:
            row.failed += t.items
            row.failed_by_exception[t.exception] = row.failed_by_exception.get(t.exception, 0) + t.items
        row.retries += t.retries
        row.seconds += t.seconds
    return [rows[k] for k in sorted(rows)]


def _governance(loaded) -> dict[str, list[tuple[str, str, str]]]:
    from ..governance import Governance

    out = {}
    for bot, findings in Governance(loaded).refresh().items():
        failed = [(f.check, f.detail, f.where) for f in findings if not f.ok]
        if failed:
            out[bot] = failed
    return out


def _duplicates(loaded) -> list[DuplicateRow] | None:
    """The duplicate candidates among the bots with a `source:`; None when no bot has one."""
    from ..deps.duplicates import estate_duplicates

    pairs, read = estate_duplicates(loaded)
    if not read:
        return None
    return [DuplicateRow(p.bot_a, p.bot_b, p.score, p.evidence()) for p in pairs]


def _from_agent(agent_url: str, report: Report, in_estate: set[str]) -> None:
    """What the running agent knows of the bots the estate file does not describe (registered
    from a control plane): their team, platform and owner, and whether a schedule starts them."""
    url = agent_url.rstrip("/") + "/api/v1/status"
    try:
        with contextlib.closing(urllib.request.urlopen(url, timeout=10)) as resp:
            status = {b.get("bot"): b for b in json.loads(resp.read()).get("bots") or [] if isinstance(b, dict)}
    except (OSError, ValueError, AttributeError) as exc:
        report.notes.append(f"bots registered from control planes without team and platform: {redact_url(url)} "
                            f"not reachable ({redact_url(exc)})")
        return
    for row in report.bots:
        s = status.get(row.bot)
        if s is None:
            continue
        row.scheduled = s.get("scheduled") if isinstance(s.get("scheduled"), bool) else row.scheduled
        if row.bot not in in_estate:
            row.team = s.get("team") or row.team
            row.platform = s.get("platform") or row.platform
            row.owner = s.get("owner") or row.owner


def _unregistered(agent_url: str, report: Report) -> list[dict] | None:
    url = agent_url.rstrip("/") + "/api/v1/unregistered"
    try:
        with contextlib.closing(urllib.request.urlopen(url, timeout=10)) as resp:
            answer = json.loads(resp.read())
        # the processes a control plane runs that no bot claims, in the same rows as the shadow bots
        return (answer.get("processes") or []) + [
            {"name": p.get("process"), "platform": p.get("platform"),
             "cmdline": f"{p.get('connection')}: folder {p.get('folder')}"} for p in answer.get("control_plane") or []]
    except (OSError, ValueError) as exc:
        report.notes.append(f"unregistered bots omitted: {redact_url(url)} not reachable ({redact_url(exc)})")
        return None
