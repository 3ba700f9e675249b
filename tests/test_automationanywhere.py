"""Automation Anywhere as a source: a real agent pulls a faithful stand-in Control Room
(tests/automationanywhere_fake.py: the API-key login and its 20-minute token in X-Authorization,
the activity list's body filter and paging, the device list, 429 with Retry-After, faults) and
records every bot execution exactly once as a run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from automationanywhere_fake import TERMINAL, FakeControlRoom, parse_time as fake_time
from botwatch.sources.automationanywhere import folder_of
from botwatch.sources.platform import bot_slug
from botwatch.sources.uipath_orchestrator import parse_time
from conftest import BOTWATCH, free_port, http_get, metrics_when, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]

UP = 'botwatch_agent_controlplane_up{connection="cr",platform="automationanywhere"}'
ok = 'botwatch_agent_controlplane_requests_total{connection="cr",outcome="ok",platform="automationanywhere"}'
# AA's own wording of a UI element not found, which the built-in taxonomy does not know
ESTATE_PATTERNS = "failure_patterns:\n  - {reason: ui_drift, contains: \"Object not found for\"}\n"


def expected_reason(row: dict) -> str | None:
    status, message = row["status"], row.get("message") or ""
    if status == "RUN_ABORTED":
        return "killed"
    if status == "RUN_TIMED_OUT":
        return "timeout"
    if status == "COMPLETED":
        return None
    if "Logon failed" in message:
        return "credentials"
    if "BusinessException" in message:
        return "business"
    if "Object not found for" in message:
        return "ui_drift"  # the estate's own pattern
    return None  # whatever the taxonomy says: not asserted


def estate(tmp_path: Path, fake: FakeControlRoom, port: int, connection: str = "", bots: str = "[]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n"
        + ESTATE_PATTERNS
        + f"platforms:\n  automationanywhere:\n    - name: cr\n      url: '{fake.url}'\n"
        f"      username: {fake.username}\n      api_key: env:AA_API_KEY\n      interval: 1s\n      history: 2d\n"
        + "".join(f"      {line}\n" for line in connection.splitlines())
        + f"bots: {bots}\n", encoding="utf-8")
    return config


def journal_runs(tmp_path: Path) -> dict[str, dict]:
    """The journal's runs by run id (read beside the running agent: WAL)."""
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT bot, run_id, host, started, ended, outcome, reason, output_tail, source "
                          "FROM runs").fetchall()
    finally:
        db.close()
    keys = ("bot", "run_id", "host", "started", "ended", "outcome", "reason", "output_tail", "source")
    return {r[1]: dict(zip(keys, r)) for r in rows}


def ended_runs(fake: FakeControlRoom) -> dict[str, dict]:
    return {f"automationanywhere:{r['id']}": r for r in fake.rows() if r["status"] in TERMINAL}


def runs_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))


def env_for(fake: FakeControlRoom) -> dict[str, str]:
    return {"AA_API_KEY": fake.api_key}


def assert_each_execution_once(tmp_path: Path, fake: FakeControlRoom) -> None:
    runs, executions = journal_runs(tmp_path), ended_runs(fake)
    assert set(runs) == set(executions)
    hosts = {d["id"]: d["hostName"] for d in fake.devices}
    for run_id, row in executions.items():
        run = runs[run_id]
        assert run["bot"] == bot_slug(row["fileName"]), (run, row["fileName"])
        assert run["outcome"] == ("success" if row["status"] == "COMPLETED" else "failure"), row
        want = expected_reason(row)
        if want is not None:
            assert run["reason"] == want, (row["message"], run["reason"])
        assert run["host"] == hosts.get(row["deviceId"])
        assert run["started"] == pytest.approx(parse_time(row["startDateTime"]), abs=0.001)
        assert run["ended"] == pytest.approx(parse_time(row["endDateTime"]), abs=0.001)
        assert run["ended"] - run["started"] >= 0  # a duration, from the two times
        assert run["source"] == "automationanywhere"
        if row["status"] != "COMPLETED":
            assert row["userName"] in run["output_tail"] and row["command"] in run["output_tail"]


def post(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"X-Authorization": token} if token else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_it_reads_control_room_folders_and_times():
    assert folder_of("Automation Anywhere\\Bots\\Finance\\AP\\Invoice Recon", "Invoice Recon") == "Bots/Finance/AP"
    assert folder_of("Automation Anywhere\\Bots\\Finance", "Invoice Recon") == "Bots/Finance"
    assert folder_of("", "REST-Web-Service") == "" and folder_of(None, "x") == ""
    # 9 fractional digits on startDateTime, 6 on endDateTime (the docs' sample)
    assert parse_time("2022-05-26T23:52:58.724951900Z") == pytest.approx(1653609178.724951)
    assert parse_time("2022-05-26T23:54:51.928431Z") == pytest.approx(1653609291.928431)


def test_the_example_estate_is_valid_and_a_connection_needs_its_key_and_a_name_of_its_own(tmp_path):
    ok = subprocess.run([*BOTWATCH, "check-config", str(ROOT / "examples/automationanywhere/botwatch.yaml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("platforms:\n  uipath:\n    - {name: cr, url: 'https://cloud.uipath.com', client_id: a, "
                   "client_secret: b}\n  automationanywhere:\n    - {name: cr, url: 'https://cr.example.com', "
                   "username: u, api_key: k}\n    - {name: cr2, url: 'https://cr.example.com', username: u}\n",
                   encoding="utf-8")
    out = subprocess.run([*BOTWATCH, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "missing required key 'api_key'" in out.stdout + out.stderr, out
    bad.write_text(bad.read_text().replace("username: u}", "username: u, api_key: k}"), encoding="utf-8")
    out = subprocess.run([*BOTWATCH, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "connection names must be unique: cr" in out.stdout + out.stderr, out


def test_the_stand_in_logs_in_filters_pages_and_expires_tokens_as_documented():
    clock = [0.0]
    with FakeControlRoom(clock=lambda: clock[0]) as fake:
        device = fake.add_device("BOTRUNNER-01")
        for i in range(7):
            fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED" if i % 2 else "RUN_FAILED", device=device)
        fake.add_run("Invoice Recon", "Bots/Finance", status="RUNNING", device=device)
        assert post(fake.url + "/v1/authentication", {"username": fake.username, "apiKey": "wrong"})[0] == 401
        status, login = post(fake.url + "/v1/authentication", {"username": fake.username, "apiKey": fake.api_key})
        assert status == 200 and login["user"]["username"] == fake.username
        token = login["token"]
        body = {"sort": [{"field": "startDateTime", "direction": "asc"}],
                "filter": {"operator": "or", "operands": [{"operator": "eq", "field": "status", "value": "RUNNING"},
                                                          {"operator": "ge", "field": "endDateTime",
                                                           "value": "2000-01-01T00:00:00.000Z"}]},
                "fields": [], "page": {"offset": 0, "length": 5}}
        status, first = post(fake.url + "/v3/activity/list", body, token)
        assert status == 200 and first["page"] == {"offset": 0, "total": 8, "totalFilter": 8}
        assert len(first["list"]) == 5
        assert len(first["list"][0]["startDateTime"].split(".")[1]) == 10  # nine digits and Z
        _, second = post(fake.url + "/v3/activity/list", {**body, "page": {"offset": 5, "length": 5}}, token)
        ids = [r["id"] for r in first["list"] + second["list"]]
        assert len(set(ids)) == 8
        starts = [fake_time(r["startDateTime"]) for r in first["list"] + second["list"]]
        assert starts == sorted(starts)
        running = [r for r in second["list"] + first["list"] if r["status"] == "RUNNING"]
        assert len(running) == 1 and "endDateTime" not in running[0]
        # a bad operator is a 400 with the API's envelope; no token or an expired one a 401
        status, error = post(fake.url + "/v3/activity/list", {"filter": {"operator": "like", "field": "status",
                                                                         "value": "X"}}, token)
        assert status == 400 and "operator" in error["message"]
        assert post(fake.url + "/v3/activity/list", body)[0] == 401
        clock[0] += 1201.0  # 20 minutes and a second
        assert post(fake.url + "/v3/activity/list", body, token)[0] == 401
        status, devices = post(fake.url + "/v2/devices/list", {}, post(
            fake.url + "/v1/authentication", {"username": fake.username, "apiKey": fake.api_key})[1]["token"])
        assert status == 200 and devices["list"][0]["status"] == "CONNECTED"


def test_it_records_every_execution_once_with_outcome_reason_host_duration_and_team(tmp_path, agents):
    # pages of 10, a fault on every 7th request and a token that lives 3 s: paging, retries and new logins
    with FakeControlRoom(fail_every=7, token_ttl=3.0, seed=3) as fake:
        fake.populate(n_folders=3, n_bots=3, n_runs=120, seed=5)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 10\n"
                                              "folder_teams: {'Bots/Finance*': finance, 'Bots/HR*': people}")
        agent = agents(config, port, env=env_for(fake)).start()
        n = len(ended_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1,
                         f"the {n} ended executions as runs and a whole pull done", timeout=120)
        assert_each_execution_once(tmp_path, fake)
        # the executions not ended are runs in progress
        live = sum(1 for r in fake.rows() if r["status"] not in TERMINAL)
        assert live and sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == live
        # bots registered from the Control Room carry the platform and their folder's team
        for prefix, team in (("Bots/Finance", "finance"), ("Bots/HR", "people")):
            bots = {bot_slug(r["fileName"]) for r in fake.rows() if prefix in r["filePath"].replace("\\", "/")}
            assert bots
            for bot in bots:
                info = [k for k in m if k.startswith("botwatch_bot_info{") and f'bot="{bot}"' in k]
                assert info and 'platform="automationanywhere"' in info[0] and f'team="{team}"' in info[0], info
        # the devices are the robot sessions: connected ones available or busy, one disconnected
        sessions = {k: v for k, v in m.items() if k.startswith("botwatch_robot_sessions{") and v}
        assert sessions['botwatch_robot_sessions{connection="cr",machine="BOTRUNNER-04",'
                        'platform="automationanywhere",state="disconnected"}'] == 1
        assert sum(sessions.values()) == 4
        capacity = m['botwatch_robot_unattended_capacity{connection="cr",platform="automationanywhere"}']
        busy = m['botwatch_robot_unattended_busy{connection="cr",platform="automationanywhere"}']
        assert capacity == 3 and busy == len({r["deviceId"] for r in fake.rows() if r["status"] == "RUNNING"})
        assert fake.faults_served >= 1
        # the token lives 3 s here (20 minutes in a Control Room): a 401 is answered by a new login
        wait_for(lambda: fake.logins() >= 2, what="a second login")
        assert metrics_when(agent, lambda m: m[ok] > 0, "the pulls going on")[UP] == 1
        assert m['botwatch_agent_controlplane_requests_total{connection="cr",outcome="error",'
                 'platform="automationanywhere"}'] >= 1
        # the requests are the documented ones: a POST body with filter, sort and page
        bodies = [r.body for r in fake.requests if r.path == "/v3/activity/list" and isinstance(r.body, dict)]
        assert all(set(b) == {"sort", "filter", "fields", "page"} and b["page"]["length"] == 10 for b in bodies)
        assert all(r.headers.get("X-Authorization") == "***" for r in fake.requests if r.path != "/v1/authentication")
        # each execution is one event, however often the pulls read it again
        later = metrics_when(agent, lambda later: later[ok] >= m[ok] + 12, "a few more pulls")
        assert later['botwatch_agent_events_total{source="automationanywhere"}'] == n + live


def test_a_restart_mid_pull_loses_and_repeats_nothing_and_a_late_ending_run_is_recorded(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeControlRoom(seed=4) as fake:
        fake.populate(n_folders=2, n_bots=2, n_runs=60, seed=9)
        long_running = fake.add_run("Month End Close", "Bots/Finance", status="RUNNING", device=fake.devices[0],
                                    started=now - timedelta(hours=5))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 5")
        agent = agents(config, port, env=env_for(fake)).start()
        metrics_when(agent, lambda m: runs_total(m) >= 10, "the first pages recorded")
        agent.kill()  # mid-pull, as a crash would
        # meanwhile the Control Room goes on: the long run fails (5 h after it began), new runs end
        fake.update_run(long_running, status="RUN_FAILED", message="BusinessException: period 2024-05 is closed")
        for _ in range(5):
            fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED", device=fake.devices[1])
        agent = agents(config, port, env=env_for(fake)).start()
        n = len(ended_runs(fake))
        metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended executions", timeout=120)
        assert_each_execution_once(tmp_path, fake)
        run = journal_runs(tmp_path)[f"automationanywhere:{long_running['id']}"]
        assert run["reason"] == "business" and run["ended"] - run["started"] > 5 * 3600 - 60
        # and the cursor is a checkpoint: once a pull is whole, a restarted agent asks from it, not
        # from `history` (2 days back)
        metrics_when(agent, lambda m: m.get(UP) == 1, "a whole pull")
        agent.stop()
        before = len(fake.requests)
        agent = agents(config, port, env=env_for(fake)).start()
        first = wait_for(lambda: next((r.body for r in fake.requests[before:] if r.path == "/v3/activity/list"), None),
                         what="the first pull after the restart")
        assert fake_time(first["filter"]["operands"][0]["value"]) > now - timedelta(minutes=10)


def test_it_waits_out_a_429_counts_it_and_misses_nothing(tmp_path, agents):
    with FakeControlRoom(seed=6) as fake:
        fake.populate(n_folders=1, n_bots=2, n_runs=30, seed=2)
        fake.error_once("/v3/activity/list", 429, retry_after=2)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env=env_for(fake)).start()
        n = len(ended_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended executions")
        assert m['botwatch_agent_controlplane_requests_total{connection="cr",outcome="throttled",'
                 'platform="automationanywhere"}'] == 1
        assert fake.throttled_total == 1
        # nothing was asked while the 429's Retry-After ran
        asked = [r.at for r in fake.requests if r.path != "/v1/authentication"]
        throttled_at = next(r.at for r in fake.requests if r.path == "/v3/activity/list")
        assert all(at - throttled_at >= 2.0 for at in asked if at > throttled_at)
        assert_each_execution_once(tmp_path, fake)


def test_a_revoked_api_key_is_one_clear_error_and_the_agent_goes_on(tmp_path, agents):
    with FakeControlRoom(token_ttl=1.0) as fake:
        fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env=env_for(fake)).start()
        metrics_when(agent, lambda m: runs_total(m) == 1, "the first run")
        fake.revoke_key()  # the token expires within a second; a new login is refused
        auth = 'botwatch_agent_controlplane_requests_total{connection="cr",outcome="auth",platform="automationanywhere"}'
        metrics_when(agent, lambda m: m.get(UP) == 0, "the connection down")
        assert http_get(agent.url + "/healthz")[0] == 200
        # a few more failed pulls: still one line for the outage, and never the key
        metrics_when(agent, lambda m: m[auth] >= 3, "more refusals")
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("credentials refused") == 1, log
        assert "login refused (401): Invalid credentials" in log and "api_key" in log
        assert fake.api_key not in log


def test_a_bot_no_rule_names_is_listed_as_unregistered_and_a_named_one_gets_its_owner(tmp_path, agents):
    with FakeControlRoom() as fake:
        runner = fake.add_device("BOTRUNNER-01")
        fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED", device=runner)
        fake.add_run("Payroll Check", "Bots/HR", status="RUN_FAILED", device=runner)
        fake.add_run("Payroll Check", "Bots/HR", status="RUNNING", device=runner)  # read at every pull
        port = free_port()
        config = estate(tmp_path, fake, port,
                        "processes:\n  - {process: 'Invoice.*', folder: 'Bots/Finance', bot: invoices}",
                        bots="[{name: invoices, team: ap, owner: ana.diaz@example.com}]")
        agent = agents(config, port, env=env_for(fake)).start()
        m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoices"}') == 1, "the invoices run")
        info = next(k for k in m if k.startswith("botwatch_bot_info{") and 'bot="invoices"' in k)
        assert 'bot_owner="ana.diaz@example.com"' in info and 'team="ap"' in info

        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            assert status == 200
            return [p for p in json.loads(body).get("control_plane", []) if p["process"] == "Payroll Check"]

        (entry,) = wait_for(listed, what="Payroll Check listed as unregistered")
        assert entry["folder"] == "Bots/HR" and entry["platform"] == "automationanywhere" and entry["connection"] == "cr"
        pulls = fake.counts["/v3/activity/list"]
        wait_for(lambda: fake.counts["/v3/activity/list"] >= pulls + 3, what="three more pulls")
        (entry,) = listed()
        assert entry["runs"] == 2, entry
        assert set(journal_runs(tmp_path)) == {f"automationanywhere:{r['id']}" for r in fake.rows()
                                               if r["fileName"] == "Invoice Recon"}


def test_bad_items_are_counted_and_the_rest_recorded(tmp_path, agents):
    with FakeControlRoom() as fake:
        good = fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED")
        fake.add_run("Invoice Recon", "Bots/Finance", status="RUN_FAILED")["id"] = None
        fake.add_run("Invoice Recon", "Bots/Finance", status="COMPLETED")["status"] = "TELEPORTED"
        timeless = fake.add_run("Invoice Recon", "Bots/Finance", status="RUNNING")
        timeless["startDateTime"] = "yesterday"
        del timeless["createdOn"]
        fake.add_run("Invoice Recon", "Bots/Finance", status="RUN_FAILED")["fileName"] = 42
        fake.activity.append("not an object")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env=env_for(fake)).start()
        errors = 'botwatch_agent_parse_errors_total{source="automationanywhere"}'
        metrics_when(agent, lambda m: m.get(errors, 0) >= 5 and runs_total(m) == 1 and m.get(UP) == 1,
                     "the good run recorded, the bad ones counted, the pull done")
        assert set(journal_runs(tmp_path)) == {f"automationanywhere:{good['id']}"}


def test_a_garbled_answer_is_counted_tried_again_and_nothing_is_lost(tmp_path, agents):
    with FakeControlRoom(seed=9) as fake:
        fake.populate(n_folders=1, n_bots=2, n_runs=30, seed=7)
        fake.garble_once("/v3/activity/list", b'{"page": {"offset": 0, "total": 3')  # cut off mid-answer
        fake.garble_once("/v3/activity/list", b'{"page": {"offset": 0, "total": 0, "totalFilter": 0}}')  # no list
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 10"), port,
                       env=env_for(fake)).start()
        n = len(ended_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended executions")
        assert m['botwatch_agent_parse_errors_total{source="automationanywhere"}'] == 1  # the answer without a list
        assert m['botwatch_agent_controlplane_requests_total{connection="cr",outcome="error",'
                 'platform="automationanywhere"}'] >= 1  # the one cut off, tried again at once
        assert fake.faults_served == 2
        assert_each_execution_once(tmp_path, fake)


def test_a_role_without_device_access_still_records_every_run(tmp_path, agents):
    with FakeControlRoom(seed=8) as fake:
        fake.populate(n_folders=1, n_bots=2, n_runs=20, seed=4)
        fake.forbid("/v2/devices/list")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port, env=env_for(fake)).start()
        n = len(ended_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1, f"all {n} ended executions")
        assert not any(k.startswith("botwatch_robot_sessions{") and 'platform="automationanywhere"' in k
                       for k in m)
        pulls = fake.counts["/v3/activity/list"]
        wait_for(lambda: fake.counts["/v3/activity/list"] >= pulls + 2, what="two more pulls")
        assert fake.counts["/v2/devices/list"] == 1  # asked once, then left alone
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("no access to devices") == 1, log
        assert all(run["host"] is None for run in journal_runs(tmp_path).values())  # no device names
