"""`botwatch report --prometheus URL`: a real agent scraped by a real Prometheus (1 s) gets runs,
failures with reasons, a missed run and failing spells that recover; the report read from
Prometheus must agree with the report read from the agent's journal over the same window."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import LocalHTTPServer, free_port, http_post_json, require, wait_for, write_estate

from botwatch.commands import stack
from botwatch.report.model import REASONS
from botwatch.report.prom import step_for

BOTWATCH = [sys.executable, "-m", "botwatch"]
HANG = 120.0  # bounds each wait against a hang; it asserts no speed
SCRAPE = 1.0
HOURLY = "  every: 1h\n  grace: 1h\n"
BOTS = (
    "- name: invoice-recon\n  team: finance\n  platform: uipath\n  lifecycle: production\n"
    "  owner: ana.diaz@example.com\n" + HOURLY
    + "- name: supplier-portal\n  team: procurement\n  platform: python\n  lifecycle: certified\n" + HOURLY
    + "- name: ledger-close\n  team: finance\n  platform: blueprism\n  lifecycle: production\n" + HOURLY
    + "- name: weekly-report\n  team: controlling\n  platform: excel\n  lifecycle: prototype\n"
      "  every: 4s\n  grace: 2s\n"
)


class World:
    def __init__(self, tmp_path, agents):
        binary = require(stack.PROMETHEUS, "prometheus")
        self.tmp = tmp_path
        port = free_port()
        self.config = write_estate(tmp_path / "botwatch.yaml", BOTS, port)
        prom_config = stack.write_prometheus_config(tmp_path / "prometheus.yml", [f"127.0.0.1:{port}"],
                                                    scrape_interval=f"{SCRAPE:g}s")
        self.prom = stack.prometheus(binary, prom_config, tmp_path / "prom-data", f"127.0.0.1:{free_port()}",
                                     tmp_path / "prometheus.log")
        self.prom.start().wait_ready()
        self.t0 = math.floor(time.time()) - 1
        self.agent = agents(self.config, port).start()
        self.n = 0

    def query(self, expr: str) -> list[dict]:
        return self.prom.get_json("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]

    def scraped(self, expr: str) -> None:
        wait_for(lambda: self.query(expr), timeout=HANG, interval=0.2, what=f"Prometheus to scrape {expr}")

    def run(self, bot: str, outcome: str, reason: str | None = None, items: int | None = None) -> None:
        self.n += 1
        now = time.time()
        event = {"type": "run_finished", "bot": bot, "run_id": f"{bot}-{self.n}", "outcome": outcome,
                 "started": now - 5, "ended": now}
        if reason:
            event["reason"] = reason
        if items is not None:
            event["items"] = {"processed": items, "failed": 0}
        status, body = http_post_json(self.agent.url + "/api/v1/events", {"events": [event]})
        assert status == 200, body

    def state(self, bot: str, state: str, held: int = 0) -> None:
        """Wait until Prometheus has seen `bot` in `state`, through the last `held` seconds if given."""
        selector = f'botwatch_bot_state{{bot="{bot}", state="{state}"}}'
        self.scraped(f"min_over_time({selector}[{held}s]) == 1 and count_over_time({selector}[{held}s]) >= {held}"
                     if held else f"{selector} == 1")

    def report(self, source: list[str], since: int, until: float) -> dict[str, dict]:
        proc = subprocess.run([*BOTWATCH, "report", *source, "--config", str(self.config), "--since", f"{since}s",
                               "--until", f"{until:.3f}", "--format", "csv", "--out", "-"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return {(r["scope"], r["name"]): r for r in csv.DictReader(io.StringIO(proc.stdout))}


@pytest.fixture
def world(tmp_path, agents):
    w = World(tmp_path, agents)
    try:
        yield w
    finally:
        w.prom.stop()


def play(w: World) -> None:
    """Every counter is scraped at 0 first (increase() cannot see an increment that came with a
    series' first sample); then runs, failures and recoveries, each state seen by Prometheus."""
    w.scraped('count(botwatch_runs_total{job="botwatch"} == 0) == 4')
    w.scraped('count(botwatch_missed_runs_total{job="botwatch"} == 0) == 4')
    for n in range(3):
        w.run("invoice-recon", "success", items=5 + n)
    w.state("invoice-recon", "up")
    w.run("invoice-recon", "failure", "timeout")
    w.state("invoice-recon", "failing", held=3)
    w.run("invoice-recon", "success")
    w.state("invoice-recon", "up", held=3)
    w.run("invoice-recon", "failure", "crash")
    w.state("invoice-recon", "failing", held=4)
    w.run("invoice-recon", "success")
    w.state("invoice-recon", "up")
    w.run("supplier-portal", "failure", "credentials")
    w.run("supplier-portal", "failure", "credentials")
    w.state("supplier-portal", "failing", held=3)
    w.run("supplier-portal", "success")
    w.state("supplier-portal", "up")
    w.run("ledger-close", "failure", "ui_drift")
    w.state("ledger-close", "failing")  # stays open
    w.state("weekly-report", "down")  # never runs: one missed run
    w.scraped('sum(botwatch_runs_total{job="botwatch"}) == 11')
    w.scraped('sum(botwatch_bot_items_total{job="botwatch", status="processed"}) == 18')


def test_the_report_from_prometheus_agrees_with_the_report_from_the_journal(world):
    play(world)
    latest = world.query('max(timestamp(botwatch_runs_total{job="botwatch"}))')
    until = float(latest[0]["value"][1])  # the last scrape: nothing the journal holds after it
    since = math.ceil(until - world.t0)
    from_prom = world.report(["--prometheus", world.prom.url], since, until)
    from_journal = world.report([], since, until)
    assert {k for k in from_prom if k[0] == "bot"} == {k for k in from_journal if k[0] == "bot"} == {
        ("bot", b) for b in ("invoice-recon", "supplier-portal", "ledger-close", "weekly-report")}
    counts = ("runs", "successes", "failures", "missed_runs", "recoveries", "open_incidents", "uptimes",
              *(f"failures_{r}" for r in REASONS))
    tolerance = step_for(since) + SCRAPE
    for key, j in from_journal.items():
        p = from_prom[key]
        for col in counts:
            if col in j:
                assert p[col] == j[col], (key, col)
        assert p["success_ratio"] == j["success_ratio"], key
        assert (p["team"], p["platform"], p["lifecycle"]) == (j["team"], j["platform"], j["lifecycle"])
        for col in ("mttr_seconds", "mtbf_seconds"):
            assert (p[col] == "") == (j[col] == ""), (key, col)
            if j[col]:
                assert float(p[col]) == pytest.approx(float(j[col]), abs=tolerance), (key, col)
    recon = from_journal[("bot", "invoice-recon")]
    assert (recon["runs"], recon["failures_timeout"], recon["failures_crash"], recon["recoveries"]) == (
        "7", "1", "1", "2")
    assert from_journal[("bot", "supplier-portal")]["failures_credentials"] == "2"
    assert from_journal[("bot", "ledger-close")]["open_incidents"] == "1"
    assert from_journal[("bot", "weekly-report")]["missed_runs"] == "1"
    # the trends: the window (seconds long) lies in one ISO week, or two if it crosses a Monday
    periods = [k for k in from_journal if k[0] == "period"]
    assert 1 <= len(periods) <= 2 and {k for k in from_prom if k[0] == "period"} == set(periods)
    estate = from_journal[("estate", "estate")]

    def total(rows, col):
        return sum(int(rows[k][col]) for k in periods)

    for col in ("runs", "failures", "recoveries", "missed_runs"):  # each period row is compared above too
        assert total(from_prom, col) == total(from_journal, col) == int(estate[col]), col
    assert total(from_prom, "items_processed") == total(from_journal, "items_from_runs") == 5 + 6 + 7
    assert {int(from_prom[k]["bots"]) for k in periods} == {4}


class _Refusing(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _report(tmp_path, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTWATCH, "report", "--prometheus", url, "--config", str(tmp_path / "none.yaml"),
                           "--format", "md", "--out", str(tmp_path / "r.md")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_an_unreachable_prometheus_exits_2_naming_its_url(tmp_path):
    (tmp_path / "none.yaml").write_text("bots: []\n", encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    proc = _report(tmp_path, url)
    assert proc.returncode == 2
    assert url in proc.stderr and "cannot be reached" in proc.stderr
    assert not (tmp_path / "r.md").exists()


def test_a_prometheus_that_answers_an_error_exits_2_naming_its_url_and_the_error(tmp_path):
    (tmp_path / "none.yaml").write_text("bots: []\n", encoding="utf-8")
    with LocalHTTPServer(_Refusing) as server:
        url = server.url
        proc = _report(tmp_path, url)
    assert proc.returncode == 2
    assert url in proc.stderr and "bad_data: parse error" in proc.stderr
    assert not (tmp_path / "r.md").exists()


def test_a_bot_reported_by_two_agents_is_one_row_with_the_sum_of_their_runs(tmp_path, agents):
    binary = require(stack.PROMETHEUS, "prometheus")
    ports = [free_port(), free_port()]
    configs = []
    for i, port in enumerate(ports):
        (tmp_path / f"a{i}").mkdir()
        configs.append(write_estate(tmp_path / f"a{i}" / "botwatch.yaml",
                                    "- name: invoice-recon\n  team: finance\n" + HOURLY, port))
    prom_config = stack.write_prometheus_config(tmp_path / "prometheus.yml", [f"127.0.0.1:{p}" for p in ports],
                                                scrape_interval=f"{SCRAPE:g}s")
    prom = stack.prometheus(binary, prom_config, tmp_path / "prom-data", f"127.0.0.1:{free_port()}",
                            tmp_path / "prometheus.log")
    prom.start().wait_ready()
    try:
        t0 = math.floor(time.time()) - 1
        started = [agents(c, p).start() for c, p in zip(configs, ports)]

        def query(expr):
            return prom.get_json("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]

        wait_for(lambda: query('count(botwatch_runs_total{bot="invoice-recon"} == 0) == 2'), timeout=HANG,
                 interval=0.2, what="Prometheus to scrape both agents")
        now = time.time()
        for agent, outcomes in zip(started, (("success", "success"), ("failure",))):
            events = [{"type": "run_finished", "bot": "invoice-recon", "run_id": f"{agent.port}-{i}", "outcome": o,
                       "reason": "data" if o == "failure" else None, "started": now - 5, "ended": now}
                      for i, o in enumerate(outcomes)]
            assert http_post_json(agent.url + "/api/v1/events", {"events": events})[0] == 200
        wait_for(lambda: query('sum(botwatch_runs_total{bot="invoice-recon"}) == 3'), timeout=HANG,
                 interval=0.2, what="Prometheus to scrape the runs")
        # increase() extrapolates to the end of the window by up to a scrape interval: over ten
        # samples of each series that is well under half a run
        wait_for(lambda: query('min(count_over_time(botwatch_runs_total{bot="invoice-recon"}[1h])) >= 10'),
                 timeout=HANG, interval=0.2, what="ten samples of each agent's series")
        until = float(query('max(timestamp(botwatch_runs_total))')[0]["value"][1])
        proc = subprocess.run([*BOTWATCH, "report", "--prometheus", prom.url, "--since", f"{math.ceil(until - t0)}s", "--until", f"{until:.3f}",
                               "--format", "csv", "--out", "-"], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "BOTWATCH_CONFIG"})
    finally:
        prom.stop()
    assert proc.returncode == 0, proc.stderr
    bots = [r for r in csv.DictReader(io.StringIO(proc.stdout)) if r["scope"] == "bot"]
    assert [(r["name"], r["team"], r["runs"], r["successes"], r["failures_data"], r["open_incidents"])
            for r in bots] == [("invoice-recon", "finance", "3", "2", "1", "1")]


def test_without_the_recording_rules_fragility_comes_from_the_raw_metrics_with_a_note(tmp_path, agents):
    binary = require(stack.PROMETHEUS, "prometheus")
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", "- name: ledger-close\n" + HOURLY, port), port).start()
    prom_config = stack.write_prometheus_config(tmp_path / "prometheus.yml", [f"127.0.0.1:{port}"],
                                                scrape_interval=f"{SCRAPE:g}s", rules=[])
    prom = stack.prometheus(binary, prom_config, tmp_path / "prom-data", f"127.0.0.1:{free_port()}",
                            tmp_path / "prometheus.log")
    prom.start().wait_ready()
    try:
        def query(expr):
            return prom.get_json("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]

        wait_for(lambda: query('botwatch_runs_total{bot="ledger-close"} == 0'), timeout=HANG, interval=0.2,
                 what="Prometheus to scrape the agent")
        now = time.time()
        event = {"type": "run_finished", "bot": "ledger-close", "run_id": "1", "outcome": "failure",
                 "reason": "ui_drift", "started": now - 5, "ended": now}
        assert http_post_json(agent.url + "/api/v1/events", {"events": [event]})[0] == 200
        wait_for(lambda: query('botwatch_runs_total{bot="ledger-close"} == 1'), timeout=HANG, interval=0.2,
                 what="Prometheus to scrape the failed run")
        from botwatch.report.prom import gather_prometheus

        until = float(query("max(timestamp(botwatch_runs_total))")[0]["value"][1])  # the last scrape
        report = gather_prometheus(prom.url, 3600, until)
    finally:
        prom.stop()
    [row] = report.bots
    # the failures component alone: every run of the last day failed, weight 0.40
    assert (row.bot, row.fragility, row.figures.failures_by_reason["ui_drift"]) == ("ledger-close", 0.4, 1)
    assert any("recording rules not loaded" in n for n in report.notes)
    from botwatch.report import render

    for fmt in ("md", "html"):
        assert f"Source: Prometheus {prom.url}." in render(report, fmt)
