"""Benchmark 10: a `botwatch agent` pulling a large UiPath Orchestrator tenant (2,000 processes in
200 folders, 100,000 jobs): first sync, steady-state cost against the 100 requests/minute budget,
and the time from a job faulting to the failure on /metrics.

The tenant is the tests' stand-in Orchestrator (`tests/orchestrator_fake.py`: a real HTTP server
on 127.0.0.1 with the token endpoint, the folder header, OData paging and filters, and UiPath's
limit of 100 requests a minute on Jobs, answered with 429), filled by `populate_jobs`: 200
folders with two robots each, 2,000 processes of distinct names, 100,000 jobs over the 23 hours
before the start (each robot running one job, one Pending per folder, the rest ended:
Successful, Faulted with realistic `Info`, Stopped). A real agent (`python -m botwatch agent`)
reads it through one `platforms.uipath` connection: `requests_per_minute: 100`,
`page_size: 1000`, `interval: 30s`, `auto_register: true` (every process a bot of its own,
teams from `folder_teams`). A second agent with the same settings and no connection is the
reference for CPU and memory, measured over the same windows.

    11a first sync: from starting the agent to every ended job in its journal (each exactly once),
        against the same number of requests at the budget's pace (requests x 60 s / 100).
        Goal: at most 1.25x.
    11b steady state (after the first sync, while the tenant goes on: new jobs end at the
        rate of 100,000 a day): the most requests the stand-in received in any 60 s, against the
        configured budget. Goal: at most 1x (the budget is never exceeded; 429s are counted too).
    11c agent CPU share of one core over a steady-state window (scraped every 15 s, as a
        Prometheus would). Goal: at most 2 % (absolute).
    11d agent resident memory (psutil RSS, sampled every second, highest sample of the window).
        Goal: at most 150 MB (absolute).
    11e a Running job set to Faulted (a selector error, `update_job`) to its bot's
        `botwatch_run_failures_total{reason="ui_drift"}` moving on /metrics (polled every
        second), one sample per run, each in a different folder, injected a few seconds apart;
        against the configured interval + 5 s. Goal: at most 1x.

Smaller tenants for a quick run: --folders, --processes, --jobs (`run.py --quick` uses 20,
200, 10,000).

Run alone:  .venv/bin/python benchmarks/bench_orchestrator_tenant.py [--runs N] [--window S] [--json FILE]
"""

from __future__ import annotations

import math
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import Agent, busiest_minute, wait_until  # noqa: E402

sys.path.insert(0, str(common.ROOT / "tests"))
from orchestrator_fake import FAULTED_INFOS, TERMINAL_STATES, FakeOrchestrator  # noqa: E402

BUDGET = 100  # requests a minute: UiPath Automation Cloud's limit on Jobs, and the connection's budget
INTERVAL_S = 30.0
PAGE_SIZE = 1000
SLACK_S = 5.0  # the latency goal: at most the interval + this
GOAL_SYNC = 1.25
GOAL_CPU_PERCENT = 2.0
GOAL_RSS_MB = 150.0
MB = 1_000_000
SCRAPE_EVERY = 15.0
PROBE_EVERY = 4.0  # seconds between two faulted jobs of 11e
SELECTOR_ERROR = ("Click 'Submit': UiPath.Core.Activities.SelectorNotFoundException: Could not find the "
                  "user-interface (UI) element for this action. <webctrl id='btnSubmit' tag='BUTTON' />")
TEAMS = {"Finance*": "finance", "Human Resources*": "people-systems", "Procurement*": "procurement",
         "IT Operations*": "it-ops", "Customer Service*": "customer-care", "Shared*": "coe"}


def ended_ids(fake: FakeOrchestrator) -> set[str]:
    return {f"uipath:{j['Key']}" for j in fake.rows("Jobs") if j["State"] in TERMINAL_STATES}


def odata_times(fake: FakeOrchestrator, since: float = float("-inf")) -> list[float]:
    return [r.at for r in fake.requests if "/odata/" in r.path and r.at >= since]


def sync_requests_needed(fake: FakeOrchestrator) -> int:
    """The requests a first sync needs with this page size: the folder list and, per folder, its
    ended and running jobs in pages (a last short page, or an empty one after a full one)."""
    per_folder: dict[int, int] = {}
    for j in fake.rows("Jobs"):
        per_folder[j["OrganizationUnitId"]] = per_folder.get(j["OrganizationUnitId"], 0) + 1
    folders = fake.rows("Folders")
    return 1 + sum(per_folder.get(f["Id"], 0) // PAGE_SIZE + 1 for f in folders)


class Feeder(threading.Thread):
    """The tenant goes on: jobs end at `per_day` a day in random folders (not the probes')."""

    def __init__(self, fake: FakeOrchestrator, releases: list[tuple[dict, dict]], per_day: int, seed: int):
        super().__init__(name="feeder", daemon=True)
        self.fake, self.releases, self.every = fake, releases, 86400.0 / max(per_day, 1)
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.added = 0

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            folder, rel = self.rng.choice(self.releases)
            state = self.rng.choices(("Successful", "Faulted", "Stopped"), (80, 15, 5))[0]
            info = self.rng.choice(FAULTED_INFOS).format(n=self.rng.randint(10000, 99999), process=rel["Name"]) \
                if state == "Faulted" else None
            now = datetime.now(timezone.utc)
            self.fake.add_job(folder, rel, state=state, started=now - timedelta(seconds=self.rng.randint(20, 600)),
                              ended=now, info=info)
            self.added += 1


def measure(runs: int, reps: int, warmup: int, folders: int = 200, processes: int = 2000, jobs: int = 100_000,
            window: float = 60.0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="botwatch-bench-orchestrator-"))
    fake = FakeOrchestrator(seed=10, jobs_per_minute=BUDGET)
    agent = empty = feeder = None
    rng = random.Random(10)
    try:
        t_setup = time.monotonic()
        now = datetime.now(timezone.utc)
        fake.populate_jobs(folders, processes, jobs, seed=10, anchor=now)
        fake.start()
        populate_s = time.monotonic() - t_setup
        connection = {"name": "prod", "url": fake.url, "organization": fake.org, "tenant": fake.tenant,
                      "client_id": fake.client_id, "client_secret": "env:UIPATH_SECRET", "auto_register": True,
                      "folder_teams": TEAMS, "interval": f"{INTERVAL_S:g}s", "requests_per_minute": BUDGET,
                      "page_size": PAGE_SIZE, "history": "1d"}
        env = {"UIPATH_SECRET": fake.client_secret}
        want = ended_ids(fake)
        needed = sync_requests_needed(fake)

        # -- 11a: the first sync ---------------------------------------------------------------
        t0 = time.monotonic()
        agent = Agent(tmp, "tenant", {"platforms": {"uipath": [connection]}}, env)
        empty = Agent(tmp, "empty", {}, {})
        wait_until(lambda: agent.ready() and empty.ready(), "both agents healthy", timeout=120, interval=0.1)
        sync_timeout = 3 * (needed * 60.0 / BUDGET) + 120

        def synced() -> bool:
            got = agent.recorded()
            if len(got) > len(want):
                raise RuntimeError(f"{len(got)} runs recorded, the tenant has {len(want)} ended jobs")
            return len(got) == len(want)

        wait_until(synced, f"the {len(want):,} ended jobs in the journal", timeout=sync_timeout, interval=0.25)
        sync_s = time.monotonic() - t0
        sync_requests = len(odata_times(fake))
        recorded = agent.recorded()
        if len(recorded) != len(set(recorded)) or set(recorded) != want:
            raise RuntimeError("the first sync did not record each ended job exactly once")
        m = agent.metrics()
        runs_total = sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))
        bots = sum(1 for k in m if k.startswith("botwatch_bot_info{"))
        if runs_total != len(want):
            raise RuntimeError(f"/metrics counts {runs_total:.0f} runs, the journal {len(want)}")
        sync_count = len(recorded)
        sync_cpu = agent.cpu()
        sync_rss = agent.ps.memory_info().rss

        # -- 11b-d: steady state ---------------------------------------------------------------
        releases = [(f, r) for f in fake.rows("Folders") for r in fake.rows("Releases")
                    if r["OrganizationUnitId"] == f["Id"]]
        by_folder: dict[int, list[dict]] = {}
        for j in fake.rows("Jobs"):
            if j["State"] == "Running":
                by_folder.setdefault(j["OrganizationUnitId"], []).append(j)
        probe_folders = rng.sample(sorted(by_folder), min(runs, len(by_folder)))
        probes = [by_folder[f][0] for f in probe_folders]
        probe_releases = {p["ReleaseName"] for p in probes}
        feeder = Feeder(fake, [(f, r) for f, r in releases if r["Name"] not in probe_releases], jobs, seed=11)
        t_steady = time.monotonic()
        feeder.start()
        cpu0 = {"tenant": agent.cpu(), "empty": empty.cpu()}
        rss = {"tenant": [], "empty": []}
        scrapes, scrape_cpu = 0, 0.0
        t_w = time.monotonic()
        next_scrape = t_w
        while time.monotonic() - t_w < window:
            if time.monotonic() >= next_scrape:
                c = agent.cpu()
                agent.get("/metrics")
                scrape_cpu += agent.cpu() - c  # the agent's CPU time across the request (its other threads too)
                empty.get("/metrics")
                scrapes += 1
                next_scrape += SCRAPE_EVERY
            for k, a in (("tenant", agent), ("empty", empty)):
                rss[k].append(a.ps.memory_info().rss)
            time.sleep(1.0)
        wall = time.monotonic() - t_w
        cpu_pct = {"tenant": 100 * (agent.cpu() - cpu0["tenant"]) / wall,
                   "empty": 100 * (empty.cpu() - cpu0["empty"]) / wall}
        pulling_pct = cpu_pct["tenant"] - 100 * scrape_cpu / wall
        window_requests = len(odata_times(fake, since=t_w))

        # -- 11e: a job faulting to the metric ---------------------------------------------------
        feeder.stopped.set()
        feeder.join()
        metric = {p["Key"]: f'botwatch_run_failures_total{{bot="{_slug(p["ReleaseName"])}",reason="ui_drift"}}'
                  for p in probes}
        before = agent.metrics()
        faulted: dict[str, float] = {}
        seen: dict[str, float] = {}
        polls = 0
        for p in probes:
            while faulted and time.monotonic() - max(faulted.values()) < PROBE_EVERY:
                time.sleep(0.05)
            fake.update_job(p, state="Faulted", info=SELECTOR_ERROR)
            faulted[p["Key"]] = time.monotonic()
        # each probe's bot is one of 2,000: /metrics is read whole, once a second
        deadline = time.monotonic() + 3 * (len(fake.rows("Folders")) * 60.0 / BUDGET + INTERVAL_S) + 60
        while len(seen) < len(probes):
            t_ask = time.monotonic()
            now_m = agent.metrics()
            t_got = time.monotonic()
            polls += 1
            for key, name in metric.items():
                if key not in seen and now_m.get(name, 0) > before.get(name, 0):
                    seen[key] = t_got
            if t_got > deadline:
                raise RuntimeError(f"{len(probes) - len(seen)} faulted job(s) not on /metrics by the deadline")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t_ask)))
        latencies = [seen[p["Key"]] - faulted[p["Key"]] for p in probes]
        poll_span = max(seen.values()) - min(faulted.values())
        # everything that ended is recorded, once
        want = ended_ids(fake)
        wait_until(lambda: len(agent.recorded()) >= len(want), "every ended job recorded",
                   timeout=3 * (len(fake.rows("Folders")) * 60.0 / BUDGET + INTERVAL_S))
        recorded = agent.recorded()
        if len(recorded) != len(set(recorded)) or set(recorded) != want:
            raise RuntimeError("the steady state did not record each ended job exactly once")
        t_end = time.monotonic()
        steady = odata_times(fake, since=t_steady)
        throttled = fake.throttled_total
        requests_all = odata_times(fake)
        pull_s = _pull_period(fake, t_steady)
        parse_errors = agent.metrics().get('botwatch_agent_parse_errors_total{source="uipath"}', 0)
    finally:
        if feeder is not None:
            feeder.stopped.set()
        for a in (agent, empty):
            if a is not None:
                a.stop()
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    n_folders = len(fake.rows("Folders"))
    floor_s = sync_requests * 60.0 / BUDGET
    fig_a = common.figure(
        key="11a", title=f"first sync of a tenant of {n_folders:,} folders, {processes:,} processes, "
                         f"{jobs:,} jobs: agent started → every ended job in its journal, once",
        unit="s", measured_runs=[sync_s], reference_runs=[floor_s],
        reference_title=f"its {sync_requests:,} requests at the budget's pace ({BUDGET}/min)", goal=GOAL_SYNC,
        reps=1)
    fig_a["notes"] += [
        f"{sync_count:,} ended jobs recorded, each once (journal run ids = the tenant's ended jobs), "
        f"{bots:,} bots registered; {sync_requests:,} OData requests (a page size of {PAGE_SIZE} needs "
        f"{needed:,}: the folder list and one page per folder); the agent's CPU time for it {sync_cpu:.1f} s, "
        f"its RSS after it {sync_rss / MB:.0f} MB",
        f"with the default page size (100) the same sync needs about "
        f"{_requests_at(fake, 100):,} requests: {_requests_at(fake, 100) * 60 / BUDGET / 60:.0f} min at the budget",
    ]
    busiest = busiest_minute(steady)
    minutes = (t_end - t_steady) / 60.0
    fig_b = common.figure(
        key="11b", title="steady state: most requests the tenant received in any 60 s (agent's OData GETs)",
        unit="req", measured_runs=[float(busiest)], reference_runs=[float(BUDGET)],
        reference_title="the connection's budget, requests_per_minute", goal=1.0, reps=1)
    fig_b["notes"] += [
        f"{len(steady):,} requests in {minutes:.1f} min of steady state (the budget is a sliding minute: a "
        f"pull's first requests go at once); 429s served by the stand-in over the whole benchmark: {throttled}; the busiest minute of "
        f"the whole benchmark, first sync included: {busiest_minute(requests_all)}",
        f"a pull of every folder takes {pull_s:.0f} s (median of the full pulls measured) plus the interval "
        f"({INTERVAL_S:g} s): one request per folder, {n_folders} folders at {BUDGET} a minute",
        f"the tenant went on meanwhile: {feeder.added} jobs ended during the steady state ({jobs:,} a day), "
        f"all recorded once; parse errors counted: {parse_errors:.0f}",
    ]
    fig_c = common.figure(
        key="11c", title="steady state: agent CPU share of one core (pulling at the budget, scraped every 15 s)",
        unit="%", measured_runs=[cpu_pct["tenant"]], reference_runs=[cpu_pct["empty"]],
        reference_title="the same agent with no connection, same window",
        goal=round(GOAL_CPU_PERCENT / max(cpu_pct["empty"], 0.01), 2), reps=1)
    fig_c["passed"] = cpu_pct["tenant"] <= GOAL_CPU_PERCENT
    fig_c["notes"].append(f"goal: at most {GOAL_CPU_PERCENT:g} % of one core absolute (the Goal column is that, as "
                          f"a ratio to the reference); a {wall:.0f} s window, {scrapes} scrape(s) of each agent; "
                          f"measured {cpu_pct['tenant']:.2f} %: {'PASS' if fig_c['passed'] else 'MISSED'}")
    fig_c["notes"].append(f"of which the scrapes ({bots:,} bots on /metrics): {scrape_cpu / max(scrapes, 1):.2f} s "
                          f"of CPU each; without them (their CPU time, measured across each request, subtracted) "
                          f"{pulling_pct:.2f} % of one core, for {window_requests} requests in the window "
                          f"({pulling_pct / 100 * wall * 1000 / max(window_requests, 1):.0f} ms "
                          "of CPU a request, the idle agent's share included)")
    peak = {k: max(v) / MB for k, v in rss.items()}
    fig_d = common.figure(
        key="11d", title=f"steady state: agent resident memory, highest sample ({bots:,} bots, "
                         f"{len(want):,} runs in its journal)",
        unit="MB", measured_runs=[peak["tenant"]], reference_runs=[peak["empty"]],
        reference_title="the same agent with no connection, same window",
        goal=round(GOAL_RSS_MB / peak["empty"], 2), reps=1)
    fig_d["passed"] = peak["tenant"] <= GOAL_RSS_MB
    fig_d["notes"].append(f"goal: at most {GOAL_RSS_MB:g} MB (10^6 bytes) absolute (the Goal column is that, as a "
                          f"ratio to the reference); measured {peak['tenant']:.0f} MB: "
                          f"{'PASS' if fig_d['passed'] else 'MISSED'}")
    goal_s = INTERVAL_S + SLACK_S
    fig_e = common.figure(
        key="11e", title="a Running job set to Faulted (selector error) → its bot's failure counter "
                         "(reason ui_drift) moved on /metrics",
        unit="s", measured_runs=latencies, reference_runs=[goal_s] * len(latencies),
        reference_title=f"the configured interval + {SLACK_S:g} s", goal=1.0, reps=1)
    fig_e["notes"] += [
        f"{len(latencies)} faulted jobs, each in another folder, {PROBE_EVERY:g} s apart: "
        f"{', '.join(f'{x:.0f}' for x in latencies)} s; {sum(x <= goal_s for x in latencies)} of "
        f"{len(latencies)} within {goal_s:g} s; /metrics read whole {polls} times, back to back but at most once a "
        f"second (one read every {poll_span / max(polls, 1):.1f} s on average: {bots:,} bots a read)",
        "a fault is seen when the pull reaches its folder: up to one pull of every folder plus the interval "
        "after it ended; with more folders than the budget reads in a few seconds, polling alone cannot meet "
        "the goal, whatever the interval",
    ]
    details = [
        "",
        f"Set-up: the stand-in tenant filled in {populate_s:.1f} s ({n_folders} folders, 2 robots each, "
        f"{processes:,} processes, {jobs:,} jobs); the connection: requests_per_minute {BUDGET}, page_size "
        f"{PAGE_SIZE}, interval {INTERVAL_S:g} s, history 1 d, auto_register. Figures 11a–11d are one "
        "measurement each (a first sync and a steady-state window cannot be repeated within minutes); 11e has "
        "one sample per run.",
    ]
    return {"benchmark": "orchestrator_tenant", "figures": [fig_a, fig_b, fig_c, fig_d, fig_e], "details": details,
            "settings": {"runs": runs, "folders": folders, "processes": processes, "jobs": jobs, "window": window,
                         "budget": BUDGET, "interval_s": INTERVAL_S, "page_size": PAGE_SIZE}}


def _slug(process: str) -> str:
    from botwatch.sources.platform import bot_slug

    return bot_slug(process)


def _requests_at(fake: FakeOrchestrator, page_size: int) -> int:
    counts: dict[int, int] = {}
    for j in fake.rows("Jobs"):
        counts[j["OrganizationUnitId"]] = counts.get(j["OrganizationUnitId"], 0) + 1
    return 1 + sum(counts.get(f["Id"], 0) // page_size + 1 for f in fake.rows("Folders"))


def _pull_period(fake: FakeOrchestrator, since: float) -> float:
    """The median time from one request of the first folder to the last folder's next request."""
    folders = [f["Id"] for f in fake.rows("Folders")]
    first, last = str(folders[0]), str(folders[-1])
    starts, ends = [], []
    for r in fake.requests:
        if r.at < since or not r.path.endswith("/odata/Jobs"):
            continue
        unit = r.header("X-UIPATH-OrganizationUnitId")
        if unit == first:
            starts.append(r.at)
        elif unit == last:
            ends.append(r.at)
    spans = [min(e for e in ends if e > s) - s for s in starts if any(e > s for e in ends)]
    return statistics.median(spans) if spans else math.nan


def main(argv: list[str] | None = None) -> int:
    def extra(p) -> None:
        p.add_argument("--folders", type=int, default=200)
        p.add_argument("--processes", type=int, default=2000)
        p.add_argument("--jobs", type=int, default=100_000)
        p.add_argument("--window", type=float, default=60.0, help="seconds of the steady-state window")

    return common.bench_main(__doc__, measure, argv, runs=7, reps=1, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
