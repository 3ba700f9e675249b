"""Blue Prism as a source: a real agent pulls a stand-in Blue Prism environment
(tests/blueprism_fake.py: the Authentication Server's client credentials, the v7 API's token
paging and deepObject filters, 429 with Retry-After, faults) and records every session exactly
once as a run, its stuck sessions, its work queues and its runtime resources."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from botwatch.config.estate import ConfigError, load_estate
from botwatch.sources.platform import bot_slug
from botwatch.sources.platform import parse_time
from blueprism_fake import ENDED_STATUSES, FAILURES, FakeBluePrism, iso
from conftest import free_port, http_get, metrics_when, wait_for

pytestmark = pytest.mark.integration

UP = 'botwatch_agent_controlplane_up{connection="prod",platform="blueprism"}'
REASONS = {message: reason for _kind, message, reason in FAILURES}


def estate(tmp_path: Path, fake: FakeBluePrism, port: int, connection: str = "", bots: str = "[]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n"
        f"platforms:\n  blueprism:\n    - name: prod\n      url: '{fake.api_url}'\n      auth_url: '{fake.auth_url}'\n"
        f"      client_id: {fake.client_id}\n      client_secret: env:BP_SECRET\n      interval: 1s\n      history: 2d\n"
        + "".join(f"      {line}\n" for line in connection.splitlines())
        + f"bots: {bots}\n", encoding="utf-8")
    return config


def journal_runs(tmp_path: Path) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT bot, run_id, host, started, ended, outcome, reason, output_tail, source "
                          "FROM runs").fetchall()
    finally:
        db.close()
    keys = ("bot", "run_id", "host", "started", "ended", "outcome", "reason", "output_tail", "source")
    return {r[1]: dict(zip(keys, r)) for r in rows}


def ended_sessions(fake: FakeBluePrism) -> dict[str, dict]:
    return {f"blueprism:{s['sessionId']}": s for s in fake.sessions if s["status"] in ENDED_STATUSES}


def runs_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))


def assert_each_session_once(tmp_path: Path, fake: FakeBluePrism, bots: dict[str, str] | None = None) -> None:
    runs, sessions = journal_runs(tmp_path), ended_sessions(fake)
    assert set(runs) == set(sessions)
    for run_id, s in sessions.items():
        run = runs[run_id]
        assert run["bot"] == (bots or {}).get(s["processName"], bot_slug(s["processName"])), (run, s)
        assert run["outcome"] == ("success" if s["status"] == "Completed" else "failure")
        if s["status"] == "Stopped":
            assert run["reason"] == "killed"
        elif s["status"] == "Terminated":
            if REASONS[s["exceptionMessage"]] is not None:
                assert run["reason"] == REASONS[s["exceptionMessage"]], (s["exceptionMessage"], run["reason"])
            assert s["exceptionMessage"] in run["output_tail"] and s["latestStage"] in run["output_tail"]
        else:
            assert run["reason"] is None
        assert run["host"] == s["resourceName"]
        assert run["started"] == pytest.approx(parse_time(s["startTime"]), abs=0.001)  # so the duration too
        assert run["ended"] == pytest.approx(parse_time(s["endTime"]), abs=0.001)
        assert run["source"] == "blueprism"


def test_it_records_every_session_once_with_outcome_reason_duration_resource_team_and_owner(tmp_path, agents):
    # pages of 5 and a fault on every 7th request: paging and retries are exercised
    with FakeBluePrism(fail_every=7, seed=3) as fake:
        fake.populate(n_sessions=90, seed=5)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 5\n"
                                              "folder_teams: {Finance: finance, HR: people}\n"
                                              "processes:\n  - {process: 'Payroll.*', folder: HR, bot: payroll}",
                        bots="[{name: payroll, owner: pay.ops@example.com, team: people}]")
        agent = agents(config, port, env={"BP_SECRET": fake.client_secret}).start()
        n = len(ended_sessions(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1,
                         f"the {n} ended sessions as runs and a whole pull done", timeout=120)
        assert_each_session_once(tmp_path, fake, {"Payroll Check": "payroll"})
        live = sum(1 for s in fake.sessions if s["status"] not in ENDED_STATUSES)
        assert sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == live
        info = {re.search(r'bot="([^"]+)"', k)[1]: k for k in m if k.startswith("botwatch_bot_info{")}
        for bot, team in (("invoice-processing", "finance"), ("vendor-onboarding", "finance")):
            assert 'platform="blueprism"' in info[bot] and f'team="{team}"' in info[bot], info[bot]
        assert 'team=""' in info["ad-hoc-report"]  # a process in no group: no team
        assert 'bot_owner="pay.ops@example.com"' in info["payroll"] and 'team="people"' in info["payroll"]
        assert fake.faults_served >= 1
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="error",platform="blueprism"}'] >= 1
        # the cursor is a deepObject filter on the server's clock; the pages follow the token
        assert any("endTime[gte]" in q for path, q in fake.queries if path == "sessions")
        assert any("pagingToken" in q for path, q in fake.queries if path == "sessions")
        # each session is one event, however often the pulls read it again
        ok = 'botwatch_agent_controlplane_requests_total{connection="prod",outcome="ok",platform="blueprism"}'
        later = metrics_when(agent, lambda later: later[ok] >= m[ok] + 12, "a few more pulls")
        assert later['botwatch_agent_events_total{source="blueprism"}'] == n + live


def test_a_restart_mid_pull_loses_and_repeats_nothing_and_a_late_ending_session_is_recorded(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeBluePrism(seed=4) as fake:
        fake.populate(n_sessions=60, seed=9)
        invoices = fake.processes[0]
        long_running = fake.add_session(invoices, "ROBOT01", "Running", started=now - timedelta(hours=5))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 3")
        env = {"BP_SECRET": fake.client_secret}
        agent = agents(config, port, env=env).start()
        metrics_when(agent, lambda m: runs_total(m) >= 10, "the first pages recorded")
        agent.kill()  # mid-pull, as a crash would
        # meanwhile Blue Prism goes on: the long session ends 5 h after it began, new ones end
        fake.end_session(long_running, "Terminated", failure=1)  # a Business Exception
        for _ in range(5):
            fake.add_session(fake.processes[2], "ROBOT02", "Completed")
        agent = agents(config, port, env=env).start()
        n = len(ended_sessions(fake))
        metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended sessions", timeout=120)
        assert_each_session_once(tmp_path, fake)
        run = journal_runs(tmp_path)[f"blueprism:{long_running['sessionId']}"]
        assert run["reason"] == "business" and run["ended"] - run["started"] == pytest.approx(5 * 3600, abs=300)


def test_it_waits_out_a_429_counts_it_and_misses_nothing(tmp_path, agents):
    with FakeBluePrism(seed=6) as fake:
        fake.populate(n_sessions=30, seed=2)
        fake.error_once("/sessions", 429, retry_after=2)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"BP_SECRET": fake.client_secret}).start()
        n = len(ended_sessions(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended sessions")
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="throttled",platform="blueprism"}'] == 1
        assert fake.throttled == 1
        assert_each_session_once(tmp_path, fake)


def test_a_revoked_secret_is_one_clear_error_and_the_agent_goes_on(tmp_path, agents):
    with FakeBluePrism(token_ttl=1.0) as fake:
        fake.add_session(fake.add_process("Invoice Processing", "Finance"), "ROBOT01", "Completed")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"BP_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: runs_total(m) == 1, "the first session")
        fake.revoke_secret()  # the token expires within a second; a new one is refused
        auth = 'botwatch_agent_controlplane_requests_total{connection="prod",outcome="auth",platform="blueprism"}'
        metrics_when(agent, lambda m: m.get(UP) == 0 and m[auth] >= 1, "the connection down")
        assert http_get(agent.url + "/healthz")[0] == 200
        metrics_when(agent, lambda m: m[auth] >= 3, "more refusals")
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("credentials refused") == 1 and "invalid_client" in log, log
        assert fake.client_secret not in log


def test_a_process_no_rule_names_is_listed_as_unregistered_and_its_runs_not_recorded(tmp_path, agents):
    with FakeBluePrism() as fake:
        invoices = fake.add_process("Invoice Processing", "Finance")
        payroll = fake.add_process("Payroll Check", "HR")
        fake.add_session(invoices, "ROBOT01", "Completed")
        fake.add_session(payroll, "ROBOT02", "Terminated")
        fake.add_session(payroll, "ROBOT02", "Running")  # read again at every pull: one run all the same
        port = free_port()
        config = estate(tmp_path, fake, port, "processes:\n  - {process: 'Invoice.*', folder: Finance, bot: invoices}",
                        bots="[{name: invoices, team: ap}]")
        agent = agents(config, port, env={"BP_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoices"}') == 1, "the invoices run")

        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            assert status == 200
            return [p for p in json.loads(body).get("control_plane", []) if p["process"] == "Payroll Check"]

        (entry,) = wait_for(listed, what="Payroll Check listed as unregistered")
        assert entry["folder"] == "HR" and entry["platform"] == "blueprism" and entry["connection"] == "prod"
        pulls = fake.counts["sessions"]
        wait_for(lambda: fake.counts["sessions"] >= pulls + 6, what="three more pulls")
        (entry,) = listed()
        assert entry["runs"] == 2, entry
        assert set(journal_runs(tmp_path)) == {f"blueprism:{s['sessionId']}" for s in fake.sessions
                                               if s["processName"] == "Invoice Processing"}


def test_bad_items_and_a_broken_answer_are_counted_and_the_rest_recorded(tmp_path, agents):
    with FakeBluePrism() as fake:
        process = fake.add_process("Invoice Processing", "Finance")
        good = fake.add_session(process, "ROBOT01", "Completed")
        fake.add_session(process, "ROBOT01", "Completed")["sessionId"] = None
        fake.add_session(process, "ROBOT01", "Completed")["status"] = "Debugging"  # the DB's, not the API's
        fake.add_session(process, "ROBOT01", "Terminated")["endTime"] = None
        fake.corrupt_once("/sessions")  # the first answer is cut short
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"BP_SECRET": fake.client_secret}).start()
        m = metrics_when(agent, lambda m: m.get('botwatch_agent_parse_errors_total{source="blueprism"}', 0) >= 3
                         and runs_total(m) == 1 and m.get(UP) == 1,
                         "the good session recorded, the three bad ones counted, the pull done")
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="error",platform="blueprism"}'] >= 1
        assert set(journal_runs(tmp_path)) == {f"blueprism:{good['sessionId']}"}


def test_a_session_on_one_stage_past_the_limit_or_in_warning_is_a_stuck_run(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeBluePrism() as fake:
        invoices, payments = fake.add_process("Invoice Processing", "Finance"), fake.add_process("Payments", "Finance")
        on_one_stage = fake.add_session(invoices, "ROBOT01", "Running", started=now - timedelta(hours=3),
                                        stage="Wait for SAP", stage_started=now - timedelta(hours=2))
        fake.add_session(invoices, "ROBOT02", "Warning", started=now - timedelta(minutes=20),
                         stage_started=now - timedelta(minutes=10))
        fake.add_session(invoices, "ROBOT03", "Running", started=now - timedelta(hours=3),
                         stage_started=now - timedelta(minutes=1))  # long, but moving
        fake.add_session(payments, "ROBOT01", "Completed")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\nstuck_stage_after: 30m"), port,
                       env={"BP_SECRET": fake.client_secret}).start()
        key = 'botwatch_bot_stuck_runs{bot="invoice-processing"}'
        m = metrics_when(agent, lambda m: key in m, "the stuck runs")
        assert m[key] == 2
        assert m['botwatch_bot_stuck_runs{bot="payments"}'] == 0
        assert m['botwatch_run_in_progress{bot="invoice-processing"}'] == 3
        on_one_stage.update(latestStage="Post invoice", stageStarted=iso(datetime.now(timezone.utc)))
        metrics_when(agent, lambda m: m[key] == 1, "the session that moved on no longer stuck")


def q_key(name: str, queue: str, group: str, **more: str) -> str:
    labels = {"connection": "prod", "folder": group, "platform": "blueprism", "queue": queue, **more}
    return f"{name}{{{','.join(f'{k}={json.dumps(v)}' for k, v in sorted(labels.items()))}}}"


def test_work_queues_and_resources_match_the_environment_and_survive_a_restart(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeBluePrism() as fake:
        fake.add_process("Invoice Processing", "Finance")
        invoices, empty = fake.add_queue("Invoices", "Finance"), fake.add_queue("Onboarding")
        fake.add_item(invoices, "Pending", loaded=now - timedelta(hours=2), sla_minutes=60)  # breached
        fake.add_item(invoices, "Pending", loaded=now - timedelta(minutes=5), sla_minutes=60)
        fake.add_item(invoices, "Deferred", loaded=now - timedelta(hours=3), deferred=now - timedelta(minutes=1))
        fake.add_item(invoices, "Deferred", loaded=now - timedelta(hours=4), deferred=now + timedelta(hours=1))
        fake.add_item(invoices, "Locked", loaded=now - timedelta(minutes=30))
        fake.add_item(invoices, "Completed", work=60)
        fake.add_item(invoices, "Completed", work=30, attempt=2)
        fake.add_item(invoices, "Exceptioned", reason="Business Exception: supplier on hold", work=10)
        fake.add_item(invoices, "Exceptioned", reason="Could not find the user-interface (UI) element", work=20)
        fake.add_item(invoices, "Completed", ended=now - timedelta(days=5))  # before the history: not counted
        fake.add_resource("ROBOT01", "Working")
        fake.add_resource("ROBOT02", "Idle")
        fake.add_resource("ROBOT03:8182", "Missing")
        fake.add_resource("OLDBOT", "Offline", attributes=["Retired"])
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\nfolder_teams: {Finance: finance}")
        env = {"BP_SECRET": fake.client_secret}
        agent = agents(config, port, env=env).start()
        done = q_key("botwatch_queue_items_processed_total", "Invoices", "Finance", status="successful")
        backlog = q_key("botwatch_queue_items", "Invoices", "Finance", status="new")
        first = metrics_when(agent, lambda m: m.get(done) == 2, "the invoices processed")
        # a pull records the ended items, then the backlogs, then the resources: read after more
        # pulls, not in the middle of the first
        ok = 'botwatch_agent_controlplane_requests_total{connection="prod",outcome="ok",platform="blueprism"}'
        m = metrics_when(agent, lambda later: later[ok] >= first[ok] + 10, "a few more pulls")
        assert m[backlog] == 3  # a Deferred one is due
        assert m[q_key("botwatch_queue_items", "Invoices", "Finance", status="in_progress")] == 1
        assert m[q_key("botwatch_queue_items_past_sla", "Invoices", "Finance", sla="breached")] == 1
        assert m[q_key("botwatch_queue_oldest_item_age_seconds", "Invoices", "Finance")] == pytest.approx(3 * 3600,
                                                                                                          abs=60)
        assert m[q_key("botwatch_queue_items_processed_total", "Invoices", "Finance", status="failed")] == 2
        assert m[q_key("botwatch_queue_item_failures_total", "Invoices", "Finance", exception="business")] == 1
        assert m[q_key("botwatch_queue_item_failures_total", "Invoices", "Finance", exception="unknown")] == 1
        assert m[q_key("botwatch_queue_item_retries_total", "Invoices", "Finance")] == 1
        assert m[q_key("botwatch_queue_item_processing_seconds_total", "Invoices", "Finance")] == 120
        assert m[q_key("botwatch_queue_info", "Invoices", "Finance", team="finance")] == 1
        assert m[q_key("botwatch_queue_items", "Onboarding", "", status="new")] == 0
        # an empty queue costs no item request for its backlog
        assert not any(q.get("state", "").startswith("Pending") for path, q in fake.queries if empty["id"] in path)
        robots = {k: v for k, v in m.items() if k.startswith("botwatch_robot_sessions{") and v}
        assert robots == {
            'botwatch_robot_sessions{connection="prod",machine="ROBOT01",platform="blueprism",state="busy"}': 1,
            'botwatch_robot_sessions{connection="prod",machine="ROBOT02",platform="blueprism",state="available"}': 1,
            'botwatch_robot_sessions{connection="prod",machine="ROBOT03:8182",platform="blueprism",'
            'state="disconnected"}': 1}
        assert m['botwatch_robot_unattended_capacity{connection="prod",platform="blueprism"}'] == 2
        assert m['botwatch_robot_unattended_busy{connection="prod",platform="blueprism"}'] == 1
        agent.kill()
        # while the agent is away: an item ends, an item retried ends; an old one is edited (lastUpdated moves)
        fake.add_item(invoices, "Completed", work=5)
        fake.add_item(invoices, "Exceptioned", reason="Business Exception: duplicate", attempt=3, work=5)
        fake.items[5]["lastUpdated"] = fake.items[-1]["lastUpdated"]
        agent = agents(config, port, env=env).start()
        m = metrics_when(agent, lambda m: m.get(done) == 3, "the item ended meanwhile")
        m = metrics_when(agent, lambda later: later[ok] >= m[ok] + 10, "a few more pulls")
        assert m[done] == 3
        assert m[q_key("botwatch_queue_items_processed_total", "Invoices", "Finance", status="failed")] == 3
        assert m[q_key("botwatch_queue_item_retries_total", "Invoices", "Finance")] == 2


def test_a_role_without_access_to_resources_reads_the_rest_and_says_so_once(tmp_path, agents):
    with FakeBluePrism(deny=frozenset({"resources"})) as fake:
        fake.add_session(fake.add_process("Invoice Processing", "Finance"), "ROBOT01", "Completed")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"BP_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: runs_total(m) == 1 and m.get(UP) == 1, "the session, the connection up")
        pulls = fake.counts["sessions"]
        wait_for(lambda: fake.counts["sessions"] >= pulls + 6, what="more pulls")
        assert fake.counts["resources"] == 1  # asked once, then left alone
        agent.stop()
        assert agent.log.read_text(encoding="utf-8").count("no access to resources") == 1


def test_connection_names_are_unique_across_platforms(tmp_path):
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        "platforms:\n"
        "  uipath:\n    - {name: prod, url: 'https://cloud.uipath.com', organization: o, tenant: t, client_id: c,"
        " client_secret: s}\n"
        "  blueprism:\n    - {name: prod, url: 'https://bp.example.com/api/v7', auth_url: 'https://bp-auth.example.com',"
        " client_id: c, client_secret: s}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="connection names must be unique: prod"):
        load_estate(config)


def test_the_example_estate_file_is_valid():
    loaded = load_estate(Path(__file__).resolve().parents[1] / "examples" / "blueprism" / "botwatch.yaml")
    (bp,) = loaded.estate.platforms.blueprism
    assert bp.name == "bp-prod" and bp.stuck_stage_after == 1800 and bp.scope == "bp-api bpserver"
    assert bp.client_secret.get_secret_value() == "env:BLUEPRISM_SECRET"  # resolved when used, never stored
