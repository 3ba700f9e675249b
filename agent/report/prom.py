"""Gather the report's figures from Prometheus' HTTP API (`botwatch report --prometheus URL`).

The same data model as the journal gatherer (gather.py), so the renderers are shared. What the
figures mean is in docs/report.md; how each is read from Prometheus:

- runs, successes, failures, failures by reason and missed runs: `increase(...[window])`
  evaluated at the end of the window (counter resets are handled by increase), summed over the
  agents (instance, job) that report a bot and rounded to whole runs.
- team, platform, lifecycle and owner: the latest `botwatch_bot_info` in the window.
- incidents (MTTR, MTBF, open incidents): a range query of `botwatch_bot_state` over the window;
  each change of state between two steps counts as a state flip at the later step, and the
  flips are read as the journal gatherer reads the journal's. So the durations are only as exact
  as the step (plus one scrape interval), and an incident already open when the window begins
  is measured from the beginning of the window.
- UI drift warnings: the latest `botwatch_ui_drift_score` of each screen in the window.
- fragility: `bot:botwatch_fragility:score` (the recording rules) at the end of the window, or,
  when those rules are not loaded, the same formula over the raw metrics.
- governance: the checks `botwatch_bot_governance_findings` says a bot fails at the end.
- trends (trends.py): per period, the same increase() queries over the period (clipped to the
  window) evaluated at its end, six instant queries a period; incidents from the same state range
  query, cut at the periods' ends. A bot counts in a period's estate size from the first period
  in which it exported `botwatch_bot_info` or ran. Work items: increase() of
  `botwatch_bot_items_total{status="processed"}` plus that of
  `botwatch_queue_items_processed_total{status="successful"}`.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from ..state.journal import STATE_FLIP
from ..core.redact import redact_url
from . import trends
from .applications import applications_of_estate
from .gather import NONE, _group, _unregistered, bot_figures
from .model import REASONS, BotRow, DriftWarning, Figures, Report

MAX_POINTS = 10_000  # Prometheus refuses range queries of more than 11,000 points per series
# When agents disagree on a bot's state at one step, the first of these wins.
STATE_ORDER = ("failing", "down", "late", "up", "paused", "new")

# The fragility score of alerts/recording.rules.yml over the raw metrics (for a Prometheus
# without botwatch's recording rules): the same components and weights, over the last day.
FRAGILITY_RAW = """
clamp(
    (0.40 * (1 - clamp(1 - sum by (bot) (increase(botwatch_run_failures_total[1d]))
                         / (sum by (bot) (increase(botwatch_runs_total[1d])) > 0), 0, 1))
     or on(bot) 0 * group by (bot) (botwatch_runs_total))
  + on(bot) (0.20 * clamp(max by (bot) (botwatch_ui_drift_score), 0, 1)
                           or on(bot) 0 * group by (bot) (botwatch_runs_total))
  + on(bot) (0.15 * max by (bot) (clamp_max(
        sum by (bot, screen) (rate(botwatch_ui_healed_lookups_total[1d]))
        / (sum by (bot, screen) (rate(botwatch_ui_lookups_total[1d])) > 0), 1))
                           or on(bot) 0 * group by (bot) (botwatch_runs_total))
  + on(bot) (0.15 * clamp_max(max by (bot) (
        sum by (bot, instance, job) (avg_over_time(botwatch_bot_state{state=~"late|down"}[1d]))), 1)
                           or on(bot) 0 * group by (bot) (botwatch_runs_total))
  + on(bot) (0.10 * clamp_max(max by (bot) (
        stddev_over_time(botwatch_last_run_duration_seconds[1d])
        / (avg_over_time(botwatch_last_run_duration_seconds[1d]) > 0)), 1)
                           or on(bot) 0 * group by (bot) (botwatch_runs_total))
, 0, 1)
"""


class PrometheusError(Exception):
    """Prometheus could not be reached or answered an error; the message names the URL."""


@dataclass
class _Flip:
    at: float
    new_state: str
    kind: str = STATE_FLIP


class _Counts:
    """The run counters' increase() over a range `w` at time `at`, by bot."""

    def __init__(self, per_bot, w: str, at: float):
        self.runs = per_bot(f"sum by (bot) (increase(botwatch_runs_total[{w}]))", at=at)
        self.failures = per_bot(f"sum by (bot, reason) (increase(botwatch_run_failures_total[{w}]))", "reason", at=at)
        self.missed = per_bot(f"sum by (bot) (increase(botwatch_missed_runs_total[{w}]))", at=at)

    def fill(self, f: Figures, name: str) -> None:
        """Sets a bot's counts, rounded to whole runs."""
        f.missed_runs = round(self.missed.get(name, 0.0))
        f.runs = round(self.runs.get(name, 0.0))
        for reason in REASONS:
            f.failures_by_reason[reason] = 0
        for (bot, reason), n in self.failures.items():
            if bot == name:
                key = reason if reason in REASONS else "unknown"
                f.failures_by_reason[key] += round(n)
        f.failures = sum(f.failures_by_reason.values())
        # the metrics do not tell a run of outcome `unknown` from a success (see docs/report.md)
        f.successes = max(0, f.runs - f.failures)


def _trends(report: Report, per_bot, prom: "Client", flips_of: dict[str, list[_Flip]], step: float) -> None:
    """The figures per period: the counters' increase() over each period at its end, the
    incidents from the state flips already read."""
    report.trends = trends.periods(report.start, report.end, report.period, report.slo)
    existed: set[str] = set()  # bots seen in this period or an earlier one
    for p in report.trends:
        w = _duration(p.last - p.first)
        counts = _Counts(per_bot, w, p.last)
        items = per_bot(f'sum by (bot) (increase(botwatch_bot_items_total{{status="processed"}}[{w}]))', at=p.last)
        existed |= set(per_bot(f"max by (bot) (last_over_time(botwatch_bot_info[{w}]))", at=p.last))
        existed |= {b for b, n in counts.runs.items() if round(n)}
        queued = prom.query(f'sum(increase(botwatch_queue_items_processed_total{{status="successful"}}[{w}]))',
                            p.last)
        p.items_from_queues = round(float(queued[0]["value"][1])) if queued else 0
        # the state range query begins at the window's start: a flip there opens the first period
        first = p.first - step if p.first == report.start else p.first
        for row in report.bots:
            f = bot_figures((), flips_of.get(row.bot, ()), first, p.last, report.slo)
            counts.fill(f, row.bot)
            trends.add_bot(p, row, f, exists=row.bot in existed, items=round(items.get(row.bot, 0.0)))


class Client:
    """The few calls of Prometheus' HTTP API the report needs."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PrometheusError(f"Prometheus at {self.url} answered HTTP {exc.code} ({exc.reason})") from None
            raise PrometheusError(f"Prometheus at {self.url} answered an error: "
                                  f"{body.get('errorType', exc.code)}: {body.get('error', exc.reason)}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus at {self.url} cannot be reached: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus at {self.url} answered an error: {err}")
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict]:
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                "step": f"{step:g}"})["result"]


def step_for(window: float) -> float:
    """The range query step: whole seconds, at least 1, at most MAX_POINTS steps over the window."""
    return float(max(1, math.ceil(window / MAX_POINTS)))


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def gather_prometheus(url: str, since: float, until: float | None, slo: float = 0.95, *, loaded=None,
                      agent_url: str | None = None, step: float | None = None, period: str | None = None) -> Report:
    """The report over (until - since, until] from the Prometheus at `url`; `loaded`: an estate
    (a LoadedEstate) for drift thresholds and prototypes on schedules, or None; `step`: of the
    state range query, default step_for(since); `period`: of the trends, week | month (default
    trends.choose). Raises PrometheusError."""
    end = time.time() if until is None else until
    start = end - since
    step = step or step_for(since)
    prom = Client(url)
    w = _duration(since)
    report = Report(start=start, end=end, slo=slo, source=f"Prometheus {redact_url(prom.url)}",
                    period=trends.choose(since, period))
    configs = {b.name: b for b in loaded.estate.bots} if loaded is not None else {}

    def per_bot(expr: str, *extra: str, at: float = end) -> dict:
        out = {}
        for s in prom.query(expr, at):
            key = tuple(s["metric"].get(x, "") for x in ("bot", *extra))
            out[key if extra else key[0]] = float(s["value"][1])
        return out

    counts = _Counts(per_bot, w, end)
    info = {}
    for s in prom.query(f"max by (bot, team, bot_owner, platform, lifecycle) "
                        f"(last_over_time(botwatch_bot_info[{w}]))", end):
        info.setdefault(s["metric"].get("bot", ""), s["metric"])
    states: dict[str, dict[str, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for s in prom.query_range('max by (bot, state) (botwatch_bot_state)', start, end, step):
        for t, v in s["values"]:
            states[s["metric"].get("bot", "")][s["metric"].get("state", "")][float(t)] = float(v)

    names = sorted((set(counts.runs) | set(info) | set(states)) - {""})
    flips_of: dict[str, list[_Flip]] = {}
    for name in names:
        flips, current = [], None
        times = sorted({t for by_time in states.get(name, {}).values() for t in by_time})
        for t in times:
            now = next((st for st in STATE_ORDER if states[name].get(st, {}).get(t) == 1), None)
            if now is None or now == current:
                continue
            if current is not None or now == "failing":  # an incident open at the start opens there
                flips.append(_Flip(t, now))
            current = now
        flips_of[name] = flips
        f = bot_figures((), flips, start - step, end, slo)
        counts.fill(f, name)
        meta = info.get(name, {})
        report.bots.append(BotRow(
            bot=name, team=meta.get("team") or NONE, platform=meta.get("platform") or NONE,
            lifecycle=meta.get("lifecycle") or NONE, owner=meta.get("bot_owner") or None, figures=f))
    report.notes.append(f"incidents (MTTR, MTBF, open) from botwatch_bot_state at a {step:g}s step: "
                        "durations are exact to a step plus a scrape interval")
    if not info:
        report.notes.append("no botwatch_bot_info in Prometheus: teams, platforms and lifecycles unknown")
    _trends(report, per_bot, prom, flips_of, step)

    # fragility: the recording rule's score, else the same formula over the raw metrics
    frag = per_bot("max by (bot) (bot:botwatch_fragility:score)")
    if not frag:
        frag = per_bot(FRAGILITY_RAW)
        report.notes.append("no bot:botwatch_fragility:score (botwatch's recording rules not loaded): "
                            "fragility computed from the raw metrics with the same formula")
    for row in report.bots:
        if row.bot in frag:
            row.fragility = frag[row.bot]
    report.fragile = sorted(((b, s) for b, s in frag.items() if b in names), key=lambda t: (-t[1], t[0]))[:10]

    for s in prom.query(f"max by (bot, screen) (last_over_time(botwatch_ui_drift_score[{w}]))", end):
        bot, screen, score = s["metric"].get("bot", ""), s["metric"].get("screen", ""), float(s["value"][1])
        cfg = configs.get(bot)
        threshold = cfg.ui.drift_warning if cfg else 0.3
        if score >= threshold:
            report.drift_warnings.append(DriftWarning(bot, screen, "latest", score, end, threshold))
    report.drift_warnings.sort(key=lambda d: (d.bot, d.screen))

    gov = prom.query(f"max by (bot, check) (last_over_time(botwatch_bot_governance_findings[{w}]))", end)
    if gov:
        report.governance = {}
        for s in sorted(gov, key=lambda s: (s["metric"].get("bot", ""), s["metric"].get("check", ""))):
            if float(s["value"][1]) >= 1:
                report.governance.setdefault(s["metric"].get("bot", ""), []).append(
                    (s["metric"].get("check", ""), "failed (botwatch_bot_governance_findings)", ""))
        for row in report.bots:
            row.governance_failed = sorted({c for c, _, _ in report.governance.get(row.bot, [])})
    else:
        report.notes.append("no botwatch_bot_governance_findings in Prometheus: no governance findings")

    if agent_url:
        report.unregistered = _unregistered(agent_url, report)
    else:
        report.notes.append("unregistered bots omitted: give --agent URL to list the processes "
                            "a running agent has seen")
    for name, cfg in configs.items():
        if cfg.lifecycle == "prototype" and (cfg.schedule or cfg.every):
            report.prototypes_on_schedule.append((name, cfg.schedule or f"every {int(cfg.every)}s"))
    if loaded is not None:  # read from the bots' sources, as from the journal
        report.applications = applications_of_estate(loaded)
    _group(report)
    return report
