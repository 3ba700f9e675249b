"""Delivery where no agent runs, and the one spool behind every delivery path.

Real components, started by the tests on free 127.0.0.1 ports: the Debian Pushgateway
(/usr/bin/prometheus-pushgateway), a Prometheus server scraping it (/usr/bin/prometheus),
promtool, and `botwatch run` wrapping real commands with its detached deliverer.

The promises: runs wrapped with --pushgateway reach Prometheus with the agent's metric names;
a Pushgateway that goes away mid-way loses nothing and counts nothing twice; --textfile-dir
writes files node_exporter's textfile collector and promtool accept; the spool is bounded, its
oldest events are dropped first and the drops are counted and reported, never silently lost.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psutil
import pytest

from botwatch.commands import stack
from botwatch.core.classify import REASONS
from botwatch.core.host import hostname
from conftest import LocalHTTPServer, console_script, require

pytestmark = pytest.mark.integration

BOTWATCH = console_script("botwatch")
PUSHGATEWAY = ("prometheus-pushgateway", "pushgateway")  # Debian's name, upstream's name
HOST = hostname()
WAIT = 60.0  # deadline for anything polled; it bounds a hang and asserts no speed


# -- helpers ----------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = WAIT, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def run_env(spool: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL", "BOTWATCH_NO_DELIVERY", "BOTWATCH_SPOOL_MAX_EVENTS")}
    env.update({"BOTWATCH_SPOOL": str(spool), "BOTWATCH_DELIVERY_PATIENCE": "10", **extra})
    return env


def wrapped(cwd: Path, bot: str, options: list[str], script: str, env: dict[str, str]) -> tuple[int, float, float]:
    """Run the Python bot `python -c SCRIPT` wrapped as BOT; returns (exit status, time before, time after)."""
    before = time.time()
    proc = subprocess.run([BOTWATCH, "run", "--bot", bot, *options, "--", sys.executable, "-c", script],
                          cwd=cwd, env=env, capture_output=True, timeout=60)
    return proc.returncode, before, time.time()


SUCCESS = "print('report written')"
CREDENTIALS = "raise SystemExit(\"Logon failed for user 'svc_invoices'.\")"  # on stderr, status 1
UI_DRIFT = ("print('UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element "
            "corresponding to this selector'); raise SystemExit(1)")


def exits(status: int) -> str:
    return f"raise SystemExit({status})"


def deliverers(spool: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "botwatch.deliver" in cmd and str(spool) in cmd:
            found.append(p)
    return found


def assert_no_deliverer_left(spool: Path, timeout: float = WAIT) -> None:
    """The deliverers of `spool` end by themselves once everything is out (or their patience ran out)."""
    try:
        wait_for(lambda: not [p for p in deliverers(spool) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
                 f"the deliverers of {spool} to exit", timeout=timeout)
    finally:
        for p in deliverers(spool):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def spool_db(spool: Path):
    return sqlite3.connect(spool)


def outbox_count(spool: Path) -> int:
    db = spool_db(spool)
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


def meta(spool: Path, key: str):
    db = spool_db(spool)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def totals_row(spool: Path, target: str, bot: str) -> dict | None:
    db = spool_db(spool)
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM totals WHERE target = ? AND bot = ?", (target, bot)).fetchone()
        return dict(row) if row else None
    finally:
        db.close()


# -- real components --------------------------------------------------------------------------

class Pushgateway:
    """A real Pushgateway, in memory only (a restart loses every group, the worst case)."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.binary = require(PUSHGATEWAY, "prometheus-pushgateway")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"pushgateway-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Pushgateway":
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([self.binary, f"--web.listen-address=127.0.0.1:{self.port}",
                                          "--persistence.file=", "--log.level=warn"],
                                         stdout=logf, stderr=subprocess.STDOUT)
        wait_for(self._ready, f"the Pushgateway on {self.url} (log {self.log})")
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the Pushgateway exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self) -> dict[str, float]:
        status, body = http_get(self.url + "/metrics")
        assert status == 200
        return parse_metrics(body.decode())


class Prometheus:
    """A real Prometheus server scraping one Pushgateway every second, with honor_labels."""

    def __init__(self, workdir: Path, pushgateway: Pushgateway):
        self.binary = require(stack.PROMETHEUS, "prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = workdir / f"prometheus-{self.port}"
        self.dir.mkdir()
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(textwrap.dedent(f"""\
            global: {{scrape_interval: 1s, evaluation_interval: 1s}}
            scrape_configs:
              - job_name: pushgateway
                honor_labels: true
                static_configs: [{{targets: ["127.0.0.1:{pushgateway.port}"]}}]
            """))
        self.log = self.dir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([self.binary, f"--config.file={self.config}",
                                          f"--storage.tsdb.path={self.dir / 'data'}",
                                          f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                                         stdout=logf, stderr=subprocess.STDOUT)
        wait_for(self._ready, f"Prometheus on {self.url} (log {self.log})")
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"Prometheus exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def query(self, promql: str) -> dict[str, float]:
        """{'name{k="v",...}': value} of an instant query."""
        status, body = http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert status == 200, body
        out = {}
        for item in json.loads(body)["data"]["result"]:
            labels = dict(item["metric"])
            name = labels.pop("__name__", "")
            key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
            out[key] = float(item["value"][1])
        return out

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, result
        return next(iter(result.values()), None)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def services(tmp_path):
    """Factories for Pushgateways and Prometheus servers; all are stopped at the end."""
    started: list = []

    def pushgateway(port: int | None = None) -> Pushgateway:
        p = Pushgateway(tmp_path, port)
        started.append(p)
        return p

    def prometheus(pgw: Pushgateway) -> Prometheus:
        p = Prometheus(tmp_path, pgw)
        started.append(p)
        return p

    yield pushgateway, prometheus
    for s in reversed(started):
        s.stop()


@pytest.fixture
def spool(tmp_path):
    path = tmp_path / "spool.db"
    yield path
    assert_no_deliverer_left(path, timeout=30)


# -- Pushgateway and Prometheus ---------------------------------------------------------------

def test_wrapped_runs_pushed_to_a_real_pushgateway_show_up_in_a_real_prometheus(tmp_path, services, spool):
    make_pgw, make_prometheus = services
    pgw = make_pgw().start()
    prom = make_prometheus(pgw).start()
    env = run_env(spool)
    opts = ["--pushgateway", pgw.url]

    runs = [wrapped(tmp_path, "invoice-recon", opts, script, env)
            for script in (SUCCESS, CREDENTIALS, UI_DRIFT, SUCCESS, CREDENTIALS)]
    assert [r[0] for r in runs] == [0, 1, 1, 0, 1]  # the bots' own exit statuses
    assert wrapped(tmp_path, "payroll", opts, SUCCESS, env)[0] == 0

    sel = f'{{job="botwatch",bot="invoice-recon",instance="{HOST}"}}'
    wait_for(lambda: prom.value(f"botwatch_runs_total{sel}") == 5, "Prometheus to see the 5 runs of invoice-recon")
    failures = prom.query(f"botwatch_run_failures_total{sel}")
    assert {k.split('reason="')[1].split('"')[0]: v for k, v in failures.items()} == {
        r: {"credentials": 2, "ui_drift": 1}.get(r, 0) for r in REASONS}
    assert prom.value(f"botwatch_consecutive_failures{sel}") == 1
    assert prom.value(f"botwatch_run_duration_seconds_count{sel}") == 5
    assert prom.value('botwatch_run_duration_seconds_bucket{bot="invoice-recon",le="+Inf"}') == 5
    # the runs' own times, not the time of the push
    last_ok = prom.value(f"botwatch_last_success_timestamp_seconds{sel}")
    assert runs[3][1] <= last_ok <= runs[3][2]
    last_fail = prom.value(f"botwatch_last_failure_timestamp_seconds{sel}")
    assert runs[4][1] <= last_fail <= runs[4][2]
    assert prom.value(f"botwatch_last_run_end_timestamp_seconds{sel}") == last_fail
    assert 0 <= prom.value(f"botwatch_last_run_duration_seconds{sel}") <= runs[4][2] - runs[4][1]

    wait_for(lambda: prom.value('botwatch_runs_total{bot="payroll"}') == 1, "Prometheus to see payroll's run")
    assert prom.value('botwatch_last_failure_timestamp_seconds{bot="payroll"}') is None  # absent, as on the agent
    assert prom.value('botwatch_consecutive_failures{bot="payroll"}') == 0
    dropped = f'botwatch_agent_events_dropped_total{{job="botwatch",instance="{HOST}",source="spool"}}'
    wait_for(lambda: prom.value(dropped) == 0, "the spool's dropped-events counter")

    assert_no_deliverer_left(spool)
    assert outbox_count(spool) == 0


def test_pushgateway_stopped_mid_way_loses_nothing_and_counts_nothing_twice(tmp_path, services, spool):
    make_pgw, make_prometheus = services
    pgw = make_pgw().start()
    prom = make_prometheus(pgw).start()
    env = run_env(spool, BOTWATCH_DELIVERY_PATIENCE="45")
    opts = ["--pushgateway", pgw.url]
    target = f"pushgateway:{pgw.url}"

    assert wrapped(tmp_path, "archiver", opts, SUCCESS, env)[0] == 0
    assert wrapped(tmp_path, "ledger", opts, SUCCESS, env)[0] == 0
    assert wrapped(tmp_path, "ledger", opts, CREDENTIALS, env)[0] == 1
    wait_for(lambda: pgw.metrics().get(f'botwatch_runs_total{{bot="ledger",instance="{HOST}",job="botwatch"}}') == 2,
             "the first runs on the Pushgateway")

    pgw.stop()  # mid-way: it comes back empty (no persistence file)
    statuses = [wrapped(tmp_path, "ledger", opts, script, env)[0] for script in (UI_DRIFT, SUCCESS, CREDENTIALS)]
    assert statuses == [1, 0, 1]
    # every run is accounted for in the spool, and the deliverer has found the Pushgateway away
    wait_for(lambda: (totals_row(spool, target, "ledger") or {}).get("runs_total") == 5
             and totals_row(spool, target, "ledger")["attempts"] >= 1, "the outage to be noticed")
    assert outbox_count(spool) == 0

    pgw.start()  # the same address; the deliverer's retry finds it
    sel = f'{{job="botwatch",bot="ledger",instance="{HOST}"}}'
    wait_for(lambda: prom.value(f"botwatch_runs_total{sel}") == 5, "Prometheus to see all 5 runs of ledger")
    failures = prom.query(f"botwatch_run_failures_total{sel}")
    assert sum(failures.values()) == 3
    assert failures[f'botwatch_run_failures_total{{bot="ledger",instance="{HOST}",job="botwatch",'
                    'reason="credentials"}'] == 2
    assert prom.value(f"botwatch_consecutive_failures{sel}") == 1
    assert prom.value(f"botwatch_run_duration_seconds_count{sel}") == 5
    # archiver did not run again: its group came back too, from the spool's totals
    wait_for(lambda: prom.value('botwatch_runs_total{bot="archiver"}') == 1, "archiver's group to be pushed again")
    wait_for(lambda: prom.value('botwatch_agent_events_dropped_total{source="spool"}') == 0,
             "the spool's own group to be pushed again")

    assert_no_deliverer_left(spool)
    assert totals_row(spool, target, "ledger")["pending"] == 0
    assert pgw.metrics()[f'botwatch_runs_total{{bot="ledger",instance="{HOST}",job="botwatch"}}'] == 5
    assert "unreachable" in (spool.parent / "spool.log").read_text()


# -- node_exporter's textfile collector -------------------------------------------------------

def test_textfile_mode_writes_files_promtool_accepts_with_the_right_counters(tmp_path, spool):
    promtool = require("promtool", "prometheus")
    out = tmp_path / "textfile"
    out.mkdir()
    env = run_env(spool)
    opts = ["--textfile-dir", str(out)]
    for script in (SUCCESS, UI_DRIFT, SUCCESS):
        wrapped(tmp_path, "invoice-recon", opts, script, env)
    ts = wrapped(tmp_path, "invoice-recon", opts, exits(7), env)

    bot_file, spool_file = out / "botwatch_invoice-recon.prom", out / "botwatch.prom"
    wait_for(lambda: bot_file.exists()
             and parse_metrics(bot_file.read_text()).get('botwatch_runs_total{bot="invoice-recon"}') == 4,
             "the textfile to hold the 4 runs")
    assert_no_deliverer_left(spool)
    assert sorted(p.name for p in out.iterdir()) == ["botwatch.prom", "botwatch_invoice-recon.prom"]  # no leftovers

    for f in (bot_file, spool_file):
        check = subprocess.run([promtool, "check", "metrics"], input=f.read_bytes(), capture_output=True, timeout=60)
        assert check.returncode == 0 and check.stdout == b"" and check.stderr == b"", (f, check)
    m = parse_metrics(bot_file.read_text())
    b = '{bot="invoice-recon"}'
    assert m[f"botwatch_runs_total{b}"] == 4
    assert {r: m[f'botwatch_run_failures_total{{bot="invoice-recon",reason="{r}"}}'] for r in REASONS} == {
        r: {"ui_drift": 1, "unknown": 1}.get(r, 0) for r in REASONS}
    assert m[f"botwatch_consecutive_failures{b}"] == 1
    assert m['botwatch_run_duration_seconds_bucket{bot="invoice-recon",le="+Inf"}'] == 4
    assert ts[1] <= m[f"botwatch_last_failure_timestamp_seconds{b}"] <= ts[2]
    assert m[f"botwatch_last_run_end_timestamp_seconds{b}"] == m[f"botwatch_last_failure_timestamp_seconds{b}"]
    assert parse_metrics(spool_file.read_text()) == {'botwatch_agent_events_dropped_total{source="spool"}': 0}


def test_textfile_dir_that_cannot_be_written_keeps_the_totals_until_it_can(tmp_path, spool):
    out = tmp_path / "not-yet"
    env = run_env(spool, BOTWATCH_DELIVERY_PATIENCE="1")
    target = f"textfile:{out}"
    assert wrapped(tmp_path, "etl", ["--textfile-dir", str(out)], SUCCESS, env)[0] == 0
    wait_for(lambda: (totals_row(spool, target, "etl") or {}).get("attempts", 0) >= 1, "a failed write")
    assert_no_deliverer_left(spool)  # it gave up after its patience
    assert totals_row(spool, target, "etl")["pending"] == 1

    out.mkdir()
    assert wrapped(tmp_path, "etl", ["--textfile-dir", str(out)], SUCCESS, env)[0] == 0
    wait_for(lambda: (out / "botwatch_etl.prom").exists()
             and parse_metrics((out / "botwatch_etl.prom").read_text()).get('botwatch_runs_total{bot="etl"}') == 2,
             "both runs in the textfile")


# -- one spool for every path: the bound ------------------------------------------------------

def run_deliverer(spool: Path, patience: str = "5") -> None:
    env = run_env(spool, BOTWATCH_DELIVERY_PATIENCE=patience)
    proc = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_full_spool_drops_the_oldest_counts_them_and_reports_the_count_once_delivered(tmp_path, services, spool):
    make_pgw, _ = services
    pgw = make_pgw()  # its address, nothing listening yet
    target = f"pushgateway:{pgw.url}"
    env = run_env(spool, BOTWATCH_SPOOL_MAX_EVENTS="5", BOTWATCH_NO_DELIVERY="1")
    for i in range(8):
        assert wrapped(tmp_path, "b", ["--pushgateway", pgw.url], exits(i), env)[0] == i
    assert outbox_count(spool) == 5
    assert meta(spool, f"dropped:{target}") == 3
    db = spool_db(spool)
    kept = [json.loads(e)["exit_status"] for (e,) in db.execute("SELECT event FROM outbox ORDER BY seq")]
    db.close()
    assert kept == [3, 4, 5, 6, 7]  # the oldest went first

    run_deliverer(spool, patience="1")  # the Pushgateway is not there: nothing is lost meanwhile
    assert outbox_count(spool) == 0
    assert totals_row(spool, target, "")["dropped_total"] == 3 and totals_row(spool, target, "")["pending"] == 1
    assert totals_row(spool, target, "b")["runs_total"] == 5 and totals_row(spool, target, "b")["pending"] == 1

    pgw.start()
    run_deliverer(spool)
    m = pgw.metrics()
    assert m[f'botwatch_runs_total{{bot="b",instance="{HOST}",job="botwatch"}}'] == 5
    assert m[f'botwatch_agent_events_dropped_total{{instance="{HOST}",job="botwatch",source="spool"}}'] == 3
    assert meta(spool, f"dropped:{target}") == 0  # reported, so taken off the count: never twice
    assert totals_row(spool, target, "")["pending"] == 0


class StubAgent:
    """An HTTP endpoint standing in for the agent's events API: records what it is sent."""

    def __init__(self, refuse_types: tuple[str, ...] = (), key: str | None = None):
        received, refuse = self.received, self.refuse = [], set(refuse_types)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
                if key is not None and self.headers.get("X-Botwatch-Key") != key:
                    body, status = b'{"error": "missing or wrong X-Botwatch-Key"}', 401
                elif any(e["type"] in refuse for e in events):
                    body, status = b'{"error": "invalid request"}', 422
                else:
                    received.extend(events)
                    body, status = json.dumps({"accepted": len(events), "duplicates": 0, "rejected": []}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._http = LocalHTTPServer(Handler).start()
        self.url = self._http.url

    def close(self):
        self._http.stop()


@pytest.mark.parametrize("agent_knows_the_event", [True, False], ids=["agent_takes_it", "agent_refuses_it"])
def test_agent_is_told_how_many_events_the_full_spool_dropped(tmp_path, spool, agent_knows_the_event):
    agent = StubAgent(refuse_types=() if agent_knows_the_event else ("spool_dropped",))
    try:
        env = run_env(spool, BOTWATCH_SPOOL_MAX_EVENTS="5", BOTWATCH_NO_DELIVERY="1")
        for i in range(8):
            wrapped(tmp_path, "b", ["--agent", agent.url], exits(i), env)
        assert meta(spool, "dropped:agent") == 3
        run_deliverer(spool)
    finally:
        agent.close()
    runs = [e for e in agent.received if e["type"] == "run_finished"]
    assert [e["exit_status"] for e in runs] == [3, 4, 5, 6, 7]  # delivered whatever the agent thinks of drops
    assert outbox_count(spool) == 0
    drops = [e for e in agent.received if e["type"] == "spool_dropped"]
    if agent_knows_the_event:
        assert len(drops) == 1
        assert drops[0]["count"] == 3 and drops[0]["source"] == "spool" and drops[0]["host"] == HOST
        assert drops[0]["time"] <= time.time()
        assert meta(spool, "dropped:agent") == 0
    else:
        assert drops == []
        assert meta(spool, "dropped:agent") == 3  # kept until an agent takes it


def test_agent_that_wants_a_key_gets_the_estates_key_and_a_missing_key_loses_no_run(tmp_path, spool):
    agent = StubAgent(key="k-7f3a")
    estate = tmp_path / "botwatch.yaml"
    estate.write_text("agent: {ping_key: 'env:TEST_AGENT_KEY'}\nbots: [{name: b}]\n")
    try:
        env = run_env(spool, BOTWATCH_NO_DELIVERY="1")
        wrapped(tmp_path, "b", ["--agent", agent.url, "--config", str(estate)], exits(0), env)
        run_deliverer(spool, patience="0")  # the key's variable is not set: refused, kept for later
        db = spool_db(spool)
        assert db.execute("SELECT COUNT(*) FROM dead").fetchone()[0] == 0
        assert "401" in db.execute("SELECT last_error FROM outbox").fetchone()[0]
        db.close()
        env = run_env(spool, TEST_AGENT_KEY="k-7f3a", BOTWATCH_DELIVERY_PATIENCE="30")
        proc = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool)], env=env,
                              capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    finally:
        agent.close()
    assert [e["type"] for e in agent.received] == ["run_finished"]
    assert outbox_count(spool) == 0


def test_spool_written_by_an_older_botwatch_gets_the_target_column_and_keeps_its_events(tmp_path):
    from botwatch.client.spool import Spool

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, bot TEXT NOT NULL,
            run_id TEXT NOT NULL, created REAL NOT NULL, agent_url TEXT, config TEXT, event TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, last_error TEXT);
        CREATE TABLE dead (seq INTEGER PRIMARY KEY, bot TEXT NOT NULL, run_id TEXT NOT NULL, event TEXT NOT NULL,
            error TEXT, at REAL NOT NULL);
        INSERT INTO outbox (kind, bot, run_id, created, agent_url, event)
            VALUES ('finish', 'b', 'r1', 1, 'http://127.0.0.1:1', '{"type":"run_finished","bot":"b","run_id":"r1"}');
    """)
    db.close()
    s = Spool(str(path), max_events=2)
    try:
        assert s.ready(time.time()) and s.ready(time.time())[0][2] == "r1"
        assert s.events() == 1
        s.add_finished("b", "r2", target="textfile:/nowhere", ended=2.0, outcome="success")
        s.add_finished("b", "r3", ended=3.0, outcome="success")
        assert s.events() == 2 and s.dropped("agent")[0] == 1  # r1, the oldest, made room
    finally:
        s.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT run_id, target FROM outbox ORDER BY seq").fetchall() == [
        ("r2", "textfile:/nowhere"), ("r3", "agent")]
    db.close()
