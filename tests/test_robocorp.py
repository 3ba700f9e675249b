"""Robocorp (Sema4.ai) Control Room as a source: a real agent pulls a faithful stand-in Control
Room (tests/robocorp_fake.py: the RC-WSKEY key, `next`/`has_more` paging, process runs, step runs,
work items, workers, 429 with Retry-After, faults) and records every process run exactly once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from botwatch.config.platforms import Platforms
from botwatch.sources.platform import bot_slug
from botwatch.sources.robocorp import ApiKey, parse_time
from conftest import BOTWATCH, free_port, http_get, metrics_when, wait_for
from robocorp_fake import FakeControlRoom

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "control-planes" / "botwatch.yaml"

UP = 'botwatch_agent_controlplane_up{connection="rc",platform="robocorp"}'


def requests(outcome: str) -> str:
    return f'botwatch_agent_controlplane_requests_total{{connection="rc",outcome="{outcome}",platform="robocorp"}}'


def expected_reason(fake: FakeControlRoom, run: dict) -> str | None:
    """What the built-in taxonomy makes of the stand-in's failures (None: not asserted)."""
    if run["state"] != "unresolved":
        return None
    failed = [i["exception"] for i in fake.run_items(run["id"]) if i["state"] == "failed"]
    if not failed:
        return None
    first = failed[0]
    if first["type"] == "business":
        return "business"
    if "Logon failed" in first["message"]:
        return "credentials"
    if "locator" in first["message"]:
        return "ui_drift"
    return None


def estate(tmp_path: Path, fake: FakeControlRoom, port: int, connection: str = "", bots: str = "[]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n"
        f"platforms:\n  robocorp:\n    - name: rc\n      url: '{fake.url}'\n      workspace_id: {fake.workspace_id}\n"
        f"      api_key: env:RC_KEY\n      interval: 1s\n      history: 2d\n"
        + "".join(f"      {line}\n" for line in connection.splitlines())
        + f"bots: {bots}\n", encoding="utf-8")
    return config


def journal_runs(tmp_path: Path) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        keys = ("bot", "run_id", "host", "started", "ended", "outcome", "reason", "output_tail", "source",
                "items_processed", "items_failed")
        rows = db.execute(f"SELECT {', '.join(keys)} FROM runs").fetchall()
    finally:
        db.close()
    return {r[1]: dict(zip(keys, r)) for r in rows}


def runs_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))


def assert_each_run_once(tmp_path: Path, fake: FakeControlRoom, items: bool = False) -> dict[str, dict]:
    runs = journal_runs(tmp_path)
    ended = {f"robocorp:{r['id']}": r for r in fake.ended_runs()}
    assert set(runs) == set(ended)
    for run_id, r in ended.items():
        got = runs[run_id]
        assert got["bot"] == bot_slug(r["process"]["name"])
        assert got["outcome"] == ("success" if r["state"] == "completed" else "failure")
        want = expected_reason(fake, r)
        if want is not None:
            assert got["reason"] == want, (got["output_tail"], got["reason"])
        assert got["started"] == pytest.approx(parse_time(r["started_at"]), abs=0.001)
        assert got["ended"] == pytest.approx(parse_time(r["ended_at"]), abs=0.001)
        assert got["ended"] - got["started"] == pytest.approx(r["duration"], abs=0.002)
        assert got["source"] == "robocorp"
        if items:
            mine = fake.run_items(r["id"])
            assert got["items_processed"] == len(mine)
            assert got["items_failed"] == sum(1 for i in mine if i["state"] == "failed")
    return runs


def test_it_reads_control_room_times_sends_the_key_and_checks_its_settings():
    assert parse_time("2023-10-19T08:15:00.250Z") == pytest.approx(1697703300.25)
    assert parse_time("2023-10-19T10:15:00+02:00") == 1697703300.0
    assert parse_time(None) is None and parse_time("soon") is None
    key = ApiKey(lambda: "k-123")
    assert key.headers() == {"Authorization": "RC-WSKEY k-123"}
    key.invalidate()  # a static key: nothing to fetch again
    assert key.headers() == {"Authorization": "RC-WSKEY k-123"}
    with pytest.raises(Exception, match="no API key"):
        ApiKey(lambda: None).headers()
    entry = {"name": "rc", "workspace_id": "ws1", "api_key": "env:K"}
    assert Platforms.model_validate({"robocorp": [entry]}).robocorp[0].url.startswith("https://")
    with pytest.raises(ValueError, match="workspace_id"):
        Platforms.model_validate({"robocorp": [{**entry, "workspace_id": "../x"}]})
    with pytest.raises(ValueError, match="unique"):
        Platforms.model_validate({"robocorp": [entry], "uipath": [{"name": "rc", "url": "https://x", "client_id": "a",
                                                                    "client_secret": "b"}]})


def test_it_records_every_run_once_with_outcome_reason_duration_items_team_and_workers(tmp_path, agents):
    # pages of 10 and a fault on every 7th request: paging and retries are exercised
    with FakeControlRoom(fail_every=7, seed=3) as fake:
        fake.populate(n_processes=4, n_runs=120, seed=5)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 10\nitem_counts: true\n"
                                              "requests_per_minute: 1000\n"
                                              "folder_teams: {'Finance*/Invoice*': ap, 'Finance*': finance}")
        agent = agents(config, port, env={"RC_KEY": fake.api_key}).start()
        n = len(fake.ended_runs())
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1,
                         f"the {n} ended runs recorded and a whole pull done", timeout=120)
        runs = assert_each_run_once(tmp_path, fake, items=True)
        # the failures' text is what was classified: work item exceptions, failed steps' codes
        assert any("Error.BUSINESS" in (r["output_tail"] or "") for r in runs.values())
        assert any("failed: ROBOT_CRASHED" in (r["output_tail"] or "") or "failed: WORKER_TIMEOUT" in
                   (r["output_tail"] or "") for r in runs.values())
        live = len(fake.open_runs())
        assert sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == live
        # bots registered from Control Room carry the platform and their folder's (workspace/process) team
        for process in {r["process"]["name"] for r in fake.runs}:
            info = [k for k in m if k.startswith("botwatch_bot_info{") and f'bot="{bot_slug(process)}"' in k]
            team = "ap" if process.startswith("Invoice") else "finance"
            assert info and 'platform="robocorp"' in info[0] and f'team="{team}"' in info[0], info
        # the workers, per state
        for w in fake.workers:
            state = {"idle": "available", "busy": "busy", "offline": "disconnected"}[w["state"]]
            assert m[f'botwatch_robot_sessions{{connection="rc",machine="{w["name"]}",platform="robocorp",'
                     f'state="{state}"}}'] == 1
        assert m[requests("error")] >= 1 and fake.faults_served >= 1
        # each run is one event per state it was seen in, however often the pulls read it again
        later = metrics_when(agent, lambda later: later[requests("ok")] >= m[requests("ok")] + 12, "a few more pulls")
        assert later['botwatch_agent_events_total{source="robocorp"}'] == n + live
        assert runs_total(later) == n


def test_a_restart_mid_pull_loses_and_repeats_nothing_and_long_runs_are_recorded_when_they_end(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeControlRoom(seed=4) as fake:
        fake.populate(n_processes=2, n_runs=60, seed=9, anchor=now)
        process = fake.processes[0]
        # in progress for 5 h (found by paging) and 8 h (older than paging reaches: asked for by id)
        five = fake.add_run(process, "in_progress", created=now - timedelta(hours=5))
        eight = fake.add_run(process, "stopping", created=now - timedelta(hours=8))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 5")
        env = {"RC_KEY": fake.api_key}
        agent = agents(config, port, env=env).start()
        metrics_when(agent, lambda m: runs_total(m) >= 10, "the first pages recorded")
        agent.kill()  # mid-pull, as a crash would
        agent = agents(config, port, env=env).start()
        n = len(fake.ended_runs())
        metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended runs", timeout=120)
        assert_each_run_once(tmp_path, fake)
        pulled = fake.counts["process-runs"]
        wait_for(lambda: fake.counts["process-runs"] >= pulled + 2, what="another whole pull (its cursor saved)")
        agent.kill()  # between pulls
        # meanwhile Control Room goes on: the long runs end, new runs are created and end
        fake.end_run(five, "unresolved", failures=[{"code": "VENDOR_BLOCKED", "type": "business",
                                                    "message": "Vendor 4711 is blocked for payment"}])
        fake.end_run(eight, "unresolved")
        for _ in range(7):
            fake.add_run(fake.processes[1], "completed", items_done=2)
        fake.add_run(fake.processes[1], "in_progress")
        agent = agents(config, port, env=env).start()
        n = len(fake.ended_runs())
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended runs", timeout=120)
        runs = assert_each_run_once(tmp_path, fake)
        assert runs[f"robocorp:{five['id']}"]["reason"] == "business"
        assert runs[f"robocorp:{eight['id']}"]["reason"] == "killed"  # it was being stopped
        assert fake.counts["process-run"] >= 1  # the 8 h old run was asked for by its id
        assert runs_total(m) == n


def test_it_waits_out_a_429_counts_it_and_misses_nothing(tmp_path, agents):
    with FakeControlRoom(seed=6) as fake:
        fake.populate(n_processes=2, n_runs=30, seed=2)
        fake.error_once("/process-runs", 429, retry_after=2)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env={"RC_KEY": fake.api_key}).start()
        n = len(fake.ended_runs())
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended runs")
        assert m[requests("throttled")] == 1 and fake.throttled_total == 1
        assert_each_run_once(tmp_path, fake)


def test_a_revoked_key_is_one_clear_error_and_the_agent_goes_on(tmp_path, agents):
    with FakeControlRoom() as fake:
        fake.add_run(fake.add_process("Invoice Processing"), "completed")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env={"RC_KEY": fake.api_key}).start()
        metrics_when(agent, lambda m: runs_total(m) == 1 and m.get(UP) == 1, "the first run")
        fake.revoke_key()
        metrics_when(agent, lambda m: m.get(UP) == 0, "the connection down")
        assert http_get(agent.url + "/healthz")[0] == 200
        metrics_when(agent, lambda m: m[requests("auth")] >= 3, "more refusals")
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("credentials refused") == 1, log
        assert "Invalid or revoked API key" in log and "check api_key" in log
        assert fake.api_key not in log


def test_a_rule_names_the_estate_bot_with_its_owner_and_other_processes_are_listed_unregistered(tmp_path, agents):
    with FakeControlRoom(workspace_name="Finance Automation") as fake:
        invoices, payroll = fake.add_process("Invoice Processing"), fake.add_process("Payroll Check")
        mine = fake.add_run(invoices, "unresolved", failures=[{"code": "LOGIN_FAILED", "type": "application",
                                                                "message": "Logon failed for user 'svc_rpa'"}])
        fake.add_run(payroll, "completed")
        fake.add_run(payroll, "in_progress")  # read again at every pull: one run all the same
        port = free_port()
        config = estate(tmp_path, fake, port,
                        "processes:\n  - {process: 'Invoice.*', folder: 'Finance.*/.*', bot: invoices}",
                        bots="[{name: invoices, team: ap, owner: ana.diaz@example.com}]")
        agent = agents(config, port, env={"RC_KEY": fake.api_key}).start()
        m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoices"}') == 1, "the invoices run")
        info = [k for k in m if k.startswith('botwatch_bot_info{') and 'bot="invoices"' in k]
        assert info and 'bot_owner="ana.diaz@example.com"' in info[0] and 'team="ap"' in info[0], info
        run = journal_runs(tmp_path)[f"robocorp:{mine['id']}"]
        assert run["outcome"] == "failure" and run["reason"] == "credentials"
        assert "Error.APPLICATION LOGIN_FAILED: Logon failed" in run["output_tail"]

        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            assert status == 200
            return [p for p in json.loads(body).get("control_plane", []) if p["process"] == "Payroll Check"]

        (entry,) = wait_for(listed, what="Payroll Check listed as unregistered")
        assert entry["folder"] == "Finance Automation/Payroll Check"
        assert entry["platform"] == "robocorp" and entry["connection"] == "rc"
        pulls = fake.counts["process-runs"]
        wait_for(lambda: fake.counts["process-runs"] >= pulls + 3, what="three more pulls")
        (entry,) = listed()
        assert entry["runs"] == 2, entry
        assert set(journal_runs(tmp_path)) == {f"robocorp:{mine['id']}"}


def test_bad_items_and_a_broken_page_are_counted_and_the_rest_recorded(tmp_path, agents):
    with FakeControlRoom() as fake:
        process = fake.add_process("Invoice Processing")
        good = fake.add_run(process, "completed")
        fake.add_run(process, "completed")["id"] = None  # as a broken proxy or a schema change might send it
        fake.add_run(process, "completed")["state"] = "teleported"
        fake.add_run(process, "unresolved")["ended_at"] = None
        fake.error_once("/process-runs", 200, body=b'{"next": null, "has_more": false, "data": [')
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env={"RC_KEY": fake.api_key}).start()
        m = metrics_when(agent, lambda m: m.get('botwatch_agent_parse_errors_total{source="robocorp"}', 0) >= 3
                         and runs_total(m) == 1 and m.get(UP) == 1,
                         "the good run recorded, the three bad ones counted, a pull done")
        assert m[requests("error")] >= 1  # the page that was not JSON: that pull failed, the next one read it
        assert set(journal_runs(tmp_path)) == {f"robocorp:{good['id']}"}
        # a run created "tomorrow" (a server clock gone wrong) does not push the cursor past the runs of today
        future = fake.add_run(process, "completed", created=datetime.now(timezone.utc) + timedelta(days=1))
        metrics_when(agent, lambda m: runs_total(m) == 2, "the run from the future")
        today = fake.add_run(process, "completed")
        metrics_when(agent, lambda m: runs_total(m) == 3, "the run of today")
        assert set(journal_runs(tmp_path)) == {f"robocorp:{r['id']}" for r in (good, future, today)}


def test_a_key_without_a_permission_reads_the_rest_and_says_so_once(tmp_path, agents):
    with FakeControlRoom() as fake:
        fake.permissions -= {"Processes.read_work_items", "Workers.read_workers"}
        process = fake.add_process("Order Entry")
        failed = fake.add_run(process, "unresolved", failures=[{"step_error": "WORKER_TIMEOUT"}])
        fake.add_worker("rpa-worker-01", "idle")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env={"RC_KEY": fake.api_key}).start()
        metrics_when(agent, lambda m: runs_total(m) == 1 and m.get(UP) == 1, "the run recorded, the pull done")
        pulls = fake.counts["process-runs"]
        wait_for(lambda: fake.counts["process-runs"] >= pulls + 3, what="three more pulls")
        run = journal_runs(tmp_path)[f"robocorp:{failed['id']}"]
        assert run["output_tail"] == "step 'Consumer' failed: WORKER_TIMEOUT"
        assert fake.counts["workers"] == 1 and fake.counts["work-items"] == 1  # asked once, then left alone
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("no access to work_items") == 1 and log.count("no access to workers") == 1, log


def test_a_list_not_newest_first_is_read_to_its_end_and_said_once(tmp_path, agents):
    with FakeControlRoom(seed=8) as fake:
        fake.newest_first = False
        fake.populate(n_processes=2, n_runs=40, seed=4)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 5"), port,
                       env={"RC_KEY": fake.api_key}).start()
        n = len(fake.ended_runs())
        metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended runs")
        fake.add_run(fake.processes[0], "completed")  # the newest: on the last page
        n += 1
        metrics_when(agent, lambda m: runs_total(m) == n, "the new run, from the last page")
        assert_each_run_once(tmp_path, fake)
        agent.stop()
        assert agent.log.read_text(encoding="utf-8").count("not listed newest first") == 1


def test_without_reading_single_runs_a_long_run_is_followed_by_paging_back_to_it(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeControlRoom(seed=11) as fake:
        fake.permissions -= {"Processes.read_processes"}  # no single runs, no step runs
        fake.populate(n_processes=2, n_runs=30, seed=6, anchor=now)
        long_run = fake.add_run(fake.processes[0], "in_progress", created=now - timedelta(hours=9))
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 5"), port,
                       env={"RC_KEY": fake.api_key}).start()
        n = len(fake.ended_runs())
        metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended runs")
        fake.add_run(fake.processes[1], "completed")  # a newer run: the long one falls behind the cursor
        metrics_when(agent, lambda m: runs_total(m) == n + 1, "the newer run")
        pulled = fake.counts["process-runs"]
        wait_for(lambda: fake.counts["process-runs"] >= pulled + 10, what="more pulls")
        fake.end_run(long_run, "completed")
        m = metrics_when(agent, lambda m: runs_total(m) == n + 2 and m.get(UP) == 1, "the long run's end")
        runs = assert_each_run_once(tmp_path, fake)
        assert runs[f"robocorp:{long_run['id']}"]["outcome"] == "success"
        assert m[UP] == 1
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("no access to a single process run") == 1, log
        assert log.count("no access to step_runs") == 1, log


def test_the_example_estate_is_valid_and_its_entry_pulls_a_workspace(tmp_path, agents):
    check = subprocess.run([*BOTWATCH, "check-config", str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    with FakeControlRoom(workspace_name="Finance") as fake:
        invoices, payroll = fake.add_process("Invoice Processing"), fake.add_process("Payroll Run")
        fake.add_run(invoices, "completed")
        fake.add_run(payroll, "unresolved", failures=[{"code": "NO_TIMESHEET", "type": "business",
                                                       "message": "No timesheet for employee 1234"}])
        port = free_port()
        text = EXAMPLE.read_text(encoding="utf-8")
        text = (text.replace("https://cloud.robocorp.com/api/v1", fake.url)
                .replace("1a2b3c4d5e6f7a8b9c0d1e2f", fake.workspace_id)
                .replace("127.0.0.1:9464", f"127.0.0.1:{port}")
                .replace("./botwatch-journal.db", str(tmp_path / "journal.db"))
                .replace("interval: 60s", "interval: 1s"))
        config = tmp_path / "botwatch.yaml"
        config.write_text(text, encoding="utf-8")
        agent = agents(config, port, env={"RC_API_KEY": fake.api_key}).start()
        m = metrics_when(agent, lambda m: runs_total(m) == 2, "both runs")
        info = {k for k in m if k.startswith("botwatch_bot_info{")}
        assert any('bot="invoice-recon"' in k and 'bot_owner="ana.diaz@example.com"' in k
                   and 'team="accounts-payable"' in k for k in info), info
        assert any('bot="payroll-run"' in k and 'team="people-systems"' in k and 'platform="robocorp"' in k
                   for k in info), info
        assert m['botwatch_run_failures_total{bot="payroll-run",reason="business"}'] == 1


def test_a_next_page_at_another_address_is_not_followed_and_the_key_not_sent_there(tmp_path, agents):
    asked: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            asked.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"next": null, "has_more": false, "data": []}')

        def log_message(self, *args):
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    try:
        with FakeControlRoom() as fake:
            fake.next_origin = f"http://127.0.0.1:{elsewhere.server_address[1]}"
            process = fake.add_process("Order Entry")
            for _ in range(3):
                fake.add_run(process, "completed")
            port = free_port()
            agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 2"), port,
                           env={"RC_KEY": fake.api_key}).start()
            metrics_when(agent, lambda m: m.get(UP) == 0, "the connection down")
            assert runs_total(agent.metrics()) == 2  # the first page is recorded
            agent.stop()
            log = agent.log.read_text(encoding="utf-8")
            assert "a next page at another address" in log and fake.api_key not in log
            assert asked == []
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
