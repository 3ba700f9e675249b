"""Benchmark 12: the four other control-plane connectors under the load of a large estate:
Power Automate, Blue Prism, Automation Anywhere and Robocorp, each with 1,000 automations and
100,000 runs over the last day. First sync and steady-state cost of each: requests against its
budget, CPU and memory.

Each platform is its tests' stand-in (`tests/powerautomate_fake.py`, `blueprism_fake.py`,
`automationanywhere_fake.py`, `robocorp_fake.py`: real HTTP servers on 127.0.0.1 built from the
vendor's documentation), filled through its own `add_*` methods with `--automations` automations
of distinct names in 10 folders (environment, process group, Control Room folder, workspace) and
`--runs-per-day` runs that ended over the 23 hours before the start, in realistic proportions (about 88 %
successful, the rest failed, stopped, timed out; about 2 % still in progress). A real agent
(`python -m botwatch agent`) reads it through one connection with `auto_register: true` (every
automation a bot of its own), the page size and budget of `PLATFORMS` below, `interval: 30s`,
`history: 1d`. A second agent with no connection is the reference for CPU and memory, measured
over the same window. The platforms are measured one after the other, four figures each:

    12a/e/i/m first sync: from starting the agent to every ended run in its journal (each exactly
        once), against the requests it made at the budget's pace (requests x 60 s / budget).
        Goal: at most 1.25x.
    12b/f/j/n steady state (after the first sync, while new runs start and end at `--runs-per-day`
        a day): the most API requests the stand-in received in any 60 s, against the budget.
        Goal: at most 1x.
    12c/g/k/o agent CPU share of one core over a `--window` of steady state, /metrics scraped
        every 15 s. Goal: at most 2 % (absolute).
    12d/h/l/p agent resident memory (psutil RSS, sampled every second, highest sample).
        Goal: at most 150 MB (absolute).

At the end every run that ended (the first day's and those of the steady state) must be in the
journal exactly once; a run missed or recorded twice stops the benchmark with an error.

Sizes: the default is the full size (1,000 automations, 100,000 runs); `make bench` uses
`--runs-per-day 10000` (run.py), `run.py --quick` smaller still. `--platforms` picks some of them.

Run alone:  .venv/bin/python benchmarks/bench_connectors.py [--automations N] [--runs-per-day N]
            [--window S] [--platforms powerautomate,blueprism,automationanywhere,robocorp] [--json FILE]
"""

from __future__ import annotations

import heapq
import random
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import Agent, busiest_minute, wait_until  # noqa: E402

sys.path.insert(0, str(common.ROOT / "tests"))

INTERVAL_S = 30.0
GOAL_SYNC = 1.25
GOAL_CPU_PERCENT = 2.0
GOAL_RSS_MB = 150.0
MB = 1_000_000
SCRAPE_EVERY = 15.0
FOLDERS = ("Finance", "Human Resources", "Procurement", "IT Operations", "Customer Service", "Supply Chain",
           "Legal", "Sales Operations", "Payroll", "Shared Services")
TEAMS = {"Finance*": "finance", "Human Resources*": "people-systems", "Procurement*": "procurement",
         "IT Operations*": "it-ops", "Customer Service*": "customer-care", "Shared*": "coe"}
TASKS = ("Invoice Posting", "Vendor Onboarding", "Payment Run", "Order Entry", "Bank Reconciliation",
         "Report Export", "Master Data Check", "Claims Intake", "Ticket Triage", "Contract Archive")
HISTORY_S = 23 * 3600.0  # the runs of the fill ended within this before the start (inside history: 1d)


def automation_names(n: int) -> list[tuple[str, str]]:
    """`n` (folder, name) pairs, names distinct: `Finance Invoice Posting 0001`..."""
    return [(FOLDERS[i % len(FOLDERS)], f"{FOLDERS[i % len(FOLDERS)]} {TASKS[i // len(FOLDERS) % len(TASKS)]} "
             f"{i:04d}") for i in range(n)]


def fill_plan(n: int, anchor: datetime, rng: random.Random) -> list[tuple[datetime, datetime, bool]]:
    """`n` runs as (start, end, in progress), ended runs spread evenly over HISTORY_S before
    `anchor`, oldest first; about 2 % in progress, started within the last half hour."""
    out = []
    for i in range(n):
        if rng.random() < 0.02:
            start = anchor - timedelta(seconds=rng.uniform(60, 1800))
            out.append((start, anchor, True))
            continue
        end = anchor - timedelta(seconds=HISTORY_S * (1 - i / n) + 60)
        out.append((end - timedelta(seconds=rng.uniform(20, 1800)), end, False))
    return out


class StandIn:
    """A platform's stand-in, filled, and what the benchmark needs of it: the agent's
    connection, the ids of the runs that ended, new runs to start and end, and the times of the
    API requests it received (counted at its door, whatever the agent thinks it sent)."""

    key: str  # the platform label: estate key, journal source, run id prefix
    title: str
    budget: int  # requests_per_minute of the connection
    page_size: int
    why: str  # where the budget and page size come from

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def tap(self, fake: Any, method: str, counted: Callable[[str], bool]) -> None:
        """Wraps the fake's request handler: the arrival time of each request `counted` by path."""
        inner = getattr(fake, method)

        def serve(handler: Any) -> None:
            if counted(handler.path):
                with self._lock:
                    self.times.append(time.monotonic())
            inner(handler)
        setattr(fake, method, serve)

    def requests_since(self, t: float = float("-inf")) -> list[float]:
        with self._lock:
            return [x for x in self.times if x >= t]

    # what each platform implements
    def fill(self, automations: int, runs: int, anchor: datetime, rng: random.Random) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def connection(self) -> tuple[dict[str, Any], dict[str, str]]: ...
    def ended_ids(self) -> set[str]: ...
    def begin(self, rng: random.Random) -> Any: ...
    def finish(self, run: Any, rng: random.Random) -> None: ...


class PowerAutomate(StandIn):
    key, title, budget, page_size = "powerautomate", "Power Automate", 60, 1000
    why = ("the connection's default budget, 5 % of Dataverse's service-protection limit (6,000 requests per 5 "
           "minutes per user); page size 1,000 (Prefer: odata.maxpagesize, the largest the connection takes)")

    def __init__(self, seed: int) -> None:
        super().__init__()
        from powerautomate_fake import CLOUD_ERRORS, SESSION_ENDED, FakeDataverse

        self.fake = FakeDataverse(seed=seed)
        self.ended_codes, self.cloud_errors = SESSION_ENDED, CLOUD_ERRORS

    def fill(self, automations: int, runs: int, anchor: datetime, rng: random.Random) -> None:
        f = self.fake
        owners = [f.add_user(f"Maker {i:02d}", f"maker{i:02d}@example.com") for i in range(20)]
        # 70 % desktop flows, 30 % cloud flows (solution flows: their runs are in flowruns)
        self.flows = [f.add_flow(name, category=6 if i % 10 < 7 else 5, owner=owners[i % 20])
                      for i, (_folder, name) in enumerate(automation_names(automations))]
        groups = [f.add_group(f"{folder} machines") for folder in FOLDERS[:5]]
        self.machines = [f.add_machine(f"RPA-VM-{i:03d}", group=groups[i % 5]) for i in range(50)]
        for start, end, open_ in fill_plan(runs, anchor, rng):
            flow = rng.choice(self.flows)
            if flow["category"] == 5:
                if not open_:  # Dataverse writes a cloud run when it has ended
                    status = rng.choices(("Success", "Failed", "Cancelled"), (88, 10, 2))[0]
                    f.add_flowrun(flow, status=status, ended=end, seconds=(end - start).total_seconds())
                continue
            code = 2 if open_ else rng.choices((4, 8, 9, 10, 7, 14), (88, 6, 2, 1, 2, 1))[0]
            f.add_session(flow, statuscode=code, machine=rng.choice(self.machines), started=start,
                          completed=None if open_ else end)

    def start(self) -> None:
        self.fake.start()
        self.tap(self.fake, "_serve", lambda path: path.startswith("/api/data/"))

    def stop(self) -> None:
        self.fake.stop()

    def connection(self) -> tuple[dict[str, Any], dict[str, str]]:
        f = self.fake
        return ({"name": "contoso-prod", "url": f.url, "tenant_id": f.tenant_id, "client_id": f.client_id,
                 "client_secret": "env:PA_SECRET", "token_url": f.token_url, "environment": "Finance-prod",
                 "folder_teams": TEAMS}, {"PA_SECRET": f.client_secret})

    def ended_ids(self) -> set[str]:
        ids = {s["flowsessionid"] for s in self.fake.rows("flowsessions") if s["statuscode"] in self.ended_codes}
        ids |= {r["flowrunid"] for r in self.fake.rows("flowruns")}
        return {f"{self.key}:{i}" for i in ids}

    def begin(self, rng: random.Random) -> Any:
        flow = rng.choice(self.flows)
        if flow["category"] == 5:
            return (flow, time.time())
        return self.fake.add_session(flow, statuscode=2, machine=rng.choice(self.machines),
                                     started=datetime.now(timezone.utc))

    def finish(self, run: Any, rng: random.Random) -> None:
        if isinstance(run, tuple):
            flow, began = run
            self.fake.add_flowrun(flow, status=rng.choices(("Success", "Failed", "Cancelled"), (88, 10, 2))[0],
                                  seconds=max(1.0, time.time() - began))
        else:
            self.fake.update_session(run, statuscode=rng.choices((4, 8, 10, 7), (88, 8, 2, 2))[0])


class BluePrism(StandIn):
    key, title, budget, page_size = "blueprism", "Blue Prism", 60, 1000
    why = ("the connection's default budget (Blue Prism documents no limit: the application server is the "
           "estate's own); page size 1,000 (itemsPerPage, the largest the API takes)")

    def __init__(self, seed: int) -> None:
        super().__init__()
        from blueprism_fake import ENDED_STATUSES, FakeBluePrism

        self.fake = FakeBluePrism(seed=seed)
        self.ended_statuses = ENDED_STATUSES

    def fill(self, automations: int, runs: int, anchor: datetime, rng: random.Random) -> None:
        f = self.fake
        self.processes = [f.add_process(name, folder) for folder, name in automation_names(automations)]
        self.resources = [f.add_resource(f"BPRUNTIME{i:03d}", "Working" if i % 3 else "Idle")["name"]
                          for i in range(50)]
        for start, end, open_ in fill_plan(runs, anchor, rng):
            status = "Running" if open_ else rng.choices(("Completed", "Terminated", "Stopped"), (88, 9, 3))[0]
            f.add_session(rng.choice(self.processes), rng.choice(self.resources), status, started=start,
                          ended=None if open_ else end)

    def start(self) -> None:
        self.fake.start()
        self.tap(self.fake, "_serve", lambda path: path.startswith("/api/v7/"))

    def stop(self) -> None:
        self.fake.stop()

    def connection(self) -> tuple[dict[str, Any], dict[str, str]]:
        f = self.fake
        return ({"name": "bp-prod", "url": f.api_url, "auth_url": f.auth_url, "client_id": f.client_id,
                 "client_secret": "env:BP_SECRET", "folder_teams": TEAMS}, {"BP_SECRET": f.client_secret})

    def ended_ids(self) -> set[str]:
        with self.fake._lock:
            return {f"{self.key}:{s['sessionId']}" for s in self.fake.sessions if s["status"] in self.ended_statuses}

    def begin(self, rng: random.Random) -> Any:
        return self.fake.add_session(rng.choice(self.processes), rng.choice(self.resources), "Running",
                                     started=datetime.now(timezone.utc))

    def finish(self, run: Any, rng: random.Random) -> None:
        self.fake.end_session(run, rng.choices(("Completed", "Terminated", "Stopped"), (88, 9, 3))[0])


class AutomationAnywhere(StandIn):
    key, title, budget, page_size = "automationanywhere", "Automation Anywhere", 60, 1000
    why = ("the connection's default budget (no limit is documented for the Control Room API); page size 1,000 "
           "(page.length, the largest the activity list takes)")

    def __init__(self, seed: int) -> None:
        super().__init__()
        from automationanywhere_fake import TERMINAL, FakeControlRoom

        self.fake = FakeControlRoom(seed=seed)
        self.terminal = TERMINAL

    def fill(self, automations: int, runs: int, anchor: datetime, rng: random.Random) -> None:
        f = self.fake
        self.bots = [(f"Bots/{folder}", name) for folder, name in automation_names(automations)]
        self.devices = [f.add_device(f"BOTRUNNER-{i + 1:03d}", "DISCONNECTED" if i % 10 == 9 else "CONNECTED")
                        for i in range(50)]
        statuses = ("COMPLETED", "RUN_FAILED", "RUN_ABORTED", "RUN_TIMED_OUT", "DEPLOY_FAILED")
        for start, end, open_ in fill_plan(runs, anchor, rng):
            folder, bot = rng.choice(self.bots)
            status = "RUNNING" if open_ else rng.choices(statuses, (88, 7, 2, 2, 1))[0]
            f.add_run(bot, folder, status=status, device=rng.choice(self.devices), started=start, ended=end,
                      user=rng.choice(("svc_runner", "svc_ap", "svc_hr")))

    def start(self) -> None:
        self.fake.start()
        self.tap(self.fake, "_serve", lambda path: not path.startswith("/v1/authentication"))

    def stop(self) -> None:
        self.fake.stop()

    def connection(self) -> tuple[dict[str, Any], dict[str, str]]:
        f = self.fake
        return ({"name": "cr-prod", "url": f.url, "username": f.username, "api_key": "env:AA_API_KEY",
                 "folder_teams": {f"Bots/{k}": v for k, v in TEAMS.items()}}, {"AA_API_KEY": f.api_key})

    def ended_ids(self) -> set[str]:
        return {f"{self.key}:{r['id']}" for r in self.fake.rows() if r["status"] in self.terminal}

    def begin(self, rng: random.Random) -> Any:
        folder, bot = rng.choice(self.bots)
        return self.fake.add_run(bot, folder, status="RUNNING", device=rng.choice(self.devices),
                                 started=datetime.now(timezone.utc))

    def finish(self, run: Any, rng: random.Random) -> None:
        self.fake.update_run(run, status=rng.choices(("COMPLETED", "RUN_FAILED", "RUN_ABORTED"), (88, 9, 3))[0])


class Robocorp(StandIn):
    key, title, budget, page_size = "robocorp", "Robocorp", 600, 100
    why = ("chosen here: Control Room documents no limit, and each run that ended unresolved costs two more "
           "requests (its step runs and failed work items), so the default of 60 a minute would take hours over "
           "a day of this estate; page size 100 (`limit`, the largest the stand-in takes)")

    def __init__(self, seed: int) -> None:
        super().__init__()
        from robocorp_fake import ENDED_STATES, FAILURE_TEXTS, FakeControlRoom

        self.fake = FakeControlRoom(workspace_name="Shared Services", seed=seed)
        self.ended_states, self.texts = ENDED_STATES, FAILURE_TEXTS

    def failures(self, rng: random.Random) -> list[dict[str, Any]]:
        kind = rng.choice(("business", "application", "credentials"))
        code, message = rng.choice(self.texts[kind])
        return [{"code": code, "type": "business" if kind == "business" else "application",
                 "message": message.format(n=rng.randint(10000, 99999))}]

    def fill(self, automations: int, runs: int, anchor: datetime, rng: random.Random) -> None:
        f = self.fake
        self.processes = [f.add_process(name) for _folder, name in automation_names(automations)]
        for i in range(20):
            f.add_worker(f"rpa-worker-{i + 1:02d}", "busy" if i % 2 else "idle")
        for start, end, open_ in fill_plan(runs, anchor, rng):
            process = rng.choice(self.processes)
            if open_:
                f.add_run(process, "in_progress", created=start)
                continue
            state = rng.choices(("completed", "unresolved"), (92, 8))[0]
            f.add_run(process, state, created=start, duration=end - start,
                      failures=self.failures(rng) if state == "unresolved" else None,
                      items_done=rng.randint(0, 8))

    def start(self) -> None:
        self.fake.__enter__()
        self.tap(self.fake, "_handle", lambda path: True)

    def stop(self) -> None:
        self.fake.__exit__(None, None, None)

    def connection(self) -> tuple[dict[str, Any], dict[str, str]]:
        f = self.fake
        return ({"name": "rc-prod", "url": f.url, "workspace_id": f.workspace_id, "api_key": "env:RC_KEY",
                 "folder_teams": {"Shared Services/*": "coe"}}, {"RC_KEY": f.api_key})

    def ended_ids(self) -> set[str]:
        return {f"{self.key}:{r['id']}" for r in self.fake.ended_runs()}

    def begin(self, rng: random.Random) -> Any:
        return self.fake.add_run(rng.choice(self.processes), "in_progress")

    def finish(self, run: Any, rng: random.Random) -> None:
        state = rng.choices(("completed", "unresolved"), (92, 8))[0]
        self.fake.end_run(run, state, at=datetime.now(timezone.utc),
                          failures=self.failures(rng) if state == "unresolved" else None, items_done=rng.randint(0, 8))


PLATFORMS: dict[str, type[StandIn]] = {c.key: c for c in (PowerAutomate, BluePrism, AutomationAnywhere, Robocorp)}


class Feeder(threading.Thread):
    """The estate goes on: runs start at `per_day` a day on random automations and end 20 to 90 s
    later. `stop()` starts no more and ends those still running."""

    def __init__(self, stand_in: StandIn, per_day: int, seed: int):
        super().__init__(name="feeder", daemon=True)
        self.stand_in, self.every = stand_in, 86400.0 / max(per_day, 1)
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.open: list[tuple[float, int, Any]] = []  # (end at, order, run)
        self.started = self.ended = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        next_start = time.monotonic()
        while not self.stopped.is_set():
            now = time.monotonic()
            with self.lock:
                while self.open and self.open[0][0] <= now:
                    self.stand_in.finish(heapq.heappop(self.open)[2], self.rng)
                    self.ended += 1
                if now >= next_start:
                    run = self.stand_in.begin(self.rng)
                    heapq.heappush(self.open, (now + self.rng.uniform(20, 90), self.started, run))
                    self.started += 1
                    next_start += self.every
            self.stopped.wait(min(0.25, max(0.0, next_start - time.monotonic())))

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        with self.lock:
            while self.open:
                self.stand_in.finish(heapq.heappop(self.open)[2], self.rng)
                self.ended += 1


def check_exact(agent: Agent, key: str, want: set[str], when: str) -> int:
    got = agent.recorded(key)
    if len(got) != len(set(got)):
        raise RuntimeError(f"{key}, {when}: {len(got) - len(set(got))} run(s) recorded twice")
    if set(got) != want:
        missed, extra = want - set(got), set(got) - want
        raise RuntimeError(f"{key}, {when}: {len(missed)} ended run(s) missed, {len(extra)} not ended recorded")
    return len(got)


def measure_platform(cls: type[StandIn], letters: str, automations: int, runs_per_day: int, window: float,
                     seed: int) -> tuple[list[dict], list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"botwatch-bench-{cls.key}-"))
    s = cls(seed)
    rng = random.Random(seed)
    agent = empty = feeder = None
    try:
        t_setup = time.monotonic()
        s.fill(automations, runs_per_day, datetime.now(timezone.utc), rng)
        s.start()
        fill_s = time.monotonic() - t_setup
        settings, env = s.connection()
        connection = {**settings, "auto_register": True, "interval": f"{INTERVAL_S:g}s",
                      "requests_per_minute": s.budget, "page_size": s.page_size, "history": "1d"}
        want = s.ended_ids()

        # -- first sync --------------------------------------------------------------------
        t0 = time.monotonic()
        agent = Agent(tmp, cls.key, {"platforms": {cls.key: [connection]}}, env)
        empty = Agent(tmp, "empty", {}, {})
        wait_until(lambda: agent.ready() and empty.ready(), "both agents healthy", timeout=120, interval=0.1)

        def synced() -> bool:
            n = len(agent.recorded(cls.key))
            if n > len(want):
                raise RuntimeError(f"{cls.key}: {n} runs recorded, the stand-in has {len(want)} ended")
            return n == len(want)

        # a bound against a hang: three times the budget's pace for what a sync could need, plus slack
        worst = (runs_per_day / s.page_size + 0.25 * runs_per_day + 10) * 60.0 / s.budget
        wait_until(synced, f"the {len(want):,} ended runs in the journal", timeout=3 * worst + 300, interval=0.25)
        sync_s = time.monotonic() - t0
        sync_requests = len(s.requests_since())
        sync_count = check_exact(agent, cls.key, want, "first sync")
        sync_cpu, sync_rss = agent.cpu(), agent.ps.memory_info().rss
        m = agent.metrics()
        bots = sum(1 for k in m if k.startswith("botwatch_bot_info{"))

        # -- steady state --------------------------------------------------------------------
        feeder = Feeder(s, runs_per_day, seed + 1)
        t_steady = time.monotonic()
        feeder.start()
        cpu0 = {"agent": agent.cpu(), "empty": empty.cpu()}
        rss: dict[str, list[int]] = {"agent": [], "empty": []}
        scrapes, scrape_cpu = 0, 0.0
        t_w = next_scrape = time.monotonic()
        while time.monotonic() - t_w < window:
            if time.monotonic() >= next_scrape:
                c = agent.cpu()
                agent.get("/metrics")
                scrape_cpu += agent.cpu() - c
                empty.get("/metrics")
                scrapes += 1
                next_scrape += SCRAPE_EVERY
            for k, a in (("agent", agent), ("empty", empty)):
                rss[k].append(a.ps.memory_info().rss)
            time.sleep(1.0)
        wall = time.monotonic() - t_w
        cpu_pct = {k: 100 * (a.cpu() - cpu0[k]) / wall for k, a in (("agent", agent), ("empty", empty))}
        window_requests = len(s.requests_since(t_w))
        feeder.stop()
        want = s.ended_ids()
        wait_until(lambda: len(agent.recorded(cls.key)) >= len(want), "every ended run recorded",
                   timeout=3 * (INTERVAL_S + 60) + 120)
        time.sleep(INTERVAL_S + 2)  # one more pull: a run recorded twice would show now
        total = check_exact(agent, cls.key, want, "steady state")
        t_end = time.monotonic()
        steady = s.requests_since(t_steady)
        m = agent.metrics()
        parse_errors = m.get(f'botwatch_agent_parse_errors_total{{source="{cls.key}"}}', 0)
        throttled = sum(v for k, v in m.items() if k.startswith("botwatch_agent_controlplane_requests_total{")
                        and 'outcome="throttled"' in k)
    finally:
        if feeder is not None:
            feeder.stopped.set()
        for a in (agent, empty):
            if a is not None:
                a.stop()
        s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    k1, k2, k3, k4 = (f"12{x}" for x in letters)
    floor_s = sync_requests * 60.0 / s.budget
    fig_a = common.figure(
        key=k1, title=f"{s.title}: first sync of {automations:,} automations, {runs_per_day:,} runs over a day: "
                      "agent started → every ended run in its journal, once",
        unit="s", measured_runs=[sync_s], reference_runs=[floor_s],
        reference_title=f"its {sync_requests:,} requests at the budget's pace ({s.budget}/min)", goal=GOAL_SYNC, reps=1)
    fig_a["notes"] += [
        f"{sync_count:,} ended runs recorded, each once, {bots:,} bots registered; {sync_requests:,} API requests "
        f"at a page size of {s.page_size}; the agent's CPU time for it {sync_cpu:.1f} s, its RSS after it "
        f"{sync_rss / MB:.0f} MB",
        f"budget and page size: {s.why}",
    ]
    busiest = busiest_minute(steady)
    fig_b = common.figure(
        key=k2, title=f"{s.title}: steady state, most API requests the stand-in received in any 60 s",
        unit="req", measured_runs=[float(busiest)], reference_runs=[float(s.budget)],
        reference_title="the connection's budget, requests_per_minute", goal=1.0, reps=1)
    fig_b["notes"] += [
        f"{len(steady):,} requests in {(t_end - t_steady) / 60:.1f} min of steady state ({feeder.started} runs "
        f"started, all ended and recorded once: {total:,} runs in the journal); the busiest minute of the whole "
        f"benchmark, first sync included: {busiest_minute(s.requests_since())}; throttled answers: "
        f"{throttled:.0f}; parse errors counted: {parse_errors:.0f}",
    ]
    fig_c = common.figure(
        key=k3, title=f"{s.title}: steady state, agent CPU share of one core (scraped every 15 s)",
        unit="%", measured_runs=[cpu_pct["agent"]], reference_runs=[cpu_pct["empty"]],
        reference_title="the same agent with no connection, same window",
        goal=round(GOAL_CPU_PERCENT / max(cpu_pct["empty"], 0.01), 2), reps=1)
    fig_c["passed"] = cpu_pct["agent"] <= GOAL_CPU_PERCENT
    fig_c["notes"].append(
        f"goal: at most {GOAL_CPU_PERCENT:g} % of one core absolute (the Goal column is that, as a ratio to the "
        f"reference); a {wall:.0f} s window, {scrapes} scrape(s) of each agent ({scrape_cpu / max(scrapes, 1):.2f} s "
        f"of CPU each, {bots:,} bots), {window_requests} API requests; measured {cpu_pct['agent']:.2f} %: "
        f"{'PASS' if fig_c['passed'] else 'MISSED'}; without the scrapes (their CPU time, measured across each "
        f"request, subtracted) {cpu_pct['agent'] - 100 * scrape_cpu / wall:.2f} %")
    peak = {k: max(v) / MB for k, v in rss.items()}
    fig_d = common.figure(
        key=k4, title=f"{s.title}: steady state, agent resident memory, highest sample ({bots:,} bots, "
                      f"{total:,} runs in its journal)",
        unit="MB", measured_runs=[peak["agent"]], reference_runs=[peak["empty"]],
        reference_title="the same agent with no connection, same window", goal=round(GOAL_RSS_MB / peak["empty"], 2),
        reps=1)
    fig_d["passed"] = peak["agent"] <= GOAL_RSS_MB
    fig_d["notes"].append(f"goal: at most {GOAL_RSS_MB:g} MB (10^6 bytes) absolute (the Goal column is that, as a "
                          f"ratio to the reference); measured {peak['agent']:.0f} MB: "
                          f"{'PASS' if fig_d['passed'] else 'MISSED'}")
    detail = (f"- {s.title}: the stand-in filled in {fill_s:.1f} s ({automations:,} automations, {runs_per_day:,} "
              f"runs); the connection: requests_per_minute {s.budget}, page_size {s.page_size}, interval "
              f"{INTERVAL_S:g} s, history 1 d, auto_register")
    return [fig_a, fig_b, fig_c, fig_d], [detail]


def measure(runs: int, reps: int, warmup: int, automations: int = 1000, runs_per_day: int = 100_000,
            window: float = 60.0, platforms: str = ",".join(PLATFORMS)) -> dict:
    chosen = [p.strip() for p in platforms.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PLATFORMS]
    if unknown:
        raise SystemExit(f"--platforms: unknown {', '.join(unknown)} (known: {', '.join(PLATFORMS)})")
    figures: list[dict] = []
    details = [""]
    for i, key in enumerate(PLATFORMS):
        if key not in chosen:
            continue
        letters = "abcdefghijklmnop"[4 * i:4 * i + 4]  # each platform keeps its letters, alone or not
        print(f"  {key} ...", file=sys.stderr, flush=True)
        figs, more = measure_platform(PLATFORMS[key], letters, automations, runs_per_day, window, seed=12 + i)
        figures += figs
        details += more
    details.append("")
    details.append("Each platform's figures are one measurement (a first sync and a steady-state window cannot be "
                   "repeated within minutes); the platforms are measured one after the other, each with a fresh "
                   "stand-in, agent and reference agent.")
    return {"benchmark": "connectors", "figures": figures, "details": details,
            "settings": {"automations": automations, "runs_per_day": runs_per_day, "window": window,
                         "platforms": chosen, "interval_s": INTERVAL_S,
                         "budgets": {k: PLATFORMS[k].budget for k in chosen},
                         "page_sizes": {k: PLATFORMS[k].page_size for k in chosen}}}


def main(argv: list[str] | None = None) -> int:
    def extra(p) -> None:
        p.add_argument("--automations", type=int, default=1000)
        p.add_argument("--runs-per-day", type=int, default=100_000, dest="runs_per_day",
                       help="runs over the day before the start, and the rate of new ones in the steady state")
        p.add_argument("--window", type=float, default=60.0, help="seconds of the steady-state window")
        p.add_argument("--platforms", default=",".join(PLATFORMS), help="comma-separated, of " + ", ".join(PLATFORMS))

    return common.bench_main(__doc__, measure, argv, runs=5, reps=1, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
