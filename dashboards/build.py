"""Build the Grafana dashboards of botwatch from code; the JSON files beside this module are its output.

    python -m botwatch.dashboards.build            # rewrite dashboards/*.json
    python -m botwatch.dashboards.build --check    # exit 1 if a committed file differs from the code
    python -m botwatch.dashboards.build --out DIR  # write the files somewhere else

The dashboards are plain dicts built by the small helpers below (no Grafana SDK, so the output
only changes when this file does). Every query reads the metric catalogue of the agent or the
recording rules of alerts/; `iter_queries` lists them all, with the template variables filled
in, for tests that run them against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
TAG = "botwatch"
DS = {"type": "prometheus", "uid": "${datasource}"}
DEFAULT_SLO = "0.95"
SLO_CHOICES = ("0.9", "0.95", "0.98", "0.99", "0.995", "0.999")
DRIFT_THRESHOLD = 0.3  # a screen whose drift score is above this counts as drifting

# Values that Grafana fills in itself; iter_queries uses these for a one-hour window.
GRAFANA_GLOBALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}

# The one-hot botwatch_bot_state as one number per bot, ordered so that the worst state wins:
# (state, code, colour, text shown).
STATE_CODES = (
    ("up", 0, "green", "up"),
    ("new", 1, "blue", "new"),
    ("paused", 2, "purple", "paused"),
    ("late", 3, "orange", "late"),
    ("failing", 4, "red", "failing"),
    ("down", 5, "dark-red", "down"),
)

UIDS = {"estate": "botwatch-estate", "bot": "botwatch-bot", "drift": "botwatch-ui-drift", "coe": "botwatch-coe"}
BOT_DETAIL_LINK = "/d/botwatch-bot/botwatch-bot-detail?var-bot=${__field.labels.bot}&${datasource:queryparam}&${__url_time_range}"


# ---------------------------------------------------------------------------------------------
# Helpers: targets, panels, variables, layout
# ---------------------------------------------------------------------------------------------

def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False) -> dict:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def targets(*queries: tuple[str, str], instant: bool = False) -> list[dict]:
    """Several (expr, legend) pairs as targets A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + i), instant=instant) for i, (expr, legend) in enumerate(queries)]


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


OK_AT_ZERO = thresholds((None, "green"), (1, "red"))
WARN_AT_ONE = thresholds((None, "green"), (1, "orange"))
NEUTRAL = thresholds((None, "blue"))
RATIO = thresholds((None, "red"), (0.9, "orange"), (0.95, "green"))
DRIFT = thresholds((None, "green"), (DRIFT_THRESHOLD, "orange"), (0.6, "red"))


def state_mappings() -> list[dict]:
    return [{"type": "value", "options": {
        str(code): {"color": color, "index": i, "text": text} for i, (_, code, color, text) in enumerate(STATE_CODES)}}]


def bot_link(title: str = "Bot detail") -> list[dict]:
    return [{"targetBlank": False, "title": title, "url": BOT_DETAIL_LINK}]


def panel(kind: str, title: str, description: str, unit: str, tgts: list[dict], *,
          options: dict | None = None, custom: dict | None = None, defaults: dict | None = None,
          overrides: list | None = None, transformations: list | None = None) -> dict:
    field_defaults = {
        "color": {"mode": "palette-classic" if kind in ("timeseries", "piechart") else "thresholds"},
        "mappings": [],
        "thresholds": NEUTRAL,
        "unit": unit,
    }
    if custom is not None:
        field_defaults["custom"] = custom
    field_defaults.update(defaults or {})
    p = {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": tgts,
        "title": title,
        "type": kind,
    }
    if transformations:
        p["transformations"] = transformations
    return p


LEGEND = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
TOOLTIP = {"mode": "multi", "sort": "desc"}
REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def timeseries(title: str, description: str, unit: str, tgts: list[dict], *, bars: bool = False,
               stack: bool = False, min_zero: bool = True, threshold_lines: bool = False, **kw) -> dict:
    custom = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "pointSize": 4,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
    }
    defaults = kw.pop("defaults", {})
    if min_zero:
        defaults = {"min": 0, **defaults}
    return panel("timeseries", title, description, unit, tgts, custom=custom, defaults=defaults,
                 options={"legend": LEGEND, "tooltip": TOOLTIP}, **kw)


def stat(title: str, description: str, unit: str, expr: str, *, steps: dict = NEUTRAL, legend: str = "",
         color_mode: str = "value", text_mode: str = "auto", defaults: dict | None = None, **kw) -> dict:
    return panel("stat", title, description, unit, [target(expr, legend, instant=True)],
                 defaults={"thresholds": steps, **(defaults or {})},
                 options={"colorMode": color_mode, "graphMode": "none", "justifyMode": "auto",
                          "orientation": "auto", "reduceOptions": REDUCE_LAST, "textMode": text_mode,
                          "wideLayout": True}, **kw)


def bargauge(title: str, description: str, unit: str, expr: str, legend: str, *, steps: dict = NEUTRAL,
             minimum: float | None = 0, maximum: float | None = None, links: list | None = None) -> dict:
    defaults: dict = {"thresholds": steps}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if links:
        defaults["links"] = links
    return panel("bargauge", title, description, unit, [target(expr, legend, instant=True)], defaults=defaults,
                 options={"displayMode": "gradient", "minVizHeight": 16, "minVizWidth": 8,
                          "namePlacement": "left", "orientation": "horizontal", "reduceOptions": REDUCE_LAST,
                          "showUnfilled": True, "sizing": "auto", "valueMode": "color"})


def table(title: str, description: str, unit: str, expr: str, *, rename: dict[str, str],
          exclude: tuple[str, ...] = ("Time",), links: list | None = None) -> dict:
    defaults = {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}}
    if links:
        defaults["links"] = links
    return panel("table", title, description, unit, [target(expr, "", instant=True, table=True)], defaults=defaults,
                 options={"cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""},
                          "showHeader": True},
                 transformations=[{"id": "organize", "options": {
                     "excludeByName": {name: True for name in exclude}, "indexByName": {},
                     "renameByName": rename}}])


def state_timeline(title: str, description: str, expr: str) -> dict:
    return panel("state-timeline", title, description, "none", [target(expr, "{{bot}}")],
                 custom={"fillOpacity": 80, "lineWidth": 0},
                 defaults={"mappings": state_mappings(), "thresholds": NEUTRAL},
                 options={"alignValue": "left", "legend": {**LEGEND, "showLegend": False}, "mergeValues": True,
                          "rowHeight": 0.9, "showValue": "auto", "tooltip": {"mode": "single", "sort": "none"}})


def row(title: str) -> dict:
    return {"collapsed": False, "panels": [], "title": title, "type": "row"}


def datasource_var() -> dict:
    return {"current": {}, "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
            "name": "datasource", "options": [], "query": "prometheus", "refresh": 1, "regex": "",
            "skipUrlSync": False, "type": "datasource"}


def query_var(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True) -> dict:
    v = {"current": {}, "datasource": DS, "definition": query, "hide": 0, "includeAll": include_all,
         "label": label, "multi": multi, "name": name, "options": [],
         "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "regex": "", "skipUrlSync": False, "sort": 1, "type": "query"}
    if include_all:
        v["allValue"] = ".*"  # regex-safe: also matches bots whose team/lifecycle label is empty
    return v


def slo_var() -> dict:
    return {"current": {"selected": True, "text": DEFAULT_SLO, "value": DEFAULT_SLO},
            "description": "Target share of successful runs; the error budget is 1 - SLO.",
            "hide": 0, "includeAll": False, "label": "SLO", "multi": False, "name": "slo",
            "options": [{"selected": c == DEFAULT_SLO, "text": c, "value": c} for c in SLO_CHOICES],
            "query": ",".join(SLO_CHOICES), "skipUrlSync": False, "type": "custom"}


TEAM_VAR = query_var("team", "Team", "label_values(botwatch_bot_info, team)")


def bot_var(*, multi: bool = True) -> dict:
    return query_var("bot", "Bot", 'label_values(botwatch_bot_info{team=~"$team"}, bot)',
                     multi=multi, include_all=multi)


SCREEN_VAR = query_var("screen", "Screen", 'label_values(botwatch_ui_lookups_total{bot=~"$bot"}, screen)')


class Board:
    """A dashboard under construction: places panels on Grafana's 24-column grid, numbers them."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dict], *, refresh: str = "1m",
                 time_from: str = "now-24h"):
        self.uid, self.title, self.description = uid, title, description
        self.variables, self.refresh, self.time_from = variables, refresh, time_from
        self.panels: list[dict] = []
        self._x = self._y = self._row_h = 0

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self._put(row(title), 24, 1)
        self._newline()

    def add(self, p: dict, w: int, h: int = 8) -> None:
        if self._x + w > 24:
            self._newline()
        self._put(p, w, h)

    def _put(self, p: dict, w: int, h: int) -> None:
        p = {"id": len(self.panels) + 1, "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y}, **p}
        self.panels.append(p)
        self._x += w
        self._row_h = max(self._row_h, h)

    def to_json(self) -> dict:
        return {
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": True, "keepTime": True,
                       "tags": [TAG], "targetBlank": False, "title": "botwatch dashboards", "tooltip": "",
                       "type": "dashboards", "url": ""}],
            "liveNow": False,
            "panels": self.panels,
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": [TAG],
            "templating": {"list": self.variables},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


# ---------------------------------------------------------------------------------------------
# Query fragments
# ---------------------------------------------------------------------------------------------

ALL_BOTS = 'bot=~"$bot"'
IN_TEAM = 'and on (bot) botwatch_bot_info{team=~"$team"}'
# the work queues of the selected teams (a queue's team comes from its folder: folder_teams)
QUEUE_IN_TEAM = ('and on (platform, connection, folder, queue, instance, job) '
                 'botwatch_queue_info{team=~"$team"}')
COE_INFO = 'botwatch_bot_info{team=~"$team", lifecycle=~"$lifecycle"}'
# One series per bot with its team and lifecycle, whatever the number of scrape jobs: safe for group_left.
COE_BY_BOT = f"max by (bot, team, lifecycle) ({COE_INFO})"
JOIN_TL = f"on (bot) group_left (team, lifecycle) {COE_BY_BOT}"


def state_code(bot_matcher: str) -> str:
    """botwatch_bot_state as one number per bot (see STATE_CODES): the code of its active state."""
    terms = " or ".join(f'botwatch_bot_state{{state="{s}", {bot_matcher}}} * {code}' for s, code, _, _ in STATE_CODES)
    return f"max by (bot) ({terms})"


def count_state(state: str) -> str:
    return f'count(botwatch_bot_state{{state="{state}", bot=~"$bot"}} == 1 {IN_TEAM}) or vector(0)'


# ---------------------------------------------------------------------------------------------
# Estate overview (IT operations)
# ---------------------------------------------------------------------------------------------

def estate_overview() -> dict:
    b = Board(UIDS["estate"], "botwatch / Estate overview",
              "The whole bot estate at a glance for IT operations: which bots are failing, late, down or drifting, "
              "why runs fail, which bots are fragile, and whether the agents themselves report.",
              [datasource_var(), TEAM_VAR, bot_var()])
    b.row("Right now")
    b.add(stat("Bots failing", "Bots whose latest run failed (state failing). The traffic lights below show which.",
               "none", count_state("failing"), steps=OK_AT_ZERO), 4, 4)
    b.add(stat("Bots down", "Bots that missed a scheduled run by more than their grace period (state down).",
               "none", count_state("down"), steps=OK_AT_ZERO), 4, 4)
    b.add(stat("Bots late", "Bots whose scheduled run is overdue but still within the grace period (state late).",
               "none", count_state("late"), steps=WARN_AT_ONE), 4, 4)
    b.add(stat("Bots drifting",
               f"Bots with a screen whose UI drift score is above {DRIFT_THRESHOLD} (latest snapshot against its "
               "baseline), or with runs that failed for reason ui_drift in the last hour.", "none",
               f'count((max by (bot) (botwatch_ui_drift_score{{bot=~"$bot"}}) > {DRIFT_THRESHOLD} '
               f'or max by (bot) (bot_reason:botwatch_run_failures:rate1h{{reason="ui_drift", bot=~"$bot"}}) > 0) '
               f"{IN_TEAM}) or vector(0)", steps=WARN_AT_ONE), 4, 4)
    b.add(stat("Runs in progress", "Runs that have started and not yet ended, over the selected bots.", "none",
               f'sum(botwatch_run_in_progress{{bot=~"$bot"}} {IN_TEAM}) or vector(0)'), 4, 4)
    b.add(stat("Hung runs", "Bots with an active run older than the bot's max_runtime.", "none",
               f'count(botwatch_bot_hung{{bot=~"$bot"}} == 1 {IN_TEAM}) or vector(0)', steps=OK_AT_ZERO), 4, 4)
    b.add(stat("Bot traffic lights",
               "One tile per bot, coloured by its current state: green up, blue new (no run yet), purple paused, "
               "orange late, red failing, dark red down. Click a tile for the bot's detail dashboard.", "none",
               f"{state_code(ALL_BOTS)} {IN_TEAM}", legend="{{bot}}", color_mode="background",
               text_mode="value_and_name",
               defaults={"mappings": state_mappings(), "links": bot_link(), "displayName": "${__field.labels.bot}"}),
          24, 8)
    b.add(state_timeline("Bot state over time",
                         "Each bot's state along the selected time range, same colours as the traffic lights: "
                         "when did it start failing, how long was it down.",
                         f"{state_code(ALL_BOTS)} {IN_TEAM}"), 24, 10)

    b.row("Failures and fragility")
    b.add(timeseries("Failures per hour by reason",
                     "Failed runs per hour over a sliding one-hour window, by failure reason (recording rule "
                     "bot_reason:botwatch_run_failures:rate1h). ui_drift and credentials usually need IT; "
                     "business and data go to the bot's owner.", "short",
                     targets((f'sum by (reason) (bot_reason:botwatch_run_failures:rate1h{{bot=~"$bot"}} {IN_TEAM}) '
                              "* 3600", "{{reason}}")), stack=True), 12, 9)
    b.add(bargauge("Top 10 fragile bots",
                   "The ten bots with the highest fragility score (0 = robust, 1 = breaks all the time), from the "
                   "recording rule bot:botwatch_fragility:score of alerts/. Fix these before they break. Click a bar "
                   "for the bot's detail.", "percentunit",
                   f'topk(10, bot:botwatch_fragility:score{{bot=~"$bot"}} {IN_TEAM})', "{{bot}}",
                   steps=thresholds((None, "green"), (0.3, "orange"), (0.6, "red")), maximum=1, links=bot_link()),
          12, 9)
    b.add(timeseries("Items and empty runs",
                     "Work items the selected bots' runs reported (botwatch.items(), items of run_finished, "
                     "?items= on check-ins), processed and failed, and empty runs: successes that processed fewer "
                     "items than their bot's min_items (right axis; which bots: the bot detail dashboard), in each "
                     "$__rate_interval window.", "short",
                     targets((f'sum by (status) (increase(botwatch_bot_items_total{{bot=~"$bot"}}[$__rate_interval]) '
                              f"{IN_TEAM})", "items {{status}}"),
                             (f'sum(increase(botwatch_empty_runs_total{{bot=~"$bot"}}[$__rate_interval]) '
                              f"{IN_TEAM})", "empty runs")),
                     bars=True, overrides=[_color("items processed", "green"), _color("items failed", "red"),
                                           _right_axis("^empty runs", "orange")]), 24, 8)
    b.add(timeseries("Success ratio by team (1 h)",
                     "Share of runs that succeeded over a sliding hour, per team (recording rule "
                     "team:botwatch_run_success:ratio1h).", "percentunit",
                     targets(('team:botwatch_run_success:ratio1h{team=~"$team"}', "{{team}}")),
                     min_zero=False, defaults={"max": 1}), 24, 8)
    b.add(bargauge("Bots by platform",
                   "The selected bots per platform: UiPath, Power Automate, Blue Prism, Automation Anywhere and "
                   "Robocorp (from the estate file or registered from their control planes) and wrapped scripts.",
                   "none", f'count by (platform) (max by (bot, platform) (botwatch_bot_info{{{ALL_BOTS}, '
                   'team=~"$team"}))', "{{platform}}"), 24, 6)

    b.row("Agents and shadow bots")
    b.add(stat("Agents reporting", "botwatch agents whose metrics Prometheus scrapes right now.", "none",
               "count(botwatch_agent_build_info) or vector(0)"), 6, 4)
    b.add(stat("Agents gone silent",
               "Agents seen in the last day whose metrics are missing now: their bots are not watched. An agent "
               "that was upgraded counts once, whatever its version.", "none",
               "count(max without (version) (max_over_time(botwatch_agent_build_info[1d])) "
               "unless ignoring (version) botwatch_agent_build_info) or vector(0)", steps=OK_AT_ZERO), 6, 4)
    b.add(stat("Runs waiting in spools",
               "Finished runs recorded by wrappers that have not reached an agent yet.", "none",
               "sum(botwatch_agent_spool_pending_runs) or vector(0)", steps=WARN_AT_ONE), 6, 4)
    b.add(stat("Shadow bot processes",
               "Processes of known bot runtimes that belong to no registered bot: automations running without "
               "being in the estate file.", "none",
               "sum(botwatch_unregistered_bot_processes) or vector(0)", steps=WARN_AT_ONE), 6, 4)
    b.add(timeseries("Agent events per second by source",
                     "Events the agents receive (runs, check-ins, log lines, UI look-ups), by source.", "ops",
                     targets(("sum by (source) (rate(botwatch_agent_events_total[$__rate_interval]))",
                              "{{source}}"))), 8, 8)
    b.add(timeseries("Dropped events and parse errors",
                     "Events the agents dropped (limits, spool overflow) and inputs they could not parse, by source. "
                     "Anything above zero means runs may be missing from these dashboards.", "ops",
                     targets(("sum by (source) (rate(botwatch_agent_events_dropped_total[$__rate_interval]))",
                              "dropped {{source}}"),
                             ("sum by (source) (rate(botwatch_agent_parse_errors_total[$__rate_interval]))",
                              "parse errors {{source}}"))), 8, 8)
    b.add(timeseries("Shadow bot processes by platform",
                     "Unregistered processes of bot runtimes over time, by platform (UiPath, Power Automate, ...).",
                     "none", targets(("sum by (platform) (botwatch_unregistered_bot_processes)", "{{platform}}"))),
          8, 8)

    b.row("Work queues and robots")
    b.add(stat("Queue items waiting",
               "Items waiting in the work queues of the control planes the agents pull (Orchestrator queues), "
               "for the queues of the selected teams (a queue's team comes from its folder).", "none",
               f'sum(botwatch_queue_items{{status="new"}} {QUEUE_IN_TEAM}) or vector(0)'), 6, 4)
    b.add(stat("Queue items past SLA",
               "Open items past their due date or their queue's SLA (breached). Items only past their risk SLA "
               "are in the panel below.", "none",
               f'sum(botwatch_queue_items_past_sla{{sla="breached"}} {QUEUE_IN_TEAM}) or vector(0)',
               steps=OK_AT_ZERO), 6, 4)
    b.add(stat("Robot sessions disconnected",
               "Robot sessions Disconnected or Unresponsive, as the control planes report them: their machines "
               "take no jobs.", "none",
               'sum(botwatch_robot_sessions{state=~"disconnected|unresponsive"}) or vector(0)', steps=OK_AT_ZERO),
          6, 4)
    b.add(stat("Unattended capacity in use",
               "Unattended robot sessions running a job, out of those connected. Near 100 % for long, jobs queue "
               "up (Pending) and queues grow.", "percentunit",
               "sum(botwatch_robot_unattended_busy) / (sum(botwatch_robot_unattended_capacity) > 0)",
               steps=thresholds((None, "green"), (0.8, "orange"), (0.95, "red"))), 6, 4)
    b.add(timeseries("Queue backlog by queue",
                     "Items waiting in each work queue (folder / queue). A line that only climbs means the robots "
                     "do not keep up.", "none",
                     targets((f'sum by (folder, queue) (botwatch_queue_items{{status="new"}} {QUEUE_IN_TEAM})',
                              "{{folder}} / {{queue}}"))), 12, 8)
    b.add(bargauge("Oldest waiting item by queue",
                   "How long the oldest waiting item of each queue has waited: the ten longest.", "s",
                   f"topk(10, max by (folder, queue) (botwatch_queue_oldest_item_age_seconds {QUEUE_IN_TEAM}))",
                   "{{folder}} / {{queue}}", steps=thresholds((None, "green"), (3600, "orange"), (14400, "red"))),
          12, 8)
    b.add(timeseries("Queue items processed per hour",
                     "Items that ended per hour, successful and failed, and the failures by exception: business "
                     "exceptions go to the process owner, application exceptions (retried) to IT.", "short",
                     targets((f"sum by (status) (rate(botwatch_queue_items_processed_total[$__rate_interval]) "
                              f"{QUEUE_IN_TEAM}) * 3600", "{{status}}"),
                             (f"sum by (exception) (rate(botwatch_queue_item_failures_total[$__rate_interval]) "
                              f"{QUEUE_IN_TEAM}) * 3600", "failed: {{exception}}"))), 12, 8)
    b.add(timeseries("Items past SLA and at risk",
                     "Open items past their due date or SLA (breached) and past their risk SLA only (at risk), "
                     "over all selected queues.", "none",
                     targets((f"sum by (sla) (botwatch_queue_items_past_sla {QUEUE_IN_TEAM})", "{{sla}}"))), 12, 8)
    b.add(timeseries("Robot sessions by state",
                     "Robot sessions of all machines by state (available, busy, disconnected, unknown, "
                     "unresponsive), and the unattended capacity connected.", "none",
                     targets(("sum by (state) (botwatch_robot_sessions)", "{{state}}"),
                             ("sum(botwatch_robot_unattended_capacity)", "unattended capacity"))), 24, 8)
    return b.to_json()


# ---------------------------------------------------------------------------------------------
# Bot detail (for a bot's owner)
# ---------------------------------------------------------------------------------------------

def bot_detail() -> dict:
    B = 'bot=~"$bot"'
    S = 'bot=~"$bot", screen=~"$screen"'
    b = Board(UIDS["bot"], "botwatch / Bot detail",
              "One bot for its owner: its state, runs, durations, failure reasons, schedule, UI look-ups and drift "
              "per screen, and the resources of its processes.",
              [datasource_var(), TEAM_VAR, bot_var(multi=False), SCREEN_VAR])
    when = {"decimals": 0}
    b.row("Now")
    b.add(stat("State", "Current state of the bot: up, new (no run yet), paused, late, failing or down.", "none",
               state_code(B), color_mode="background", defaults={"mappings": state_mappings()}), 4, 4)
    b.add(table("Ownership", "Who owns the bot and what it is, from the estate file (botwatch_bot_info).", "none",
                f"max by (bot, team, bot_owner, platform, lifecycle, criticality) (botwatch_bot_info{{{B}}})",
                rename={"bot_owner": "owner"}, exclude=("Time", "Value")), 8, 4)
    b.add(stat("Last success", "When the latest successful run ended.", "dateTimeFromNow",
               f"max(botwatch_last_success_timestamp_seconds{{{B}}}) * 1000", defaults=when), 4, 4)
    b.add(stat("Consecutive failures", "Failed runs in a row, up to the latest run.", "none",
               f"max(botwatch_consecutive_failures{{{B}}})", steps=OK_AT_ZERO), 4, 4)
    b.add(stat("Next run due", "When the schedule expects the next run (cron or interval from the estate file).",
               "dateTimeFromNow", f"max(botwatch_schedule_next_expected_timestamp_seconds{{{B}}}) * 1000",
               defaults=when), 4, 4)
    b.add(stat("Last failure", "When the latest failed run ended.", "dateTimeFromNow",
               f"max(botwatch_last_failure_timestamp_seconds{{{B}}}) * 1000", defaults=when), 4, 4)
    b.add(stat("Latest run duration", "How long the latest finished run took.", "s",
               f"max(botwatch_last_run_duration_seconds{{{B}}})"), 4, 4)
    b.add(stat("Runs in progress", "Runs of this bot that have started and not yet ended.", "none",
               f"sum(botwatch_run_in_progress{{{B}}})"), 4, 4)
    b.add(stat("Current run age", "How long the oldest active run has been going; empty when the bot is not running.",
               "s", f"max(time() - (botwatch_run_started_timestamp_seconds{{{B}}} > 0))",
               defaults={"noValue": "not running"}), 4, 4)
    b.add(stat("Hung", "Yes while an active run is older than the bot's max_runtime.", "bool_yes_no",
               f"max(botwatch_bot_hung{{{B}}})", steps=OK_AT_ZERO), 4, 4)
    b.add(stat("Success ratio (1 d)", "Share of successful runs over the last day (recording rule "
               "bot:botwatch_run_success:ratio1d).", "percentunit",
               f"bot:botwatch_run_success:ratio1d{{{B}}}", steps=RATIO), 4, 4)
    b.add(stat("Runs stuck waiting to start",
               "Runs its platform has queued and no robot has started for longer than the connection's "
               "stuck_pending_after (Orchestrator jobs Pending); 0 for a bot no control plane runs.", "none",
               f"max(botwatch_bot_stuck_runs{{{B}}}) or vector(0)", steps=OK_AT_ZERO), 4, 4)

    b.row("Runs")
    b.add(timeseries("Finished and failed runs",
                     "Runs that ended, and those of them that failed, in each $__rate_interval window.", "short",
                     targets((f"sum(increase(botwatch_runs_total{{{B}}}[$__rate_interval]))", "finished"),
                             (f"sum(increase(botwatch_run_failures_total{{{B}}}[$__rate_interval]))", "failed")),
                     bars=True, overrides=[_color("failed", "red"), _color("finished", "green")]), 12, 8)
    b.add(timeseries("Success ratio",
                     "Share of successful runs over a sliding hour, six hours and day (recording rules "
                     "bot:botwatch_run_success:ratio1h, ratio6h, ratio1d).", "percentunit",
                     targets((f"bot:botwatch_run_success:ratio1h{{{B}}}", "1 h"),
                             (f"bot:botwatch_run_success:ratio6h{{{B}}}", "6 h"),
                             (f"bot:botwatch_run_success:ratio1d{{{B}}}", "1 d")),
                     min_zero=False, defaults={"max": 1}), 12, 8)
    q = "sum by (le) (rate(botwatch_run_duration_seconds_bucket{%s}[$__rate_interval]))" % B
    b.add(timeseries("Run duration quantiles",
                     "Median, 90th and 99th percentile of run durations from the histogram "
                     "botwatch_run_duration_seconds (buckets 1 s to 4 h), over the runs that ended in each "
                     "$__rate_interval window (gaps where none ended), and the latest run's duration.", "s",
                     targets((f"histogram_quantile(0.5, {q})", "p50"), (f"histogram_quantile(0.9, {q})", "p90"),
                             (f"histogram_quantile(0.99, {q})", "p99"),
                             (f"max(botwatch_last_run_duration_seconds{{{B}}})", "latest run"))), 12, 8)
    b.add(timeseries("Failures by reason",
                     "Failed runs in each $__rate_interval window by reason: ui_drift, credentials, business, data, "
                     "timeout, crash, killed, unknown.", "short",
                     targets((f"sum by (reason) (increase(botwatch_run_failures_total{{{B}}}[$__rate_interval]))",
                              "{{reason}}")), bars=True, stack=True), 12, 8)
    b.add(timeseries("Items and empty runs",
                     "Work items the bot's runs reported, processed and failed, and its empty runs: successes that "
                     "processed fewer items than its min_items (estate file; right axis), in each "
                     "$__rate_interval window.", "short",
                     targets((f"sum by (status) (increase(botwatch_bot_items_total{{{B}}}[$__rate_interval]))",
                              "items {{status}}"),
                             (f"sum(increase(botwatch_empty_runs_total{{{B}}}[$__rate_interval]))", "empty runs")),
                     bars=True, overrides=[_color("items processed", "green"), _color("items failed", "red"),
                                           _right_axis("^empty runs", "orange")]), 24, 8)

    b.row("Schedule")
    b.add(timeseries("Schedule lateness",
                     "How far past its due time the expected run is (0 while on time), against the grace period "
                     "after which the bot counts as down.", "s",
                     targets((f"clamp_min(time() - max(botwatch_schedule_next_expected_timestamp_seconds{{{B}}}), 0)",
                              "lateness"),
                             (f"max(botwatch_schedule_grace_seconds{{{B}}})", "grace")),
                     overrides=[_dashed("grace")]), 8, 8)
    b.add(timeseries("Missed runs", "Scheduled runs that did not happen (each time the bot went down), per "
                     "$__rate_interval window.", "short",
                     targets((f"sum(increase(botwatch_missed_runs_total{{{B}}}[$__rate_interval]))", "missed")),
                     bars=True), 8, 8)
    b.add(state_timeline("State over time", "The bot's state along the selected time range.", state_code(B)), 8, 8)

    b.row("UI look-ups and drift")
    b.add(timeseries("UI look-ups per screen", "Element look-ups per second, by screen.", "ops",
                     targets((f"sum by (screen) (rate(botwatch_ui_lookups_total{{{S}}}[$__rate_interval]))",
                              "{{screen}}"))), 8, 8)
    b.add(timeseries("UI look-up failures per screen and kind",
                     "Failed look-ups per second by screen and kind: not_found (selector broken), ambiguous (several "
                     "matches), wrong_app (target application missing).", "ops",
                     targets(("sum by (screen, kind) "
                              f"(rate(botwatch_ui_lookup_failures_total{{{S}}}[$__rate_interval]))",
                              "{{screen}} {{kind}}"))), 8, 8)
    b.add(timeseries("Healed look-ups per screen",
                     "Look-ups per second whose primary selector missed and a fallback matched: the screen changed "
                     "and the bot got away with it this time.", "ops",
                     targets((f"sum by (screen) (rate(botwatch_ui_healed_lookups_total{{{S}}}[$__rate_interval]))",
                              "{{screen}}"))), 8, 8)
    b.add(timeseries("UI drift score per screen",
                     f"Latest snapshot of each screen against its baseline: 0 = unchanged, 1 = unrecognisable. Above "
                     f"{DRIFT_THRESHOLD} the screen counts as drifting.", "percentunit",
                     targets((f"max by (screen) (botwatch_ui_drift_score{{{S}}})", "{{screen}}")),
                     defaults={"max": 1, "thresholds": DRIFT}, threshold_lines=True), 8, 8)
    b.add(timeseries("UI wait p90 per screen",
                     "90th percentile of the time spent waiting for elements to appear, by screen "
                     "(histogram botwatch_ui_lookup_wait_seconds).", "s",
                     targets(("histogram_quantile(0.9, sum by (screen, le) "
                              f"(rate(botwatch_ui_lookup_wait_seconds_bucket{{{S}}}[$__rate_interval])))",
                              "{{screen}}"))), 8, 8)
    b.add(timeseries("Look-ups over the screen limit",
                     "Look-ups per second counted under screen \"other\" because the bot reports more distinct "
                     "screens than the agent keeps apart.", "ops",
                     targets((f"sum(rate(botwatch_ui_screens_overflow_total{{{B}}}[$__rate_interval]))",
                              "over the limit"))), 8, 8)

    b.row("Resources")
    b.add(timeseries("CPU", "CPU used by the bot's whole process tree, in cores (100 % = one core).", "percentunit",
                     targets((f"sum(rate(botwatch_bot_cpu_seconds_total{{{B}}}[$__rate_interval]))", "cpu"))), 8, 8)
    b.add(timeseries("Resident memory", "Resident memory of the bot's running process trees.", "bytes",
                     targets((f"sum(botwatch_bot_resident_memory_bytes{{{B}}})", "resident"))), 8, 8)
    b.add(timeseries("Processes", "Processes in the bot's running process trees.", "none",
                     targets((f"sum(botwatch_bot_processes{{{B}}})", "processes"))), 8, 8)
    return b.to_json()


def _color(series: str, color: str) -> dict:
    return {"matcher": {"id": "byName", "options": series},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}]}


def _right_axis(pattern: str, color: str) -> dict:
    """Series matching `pattern` on a right axis of their own (a count of runs beside a count of items)."""
    return {"matcher": {"id": "byRegexp", "options": pattern},
            "properties": [{"id": "custom.axisPlacement", "value": "right"},
                           {"id": "custom.drawStyle", "value": "points"}, {"id": "custom.pointSize", "value": 8},
                           {"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}]}


def _dashed(series: str) -> dict:
    return {"matcher": {"id": "byName", "options": series},
            "properties": [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                           {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}]}


# ---------------------------------------------------------------------------------------------
# UI drift
# ---------------------------------------------------------------------------------------------

def ui_drift() -> dict:
    S = 'bot=~"$bot", screen=~"$screen"'
    b = Board(UIDS["drift"], "botwatch / UI drift",
              "Which screens of which bots have changed under them: drift scores against the baselines, selector "
              "failures and healed look-ups, and how old the baselines are.",
              [datasource_var(), TEAM_VAR, bot_var(), SCREEN_VAR])
    drift = f"max by (bot, screen) (botwatch_ui_drift_score{{{S}}} {IN_TEAM})"
    b.row("Drift")
    b.add(stat("Screens drifting", f"Screens whose latest drift score is above {DRIFT_THRESHOLD}.", "none",
               f"count({drift} > {DRIFT_THRESHOLD}) or vector(0)", steps=WARN_AT_ONE), 6, 4)
    b.add(stat("Bots with UI-drift failures (1 h)",
               "Bots with at least one run that failed for reason ui_drift in the last hour.", "none",
               'count(max by (bot) (bot_reason:botwatch_run_failures:rate1h{reason="ui_drift", bot=~"$bot"}) > 0 '
               f"{IN_TEAM}) or vector(0)", steps=OK_AT_ZERO), 6, 4)
    b.add(stat("Healed share of look-ups",
               "Share of look-ups in the last $__rate_interval that only succeeded through a fallback selector: "
               "an early warning of drift.", "percentunit",
               f"sum(rate(botwatch_ui_healed_lookups_total{{{S}}}[$__rate_interval]) {IN_TEAM}) "
               f"/ sum(rate(botwatch_ui_lookups_total{{{S}}}[$__rate_interval]) {IN_TEAM})",
               steps=thresholds((None, "green"), (0.05, "orange"), (0.2, "red"))), 6, 4)
    b.add(stat("Oldest baseline", "Age of the oldest screen baseline among the selected bots and screens.", "s",
               f"max(time() - botwatch_ui_baseline_timestamp_seconds{{{S}}} {IN_TEAM})"), 6, 4)
    b.add(panel("heatmap", "Drift heatmap by bot and screen",
                "One row per bot and screen, one cell per time step, coloured by the drift score of the latest "
                "snapshot against the baseline (0 = unchanged, 1 = unrecognisable). Rows that turn dark changed.",
                "percentunit", [target(drift, "{{bot}} / {{screen}}")],
                custom={"hideFrom": {"legend": False, "tooltip": False, "viz": False},
                        "scaleDistribution": {"type": "linear"}},
                options={"calculate": False, "cellGap": 1, "cellValues": {"unit": "percentunit"},
                         "color": {"exponent": 0.5, "fill": "dark-orange", "max": 1, "min": 0, "mode": "scheme",
                                   "reverse": False, "scale": "exponential", "scheme": "Oranges", "steps": 64},
                         "exemplars": {"color": "rgba(255,0,255,0.7)"}, "filterValues": {"le": 1e-9},
                         "legend": {"show": True}, "rowsFrame": {"layout": "auto"}, "showValue": "never",
                         "tooltip": {"mode": "single", "showColorScale": True, "yHistogram": False},
                         "yAxis": {"axisPlacement": "left", "reverse": False, "unit": "none"}}), 24, 10)
    b.add(bargauge("Highest drift now", "The 15 bot/screen pairs with the highest drift score now. Click a bar for "
                   "the bot's detail.", "percentunit", f"topk(15, {drift})", "{{bot}} / {{screen}}",
                   steps=DRIFT, maximum=1, links=bot_link()), 12, 9)
    b.add(bargauge("Baseline age by bot and screen",
                   "How long ago each screen's baseline was taken, oldest first. An old baseline on a changing "
                   "application means drift scores compare against a screen nobody uses any more.", "s",
                   f"sort_desc(max by (bot, screen) (time() - botwatch_ui_baseline_timestamp_seconds{{{S}}} "
                   f"{IN_TEAM}))", "{{bot}} / {{screen}}",
                   steps=thresholds((None, "green"), (30 * 86400, "orange"), (90 * 86400, "red"))), 12, 9)

    b.row("Selectors")
    b.add(timeseries("Selector failures by bot and screen", "Failed UI look-ups per second, by bot and screen.", "ops",
                     targets(("sum by (bot, screen) "
                              f"(rate(botwatch_ui_lookup_failures_total{{{S}}}[$__rate_interval]) {IN_TEAM})",
                              "{{bot}} / {{screen}}"))), 12, 8)
    b.add(timeseries("Selector failures by kind",
                     "Failed UI look-ups per second by kind: not_found, ambiguous, wrong_app.", "ops",
                     targets(("sum by (kind) "
                              f"(rate(botwatch_ui_lookup_failures_total{{{S}}}[$__rate_interval]) {IN_TEAM})",
                              "{{kind}}")), stack=True), 12, 8)
    b.add(timeseries("Look-up failure ratio by bot and screen",
                     "Share of look-ups that failed, by bot and screen (empty where there were no look-ups).",
                     "percentunit",
                     targets(("sum by (bot, screen) "
                              f"(rate(botwatch_ui_lookup_failures_total{{{S}}}[$__rate_interval]) {IN_TEAM}) "
                              "/ (sum by (bot, screen) "
                              f"(rate(botwatch_ui_lookups_total{{{S}}}[$__rate_interval]) {IN_TEAM}) > 0)",
                              "{{bot}} / {{screen}}")), defaults={"max": 1}), 12, 8)
    b.add(timeseries("Healed look-ups by bot and screen",
                     "Look-ups per second that succeeded only through a fallback selector, by bot and screen.", "ops",
                     targets(("sum by (bot, screen) "
                              f"(rate(botwatch_ui_healed_lookups_total{{{S}}}[$__rate_interval]) {IN_TEAM})",
                              "{{bot}} / {{screen}}"))), 12, 8)
    b.add(timeseries("UI wait p90 by bot and screen",
                     "90th percentile of the time spent waiting for elements, by bot and screen: slow screens often "
                     "drift next.", "s",
                     targets(("histogram_quantile(0.9, sum by (bot, screen, le) "
                              f"(rate(botwatch_ui_lookup_wait_seconds_bucket{{{S}}}[$__rate_interval]) {IN_TEAM}))",
                              "{{bot}} / {{screen}}"))), 8, 8)
    b.add(timeseries("UI-drift run failures per hour",
                     "Runs per hour that failed for reason ui_drift, by bot, over a sliding hour (recording rule "
                     "bot_reason:botwatch_run_failures:rate1h).", "short",
                     targets(('sum by (bot) (bot_reason:botwatch_run_failures:rate1h{reason="ui_drift", bot=~"$bot"} '
                              f"{IN_TEAM}) * 3600", "{{bot}}"))), 8, 8)
    b.add(timeseries("Look-ups over the screen limit",
                     "Look-ups per second counted under screen \"other\" because the bot reports more screens than "
                     "the agent keeps apart: raise the limit or name screens less finely.", "ops",
                     targets(('sum by (bot) (rate(botwatch_ui_screens_overflow_total{bot=~"$bot"}[$__rate_interval]) '
                              f"{IN_TEAM})", "{{bot}}"))), 8, 8)
    return b.to_json()


# ---------------------------------------------------------------------------------------------
# CoE reliability (per team and lifecycle)
# ---------------------------------------------------------------------------------------------

MTTR_DESCRIPTION = (
    "Approximate mean time to recovery per team and lifecycle over the selected time range: the time bots spent "
    "in state failing (the share of their samples in that state times how long they were watched in the range), "
    "divided by the number of recoveries "
    "(failing to any other state, counted with resets() on the one-hot state series). Failure episodes still "
    "open at the end of the range add time but no recovery, and episodes that began before the range count only "
    "partly, so short ranges are rough. Outages where a bot did not run at all (state down) are in Missed runs. "
    "Empty where no bot recovered in the range."
)


# Seconds each bot spent failing in the range: the share of its samples in state failing, times the time
# the series existed in the range (minutes in which a sample was found, so young bots are not overrated).
FAILING = 'botwatch_bot_state{state="failing"}'
FAILING_SECONDS = f"(avg_over_time({FAILING}[$__range]) * count_over_time({FAILING}[$__range:1m]) * 60)"


def coe_reliability() -> dict:
    b = Board(UIDS["coe"], "botwatch / CoE reliability",
              "Reliability and governance of the estate for the automation Center of Excellence, per team and "
              "lifecycle: success against the SLO, error budget, time to recovery, missed runs, prototypes on "
              "production schedules and estate size.",
              [datasource_var(), TEAM_VAR,
               query_var("lifecycle", "Lifecycle", 'label_values(botwatch_bot_info{team=~"$team"}, lifecycle)'),
               slo_var()], refresh="5m", time_from="now-7d")
    b.row("Estate")
    b.add(stat("Estate size", "Bots in the estate files of all agents, for the selected teams and lifecycles.",
               "none", f"count(max by (bot) ({COE_INFO})) or vector(0)"), 4, 8)
    b.add(panel("piechart", "Bots by lifecycle",
                "Bots per lifecycle: prototype, certified, production (unset: the estate file gives none).",
                "none", [target('count by (lifecycle) (label_replace(max by (bot, lifecycle) '
                                f'({COE_INFO}), "lifecycle", "unset", "lifecycle", ""))', "{{lifecycle}}",
                                instant=True)],
                options={"displayLabels": ["name", "value"],
                         "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                    "values": ["value"]},
                         "pieType": "donut", "reduceOptions": REDUCE_LAST, "tooltip": {"mode": "single"}}), 6, 8)
    b.add(bargauge("Bots by team", "Bots per team (unassigned: the estate file gives no team).", "none",
                   f'count by (team) (label_replace(max by (bot, team) ({COE_INFO}), "team", "unassigned", "team", ""))',
                   "{{team}}"), 8, 8)
    b.add(stat("Prototypes on production schedules",
               "Bots with lifecycle prototype that run on a schedule (cron or interval): they behave like "
               "production without having been certified. The Governance row lists them.", "none",
               'count(max by (bot) (botwatch_bot_info{lifecycle="prototype", team=~"$team"}) '
               "and on (bot) botwatch_schedule_next_expected_timestamp_seconds) or vector(0)",
               steps=WARN_AT_ONE), 6, 8)
    b.add(timeseries("Estate size by lifecycle", "Bots per lifecycle over time: how the estate grows and matures.",
                     "none", targets((f"count by (lifecycle) (max by (bot, lifecycle) ({COE_INFO}))",
                                      "{{lifecycle}}"))), 24, 8)

    b.row("Reliability against the SLO")
    b.add(timeseries("Success ratio by team against the SLO (1 d)",
                     "Share of successful runs per team over a sliding day (recording rule "
                     "team:botwatch_run_success:ratio1d), with the SLO chosen at the top as a dashed line. Team "
                     "level only: the lifecycle filter does not apply.", "percentunit",
                     targets(('team:botwatch_run_success:ratio1d{team=~"$team"}', "{{team}}"),
                             ("vector($slo)", "SLO")),
                     min_zero=False, defaults={"max": 1}, overrides=[_dashed("SLO")]), 12, 9)
    b.add(timeseries("Success ratio by team and lifecycle (1 h)",
                     "Share of successful runs over a sliding hour per team and lifecycle, weighted by runs (from "
                     "the recording rules bot:botwatch_runs:rate1h and bot:botwatch_run_failures:rate1h), against "
                     "the SLO.", "percentunit",
                     targets((f"1 - (sum by (team, lifecycle) (bot:botwatch_run_failures:rate1h * {JOIN_TL}) "
                              f"/ (sum by (team, lifecycle) (bot:botwatch_runs:rate1h * {JOIN_TL}) > 0))",
                              "{{team}} / {{lifecycle}}"),
                             ("vector($slo)", "SLO")),
                     min_zero=False, defaults={"max": 1}, overrides=[_dashed("SLO")]), 12, 9)
    b.add(bargauge("Error budget left by team (1 d)",
                   "Share of the error budget (1 - SLO) not used over the last day: 100 % means no failed run, 0 % "
                   "means failures exactly at the SLO, below 0 the SLO is breached.", "percentunit",
                   'clamp_min(1 - (1 - team:botwatch_run_success:ratio1d{team=~"$team"}) / (1 - $slo), -1)',
                   "{{team}}", steps=thresholds((None, "red"), (0, "orange"), (0.25, "green")), minimum=-1,
                   maximum=1), 8, 8)
    b.add(timeseries("Error budget burn rate by team (1 h)",
                     "How fast each team spends its error budget over a sliding hour: 1 spends it exactly over the "
                     "SLO period, 10 ten times as fast (recording rule team:botwatch_run_success:ratio1h).", "short",
                     targets(('(1 - team:botwatch_run_success:ratio1h{team=~"$team"}) / (1 - $slo)', "{{team}}")),
                     defaults={"thresholds": thresholds((None, "green"), (1, "orange"), (10, "red"))},
                     threshold_lines=True), 8, 8)
    b.add(bargauge("Bots meeting the SLO by team and lifecycle (1 d)",
                   "Share of bots whose success ratio over the last day is at or above the SLO (recording rule "
                   "bot:botwatch_run_success:ratio1d). Bots without runs in the day are left out.", "percentunit",
                   f"avg by (team, lifecycle) ((bot:botwatch_run_success:ratio1d >= bool $slo) * {JOIN_TL})",
                   "{{team}} / {{lifecycle}}", steps=RATIO, maximum=1), 8, 8)
    b.add(bargauge("Mean time to recovery by team and lifecycle (approx.)", MTTR_DESCRIPTION, "s",
                   f"sum by (team, lifecycle) ({FAILING_SECONDS} * {JOIN_TL}) "
                   '/ (sum by (team, lifecycle) (resets(botwatch_bot_state{state="failing"}[$__range]) '
                   f"* {JOIN_TL}) > 0)", "{{team}} / {{lifecycle}}",
                   steps=thresholds((None, "green"), (3600, "orange"), (4 * 3600, "red"))), 8, 8)
    b.add(timeseries("Missed runs by team and lifecycle",
                     "Scheduled runs that did not happen, per $__rate_interval window, by team and lifecycle.",
                     "short",
                     targets(("sum by (team, lifecycle) "
                              f"(increase(botwatch_missed_runs_total[$__rate_interval]) * {JOIN_TL})",
                              "{{team}} / {{lifecycle}}")), bars=True, stack=True), 8, 8)
    b.add(timeseries("Runs per hour by team and lifecycle",
                     "Finished runs per hour over a sliding hour, by team and lifecycle (recording rule "
                     "bot:botwatch_runs:rate1h).", "short",
                     targets((f"sum by (team, lifecycle) (bot:botwatch_runs:rate1h * {JOIN_TL}) * 3600",
                              "{{team}} / {{lifecycle}}"))), 8, 8)

    b.row("Governance")
    b.add(table("Prototypes running on production schedules",
                "Bots with lifecycle prototype that have a schedule, with their owner and when the next run is due. "
                "Certify them or take them off the schedule.", "dateTimeAsIso",
                "max by (bot, team, bot_owner, platform, criticality) "
                "(botwatch_schedule_next_expected_timestamp_seconds "
                "* on (bot) group_left (team, bot_owner, platform, criticality) "
                "max by (bot, team, bot_owner, platform, criticality) "
                '(botwatch_bot_info{lifecycle="prototype", team=~"$team"})) * 1000',
                rename={"bot_owner": "owner", "Value": "next run due"}, links=bot_link()), 12, 8)
    b.add(bargauge("Governance findings by check",
                   "Bots with an open governance finding, by check: missing owner or runbook, not certified, "
                   "plaintext secrets.", "none",
                   f"sum by (check) (botwatch_bot_governance_findings and on (bot) {COE_INFO})", "{{check}}",
                   steps=WARN_AT_ONE), 6, 8)
    b.add(bargauge("Shadow bot processes by platform",
                   "Processes of bot runtimes that no registered bot claims, by platform: automations outside the "
                   "estate (all agents, not filtered by team).", "none",
                   "sum by (platform) (botwatch_unregistered_bot_processes)", "{{platform}}", steps=WARN_AT_ONE), 6, 8)
    return b.to_json()


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

DASHBOARDS = {
    "estate-overview.json": estate_overview,
    "bot-detail.json": bot_detail,
    "ui-drift.json": ui_drift,
    "coe-reliability.json": coe_reliability,
}


def dashboards() -> dict[str, dict]:
    """{file name: dashboard} for every dashboard."""
    return {name: make() for name, make in DASHBOARDS.items()}


def render(dashboard: dict) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write(out: Path = HERE) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, d in dashboards().items():
        path = out / name
        path.write_text(render(d), encoding="utf-8")
        written.append(path)
    return written


def stale(out: Path = HERE) -> list[str]:
    """File names whose content differs from what the code builds."""
    return [name for name, d in dashboards().items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != render(d)]


# ---------------------------------------------------------------------------------------------
# Every query, with the variables filled in
# ---------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$", re.S)


def _defaults(dashboard: dict) -> dict[str, str]:
    values = {"datasource": ""}
    for v in dashboard["templating"]["list"]:
        if v["type"] in ("custom", "constant"):
            values[v["name"]] = str(v["current"].get("value", v["query"]))
        elif v["type"] == "query":
            values[v["name"]] = ".*"
    return values


def fill(expr: str, values: dict[str, str]) -> str:
    """Replace $name and ${name} (and ${name:format}) with values[name]; unknown names stay."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, m.group(0))
    return _VAR.sub(sub, expr)


def variable_query(v: dict) -> str:
    """A query variable's label_values(...) as the PromQL series selector it reads."""
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    m = _LABEL_VALUES.match(q)
    if not m:
        raise ValueError(f"variable {v['name']}: not a label_values(selector, label) query: {q}")
    return m.group(1)


def iter_queries(variables: dict[str, str] | None = None) -> Iterator[tuple[str, str, str]]:
    """(dashboard uid, panel or variable title, PromQL) for every query of every dashboard.

    Template variables are filled in: $datasource is removed; $bot, $team, $screen, $lifecycle take
    the given values, else `.*` (they are only used in =~ matchers); $slo takes its default;
    $__rate_interval, $__interval, $__range and $__range_s take the values of GRAFANA_GLOBALS
    (a one-hour window), unless `variables` says otherwise. A panel with several queries yields
    each one as "title (refId)"; a variable's query is yielded as "variable NAME".
    """
    for d in dashboards().values():
        values = {**_defaults(d), **GRAFANA_GLOBALS, **(variables or {})}
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                yield d["uid"], f"variable {v['name']}", fill(variable_query(v), values)
        for p in d["panels"]:
            tgts = p.get("targets", [])
            for t in tgts:
                title = p["title"] if len(tgts) == 1 else f"{p['title']} ({t['refId']})"
                yield d["uid"], title, fill(t["expr"], values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m botwatch.dashboards.build", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder to write the JSON files to (default: beside this "
                                                           "module)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs from the code")
    args = ap.parse_args(argv)
    if args.check:
        differ = stale(args.out)
        for name in differ:
            print(f"{args.out / name}: differs from dashboards/build.py; run python -m botwatch.dashboards.build",
                  file=sys.stderr)
        return 1 if differ else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
