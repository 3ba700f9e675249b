"""An estate on one machine: 10 real agents with 200 bots each and simulated runs, scraped by a real
Prometheus that finds them through one agent's /sd, loads the shipped rules and remote-writes to a
real VictoriaMetrics.

Shared by tests/test_estate_scale.py (which asserts the estate dashboard's totals on both engines)
and benchmarks/bench_estate_scale.py (series counts, scrape sizes, query times). The runs are a
plan fixed in advance, so that every total is known exactly: `Plan` says what each bot does and
what the estate should add up to; `Estate` starts the processes, delivers the plan through the
agents' `POST /api/v1/events` and picks an evaluation time at which both engines can be compared.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botwatch.commands import stack
from conftest import AgentProcess, free_port, http_get, http_post_json, require, wait_for
from orchestrator_fake import FakeOrchestrator

AGENTS = 10
BOTS_PER_AGENT = 200
TEAMS = ("finance", "hr", "procurement", "sales", "logistics", "it-ops")
PLATFORMS = ("uipath", "robotframework", "python", "powerautomate", "blueprism", "automationanywhere", "excel",
             "shell")
LIFECYCLES = ("prototype", "certified", "production")
REASONS = ("ui_drift", "credentials", "business", "data", "timeout", "crash", "killed", "unknown")
# What the bots of one agent do: (kind, bots of that kind per agent, the state the agent reports).
KINDS = (
    ("new", 20, "new"),            # registered, never ran
    ("steady", 80, "up"),          # three successful runs
    ("flaky", 30, "up"),           # a failure, then a success
    ("failing", 30, "failing"),    # two failures
    ("late", 10, "late"),          # every 1h, last run started 2h ago, grace 1d
    ("down", 10, "down"),          # every 1h, last run started 3h ago, grace 10m
    ("paused", 10, "paused"),      # paused in the estate file, one successful run
    ("running", 6, "up"),          # a successful run, and one running for a minute
    ("hung", 4, "up"),             # a successful run, and one running for 2h (max_runtime 30m)
)
assert sum(n for _k, n, _s in KINDS) == BOTS_PER_AGENT
ESTATE_UID = "botwatch-estate"
SCRAPE_INTERVAL = 2.0  # seconds; also the rule evaluation interval


@dataclass
class Bot:
    name: str
    agent: int
    kind: str
    state: str
    team: str
    platform: str
    lifecycle: str
    runs: list[tuple[str, str | None]] = field(default_factory=list)  # (outcome, reason), oldest first
    active: bool = False

    def yaml(self) -> str:
        """The bot's entry in the estate file, on one line (as a generated estate file has it)."""
        every, grace = {"late": ("1h", "1d"), "down": ("1h", "10m")}.get(self.kind, ("1d", "15m"))
        keys = [f"name: {self.name}", f"team: {self.team}", f"owner: {self.team}-coe@example.com",
                f"platform: {self.platform}", f"lifecycle: {self.lifecycle}", f"every: {every}", f"grace: {grace}"]
        if self.kind == "hung":
            keys.append("max_runtime: 30m")
        if self.kind == "paused":
            keys.append("paused: true")
        return "- {" + ", ".join(keys) + "}\n"

    def events(self, now: float) -> list[dict]:
        """The plan of this bot as API events, timed relative to `now`."""
        first = {"late": now - 7200, "down": now - 10800, "hung": now - 10800}.get(self.kind, now - 3600)
        out = []
        for k, (outcome, reason) in enumerate(self.runs):
            started = first + 600 * k
            run_id = f"{self.name}-{k}"
            out.append({"type": "run_started", "bot": self.name, "run_id": run_id, "time": started})
            finished = {"type": "run_finished", "bot": self.name, "run_id": run_id, "started": started,
                        "ended": started + 20 + 7 * k + len(self.name) % 5, "outcome": outcome}
            if reason:
                finished["reason"] = reason
            out.append(finished)
        if self.active:
            since = now - 7200 if self.kind == "hung" else now - 60
            out.append({"type": "run_started", "bot": self.name, "run_id": f"{self.name}-now", "time": since})
        return out


@dataclass
class ControlPlane:
    """What agent 0's Orchestrator holds (its queues and robots, unchanging while the estate
    runs) and what the queue and robot panels must show of it."""

    # per (folder, queue): items waiting, in progress, and open items past their SLA / risk SLA only
    waiting: dict[tuple[str, str], int] = field(default_factory=dict)
    breached: int = 0
    at_risk: int = 0
    oldest: dict[tuple[str, str], float] = field(default_factory=dict)  # creation of the oldest waiting item
    sessions: Counter = field(default_factory=Counter)  # by state
    capacity: int = 0  # unattended sessions connected
    busy: int = 0
    at: float = 0.0  # the estate's evaluation time (Estate.settle)

    def fill(self, fake: FakeOrchestrator) -> None:
        now = datetime.now(timezone.utc)
        for f, (folder, team) in enumerate((("Finance", "finance"), ("Procurement", "procurement"))):
            fid = fake.add_folder(folder)
            release = fake.add_release(fid, f"{folder} Invoices")
            queue = fake.add_queue(fid, f"{folder}_Invoices", sla_minutes=60, risk_sla_minutes=30, release=release)
            # waiting: f+2 items created 2 h ago (past the SLA), 2 created 40 min ago (at risk), 1 fresh
            ages = [timedelta(hours=2)] * (f + 2) + [timedelta(minutes=40)] * 2 + [timedelta(minutes=1)]
            for age in ages:
                fake.add_queue_item(queue, status="New", created=now - age)
            fake.add_queue_item(queue, status="InProgress", created=now - timedelta(minutes=2))
            for status in ("Successful", "Successful", "Failed"):
                fake.add_queue_item(queue, status=status, created=now - timedelta(minutes=30))
            self.waiting[(folder, queue["Name"])] = len(ages)
            self.breached += f + 2
            self.at_risk += 2
            self.oldest[(folder, queue["Name"])] = (now - timedelta(hours=2)).timestamp()
            for n, state in enumerate(("Available", "Busy", "Disconnected")):
                robot = fake.add_robot(fid, f"{folder[:3].lower()}-unattended-{n}", machine_name=f"RPA-{folder[:3]}-{n}")
                fake.add_session(robot, fid, state=state)
                self.sessions[state.lower()] += 1
                self.capacity += state in ("Available", "Busy")
                self.busy += state == "Busy"

    def connection(self, fake: FakeOrchestrator) -> str:
        """Agent 0's estate entry for it."""
        return (f"platforms:\n  uipath:\n    - {{name: prod, url: '{fake.url}', organization: {fake.org}, "
                f"tenant: {fake.tenant}, client_id: {fake.client_id}, client_secret: {fake.client_secret}, "
                f"interval: 1s, folder_teams: {{Finance: finance, Procurement: procurement}}}}\n")


class Plan:
    """Every bot of the estate, what it does, and the totals that follow."""

    def __init__(self, agents: int = AGENTS, bots_per_agent: int = BOTS_PER_AGENT):
        self.bots: list[Bot] = []
        g = 0  # estate-wide bot number: teams, platforms and reasons rotate over it
        for a in range(agents):
            for kind, n, state in KINDS:
                for j in range(n * bots_per_agent // BOTS_PER_AGENT):
                    bot = Bot(f"a{a:02d}-{kind}-{j:03d}", a, kind, state, TEAMS[g % len(TEAMS)],
                              PLATFORMS[g % len(PLATFORMS)], LIFECYCLES[g % len(LIFECYCLES)])
                    r1, r2 = REASONS[g % len(REASONS)], REASONS[(g + 3) % len(REASONS)]
                    bot.runs = {
                        "new": [], "steady": [("success", None)] * 3,
                        "flaky": [("failure", r1), ("success", None)],
                        "failing": [("failure", r1), ("failure", r2)],
                    }.get(kind, [("success", None)])
                    bot.active = kind in ("running", "hung")
                    self.bots.append(bot)
                    g += 1
        self.agents = agents
        self.control_plane = ControlPlane()

    def of_agent(self, a: int) -> list[Bot]:
        return [b for b in self.bots if b.agent == a]

    # -- the totals the dashboards must show ----------------------------------------------------
    def states(self) -> Counter:
        return Counter(b.state for b in self.bots)

    def teams(self) -> Counter:
        return Counter(b.team for b in self.bots)

    def platforms(self) -> Counter:
        return Counter(b.platform for b in self.bots)

    def runs(self) -> int:
        return sum(len(b.runs) for b in self.bots)

    def failures_by_reason(self) -> dict[str, int]:
        got = Counter(r for b in self.bots for outcome, r in b.runs if outcome == "failure")
        return {reason: got.get(reason, 0) for reason in REASONS}

    def in_progress(self) -> int:
        return sum(b.active for b in self.bots)

    def hung(self) -> int:
        return sum(b.kind == "hung" for b in self.bots)

    def drifting(self) -> set[str]:
        """Bots with a ui_drift failure (the "Bots drifting" panel: a ui_drift failure rate above 0)."""
        return {b.name for b in self.bots if ("failure", "ui_drift") in b.runs}

    def always_failing(self) -> set[str]:
        return {b.name for b in self.bots if b.runs and all(o == "failure" for o, _r in b.runs)}

    def team_success_ratio(self) -> dict[str, float]:
        out = {}
        for team in TEAMS:
            runs = [o for b in self.bots if b.team == team for o, _r in b.runs]
            if runs:
                out[team] = 1 - runs.count("failure") / len(runs)
        return out


def _unix(rfc3339: str) -> float:
    """Prometheus' RFC 3339 times (nanoseconds, Z) as Unix seconds."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", rfc3339)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {rfc3339!r}")
    base = datetime.fromisoformat(m.group(1) + m.group(3).replace("Z", "+00:00"))
    return base.timestamp() + float(m.group(2) or 0)


def estate_queries() -> list[tuple[str, str]]:
    """(title, PromQL) of every query of the shipped estate dashboard, variables filled in."""
    from botwatch.dashboards.build import iter_queries

    return [(title, expr) for uid, title, expr in iter_queries() if uid == ESTATE_UID]


def estate_metric_names() -> list[str]:
    """The metrics (scraped and recorded) the estate dashboard reads."""
    from promql import selectors

    return sorted({s["name"] for _t, expr in estate_queries() for s in selectors(expr)})


def query(url: str, expr: str, at: float | None = None, timeout: float = 60.0) -> list[dict]:
    """An instant query's result vector (Prometheus and VictoriaMetrics answer alike)."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=timeout) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise AssertionError(f"{url}: {expr}: {body}")
    return body["data"]["result"]


def scalar(url: str, expr: str, at: float | None = None) -> float | None:
    result = query(url, expr, at)
    return float(result[0]["value"][1]) if result else None


class Estate:
    """The running estate: `start()` (agents, VictoriaMetrics, Prometheus, first scrape),
    `deliver()` (the plan), `settle()` (an evaluation time both engines hold); `stop()`."""

    def __init__(self, tmp: Path, plan: Plan | None = None):
        self.tmp, self.plan = Path(tmp), plan or Plan()
        self.agents: list[AgentProcess] = []
        self.orchestrator: FakeOrchestrator | None = None  # pulled by agent 0: queues and robots
        self.prom: stack.Server | None = None
        self.vm: stack.Server | None = None
        self.delivered_at: float | None = None
        self.at: float | None = None  # the evaluation time of the comparisons
        self.samples_in_window: int | None = None  # per counter series in the 1h window the rules read by `at`

    # -- set-up -------------------------------------------------------------------------------
    def start(self) -> "Estate":
        prom_bin = require(stack.PROMETHEUS, "prometheus")
        vm_bin = require(stack.VICTORIA_METRICS, "victoria-metrics")
        ports = [free_port() for _ in range(self.plan.agents)]
        while len(set(ports)) < len(ports):
            ports = [free_port() for _ in range(self.plan.agents)]
        env = {k: "" for k in os.environ if k.startswith("OTEL_")}  # the estate under test exports to no collector
        self.orchestrator = FakeOrchestrator().start()
        self.plan.control_plane.fill(self.orchestrator)
        for a, port in enumerate(ports):
            folder = self.tmp / f"agent-{a:02d}"
            folder.mkdir(parents=True)
            sd = "" if a else f"  sd_targets: [{', '.join(f'127.0.0.1:{p}' for p in ports[1:])}]\n"
            config = folder / "botwatch.yaml"
            config.write_text(
                f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {folder / 'journal.db'}\n  governance_interval: 1h\n"
                f"{sd}{'' if a else self.plan.control_plane.connection(self.orchestrator)}bots:\n"
                + "".join("  " + line + "\n" for b in self.plan.of_agent(a) for line in b.yaml().splitlines()),
                encoding="utf-8")
            self.agents.append(AgentProcess(config, port, env))
        self.vm = stack.victoria_metrics(vm_bin, self.tmp / "vm-data", f"127.0.0.1:{free_port()}",
                                         self.tmp / "victoria-metrics.log",
                                         extra=("-search.maxUniqueTimeseries=2000000",))
        self.vm.start()
        with ThreadPoolExecutor(len(self.agents)) as pool:
            list(pool.map(AgentProcess.start, self.agents))
        self.vm.wait_ready()
        interval = f"{SCRAPE_INTERVAL:g}s"
        config = stack.write_yaml(self.tmp / "prometheus.yml", {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in stack.rule_files()],
            "scrape_configs": [{"job_name": stack.JOB, "http_sd_configs": [
                {"url": self.agents[0].url + "/sd", "refresh_interval": "5s"}]}],
            "remote_write": [{"url": self.vm.url + "/api/v1/write",
                              "queue_config": {"batch_send_deadline": "1s", "max_samples_per_send": 10000}}],
        }, "The estate test: every agent found through agent 0's /sd, remote-written to VictoriaMetrics.")
        self.prom = stack.prometheus(prom_bin, config, self.tmp / "prom-data", f"127.0.0.1:{free_port()}",
                                     self.tmp / "prometheus.log")
        self.prom.start().wait_ready()
        # every agent scraped once before any run: the counters start at 0 in Prometheus' eyes
        wait_for(lambda: scalar(self.prom.url, 'count(up{job="botwatch"} == 1)') == self.plan.agents, timeout=90,
                 interval=0.5, what=f"Prometheus to scrape all {self.plan.agents} agents found through /sd")
        return self

    def deliver(self) -> dict[str, int]:
        """Post every bot's events to its agent (batches of 500); the agents' answers, summed."""
        now = time.time()

        def post(a: int) -> Counter:
            events = [e for b in self.plan.of_agent(a) for e in b.events(now)]
            got = Counter()
            for i in range(0, len(events), 500):
                status, body = http_post_json(self.agents[a].url + "/api/v1/events", {"events": events[i:i + 500]},
                                              timeout=60)
                assert status == 200 and not body["rejected"], (a, status, body)
                got.update(accepted=body["accepted"], duplicates=body["duplicates"], sent=len(events[i:i + 500]))
            return got

        with ThreadPoolExecutor(len(self.agents)) as pool:
            total = sum(pool.map(post, range(len(self.agents))), Counter())
        self.delivered_at = time.time()
        return dict(total)

    def settle(self, min_samples: int = 12) -> float:
        """Pick the evaluation time: after the delivered runs were scraped and the rules evaluated
        over them, once every counter has `min_samples` samples in the 1h window (which bounds the
        extrapolation of rate() over that window), and once VictoriaMetrics holds every series'
        latest sample up to then."""
        assert self.delivered_at is not None, "deliver() first"
        ready = self.delivered_at + 3 * SCRAPE_INTERVAL
        counted = "min(count_over_time(botwatch_runs_total[1h]))"
        steady = f'min(min_over_time(up{{job="botwatch"}}[{10 * SCRAPE_INTERVAL:g}s]))'  # no failed scrape lately
        # and the chained recording rules (rates -> success ratios -> fragility) have reached every
        # bot that ran: under load a rule group can lag its inputs by several evaluations
        ran = sum(1 for b in self.plan.bots if b.runs)
        chained = 'count(bot_component:botwatch_fragility:ratio1d{component="failures"})'
        wait_for(lambda: time.time() > ready and (scalar(self.prom.url, counted) or 0) >= min_samples + 1
                 and scalar(self.prom.url, steady) == 1 and scalar(self.prom.url, chained) == ran,
                 timeout=180, interval=0.5, what=f"{min_samples} scrapes of every agent, the latest ones successful, "
                 f"and the fragility rules over all {ran} bots that ran")
        self.at = at = time.time() - 0.5
        self.plan.control_plane.at = at
        # everything stamped up to `at` is committed: a scrape after it of every agent, and an
        # evaluation after it of every rule group (a slow evaluation stamped earlier lands late)
        wait_for(lambda: (scalar(self.prom.url, 'min(timestamp(up{job="botwatch"}))') or 0) > at
                 and min(self.rule_evaluations()) > at, timeout=120, interval=0.5,
                 what="Prometheus to scrape and evaluate past the chosen time")
        self.samples_in_window = self.samples_seen_by_rules(at)
        # VictoriaMetrics holds the data at `at` when it has as many samples of each metric the
        # dashboard reads in the 10 s before `at` as Prometheus
        window = {name: f"sum(count_over_time({name}[10s]))" for name in estate_metric_names()}
        expected = {name: scalar(self.prom.url, q, at) for name, q in window.items()}
        seen: dict = {}

        def complete() -> bool:
            seen.update({name: scalar(self.vm.url, q, at) for name, q in window.items()})
            return seen == expected

        try:
            wait_for(complete, timeout=120, interval=1.0, what="VictoriaMetrics")
        except AssertionError:
            differ = {n: (expected[n], seen.get(n)) for n in expected if seen.get(n) != expected[n]}
            raise AssertionError(f"VictoriaMetrics does not hold the samples Prometheus has up to {at:.3f}: "
                                 f"samples in the 10 s before (Prometheus, VictoriaMetrics): {differ}") from None
        return at

    def samples_seen_by_rules(self, at: float) -> int:
        """The fewest samples of a counter any recorded series read at `at` was computed over.

        A recorded value at `at` comes from the rule evaluation stamped last before it, which under
        load can lag `at` by more than one interval (a missed evaluation), and which may not yet see
        a scrape stamped just before it (a scrape is stamped when it starts and committed when it
        ends). So: the counter's samples in the window at the earliest of those evaluation stamps,
        less one."""
        recorded = [name for name in estate_metric_names() if ":" in name]
        evaluated = min(scalar(self.prom.url, f"min(timestamp({name}))", at) for name in recorded)
        counted = scalar(self.prom.url, "min(count_over_time(botwatch_runs_total[1h]))", evaluated)
        return int(counted) - 1

    def rule_evaluations(self) -> list[float]:
        """When each of Prometheus' rule groups last started an evaluation (Unix seconds)."""
        groups = self.prom.get_json("/api/v1/rules")["data"]["groups"]
        return [_unix(g["lastEvaluation"]) for g in groups]

    # -- measurements -------------------------------------------------------------------------
    def scrape_sizes(self) -> list[int]:
        """Bytes of each agent's /metrics."""
        sizes = []
        for agent in self.agents:
            status, body = http_get(agent.url + "/metrics", timeout=30)
            assert status == 200
            sizes.append(len(body))
        return sizes

    def series_counts(self, at: float | None = None) -> dict[str, int]:
        """Series at `at` in each engine: all of them, the agents' (job botwatch), the recorded ones."""
        at = at or self.at
        out = {}
        for engine, server in (("prometheus", self.prom), ("victoriametrics", self.vm)):
            for what, sel in (("all", '{__name__=~".+"}'), ("scraped", '{job="botwatch"}'),
                              ("recorded", '{__name__=~".+:.+"}')):
                out[f"{engine}_{what}"] = int(scalar(server.url, f"count({sel})", at) or 0)
        return out

    def stop(self) -> None:
        if self.orchestrator is not None:
            self.orchestrator.stop()
        for server in (self.prom, self.vm):
            if server is not None:
                server.stop()
        for agent in self.agents:
            if agent.proc is not None:
                agent.stop()
