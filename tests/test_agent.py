"""A real `botwatch agent` process, real wrapped bots, real HTTP, real promtool."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import BOTWATCH, free_port, http_get, http_post_json, python_bot, require, wait_for, write_estate

ROOT = Path(__file__).resolve().parents[1]
BOTS = """\
- name: alpha
  team: finance
  owner: ana@example.com
  platform: python
  lifecycle: production
  criticality: high
  every: 1h
- name: beta
  failure_threshold: 2
"""


@pytest.fixture
def estate(tmp_path):
    port = free_port()
    return write_estate(tmp_path / "botwatch.yaml", BOTS, port), port


def wrapped(run_env, config, bot, *cmd) -> int:
    return subprocess.run([*BOTWATCH, "run", "--bot", bot, "--config", str(config), "--", *cmd], env=run_env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def journal_runs(path) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT bot, run_id, started, ended, outcome, reason FROM runs").fetchall()
    finally:
        db.close()


def test_wrapped_runs_reach_the_agent_and_its_metrics(estate, agents, run_env):
    config, port = estate
    agent = agents(config, port).start()
    assert wrapped(run_env, config, "alpha", *python_bot()) == 0
    assert wrapped(run_env, config, "beta", *python_bot(
        "import sys; print('Logon failed for user bot', file=sys.stderr); sys.exit(3)")) == 3
    assert wrapped(run_env, config, "beta", *python_bot("print('SelectorNotFoundException'); raise SystemExit(1)")) == 1
    m = wait_for(lambda: (lambda m: m if m.get('botwatch_runs_total{bot="beta"}') == 2 else None)(agent.metrics()),
                 what="both beta runs delivered")
    assert m['botwatch_runs_total{bot="alpha"}'] == 1
    assert m['botwatch_run_failures_total{bot="beta",reason="credentials"}'] == 1
    assert m['botwatch_run_failures_total{bot="beta",reason="ui_drift"}'] == 1
    assert m['botwatch_run_failures_total{bot="alpha",reason="timeout"}'] == 0  # every reason pre-set
    assert m['botwatch_consecutive_failures{bot="beta"}'] == 2
    assert m['botwatch_bot_state{bot="beta",state="failing"}'] == 1
    assert m['botwatch_bot_state{bot="alpha",state="up"}'] == 1
    assert m['botwatch_run_duration_seconds_count{bot="alpha"}'] == 1
    assert m['botwatch_run_duration_seconds_bucket{bot="alpha",le="1.0"}'] == 1
    assert m['botwatch_bot_info{bot="alpha",bot_owner="ana@example.com",criticality="high",lifecycle="production",'
             'platform="python",team="finance"}'] == 1
    assert m['botwatch_schedule_grace_seconds{bot="alpha"}'] == 900
    assert m['botwatch_schedule_next_expected_timestamp_seconds{bot="alpha"}'] > time.time() + 3000
    assert m['botwatch_run_started_timestamp_seconds{bot="alpha"}'] == 0
    assert m['botwatch_agent_events_total{source="wrapper"}'] >= 3
    assert any(k.startswith("botwatch_agent_build_info{version=") for k in m)


CATALOGUE = [
    "botwatch_bot_info", "botwatch_bot_state", "botwatch_runs_total", "botwatch_run_failures_total",
    "botwatch_run_duration_seconds_bucket", "botwatch_last_run_duration_seconds", "botwatch_last_run_end_timestamp_seconds",
    "botwatch_last_success_timestamp_seconds", "botwatch_last_failure_timestamp_seconds", "botwatch_consecutive_failures",
    "botwatch_run_in_progress", "botwatch_run_started_timestamp_seconds", "botwatch_schedule_next_expected_timestamp_seconds",
    "botwatch_schedule_grace_seconds", "botwatch_missed_runs_total", "botwatch_bot_cpu_seconds_total",
    "botwatch_bot_resident_memory_bytes", "botwatch_agent_build_info", "botwatch_agent_events_total",
]


def test_promtool_check_metrics_prints_nothing_for_the_real_output(estate, agents, run_env, tmp_path):
    config, port = estate
    agent = agents(config, port).start()
    wrapped(run_env, config, "alpha", *python_bot())
    wrapped(run_env, config, "beta", *python_bot("raise SystemExit(1)"))
    wait_for(lambda: agent.metrics().get('botwatch_runs_total{bot="beta"}') == 1, what="runs delivered")
    status, body = http_get(agent.url + "/metrics")
    names = {line.split("{")[0].split(" ")[0] for line in body.decode().splitlines() if not line.startswith("#")}
    assert set(CATALOGUE) <= names, set(CATALOGUE) - names
    r = subprocess.run([require("promtool", "prometheus"), "check", "metrics"], input=body, capture_output=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_dropped_events_and_parse_errors_of_every_source_are_exported_at_zero_from_the_start(estate, agents):
    from botwatch.exporters.prometheus import DROPPED_SOURCES, PARSE_ERROR_SOURCES

    config, port = estate
    m = agents(config, port).start().metrics()
    for source in DROPPED_SOURCES:
        assert m[f'botwatch_agent_events_dropped_total{{source="{source}"}}'] == 0, source
    for source in PARSE_ERROR_SOURCES:
        assert m[f'botwatch_agent_parse_errors_total{{source="{source}"}}'] == 0, source
    # the lists name every source the agent's code counts under
    dropped, errors = set(), set()
    for path in (ROOT / "agent").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        dropped |= set(re.findall(r'count_dropped\(\s*"([^"]+)"', text))
        dropped |= set(re.findall(r'events_dropped_total\["([^"]+)"\]', text))
        errors |= set(re.findall(r'count_parse_error\(\s*"([^"]+)"', text))
        errors |= set(re.findall(r'count_parse_error\(\s*"[^"]+" if .* else "([^"]+)"\)', text))
        errors |= set(re.findall(r'^\s*(?:SOURCE|source)\s*=\s*"(log:[a-z]+)"', text, re.M))
    from botwatch.sources.processes import SOURCE as PROCESS_SOURCE

    errors.add(PROCESS_SOURCE)  # count_parse_error(SOURCE)
    assert dropped and dropped <= set(DROPPED_SOURCES), sorted(dropped - set(DROPPED_SOURCES))
    assert errors and errors <= set(PARSE_ERROR_SOURCES), sorted(errors - set(PARSE_ERROR_SOURCES))


def test_the_events_api_rejects_bad_batches_with_json_errors(estate, agents):
    config, port = estate
    agent = agents(config, port).start()
    url = agent.url + "/api/v1/events"
    status, body = http_post_json(url, b"{not json")
    assert status == 422 and body["error"] == "invalid request"
    status, body = http_post_json(url, {"events": [{"type": "run_finished", "bot": "alpha", "run_id": "x",
                                                    "ended": 1.0, "outcome": "success", "exit_status": 2 ** 32}]})
    assert status == 200 and body["accepted"] == 0 and "exit_status" in body["rejected"][0]["error"]
    status, body = http_post_json(url, {"events": [{"type": "run_finished", "bot": "ghost", "run_id": "x",
                                                    "ended": 1.0, "outcome": "success"}]})
    assert status == 200 and body["accepted"] == 0 and "unknown bot 'ghost'" in body["rejected"][0]["error"]
    m = agent.metrics()
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 3  # the rejected event is counted too
    assert m['botwatch_runs_total{bot="alpha"}'] == 0


def test_runs_made_while_the_agent_was_down_appear_with_their_original_timestamps(estate, agents, run_env):
    config, port = estate
    before = time.time()
    for _ in range(3):
        assert wrapped(run_env, config, "alpha", *python_bot()) == 0
    assert wrapped(run_env, config, "beta", *python_bot("raise SystemExit(7)")) == 7
    spooled = sqlite3.connect(run_env["BOTWATCH_SPOOL"]).execute(
        "SELECT COUNT(*) FROM outbox WHERE kind='finish'").fetchone()[0]
    assert spooled == 4  # on disk before each wrapper exited
    time.sleep(0.5)
    agent_start = time.time()
    agent = agents(config, port).start()
    m = wait_for(lambda: (lambda m: m if m.get('botwatch_runs_total{bot="alpha"}') == 3
                          and m.get('botwatch_runs_total{bot="beta"}') == 1 else None)(agent.metrics()),
                 timeout=90, what="spooled runs replayed")
    assert before <= m['botwatch_last_run_end_timestamp_seconds{bot="alpha"}'] < agent_start
    runs = journal_runs(config.parent / "journal.db")
    assert len(runs) == 4 and all(before <= r[3] < agent_start for r in runs)
    assert [r[4:] for r in runs if r[0] == "beta"] == [("failure", "unknown")]


def test_sigkill_during_ingest_loses_no_finished_run(estate, agents, run_env):
    config, port = estate
    agent = agents(config, port).start()
    n = 120

    def one(i):
        return wrapped(run_env, config, "alpha" if i % 2 else "beta", *python_bot(f"raise SystemExit({i % 3})"))

    with ThreadPoolExecutor(8) as pool:
        codes = pool.map(one, range(n))
        # kill the agent while the deliverers are posting
        wait_for(lambda: len(journal_runs(config.parent / "journal.db")) >= 10, what="first runs ingested")
        assert agent.kill() == (-signal.SIGKILL if os.name == "posix" else 1)  # 1: TerminateProcess
        codes = list(codes)
    assert codes == [i % 3 for i in range(n)]  # the bots' results are untouched
    restarted = agents(config, port).start()

    def all_in():
        m = restarted.metrics()
        total = m.get('botwatch_runs_total{bot="alpha"}', 0) + m.get('botwatch_runs_total{bot="beta"}', 0)
        return m if total >= n else None

    m = wait_for(all_in, timeout=120, what=f"all {n} runs after the restart")
    runs = journal_runs(config.parent / "journal.db")
    assert len(runs) == n and len({(r[0], r[1]) for r in runs}) == n  # each exactly once
    assert m['botwatch_runs_total{bot="alpha"}'] + m['botwatch_runs_total{bot="beta"}'] == n
    integrity = sqlite3.connect(config.parent / "journal.db").execute("PRAGMA integrity_check").fetchone()[0]
    assert integrity == "ok"


@pytest.mark.posix_only("a clean stop asked with SIGTERM; Windows can only terminate another process")
def test_a_restarted_agent_keeps_its_counters(estate, agents):
    config, port = estate
    agent = agents(config, port).start()
    now = time.time()
    events = [{"type": "run_finished", "bot": "beta", "run_id": f"r{i}", "started": now - 5, "ended": now,
               "outcome": "failure", "reason": "data"} for i in range(3)]
    assert http_post_json(agent.url + "/api/v1/events", {"events": events})[1]["accepted"] == 3
    before = agent.metrics()
    assert agent.kill(signal.SIGTERM) == 0  # clean shutdown on SIGTERM
    assert "stopped" in agent.log.read_text()
    after = agents(config, port).start().metrics()
    for key in ('botwatch_runs_total{bot="beta"}', 'botwatch_run_failures_total{bot="beta",reason="data"}',
                'botwatch_consecutive_failures{bot="beta"}', 'botwatch_bot_state{bot="beta",state="failing"}',
                'botwatch_run_duration_seconds_sum{bot="beta"}'):
        assert after[key] == before[key], key
    assert after['botwatch_runs_total{bot="beta"}'] == 3


def test_healthz_and_status_api_answer(estate, agents):
    config, port = estate
    agent = agents(config, port).start()
    status, body = http_get(agent.url + "/healthz")
    assert status == 200 and b'"status":"ok"' in body
    status, body = http_get(agent.url + "/api/v1/status")
    assert status == 200 and b'"bot":"alpha"' in body
    status, body = http_get(agent.url + "/api/v1/openapi.json")
    assert status == 200 and b"/api/v1/events" in body


def test_the_agent_binds_to_loopback_by_default(tmp_path):
    from botwatch.config.estate import load_estate

    (tmp_path / "botwatch.yaml").write_text("bots:\n  - name: a\n")
    assert load_estate(tmp_path / "botwatch.yaml").listen == ("127.0.0.1", 9464)


def test_botwatch_status_renders_a_table_from_the_agent_and_from_the_journal(estate, agents, run_env):
    config, port = estate
    agent = agents(config, port).start()
    http_post_json(agent.url + "/api/v1/events", {"events": [
        {"type": "run_finished", "bot": "beta", "run_id": "r1", "ended": time.time(), "outcome": "failure",
         "reason": "ui_drift"}]})
    r = subprocess.run([*BOTWATCH, "status", "--config", str(config)], capture_output=True, text=True, env=run_env)
    assert r.returncode == 0, r.stderr
    assert f"agent http://127.0.0.1:{port}" in r.stdout
    for text in ("alpha", "beta", "finance", "failure (ui_drift)", "new", "fails in a row", "next due"):
        assert text in r.stdout, text
    agent.kill(signal.SIGTERM)
    r = subprocess.run([*BOTWATCH, "status", "--config", str(config)], capture_output=True, text=True, env=run_env)
    assert r.returncode == 0, r.stderr
    assert "not reachable" in r.stdout and "failure (ui_drift)" in r.stdout


def test_the_agent_exports_the_backlog_its_deliverers_report(estate, agents, tmp_path):
    from botwatch.client.delivery import deliver_once
    from botwatch.client.spool import Spool

    (config, port) = estate
    agent = agents(config, port).start()
    assert agent.metrics()["botwatch_agent_spool_pending_runs"] == 0
    spool = Spool(str(tmp_path / "spool.db"))
    gone = f"http://127.0.0.1:{free_port()}"  # an agent that is not there keeps its runs waiting
    for i in range(3):
        spool.add_finished("beta", f"stuck-{i}", agent_url=gone, ended=1.0 + i, outcome="success")
    spool.add_finished("alpha", "r1", agent_url=f"http://127.0.0.1:{port}", ended=5.0, outcome="success")
    deliver_once(spool)
    metrics = agent.metrics()
    assert metrics['botwatch_runs_total{bot="alpha"}'] == 1
    assert metrics["botwatch_agent_spool_pending_runs"] == 3
    spool.close()
