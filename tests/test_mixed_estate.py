"""A mixed estate in one agent: UiPath Orchestrator, Power Automate, Blue Prism, Automation
Anywhere and Robocorp connections (the stand-ins of tests/*_fake.py) plus two scripts wrapped with
`botwatch run`, all delivering to one real `botwatch agent`; a real Prometheus scrapes it with the
shipped rules. The estate dashboard's queries, the status page, the CoE report and the inventory
must show every bot of every platform, with its platform and team.

The stack is built once for the module, in two phases, because `rate()` cannot see what came with
a series' first sample: phase 1 gives every automation one successful run, so that each bot is
registered and scraped before anything else happens; phase 2 adds the runs that succeed and fail
(each failure with an error text of the platform that the taxonomy classifies) and runs the two
wrapped scripts as real child processes.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from automationanywhere_fake import FakeControlRoom as FakeA360
from blueprism_fake import FakeBluePrism
from botwatch.commands import stack
from botwatch.dashboards import build
from conftest import BOTWATCH, AgentProcess, free_port, http_get, python_bot, require, wait_for
from orchestrator_fake import FakeOrchestrator
from powerautomate_fake import FakeDataverse
from robocorp_fake import FakeControlRoom as FakeRobocorp

pytestmark = pytest.mark.integration

HANG = 90  # bounds a wait that would otherwise hang; asserts no speed
OWNER = "ana.diaz@example.com"
PA_ENV = "contoso-prod"
ESTATE_UID = "botwatch-estate"
CONNECTIONS = {"orch": "uipath", "pa": "powerautomate", "bp": "blueprism", "a360": "automationanywhere",
               "rc": "robocorp"}
PLATFORMS = (*CONNECTIONS.values(), "python", "shell")


@dataclass
class Bot:
    platform: str
    team: str
    owner: str | None = None
    in_estate: bool = False  # described in the estate file (the others are registered from their platform)
    runs: list[tuple[str, str | None]] = field(default_factory=list)  # (outcome, reason), oldest first

    def failures(self) -> Counter:
        return Counter(reason for outcome, reason in self.runs if outcome == "failure")


# Every bot of the estate: the platforms' automations (one per platform named by a `processes`
# rule onto an estate bot with an owner, the others registered from the platform with their
# folder's team), and the two wrapped scripts.
BOTS: dict[str, Bot] = {
    "invoices-uipath": Bot("uipath", "accounts-payable", OWNER, True),
    "payroll-check": Bot("uipath", "people"),
    "vendor-master-sync": Bot("uipath", "finance"),
    "invoices-pa": Bot("powerautomate", "accounts-payable", OWNER, True),
    "po-approval": Bot("powerautomate", "procurement", "Chen Wei"),
    "order-notification": Bot("powerautomate", "procurement", "Chen Wei"),
    "invoices-bp": Bot("blueprism", "accounts-payable", OWNER, True),
    "sales-order-entry": Bot("blueprism", "sales"),
    "credit-check": Bot("blueprism", "finance"),
    "invoices-a360": Bot("automationanywhere", "accounts-payable", OWNER, True),
    "shipment-tracker": Bot("automationanywhere", "logistics"),
    "month-end-close": Bot("automationanywhere", "finance"),
    "invoices-rc": Bot("robocorp", "accounts-payable", OWNER, True),
    "expense-audit": Bot("robocorp", "finance-ops"),
    "nightly-export": Bot("python", "finance", "data-team@example.com", True),
    "share-cleanup": Bot("shell", "it-ops", "it-ops@example.com", True),
}
TEAMS = sorted({b.team for b in BOTS.values()})
# A Robocorp process no rule names, with auto_register off: listed, its runs not recorded.
UNREGISTERED = ("Payroll Export", "robocorp")

UI_DRIFT_UIPATH = ("UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element corresponding to "
                   "this selector: <wnd app='saplogon.exe' title='SAP Easy Access' />")
BUSINESS_UIPATH = "UiPath.Core.BusinessRuleException: Employee 4711 has no cost centre"
UI_DRIFT_PA = ("ActionFailed", "Failed to click UI element 'Button \\'Post invoice\\'' in window 'SAP Easy Access'.")
CREDENTIALS_PA = ("ActionFailed", "Logon failed for user 'svc_rpa_01': the user name or password is incorrect.")
CREDENTIALS_A360 = "Logon failed for user 'svc_ap': unknown user name or bad password."


class Platforms:
    """The five stand-ins, their automations and a ledger of the runs they hold per bot."""

    def __init__(self, stack_: contextlib.ExitStack):
        self.orch = stack_.enter_context(FakeOrchestrator(seed=1))
        self.pa = stack_.enter_context(FakeDataverse(seed=2))
        self.bp = stack_.enter_context(FakeBluePrism(seed=3))
        self.a360 = stack_.enter_context(FakeA360(seed=4))
        self.rc = stack_.enter_context(FakeRobocorp(workspace_name="Finance Automation", seed=5))
        o = self.orch
        finance, hr = o.add_folder("Finance"), o.add_folder("HR")
        self.uipath = {"invoices-uipath": (finance, o.add_release(finance, "Invoice Recon")),
                       "payroll-check": (hr, o.add_release(hr, "Payroll Check")),
                       "vendor-master-sync": (finance, o.add_release(finance, "Vendor Master Sync"))}
        chen = self.pa.add_user("Chen Wei", "chen.wei@example.com")
        self.flows = {"invoices-pa": self.pa.add_flow("Invoice Posting SAP", owner=self.pa.add_user("Ana Diaz")),
                      "po-approval": self.pa.add_flow("PO Approval", owner=chen),
                      "order-notification": self.pa.add_flow("Order Notification", category=5, owner=chen)}
        self.bp_processes = {"invoices-bp": self.bp.add_process("Invoice Processing", "Finance"),
                             "sales-order-entry": self.bp.add_process("Sales Order Entry", "Sales"),
                             "credit-check": self.bp.add_process("Credit Check", "Finance")}
        self.a360_bots = {"invoices-a360": ("AP Invoice Bot", "Bots/Finance"),
                          "shipment-tracker": ("Shipment Tracker", "Bots/Logistics"),
                          "month-end-close": ("Month End Close", "Bots/Finance")}
        self.device = self.a360.add_device("BOTRUNNER-01")
        self.rc_processes = {"invoices-rc": self.rc.add_process("Supplier Invoice Intake"),
                             "expense-audit": self.rc.add_process("Expense Audit"),
                             UNREGISTERED[0]: self.rc.add_process(UNREGISTERED[0])}

    def run(self, bot: str, outcome: str = "success", reason: str | None = None, **how) -> None:
        """A run of `bot`'s automation that ends now, as its platform records it."""
        now = datetime.now(timezone.utc)
        platform = BOTS[bot].platform if bot in BOTS else UNREGISTERED[1]
        ok = outcome == "success"
        if platform == "uipath":
            folder, release = self.uipath[bot]
            self.orch.add_job(folder, release, state="Successful" if ok else "Faulted", info=how.get("info"))
        elif platform == "powerautomate":
            flow = self.flows[bot]
            if flow["category"] == 5:
                self.pa.add_flowrun(flow, status="Success" if ok else "Failed", error=how.get("error"), seconds=40)
            else:
                self.pa.add_session(flow, statuscode=4 if ok else 8, error=how.get("error"))
        elif platform == "blueprism":
            self.bp.add_session(self.bp_processes[bot], "ROBOT01", "Completed" if ok else "Terminated",
                                failure=how.get("failure"))
        elif platform == "automationanywhere":
            name, folder = self.a360_bots[bot]
            self.a360.add_run(name, folder, status=how.get("status", "COMPLETED"), device=self.device,
                              started=now - timedelta(seconds=60), ended=now, message=how.get("message"))
        else:
            run = self.rc.add_run(self.rc_processes[bot], "in_progress", created=now - timedelta(seconds=90))
            self.rc.end_run(run, "completed" if ok else "unresolved", at=now, failures=how.get("failures"))
        if bot in BOTS:
            BOTS[bot].runs.append((outcome, reason))

    def phase1(self) -> None:
        """One successful run of every automation: every bot registered (and scraped) before phase 2."""
        for bot, b in BOTS.items():
            if b.platform in CONNECTIONS.values():
                self.run(bot)
        self.run(UNREGISTERED[0])

    def phase2(self) -> None:
        """Successes and failures, the last run of one bot per platform a failure."""
        self.run("vendor-master-sync")
        self.run("payroll-check", "failure", "business", info=BUSINESS_UIPATH)
        self.run("invoices-uipath", "failure", "ui_drift", info=UI_DRIFT_UIPATH)
        self.run("invoices-pa", "failure", "ui_drift", error=UI_DRIFT_PA)
        self.run("po-approval", "failure", "credentials", error=CREDENTIALS_PA)
        self.run("order-notification")
        self.run("invoices-bp", "failure", "ui_drift", failure=0)  # "Could not find the user-interface (UI) element"
        self.run("sales-order-entry", "failure", "business", failure=1)  # a Business Exception
        self.run("credit-check")
        self.run("invoices-a360", "failure", "credentials", status="RUN_FAILED", message=CREDENTIALS_A360)
        self.run("shipment-tracker", "failure", "timeout", status="RUN_TIMED_OUT")
        self.run("month-end-close", "failure", "killed", status="RUN_ABORTED")
        self.run("month-end-close")
        self.run("invoices-rc", "failure", "business", failures=[
            {"code": "VENDOR_BLOCKED", "type": "business", "message": "Vendor 4711 is blocked for payment"}])
        self.run("expense-audit", "failure", "credentials", failures=[
            {"code": "LOGIN_FAILED", "type": "application", "message": "Logon failed for user 'svc_rpa'"}])
        self.run(UNREGISTERED[0])

    def secrets(self) -> dict[str, str]:
        return {"UIPATH_SECRET": self.orch.client_secret, "PA_SECRET": self.pa.client_secret,
                "BP_SECRET": self.bp.client_secret, "A360_KEY": self.a360.api_key, "RC_KEY": self.rc.api_key}

    def estate(self, port: int, journal: Path) -> str:
        o, pa, bp, aa, rc = self.orch, self.pa, self.bp, self.a360, self.rc
        rule = "{{process: '{}', folder: '{}', bot: {}}}".format
        estate_bots = "".join(
            f"  - {{name: {name}, team: {b.team}, owner: {b.owner}"
            + (f", platform: {b.platform}" if b.platform in ("python", "shell") else "") + "}\n"
            for name, b in BOTS.items() if b.in_estate)
        return (
            f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {journal}\n  sweep_interval: 1s\n"
            "platforms:\n"
            f"  uipath:\n    - name: orch\n      url: '{o.url}'\n      organization: {o.org}\n"
            f"      tenant: {o.tenant}\n      client_id: {o.client_id}\n      client_secret: env:UIPATH_SECRET\n"
            f"      interval: 1s\n      history: 1d\n      auto_register: true\n"
            f"      folder_teams: {{Finance: finance, HR: people}}\n"
            f"      processes: [{rule('Invoice Recon', 'Finance', 'invoices-uipath')}]\n"
            f"  powerautomate:\n    - name: pa\n      url: '{pa.url}'\n      tenant_id: {pa.tenant_id}\n"
            f"      client_id: {pa.client_id}\n      client_secret: env:PA_SECRET\n      token_url: '{pa.token_url}'\n"
            f"      environment: {PA_ENV}\n      interval: 1s\n      history: 1d\n      auto_register: true\n"
            f"      folder_teams: {{'contoso-*': procurement}}\n"
            f"      processes: [{rule('Invoice Posting.*', PA_ENV, 'invoices-pa')}]\n"
            f"  blueprism:\n    - name: bp\n      url: '{bp.api_url}'\n      auth_url: '{bp.auth_url}'\n"
            f"      client_id: {bp.client_id}\n      client_secret: env:BP_SECRET\n      interval: 1s\n"
            f"      history: 1d\n      auto_register: true\n      folder_teams: {{Finance: finance, Sales: sales}}\n"
            f"      processes: [{rule('Invoice Processing', 'Finance', 'invoices-bp')}]\n"
            f"  automationanywhere:\n    - name: a360\n      url: '{aa.url}'\n      username: {aa.username}\n"
            f"      api_key: env:A360_KEY\n      interval: 1s\n      history: 1d\n      auto_register: true\n"
            f"      folder_teams: {{'Bots/Finance*': finance, 'Bots/Logistics*': logistics}}\n"
            f"      processes: [{rule('AP Invoice Bot', 'Bots/Finance', 'invoices-a360')}]\n"
            f"  robocorp:\n    - name: rc\n      url: '{rc.url}'\n      workspace_id: {rc.workspace_id}\n"
            f"      api_key: env:RC_KEY\n      interval: 1s\n      history: 1d\n"
            f"      folder_teams: {{'*/Expense*': finance-ops}}\n"
            f"      processes: [{rule('Supplier Invoice.*', 'Finance Automation/.*', 'invoices-rc')}, "
            f"{rule('Expense Audit', '.*', 'expense-audit')}]\n"
            "bots:\n" + estate_bots)


# -- reading /metrics and Prometheus ---------------------------------------------------------------

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"')


def samples(m: dict[str, float], name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for key, value in m.items():
        match = _SAMPLE.match(key)
        if match and match.group(1) == name:
            out.append((dict(_LABEL.findall(match.group(2) or "")), value))
    return out


def per_bot(m: dict[str, float], name: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for labels, value in samples(m, name):
        totals[labels["bot"]] += value
    return dict(totals)


def promql(url: str, expr: str) -> dict:
    """Prometheus' answer to an instant query, errors included."""
    req = urllib.request.Request(url + "/api/v1/query", data=urllib.parse.urlencode({"query": expr}).encode(),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}") or {"status": "error", "error": f"HTTP {e.code}"}


def result(url: str, expr: str) -> list[dict]:
    answer = promql(url, expr)
    assert answer.get("status") == "success", (expr, answer)
    return answer["data"]["result"]


def scalar(url: str, expr: str) -> float | None:
    found = result(url, expr)
    return float(found[0]["value"][1]) if found else None


def estate_queries(**variables: str) -> dict[str, str]:
    return {title: expr for uid, title, expr in build.iter_queries(variables or None) if uid == ESTATE_UID}


# -- the stack ---------------------------------------------------------------------------------------

@dataclass
class Mixed:
    agent: AgentProcess
    prometheus: stack.Server
    config: Path
    env: dict[str, str]
    metrics: dict[str, float]  # the agent's, once every run of the ledger is counted


def wrapped(env: dict[str, str], agent_url: str, bot: str, *cmd: str) -> int:
    return subprocess.run([*BOTWATCH, "run", "--bot", bot, "--agent", agent_url, "--", *cmd], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    prometheus_bin = require(stack.PROMETHEUS, "prometheus")
    promtool = require("promtool", "prometheus")
    check = subprocess.run([promtool, "check", "rules", *map(str, stack.rule_files())], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    for bot in BOTS.values():
        bot.runs.clear()
    with contextlib.ExitStack() as stack_:
        fakes = Platforms(stack_)
        fakes.phase1()
        port = free_port()
        config = tmp / "botwatch.yaml"
        config.write_text(fakes.estate(port, tmp / "journal.db"), encoding="utf-8")
        env = {**os.environ, **fakes.secrets()}
        for name in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL"):
            env.pop(name, None)
        agent = AgentProcess(config, port, env)
        stack_.callback(agent.stop)
        agent.start()
        prom_config = stack.write_prometheus_config(tmp / "prometheus.yml", [f"127.0.0.1:{port}"],
                                                    scrape_interval="1s")
        prom = stack.prometheus(prometheus_bin, prom_config, tmp / "tsdb", f"127.0.0.1:{free_port()}",
                                tmp / "prometheus.log")
        stack_.callback(prom.stop)
        prom.start().wait_ready(timeout=HANG)

        # phase 1: every bot registered by the agent, then scraped by Prometheus
        wait_for(lambda: set(per_bot(agent.metrics(), "botwatch_bot_info")) == set(BOTS), timeout=HANG,
                 interval=0.2, what="every bot registered from its platform")
        registered = time.time()
        wait_for(lambda: scalar(prom.url, "count(botwatch_runs_total)") == len(BOTS)
                 and (scalar(prom.url, "min(timestamp(botwatch_runs_total))") or 0) > registered,
                 timeout=HANG, interval=0.2, what="Prometheus to scrape every bot")

        # phase 2: runs that succeed and fail on every platform, and the two wrapped scripts
        fakes.phase2()
        run_env = {**env, "BOTWATCH_SPOOL": str(tmp / "spool.db"), "BOTWATCH_DELIVERY_PATIENCE": "60"}
        assert wrapped(run_env, agent.url, "nightly-export", sys.executable, "-c", "print('exported 120 rows')") == 0
        BOTS["nightly-export"].runs.append(("success", None))
        assert wrapped(run_env, agent.url, "share-cleanup", *python_bot(
            "import sys; print('Logon failed for user svc_share', file=sys.stderr); sys.exit(3)")) == 3
        BOTS["share-cleanup"].runs.append(("failure", "credentials"))
        want = {name: len(b.runs) for name, b in BOTS.items()}
        m = wait_for(lambda: (lambda m: m if per_bot(m, "botwatch_runs_total") == want else None)(agent.metrics()),
                     timeout=HANG, interval=0.2, what="every run of every platform counted by the agent")
        counted = time.time()
        wait_for(lambda: (scalar(prom.url, "min(timestamp(botwatch_runs_total))") or 0) > counted
                 and len(result(prom.url, "team:botwatch_run_success:ratio1h")) == len(TEAMS),
                 timeout=HANG, interval=0.2, what="Prometheus to scrape the runs and record every team's ratio")
        yield Mixed(agent, prom, config, env, m)


# -- the agent's /metrics ---------------------------------------------------------------------------

def test_every_bot_has_its_platform_team_and_owner_and_the_runs_and_failures_its_platform_holds(mixed):
    m = mixed.metrics
    info = {labels["bot"]: labels for labels, value in samples(m, "botwatch_bot_info") if value == 1}
    assert set(info) == set(BOTS)
    for name, bot in BOTS.items():
        assert (info[name]["platform"], info[name]["team"]) == (bot.platform, bot.team), (name, info[name])
        if bot.owner:
            assert info[name]["bot_owner"] == bot.owner, (name, info[name])
    assert {labels["platform"] for labels in info.values()} == set(PLATFORMS)
    runs = per_bot(m, "botwatch_runs_total")
    failures = defaultdict(Counter)
    for labels, value in samples(m, "botwatch_run_failures_total"):
        if value:
            failures[labels["bot"]][labels["reason"]] += value
    for name, bot in BOTS.items():
        assert runs[name] == len(bot.runs), name
        assert failures[name] == bot.failures(), (name, dict(failures[name]))
    # each platform's failures carry reasons of its own error texts: five kinds across the estate
    assert {r for b in BOTS.values() for r in b.failures()} == {"ui_drift", "business", "credentials", "timeout",
                                                                 "killed"}
    # the automation no rule names is not a bot: its runs are not counted
    assert not any(labels["bot"] == "payroll-export" for labels, _ in samples(m, "botwatch_runs_total"))


def test_every_connection_is_up(mixed):
    up = {(labels["connection"], labels["platform"]): value
          for labels, value in samples(mixed.agent.metrics(), "botwatch_agent_controlplane_up")}
    assert up == {(name, platform): 1 for name, platform in CONNECTIONS.items()}


# -- the estate dashboard on a real Prometheus ------------------------------------------------------

def test_every_estate_dashboard_query_is_accepted(mixed):
    refused = {}
    for title, expr in estate_queries().items():
        answer = promql(mixed.prometheus.url, expr)
        if answer.get("status") != "success":
            refused[title] = answer.get("error", answer)
    assert not refused, refused


def test_the_estate_dashboard_shows_every_team_and_every_platform(mixed):
    url, queries = mixed.prometheus.url, estate_queries()
    # the team variable offers every team; the bots it reads carry every platform
    info = [r["metric"] for r in result(url, queries["variable team"])]
    assert {i["team"] for i in info} == set(TEAMS)
    assert {i["bot"]: i["platform"] for i in info} == {name: b.platform for name, b in BOTS.items()}
    # the success ratio of every team, below 1 where its bots failed
    ratios = {r["metric"]["team"]: float(r["value"][1]) for r in result(url, queries["Success ratio by team (1 h)"])}
    assert set(ratios) == set(TEAMS)
    for team in TEAMS:
        failed = any(b.failures() for b in BOTS.values() if b.team == team)
        assert (ratios[team] < 1) == failed, (team, ratios[team])
    # the bots of every platform, and of one team's the platforms it runs on
    by_platform = {r["metric"]["platform"]: float(r["value"][1]) for r in result(url, queries["Bots by platform"])}
    assert by_platform == Counter(b.platform for b in BOTS.values())
    finance = {r["metric"]["platform"]: float(r["value"][1])
               for r in result(url, estate_queries(team="finance")["Bots by platform"])}
    assert finance == Counter(b.platform for b in BOTS.values() if b.team == "finance")
    # events of every platform's source and of the wrapper
    sources = {r["metric"]["source"] for r in result(url, queries["Agent events per second by source"])
               if float(r["value"][1]) > 0}
    assert set(CONNECTIONS.values()) | {"wrapper"} <= sources, sources
    # failures by reason: every reason the platforms' texts were classified to
    by_reason = {r["metric"]["reason"]: float(r["value"][1])
                 for r in result(url, queries["Failures per hour by reason"])}
    assert {reason for reason, rate in by_reason.items() if rate > 0} == {
        r for b in BOTS.values() for r in b.failures()}


def test_the_traffic_lights_and_state_counts_of_each_team_hold_its_bots_of_every_platform(mixed):
    url = mixed.prometheus.url
    state = {labels["bot"]: labels["state"] for labels, value in samples(mixed.agent.metrics(), "botwatch_bot_state")
             if value == 1}
    failing = {name for name, b in BOTS.items() if b.runs[-1][0] == "failure"}
    assert {n for n, s in state.items() if s == "failing"} == failing
    assert {BOTS[n].platform for n in failing} == set(PLATFORMS) - {"python"}
    lights = {r["metric"]["bot"]: float(r["value"][1]) for r in result(url, estate_queries()["Bot traffic lights"])}
    assert set(lights) == set(BOTS)
    assert {n for n, code in lights.items() if code == 4} == failing  # 4: failing
    for team in TEAMS:
        queries = estate_queries(team=team)
        mine = {name for name, b in BOTS.items() if b.team == team}
        assert {r["metric"]["bot"] for r in result(url, queries["Bot traffic lights"])} == mine, team
        (count,) = result(url, queries["Bots failing"])
        assert float(count["value"][1]) == len(mine & failing), team
    # the accounts-payable team's bots run on all five control planes
    ap = estate_queries(team="accounts-payable")
    platforms = {r["metric"]["platform"] for r in result(url, ap["variable bot"])}
    assert platforms == set(CONNECTIONS.values())


# -- the status page ---------------------------------------------------------------------------------

def test_the_status_page_lists_every_bot_with_its_platform_and_team(mixed):
    status, body = http_get(mixed.agent.url + "/")
    assert status == 200
    page = body.decode()
    cards = {}
    for article in re.findall(r"<article class='bot[^>]*>.*?</article>", page, re.S):
        name = re.search(r"data-bot='([^']*)'", article).group(1)
        meta = re.search(r"<p class='muted meta'>(.*?)</p>", article, re.S)
        team = re.search(r"<dt>team</dt><dd>(.*?)</dd>", article, re.S).group(1)
        cards[html.unescape(name)] = (html.unescape(meta.group(1)).split(" · ")[0] if meta else None,
                                      html.unescape(team))
    assert cards == {name: (b.platform, b.team) for name, b in BOTS.items()}


# -- the CoE report and the inventory ----------------------------------------------------------------

def md_table(text: str, heading: str) -> list[list[str]]:
    """The rows of the table under `## heading` (the header row first)."""
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows if not row.startswith("|---")]


def test_the_coe_report_has_every_bot_and_a_row_per_platform(mixed):
    report = subprocess.run([*BOTWATCH, "report", "--format", "md", "--out", "-", "--config", str(mixed.config),
                             "--agent", mixed.agent.url], capture_output=True, text=True, timeout=120, env=mixed.env)
    assert report.returncode == 0, report.stderr
    head, *rows = md_table(report.stdout, "Bots")
    assert head[:3] == ["bot", "team", "platform"] and head[4] == "runs" and head[7] == "failures"
    bots = {r[0]: r for r in rows}
    assert set(bots) == set(BOTS)
    for name, b in BOTS.items():
        assert bots[name][1:3] == [b.team, b.platform], bots[name]
        assert (int(bots[name][4]), int(bots[name][7])) == (len(b.runs), sum(b.failures().values())), bots[name]
    head, *rows = md_table(report.stdout, "By platform")
    assert head[:2] == ["platform", "bots"]
    by_platform = {r[0]: int(r[1]) for r in rows}
    assert by_platform == Counter(b.platform for b in BOTS.values())
    head, *rows = md_table(report.stdout, "By team")
    assert {r[0]: int(r[1]) for r in rows} == Counter(b.team for b in BOTS.values())
    unregistered = report.stdout.split("## Unregistered bots", 1)[1].split("\n## ", 1)[0]
    assert UNREGISTERED[0] in unregistered and "rc: folder Finance Automation/Payroll Export" in unregistered


def test_the_inventory_lists_every_automation_registered_or_not(mixed):
    inventory = subprocess.run([*BOTWATCH, "inventory", "--format", "json", "--config", str(mixed.config),
                                "--agent", mixed.agent.url], capture_output=True, text=True, timeout=120,
                               env=mixed.env)
    assert inventory.returncode == 0, inventory.stderr
    rows = {r["bot"]: r for r in json.loads(inventory.stdout)}
    assert set(rows) == set(BOTS) | {UNREGISTERED[0]}
    for name, b in BOTS.items():
        row = rows[name]
        assert (row["registered"], row["platform"], row["team"]) == (b.in_estate, b.platform, b.team), row
        assert row["success_ratio"] == pytest.approx(1 - sum(b.failures().values()) / len(b.runs), abs=1e-4), row
    shadow = rows[UNREGISTERED[0]]
    assert (shadow["registered"], shadow["platform"]) == (False, UNREGISTERED[1]), shadow

