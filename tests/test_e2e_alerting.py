"""End to end: a real agent, a real Prometheus with the shipped rule files and a real Alertmanager
with the shipped routing, fed an estate whose bots succeed, fail, recover, hang and stop running,
and one whose screen drifts from its baseline snapshot before any of its runs fails.

The stack (one per module, all on 127.0.0.1): `botwatch agent`; Prometheus scraping it as job
`botwatch` every second, evaluating `alerts/*.rules.yml` every second and sending to the
Alertmanager; the Alertmanager with the route tree, grouping and inhibitions of
`alerts/alertmanager.yml`, each receiver posting to a webhook of this module
(`/<receiver name>`) with group and repeat intervals of seconds; a second `botwatch` target that
nothing answers on (an agent that is down). Both servers are started by `botwatch.commands.stack`, the code
`botwatch demo` uses.

What "returns data" means, expression by expression:

- Every query of every dashboard panel and variable (`build.iter_queries`, Grafana's one-hour
  globals, variables on "All") and every recording rule's expression is evaluated now through
  /api/v1/query: it must be accepted and return at least one sample.
- Alert rules: the scenario makes most alerts fire (FIRING): for each, its full expression must
  return data and Prometheus must hold it in ALERTS (pending for rules with `for:`). The
  conditions of a few alerts are legitimately false in any sound scenario (QUIET, each with
  its reason, e.g. "there is an agent" for BotwatchAgentAbsent); their comparison cannot be
  removed mechanically (`absent`, `or`, `unless`), so for them every vector selector inside the
  expression must return data: their inputs exist under the names and labels the rule expects.
  Their conditions are proven by the promtool unit tests (tests/test_alert_rules.py). A new
  alert must be put in one of the two lists.

There is no list of expressions allowed to stay empty: every metric the dashboards and rules read
is exported, and the scenario gives each data. The UI drift ones (`botwatch_ui_drift_score`,
`botwatch_ui_baseline_timestamp_seconds`, `botwatch_ui_declared_selector_matches`) come from
vendor-portal, which declares the selectors of its invoice screen and posts two HTML snapshots to
`/api/v1/snapshots/vendor-portal/invoice`: the baseline, then the page with the submit button
renamed and moved, which scores at or above its `drift_warning` with the declared selector
matching nothing.

The UI-drift proof point: the drifting bot's `BotUiDriftHigh` and `BotUiDeclaredSelectorBroken`
reach its team's webhook with its bot, team and screen labels while Prometheus holds no failed run
of it (its `botwatch_run_failures_total` sum is 0 at the time each notification is received);
only after that its first run fails (reason `ui_drift`), and the `BotFailing` of that failure is
received later, as `BotRunFailed` fires later in Prometheus.

Range functions need samples before they have data, so the test polls every expression until it
has data, each wait bounded by a generous timeout that only stops a hang. The slowest is the
dashboards' mean time to recovery: its subquery `[1h:1m]` samples at whole minutes, so it has
data once a minute boundary has passed since Prometheus' first scrape.

History that a fresh Prometheus cannot have: `bot:botwatch_run_duration_seconds:baseline7d` reads
the seven days before the last six hours. Two hours of a bot's run durations from eight hours ago
are backfilled into the TSDB before Prometheus starts (`promtool tsdb create-blocks-from
openmetrics`), with the labels the live scrape gives; the bot's live runs take three times as
long, so BotDurationRegression fires.

`increase()` cannot see an increment that came with a series' first sample. The agent exports its
dropped-event and parse-error counters at 0 for every source from its start, and all the UI
counters of a screen at once; the UI look-up counters of a new screen appear with its first
look-up, so the scenario makes them exist and be scraped before the look-ups that fail or heal.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from botwatch.commands import stack
from botwatch.dashboards import build
from conftest import AgentProcess, LocalHTTPServer, free_port, http_post_json, require, wait_for
from orchestrator_fake import FakeOrchestrator
from promql import selectors

PING_KEY = "e2e-ping-key"
MAX_BATCH = 20  # the agent's event batch limit here, so that a larger batch is dropped
HANG = 120.0  # generous bound on each wait: it stops a hang, it asserts no speed

HOURLY = {"every": "1h", "grace": "1h"}  # never late while the tests run
ANA, LI, SAM = "ana.diaz@example.com", "li.wei@example.com", "sam.okafor@example.com"
BOTS = {
    # succeeds, three times slower than its history; UI look-ups that fail and that heal; one of its
    # runs processes fewer work items than its min_items: an empty run
    "invoice-recon": {"team": "finance", "owner": ANA, "criticality": "high", "lifecycle": "production",
                      "platform": "uipath", **HOURLY, "max_runtime": "10m", "min_items": 5},
    # fails every run on credentials: failing, severity warning
    "supplier-portal": {"team": "procurement", "owner": LI, "criticality": "medium", "lifecycle": "certified",
                        "platform": "uipath", **HOURLY},
    # failed on a UI selector: failing, severity critical
    "ledger-close": {"team": "finance", "owner": ANA, "criticality": "high", "lifecycle": "production",
                     "platform": "blueprism", **HOURLY},
    # left alone until its test makes it fail and recover
    "order-import": {"team": "procurement", "owner": LI, "criticality": "high", "lifecycle": "certified",
                     "platform": "powerautomate", **HOURLY, "failure_threshold": 2, "recovery_threshold": 2},
    # runs once, then stops running: down, severity warning
    "weekly-report": {"team": "controlling", "owner": SAM, "criticality": "low", "lifecycle": "prototype",
                      "platform": "excel", "every": "2s", "grace": "1s"},
    # never runs: down, severity critical
    "nightly-ledger": {"team": "finance", "owner": ANA, "criticality": "high", "lifecycle": "production",
                       "platform": "robotframework", "every": "2s", "grace": "1s"},
    # a run that started and never ends: hung
    "export-sync": {"team": "controlling", "owner": SAM, "criticality": "medium", "lifecycle": "certified",
                    "platform": "python", **HOURLY, "max_runtime": "1s"},
    # failed, then recovered: a failing episode for the recovery panels
    "mail-triage": {"team": "controlling", "owner": SAM, "criticality": "low", "lifecycle": "production",
                    "platform": "shell", **HOURLY},
    # declares the selectors of its invoice screen, whose snapshots drift (the submit button renamed
    # and moved) while its runs still succeed: its team is warned before the first failed run
    "vendor-portal": {"team": "procurement", "owner": LI, "criticality": "medium", "lifecycle": "production",
                      "platform": "python", **HOURLY,
                      "ui": {"drift_warning": 0.3, "screens": {"invoice": {"selectors": {
                          "submit": "#btnSubmit", "amount": "input[name=amount]"}}}}},
}
DRIFTING, DRIFTING_SCREEN = "vendor-portal", "invoice"


def invoice_page(submit: str = '<button id="btnSubmit" class="btn" type="submit">Submit</button>',
                 footer: str = "") -> bytes:
    """vendor-portal's invoice screen; in the drifted one the submit button is renamed, in the footer."""
    return ("<!doctype html><html><head><title>Invoices</title></head><body>"
            "<nav><a href='/'>Home</a><a href='/invoices'>Invoices</a></nav>"
            "<main><h1>New invoice</h1><form id='invoice'>"
            "<label for='amount'>Amount</label><input id='amount' name='amount' type='text'>"
            "<label for='due'>Due date</label><input id='due' name='due' type='date'>"
            f"{submit}</form></main><footer>{footer}</footer></body></html>").encode()

# Alerts whose condition the scenario makes true (or pending, for rules with `for:`).
FIRING = {
    "BotRunFailed", "BotFailing", "BotDown", "BotHung", "BotFailureRatioHigh1h", "BotFailureRatioHigh6h",
    "BotDurationRegression", "BotUiDriftHigh", "BotUiDeclaredSelectorBroken", "BotUiSelectorBroken",
    "BotUiHealedLookupsRising", "BotCredentialFailures", "BotwatchAgentDown", "BotwatchEventsDropped",
    "BotRunsStuck", "BotwatchControlPlaneDown", "BotwatchQueueBacklogGrowing", "BotwatchQueueItemsOutOfSla",
    "BotwatchRobotDisconnected", "BotRunsEmpty",
}
# Alerts whose condition is false in this scenario, and why.
QUIET = {
    "BotwatchAgentAbsent": "it fires only when Prometheus has no target of job botwatch at all; this one has two",
    "BotwatchAgentNotScraped": "both targets are scraped every second and none is dropped from the configuration",
    "BotwatchSpoolBacklog": "runs are delivered straight to the agent: no spool reports runs waiting",
    "BotwatchUnregisteredBots": "shadow bots are processes of RPA runtimes outside the estate; none runs here",
}


def load_rules() -> list[dict]:
    """Every rule of the shipped rule files, with the name of its file."""
    return [{**rule, "file": path.name} for path in stack.rule_files()
            for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


RULES = load_rules()


# -- the webhook every receiver posts to -----------------------------------------------------------

class Received(NamedTuple):
    notification: dict  # the whole body Alertmanager posted
    alert: dict  # the alert of interest in it
    at: float  # when the webhook received it (time.time())


class Webhook:
    """An HTTP server on 127.0.0.1 that records every notification POSTed to it."""

    def __init__(self):
        self.received: list[tuple[str, dict, float]] = []  # (path, JSON body, time.time() of receipt)
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                with hook._lock:
                    hook.received.append((self.path, json.loads(body), at))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._http = LocalHTTPServer(Handler).start()
        self.url = self._http.url

    def find(self, receiver: str, alertname: str, bot: str, status: str) -> Received | None:
        """The first notification to `receiver` holding that alert in `status`."""
        with self._lock:
            received = list(self.received)
        for path, body, at in received:
            if path != f"/{receiver}":
                continue
            for alert in body.get("alerts", []):
                labels = alert["labels"]
                if labels.get("alertname") == alertname and labels.get("bot") == bot and alert["status"] == status:
                    return Received(body, alert, at)
        return None

    def stop(self):
        self._http.stop()


# -- the stack ----------------------------------------------------------------------------------------

@dataclass
class Stack:
    agent: AgentProcess
    prometheus: stack.Server
    alertmanager: stack.Server
    webhook: Webhook
    orchestrator: FakeOrchestrator

    def query(self, expr: str, at: float | None = None) -> dict:
        """/api/v1/query now (or at time `at`); the JSON answer, errors included."""
        data = urllib.parse.urlencode({"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})).encode()
        req = urllib.request.Request(self.prometheus.url + "/api/v1/query", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b'{"status": "error", "error": "empty answer"}')

    def has_data(self, expr: str) -> bool:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return bool(answer["data"]["result"])

    def ping(self, bot: str, action: str = "", body: str | None = None, rid: str | None = None,
             key: str = PING_KEY) -> int:
        return ping(self.agent.url, bot, action, body, rid, key)

    def post_snapshot(self, bot: str, screen: str, page: bytes) -> dict:
        """POST an HTML snapshot to the agent; its drift report."""
        req = urllib.request.Request(f"{self.agent.url}/api/v1/snapshots/{bot}/{screen}", data=page, method="POST",
                                     headers={"Content-Type": "text/html", "X-Botwatch-Key": PING_KEY})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
            return json.loads(r.read())

    def post_events(self, events: list[dict]) -> int:
        status, _ = http_post_json(self.agent.url + "/api/v1/events", {"events": events},
                                   headers={"X-Botwatch-Key": PING_KEY})
        return status

    def scraped(self, selector: str) -> None:
        """Wait until Prometheus holds a sample of `selector`."""
        wait_for(lambda: self.has_data(selector), timeout=HANG, interval=0.2, what=f"Prometheus to scrape {selector}")


def ping(agent_url: str, bot: str, action: str = "", body: str | None = None, rid: str | None = None,
         key: str = PING_KEY) -> int:
    """A check-in (GET, or POST with a body); the HTTP status."""
    url = f"{agent_url}/ping/{key}/{bot}" + (f"/{action}" if action else "") + (f"?rid={rid}" if rid else "")
    req = urllib.request.Request(url, data=body.encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def estate(port: int, journal: Path, orchestrator: FakeOrchestrator, dead_target: str) -> dict:
    """The bots of the story; and two Orchestrator connections: one answers (a job of vendor-sync
    waits to start for two hours), one never does (its port is bound, nothing listens)."""
    fake = orchestrator
    return {"agent": {"listen": f"127.0.0.1:{port}", "journal": str(journal), "sweep_interval": "1s",
                      "ping_key": PING_KEY, "limits": {"max_batch": MAX_BATCH}},
            "bots": [{"name": name, **settings, "runbook": f"https://wiki.example.com/bots/{name}"}
                     for name, settings in BOTS.items()],
            "platforms": {"uipath": [
                {"name": "prod", "url": fake.url, "organization": fake.org, "tenant": fake.tenant,
                 "client_id": fake.client_id, "client_secret": fake.client_secret, "auto_register": True,
                 "folder_teams": {"Procurement": "procurement"}, "interval": "1s"},
                {"name": "legacy", "url": f"http://{dead_target}", "client_id": "x", "client_secret": "y",
                 "interval": "1s", "timeout": "2s"}]}}


def orchestrator_story(fake: FakeOrchestrator) -> None:
    """Procurement's folder: a job of vendor-sync Pending for two hours; its queue with items
    waiting for two hours past their one-hour SLA, and items that ended (one of each exception);
    a robot machine disconnected beside one available."""
    folder = fake.add_folder("Procurement")
    release = fake.add_release(folder, "Vendor Sync")
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    fake.add_job(folder, release, state="Pending", created=two_hours_ago)
    queue = fake.add_queue(folder, "Vendor_Invoices", sla_minutes=60, risk_sla_minutes=45, release=release)
    for _ in range(2):
        fake.add_queue_item(queue, status="New", created=two_hours_ago)
    fake.add_queue_item(queue, status="InProgress")
    fake.add_queue_item(queue, status="Successful")
    fake.add_queue_item(queue, status="Failed", exception_type="BusinessException", reason="Vendor blocked")
    fake.add_queue_item(queue, status="Failed", exception_type="ApplicationException", reason="Portal timeout",
                        retry_number=1)
    for n, state in ((1, "Disconnected"), (2, "Available")):
        robot = fake.add_robot(folder, f"proc-unattended-{n}", machine_name=f"RPA-PROC-VM0{n}")
        fake.add_session(robot, folder, state=state)


def backfill(tsdb: Path, instance: str, work: Path) -> None:
    """Two hours of invoice-recon's history, eight hours ago: a run every 10 minutes, 10 s each."""
    end = time.time() - 6 * 3600 - 600
    stamps = [end - 2 * 3600 + i * 600 for i in range(13)]
    labels = f'{{bot="invoice-recon",instance="{instance}",job="botwatch"}}'
    lines = []
    for name, per_run in (("botwatch_run_duration_seconds_sum", 10.0), ("botwatch_run_duration_seconds_count", 1)):
        lines.append(f"# TYPE {name} gauge")
        lines += [f"{name}{labels} {per_run * (i + 1)} {t:.3f}" for i, t in enumerate(stamps)]
    lines.append("# EOF")
    source = work / "history.om"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = subprocess.run([require("promtool", "prometheus"), "tsdb", "create-blocks-from", "openmetrics", "-q",
                        str(source), str(tsdb)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def play_scenario(s: Stack) -> None:
    """Feed the agent the runs, check-ins and UI look-ups of the estate's story."""
    # every counter of the bots, and the agent's dropped-event and parse-error counters, start at 0
    s.scraped('count(botwatch_runs_total{job="botwatch"}) == %d' % (len(BOTS) + 1))  # and vendor-sync, from Orchestrator
    s.scraped('botwatch_agent_events_dropped_total{job="botwatch", source="api"} == 0')
    s.scraped('botwatch_agent_parse_errors_total{job="botwatch", source="ping"} == 0')
    # Procurement's queue: scraped with its two waiting items, then one more arrives (the backlog grows)
    waiting = 'botwatch_queue_items{job="botwatch", queue="Vendor_Invoices", status="new"}'
    s.scraped(waiting + " == 2")
    queue = next(q for q in s.orchestrator.rows("QueueDefinitions") if q["Name"] == "Vendor_Invoices")
    s.orchestrator.add_queue_item(queue["Id"], status="New")
    s.scraped(waiting + " == 3")
    now = time.time()

    # invoice-recon: three successful runs of about 30 s (its history: 10 s), the second of them empty
    # (no work item processed), and UI look-ups on two screens; each screen's counters must exist and
    # be scraped before the look-ups that fail or heal.
    runs = [{"type": "run_finished", "bot": "invoice-recon", "run_id": f"recon-{i}", "outcome": "success",
             "started": now - 40 + i - d, "ended": now - 40 + i, "items": {"processed": p, "failed": f}}
            for i, (d, p, f) in enumerate(((25.0, 12, 0), (30.0, 0, 2), (35.0, 9, 1)))]
    first = [{"type": "ui_lookup", "bot": "invoice-recon", "time": now, "screen": screen, "found": True, "wait": 0.4}
             for screen in ("invoice-form", "login")]
    assert s.post_events(runs + first) == 200
    s.scraped('botwatch_ui_lookups_total{bot="invoice-recon", screen="invoice-form"}')
    now = time.time()
    lookups = (
        [{"screen": "invoice-form", "found": True, "wait": w} for w in (0.2, 0.5, 1.5, 3.0)]
        + [{"screen": "invoice-form", "found": False, "kind": "not_found", "wait": 10.0}] * 3
        + [{"screen": "invoice-form", "found": False, "kind": "ambiguous", "wait": 0.3}]
        + [{"screen": "invoice-form", "found": True, "healed": True, "wait": 2.0}] * 3
        + [{"screen": "login", "found": True, "wait": 0.1}] * 2
    )
    assert s.post_events([{"type": "ui_lookup", "bot": "invoice-recon", "time": now, **e} for e in lookups]) == 200

    # vendor-portal: a successful run; the invoice screen's baseline, then a snapshot where the
    # declared submit button was renamed and moved to the footer: the screen drifts, no run failed.
    assert s.ping(DRIFTING, rid="vendor-ok-1") == 200
    report = s.post_snapshot(DRIFTING, DRIFTING_SCREEN, invoice_page())
    assert report["baseline"] is True and report["selectors"] == {"submit": 1, "amount": 1}, report
    report = s.post_snapshot(DRIFTING, DRIFTING_SCREEN, invoice_page(
        submit="", footer='<button id="btnSend" class="btn" type="submit">Send</button>'))
    assert report["baseline"] is False and report["warning"] is True, report
    assert report["score"] >= report["drift_warning"] == BOTS[DRIFTING]["ui"]["drift_warning"], report
    assert report["selectors"] == {"submit": 0, "amount": 1}, report

    # supplier-portal: every run fails on credentials; ledger-close failed on a UI selector.
    for i in range(4):
        assert s.ping("supplier-portal", "start", rid=f"portal-{i}") == 200
        assert s.ping("supplier-portal", "fail", body="Logon failed for user svc-portal\n", rid=f"portal-{i}") == 200
    assert s.ping("ledger-close", "fail", body="UiPath.Core.SelectorNotFoundException: Cannot find the UI "
                                               "element corresponding to this selector") == 200
    # export-sync: a run that started and never ends (max_runtime 1s).
    assert s.ping("export-sync", "start", rid="sync-1") == 200
    # mail-triage: fails, is seen failing by Prometheus, recovers.
    assert s.ping("mail-triage", "fail", body="System.Exception: mailbox unavailable") == 200
    s.scraped('botwatch_bot_state{bot="mail-triage", state="failing"} == 1')
    assert s.ping("mail-triage") == 200

    # The agent's self-monitoring: a check-in with a wrong key (a parse error), and a batch over the
    # limit (dropped). Both counters were exported at 0 from the start, so increase() sees these.
    assert s.ping("mail-triage", key="not-the-key") == 403
    too_many = [{"type": "ui_lookup", "bot": "invoice-recon", "time": time.time(), "screen": "x", "found": True}]
    assert s.post_events(too_many * (MAX_BATCH + 1)) == 413


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """The agent, Alertmanager, Prometheus and the webhook, after the scenario was played."""
    tmp = tmp_path_factory.mktemp("e2e")
    prometheus_bin = require(stack.PROMETHEUS, "prometheus")
    alertmanager_bin = require(stack.ALERTMANAGER, "prometheus-alertmanager")
    # An agent that is down: a port bound (so that no one else can take it) with nothing listening.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_target = f"127.0.0.1:{dead.getsockname()[1]}"
    started: list = []
    webhook = Webhook()
    try:
        port = free_port()
        config = tmp / "botwatch.yaml"
        orchestrator = FakeOrchestrator().start()
        started.append(orchestrator)
        orchestrator_story(orchestrator)
        config.write_text(yaml.safe_dump(estate(port, tmp / "journal.db", orchestrator, dead_target), sort_keys=False),
                          encoding="utf-8")
        agent = AgentProcess(config, port)
        started.append(agent)
        agent.start()
        # weekly-report runs once, now, and then no more (every 2s, grace 1s); nightly-ledger never runs.
        assert ping(agent.url, "weekly-report") == 200

        am_config = stack.write_alertmanager_config(
            tmp / "alertmanager.yml", webhook.url,
            timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
        am = stack.alertmanager(alertmanager_bin, am_config, tmp / "alertmanager", f"127.0.0.1:{free_port()}",
                                tmp / "alertmanager.log")
        started.append(am)
        am.start()

        backfill(tmp / "tsdb", f"127.0.0.1:{port}", tmp)
        prom_config = stack.write_prometheus_config(tmp / "prometheus.yml", [f"127.0.0.1:{port}", dead_target],
                                                    alertmanager=am.listen, scrape_interval="1s")
        prom = stack.prometheus(prometheus_bin, prom_config, tmp / "tsdb", f"127.0.0.1:{free_port()}",
                                tmp / "prometheus.log")
        started.append(prom)
        prom.start()
        am.wait_ready(timeout=HANG)
        prom.wait_ready(timeout=HANG)

        s = Stack(agent, prom, am, webhook, orchestrator)
        play_scenario(s)
        yield s
    finally:
        for proc in reversed(started):
            proc.stop()
        webhook.stop()
        dead.close()


# -- every query -------------------------------------------------------------------------------------

def rule_key(rule: dict) -> str:
    name = rule.get("alert") or rule["record"]
    labels = rule.get("labels") or {}
    return name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else "")


def every_expression(rules: list[dict] = RULES) -> dict[tuple[str, str], str]:
    """{(dashboard uid or rule file, title or rule): PromQL} of every dashboard query and rule."""
    out = {}
    for uid, title, expr in build.iter_queries():
        assert (uid, title) not in out, f"two queries are called {title!r} in {uid}"
        out[(uid, title)] = expr
    for rule in rules:
        key = (rule["file"], rule_key(rule))
        assert key not in out, f"two rules are called {key}"
        out[key] = rule["expr"]
    return out


def test_every_dashboard_and_rule_query_is_accepted_and_returns_data(e2e):
    exprs = every_expression()
    alerts = {r["alert"] for r in RULES if "alert" in r}
    assert alerts == FIRING | QUIET.keys(), "every alert is FIRING or QUIET"

    # What must return data: queries, recording rules and firing alerts as they are, and ALERTS
    # for the firing ones; the vector selectors of the quiet alerts.
    pending: dict[str, str] = {}
    for (src, title), expr in exprs.items():
        rule = next((r for r in RULES if (r["file"], rule_key(r)) == (src, title)), None)
        if rule is not None and rule.get("alert") in QUIET:
            for sel in selectors(expr):
                pending[f"{src} {title}: selector {sel['name']}{sel['matchers']}"] = sel["name"] + sel["matchers"]
            continue
        pending[f"{src} {title}"] = expr
        if rule is not None and "alert" in rule:
            matchers = [f'alertname="{rule["alert"]}"'] + [f'{k}="{v}"' for k, v in sorted(rule["labels"].items())]
            pending[f"{src} {title}: in ALERTS"] = "ALERTS{" + ", ".join(matchers) + "}"

    refused: dict[str, str] = {}

    def settled():
        for what, expr in list(pending.items()):
            answer = e2e.query(expr)
            if answer["status"] != "success":
                refused[what] = answer.get("error", answer)
                del pending[what]
            elif answer["data"]["result"]:
                del pending[what]
        return not pending or refused

    try:
        wait_for(settled, timeout=HANG, interval=0.5, what="every expression to return data")
    except AssertionError:
        pass
    assert not refused, "Prometheus refuses:\n" + "\n".join(f"{k}: {v}" for k, v in refused.items())
    assert not pending, "no data from:\n" + "\n".join(f"{k}: {' '.join(v.split())}" for k, v in pending.items())


# -- notifications -----------------------------------------------------------------------------------

def test_a_failing_bot_pages_its_team_and_the_recovery_is_notified(e2e):
    bot = "order-import"  # procurement, criticality high, failure_threshold 2, recovery_threshold 2
    for i in range(2):
        assert e2e.ping(bot, "fail", body="Logon failed for user svc-orders", rid=f"orders-f{i}") == 200
    notification, alert, _ = wait_for(lambda: e2e.webhook.find("procurement-critical", "BotFailing", bot, "firing"),
                                      timeout=HANG, interval=0.2, what=f"BotFailing of {bot} at procurement-critical")
    assert notification["receiver"] == "procurement-critical"
    labels, annotations = alert["labels"], alert["annotations"]
    assert {k: labels.get(k) for k in ("bot", "team", "bot_owner", "severity")} == {
        "bot": bot, "team": "procurement", "bot_owner": "li.wei@example.com", "severity": "critical"}
    assert annotations["runbook_url"] == "alerts/RUNBOOK.md#botfailing"
    assert annotations["summary"] == "A bot keeps failing."
    assert bot in annotations["description"] and "{{" not in annotations["description"], annotations

    assert e2e.ping(bot, rid="orders-ok0") == 200
    assert e2e.agent.metrics()[f'botwatch_bot_state{{bot="{bot}",state="failing"}}'] == 1  # 1 of 2 successes
    assert e2e.ping(bot, rid="orders-ok1") == 200
    resolved, alert, _ = wait_for(lambda: e2e.webhook.find("procurement-critical", "BotFailing", bot, "resolved"),
                                  timeout=HANG, interval=0.2, what=f"the resolved BotFailing of {bot}")
    assert resolved["status"] == "resolved" and alert["labels"]["bot"] == bot


def test_a_drift_warning_reaches_the_team_before_the_first_failed_run_of_the_drifting_bot(e2e):
    bot, screen, receiver = DRIFTING, DRIFTING_SCREEN, "procurement-warning"
    team, owner = BOTS[bot]["team"], BOTS[bot]["owner"]
    warnings = {name: wait_for(lambda name=name: e2e.webhook.find(receiver, name, bot, "firing"), timeout=HANG,
                               interval=0.2, what=f"{name} of {bot} at {receiver}")
                for name in ("BotUiDriftHigh", "BotUiDeclaredSelectorBroken")}
    for name, (notification, alert, _) in warnings.items():
        assert notification["receiver"] == receiver
        assert {k: alert["labels"].get(k) for k in ("bot", "team", "screen", "bot_owner", "severity")} == {
            "bot": bot, "team": team, "screen": screen, "bot_owner": owner, "severity": "warning"}, name
        assert alert["annotations"]["runbook_url"] == f"alerts/RUNBOOK.md#{name.lower()}"
    assert warnings["BotUiDeclaredSelectorBroken"].alert["labels"]["selector"] == "submit"
    assert "matches 0 element(s)" in warnings["BotUiDeclaredSelectorBroken"].alert["annotations"]["description"]
    assert float(e2e.query(f'botwatch_ui_drift_score{{bot="{bot}", screen="{screen}"}}')["data"]["result"][0]
                 ["value"][1]) >= BOTS[bot]["ui"]["drift_warning"]

    # When each warning was received, Prometheus knew of no failed run of the bot (its failure
    # counters existed, all at 0), and now it still has no BotRunFailed for it.
    for name, warning in warnings.items():
        answer = e2e.query(f'sum(botwatch_run_failures_total{{bot="{bot}"}})', at=warning.at)
        assert answer["status"] == "success" and [float(r["value"][1]) for r in answer["data"]["result"]] == [0], (
            name, answer)
    assert not e2e.has_data(f'ALERTS{{alertname="BotRunFailed", bot="{bot}"}}')

    # Only then the first failed run: the renamed submit button is not found.
    sent = time.time()
    assert max(w.at for w in warnings.values()) < sent
    assert e2e.post_events([{
        "type": "run_finished", "bot": bot, "run_id": "vendor-fail-1", "outcome": "failure", "reason": "ui_drift",
        "started": sent - 20, "ended": sent, "screen": screen, "selector": "#btnSubmit",
        "output_tail": "NoSuchElementException: no such element: Unable to locate element: "
                       '{"method":"css selector","selector":"#btnSubmit"}'}]) == 200
    # The failure's own alerts come after it: BotFailing reaches the team (failure_threshold 1,
    # criticality medium), and BotRunFailed (severity info, routed nowhere) fires in Prometheus.
    failing = wait_for(lambda: e2e.webhook.find(receiver, "BotFailing", bot, "firing"), timeout=HANG, interval=0.2,
                       what=f"BotFailing of {bot} at {receiver}")
    assert failing.at > sent > max(w.at for w in warnings.values())
    wait_for(lambda: e2e.has_data(f'ALERTS{{alertname="BotRunFailed", bot="{bot}", reason="ui_drift", '
                                  'alertstate="firing"}'), timeout=HANG, interval=0.2, what=f"BotRunFailed of {bot}")
    assert e2e.has_data(f'botwatch_run_failures_total{{bot="{bot}", reason="ui_drift"}} == 1')


def test_a_faulted_orchestrator_job_with_a_selector_error_reaches_its_folders_team_as_ui_drift(e2e):
    # a process of the Procurement folder that no bot of the estate file names: registered from
    # Orchestrator, its team from the connection's folder_teams
    fake, bot, receiver = e2e.orchestrator, "supplier-invoices", "procurement-warning"
    folder = next(f for f in fake.rows("Folders") if f["FullyQualifiedName"] == "Procurement")
    fake.add_robot(folder, "proc-unattended-1", machine_name="RPA-PROC-VM01")
    job = fake.add_job(folder, fake.add_release(folder, "Supplier Invoices"), state="Running")
    wait_for(lambda: e2e.has_data(f'botwatch_run_in_progress{{bot="{bot}"}} == 1'), timeout=HANG, interval=0.2,
             what=f"the running job of {bot} in Prometheus")
    assert not e2e.webhook.find(receiver, "BotFailing", bot, "firing")
    fake.update_job(job, state="Faulted", info=(
        "Click 'Approve': UiPath.Core.Activities.SelectorNotFoundException: Could not find the user-interface (UI) "
        "element for this action. <webctrl id='approve' tag='BUTTON' />"))
    notification, alert, _ = wait_for(lambda: e2e.webhook.find(receiver, "BotFailing", bot, "firing"), timeout=HANG,
                                      interval=0.2, what=f"BotFailing of {bot} at {receiver}")
    assert notification["receiver"] == receiver
    assert {k: alert["labels"].get(k) for k in ("bot", "team", "severity")} == {
        "bot": bot, "team": "procurement", "severity": "warning"}
    # its one failed run, reason ui_drift: in Prometheus and in the (unrouted) BotRunFailed
    assert e2e.has_data(f'botwatch_run_failures_total{{bot="{bot}", reason="ui_drift"}} == 1')
    assert e2e.has_data(f'sum(botwatch_run_failures_total{{bot="{bot}"}}) == 1')
    assert e2e.has_data(f'botwatch_bot_info{{bot="{bot}", team="procurement", platform="uipath"}}')
    wait_for(lambda: e2e.has_data(f'ALERTS{{alertname="BotRunFailed", bot="{bot}", reason="ui_drift", '
                                  'alertstate="firing"}'), timeout=HANG, interval=0.2, what=f"BotRunFailed of {bot}")


@pytest.mark.parametrize("bot,receiver,severity", [
    ("weekly-report", "controlling-warning", "warning"),  # ran once, then stopped running
    ("nightly-ledger", "finance-critical", "critical"),  # never ran
])
def test_a_bot_that_misses_its_schedule_is_reported_down_to_its_team(e2e, bot, receiver, severity):
    notification, alert, _ = wait_for(lambda: e2e.webhook.find(receiver, "BotDown", bot, "firing"),
                                      timeout=HANG, interval=0.2, what=f"BotDown of {bot} at {receiver}")
    team, owner = BOTS[bot]["team"], BOTS[bot]["owner"]
    assert {k: alert["labels"].get(k) for k in ("bot", "team", "bot_owner", "severity")} == {
        "bot": bot, "team": team, "bot_owner": owner, "severity": severity}
    assert alert["annotations"]["summary"] == "A bot missed its schedule."
    assert alert["annotations"]["runbook_url"] == "alerts/RUNBOOK.md#botdown"
    assert notification["receiver"] == receiver
