"""Power Automate as a source: a real agent pulls a stand-in Dataverse environment
(tests/powerautomate_fake.py: Entra ID's token endpoint, `Prefer: odata.maxpagesize` paging with
`@odata.nextLink`, filters, 429 with Retry-After, privileges, the docs samples' trailing commas) and
records every desktop-flow and cloud-flow run exactly once; completion callbacks are believed only
when Dataverse confirms them."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from botwatch.sources.platform import parse_time
from botwatch.sources.platform import bot_slug
from botwatch.sources.powerautomate import STATUSCODES, loads_lenient
from conftest import BOTWATCH, free_port, http_get, metrics_when, wait_for
from powerautomate_fake import SAMPLE_FLOWS, SESSION_ENDED, SESSION_OPEN, SESSION_STATUS, FakeDataverse, corpus_sample

pytestmark = pytest.mark.integration

ENV = "contoso-prod"
# what the built-in taxonomy makes of the stand-in's error texts
REASON_OF_ERROR = [(re.compile(r"Failed to click UI element|CSS selector not found|Window wasn't found"), "ui_drift"),
                   (re.compile(r"Logon failed|Invalid credentials"), "credentials")]
REASON_OF_STATUS = {10: "timeout", 7: "killed", 11: "killed", 14: "killed"}


def sample(m: dict[str, float], name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (any order); None if absent."""
    for key, value in m.items():
        if key.startswith(name + "{") and all(f'{k}="{v}"' in key for k, v in labels.items()):
            return value
    return None


def estate(tmp_path: Path, fake: FakeDataverse, port: int, connection: str = "", bots: str = "[]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n"
        f"platforms:\n  powerautomate:\n    - name: prod\n      url: '{fake.url}'\n      tenant_id: {fake.tenant_id}\n"
        f"      client_id: {fake.client_id}\n      client_secret: env:PA_SECRET\n      token_url: '{fake.token_url}'\n"
        f"      environment: {ENV}\n      history: 2d\n"
        + "".join(f"      {line}\n" for line in (connection or "interval: 1s").splitlines())
        + f"bots: {bots}\n", encoding="utf-8")
    return config


def start(tmp_path, agents, fake, connection: str = "interval: 1s\nauto_register: true", bots: str = "[]"):
    port = free_port()
    return agents(estate(tmp_path, fake, port, connection, bots), port, env={"PA_SECRET": fake.client_secret}).start()


def journal_runs(tmp_path: Path) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT bot, run_id, host, started, ended, outcome, reason, output_tail, source "
                          "FROM runs").fetchall()
    finally:
        db.close()
    keys = ("bot", "run_id", "host", "started", "ended", "outcome", "reason", "output_tail", "source")
    return {r[1]: dict(zip(keys, r)) for r in rows}


def expected_runs(fake: FakeDataverse) -> dict[str, tuple[str, dict]]:
    """run id -> ("desktop" | "cloud", row) of every run that ended."""
    runs = {f"powerautomate:{s['flowsessionid']}": ("desktop", s) for s in fake.rows("flowsessions")
            if s["statuscode"] in SESSION_ENDED}
    runs.update({f"powerautomate:{r['flowrunid']}": ("cloud", r) for r in fake.rows("flowruns")})
    return runs


def runs_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))


def up(m: dict[str, float]) -> float | None:
    return sample(m, "botwatch_agent_controlplane_up", connection="prod", platform="powerautomate")


def requests(m: dict[str, float], outcome: str) -> float:
    return sample(m, "botwatch_agent_controlplane_requests_total", connection="prod", outcome=outcome,
                  platform="powerautomate") or 0.0


def assert_each_run_once(tmp_path: Path, fake: FakeDataverse) -> None:
    runs, want = journal_runs(tmp_path), expected_runs(fake)
    assert set(runs) == set(want)
    flows = {f["workflowid"]: f["name"] for f in fake.rows("workflows")}
    machines = {m["flowmachineid"]: m["name"] for m in fake.rows("flowmachines")}
    for run_id, (kind, row) in want.items():
        run = runs[run_id]
        assert run["source"] == "powerautomate"
        if kind == "desktop":
            assert run["bot"] == bot_slug(flows[row["_regardingobjectid_value"]])
            status = row["statuscode"]
            assert run["outcome"] == ("success" if status == 4 else "failure"), (run, status)
            assert run["host"] == machines[row["_machineid_value"]]
            assert run["started"] == parse_time(row["startedon"]) and run["ended"] == parse_time(row["completedon"])
            reason = REASON_OF_STATUS.get(status)
            text = row["errormessage"] or ""
            if run["outcome"] == "failure" and row["_machinegroupid_value"]:  # where it ran leads the error
                group = next(g["name"] for g in fake.rows("flowmachinegroups")
                             if g["flowmachinegroupid"] == row["_machinegroupid_value"])
                assert (run["output_tail"] or "").startswith(f"Machine {run['host']} (group {group})"), run
        else:
            assert run["bot"] == bot_slug(flows[row["_workflow_value"]])
            assert run["outcome"] == ("success" if row["status"] == "Success" else "failure"), (run, row["status"])
            assert run["host"] is None
            assert run["ended"] - run["started"] == pytest.approx(row["duration"] / 1000)
            reason = "killed" if row["status"] == "Cancelled" else None
            text = row["errormessage"] or ""
        if run["outcome"] == "failure" and reason is None:
            reason = next((r for p, r in REASON_OF_ERROR if p.search(text)), None)
            assert text in (run["output_tail"] or ""), run  # the error text is kept with the run
        if reason is not None:
            assert run["reason"] == reason, (text, run)


def test_statuscodes_and_the_docs_samples_trailing_commas_are_read():
    assert set(STATUSCODES) == set(SESSION_STATUS)  # every documented statuscode has a meaning
    assert {c for c, k in STATUSCODES.items() if k[0] == "ended"} == SESSION_ENDED
    assert {c for c, k in STATUSCODES.items() if k[0] == "running"} == SESSION_OPEN
    # Microsoft's samples print a comma after the last property: read all the same
    status = corpus_sample("pa-docs_flowsession-get-status_docs-sample.txt")
    assert (status["statuscode"], status["statecode"]) == (8, 0) and STATUSCODES[8][1] == "failure"
    assert [f[0] for f in SAMPLE_FLOWS] == ["Desktop flow 1", "Desktop flow 2"]
    callback = corpus_sample("pa-docs_rundesktopflow-callback-body_docs-sample.json")
    assert set(callback) == {"statuscode", "statecode", "startedon", "completedon", "flowsessionid"}
    assert loads_lenient(b'{"a": [1, 2,], "b": "x,}",}') == {"a": [1, 2], "b": "x,}"}
    with pytest.raises(ValueError):
        loads_lenient(b'{"a": 1,, }x')


def test_it_records_every_desktop_and_cloud_run_once_with_outcome_reason_machine_owner_and_team(tmp_path, agents):
    # pages of 10 and a fault on every 7th request: paging by nextLink and retries are exercised
    with FakeDataverse(fail_every=7, seed=3) as fake:
        fake.populate(n_sessions=120, n_cloud=50, seed=5, anchor=datetime.now(timezone.utc))
        agent = start(tmp_path, agents, fake, "interval: 1s\nauto_register: true\npage_size: 10\n"
                                              "folder_teams: {'contoso-*': finance}")
        n = len(expected_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and up(m) == 1,
                         f"the {n} ended runs recorded and a whole pull done", timeout=120)
        assert_each_run_once(tmp_path, fake)
        # the desktop runs not ended are runs in progress
        live = sum(1 for s in fake.rows("flowsessions") if s["statuscode"] in SESSION_OPEN)
        assert sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == live
        # each flow a bot of the platform, with its owner in Dataverse and the environment's team
        users = {u["systemuserid"]: u["fullname"] for u in fake.rows("systemusers")}
        for flow in fake.rows("workflows"):
            info = sample(m, "botwatch_bot_info", bot=bot_slug(flow["name"]), platform="powerautomate",
                          team="finance", bot_owner=users[flow["_ownerid_value"]])
            assert info == 1, flow["name"]
        # the machines: capacity available or busy with the runs Running on them
        for machine in fake.rows("flowmachines"):
            running = sum(1 for s in fake.rows("flowsessions")
                          if s["statuscode"] == 2 and s["_machineid_value"] == machine["flowmachineid"])
            busy = min(running, machine["sessioncapacity"])
            assert sample(m, "botwatch_robot_sessions", platform="powerautomate", machine=machine["name"],
                          state="busy") == busy
            assert sample(m, "botwatch_robot_sessions", platform="powerautomate", machine=machine["name"],
                          state="available") == machine["sessioncapacity"] - busy
        assert fake.faults_served >= 1 and requests(m, "error") >= 1
        # pages were asked for with the Prefer header and followed by nextLink
        pages = [p for _, p, h in fake.requests if p.startswith("/api/data/v9.2/flowsessions?")]
        assert any("%24skiptoken=" in p or "$skiptoken=" in p for p in pages)
        assert all("odata.maxpagesize=10" in h.get("prefer", "") for _, p, h in fake.requests
                   if p.startswith("/api/data/v9.2/flow"))
        # each run is one event however often the pulls read it again
        later = metrics_when(agent, lambda later: requests(later, "ok") >= requests(m, "ok") + 12, "a few more pulls")
        assert later['botwatch_agent_events_total{source="powerautomate"}'] == n + live


def test_a_restart_mid_pull_loses_and_repeats_nothing_and_a_late_ending_run_is_recorded(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeDataverse(seed=4) as fake:
        fake.populate(n_sessions=80, n_cloud=40, seed=9, anchor=now)
        flow = next(f for f in fake.rows("workflows") if f["category"] == 6)
        machine = fake.rows("flowmachines")[0]
        long_running = fake.add_session(flow, statuscode=2, machine=machine, started=now - timedelta(hours=5))
        config_lines = "interval: 1s\nauto_register: true\npage_size: 5"
        agent = start(tmp_path, agents, fake, config_lines)
        metrics_when(agent, lambda m: runs_total(m) >= 10, "the first pages recorded")
        agent.kill()  # mid-pull, as a crash would
        # meanwhile the environment goes on: the long run fails (5 h after it began), more runs end
        fake.update_session(long_running, statuscode=8,
                            error=("ActionFailed", "Failed to click UI element 'Button \\'Post\\''."))
        cloud = next(f for f in fake.rows("workflows") if f["category"] == 5)
        for _ in range(4):
            fake.add_session(flow, statuscode=4, machine=machine)
            fake.add_flowrun(cloud, status="Failed")
        agent = start(tmp_path, agents, fake, config_lines)
        n = len(expected_runs(fake))
        metrics_when(agent, lambda m: runs_total(m) == n and up(m) == 1, f"all {n} ended runs", timeout=120)
        assert_each_run_once(tmp_path, fake)
        run = journal_runs(tmp_path)[f"powerautomate:{long_running['flowsessionid']}"]
        assert run["reason"] == "ui_drift" and run["ended"] - run["started"] >= 5 * 3600 - 60


def test_it_waits_out_a_429_counts_it_and_misses_nothing(tmp_path, agents):
    with FakeDataverse(seed=6) as fake:
        fake.populate(n_sessions=30, n_cloud=10, seed=2, anchor=datetime.now(timezone.utc))
        fake.error_once("/flowsessions", 429, retry_after=2)
        agent = start(tmp_path, agents, fake)
        n = len(expected_runs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended runs")
        assert requests(m, "throttled") == 1 and fake.throttled == 1
        assert_each_run_once(tmp_path, fake)


def test_a_revoked_secret_is_one_clear_error_and_the_agent_goes_on(tmp_path, agents):
    with FakeDataverse(token_ttl=1.0) as fake:
        flow = fake.add_flow("Invoice Posting SAP", owner=fake.add_user("Ana Diaz"))
        fake.add_session(flow, statuscode=4)
        agent = start(tmp_path, agents, fake)
        metrics_when(agent, lambda m: runs_total(m) == 1, "the first run")
        fake.revoke_secret()  # the token expires within a second; a new one is refused
        m = metrics_when(agent, lambda m: up(m) == 0, "the connection down")
        assert requests(m, "auth") >= 1
        assert http_get(agent.url + "/healthz")[0] == 200
        metrics_when(agent, lambda m: requests(m, "auth") >= 3, "more refusals")
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("credentials refused") == 1, log
        assert "AADSTS7000215" in log  # Entra ID's own reason, once
        assert fake.client_secret not in log


def test_a_role_without_flowrun_read_turns_cloud_runs_off_and_desktop_runs_go_on(tmp_path, agents):
    with FakeDataverse() as fake:
        owner = fake.add_user("Chen Wei")
        desktop, cloud = fake.add_flow("Invoice Posting SAP", owner=owner), fake.add_flow("Approve", category=5)
        fake.add_session(desktop, statuscode=4)
        fake.add_flowrun(cloud, status="Success")
        fake.deny("flowruns")
        agent = start(tmp_path, agents, fake)
        m = metrics_when(agent, lambda m: runs_total(m) == 1 and up(m) == 1, "the desktop run, connection up")
        desktop_run = next(iter(journal_runs(tmp_path).values()))
        assert desktop_run["bot"] == "invoice-posting-sap"
        pulls = fake.counts["flowsessions"]
        wait_for(lambda: fake.counts["flowsessions"] >= pulls + 2, what="two more pulls")
        assert fake.counts["flowruns"] == 1  # asked once, then left off
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("no access to cloud_flows") == 1 and "prvReadflowrun" in log, log
        assert sample(m, "botwatch_agent_controlplane_up", platform="powerautomate") == 1


def test_a_flow_no_rule_names_is_listed_as_unregistered_and_its_runs_not_recorded(tmp_path, agents):
    with FakeDataverse() as fake:
        invoices = fake.add_flow("Invoice Posting SAP")
        payroll = fake.add_flow("Payroll Check")
        fake.add_session(invoices, statuscode=4)
        fake.add_session(payroll, statuscode=8)
        fake.add_session(payroll, statuscode=2)  # read again at every pull: one run all the same
        agent = start(tmp_path, agents, fake, f"interval: 1s\nprocesses:\n  - {{process: 'Invoice.*', "
                                              f"folder: '{ENV}', bot: invoices}}",
                      bots="[{name: invoices, team: ap, owner: ap-lead@example.com}]")
        m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoices"}') == 1, "the invoices run")
        assert sample(m, "botwatch_bot_info", bot="invoices", team="ap", bot_owner="ap-lead@example.com") == 1

        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            assert status == 200
            return [p for p in json.loads(body).get("control_plane", []) if p["process"] == "Payroll Check"]

        (entry,) = wait_for(listed, what="Payroll Check listed as unregistered")
        assert entry["folder"] == ENV and entry["platform"] == "powerautomate" and entry["connection"] == "prod"
        pulls = fake.counts["flowsessions"]
        wait_for(lambda: fake.counts["flowsessions"] >= pulls + 3, what="three more pulls")
        (entry,) = listed()
        assert entry["runs"] == 2, entry
        assert {r["bot"] for r in journal_runs(tmp_path).values()} == {"invoices"}


def test_bad_rows_are_counted_and_the_rest_recorded_even_with_the_docs_trailing_commas(tmp_path, agents):
    with FakeDataverse(trailing_commas=True) as fake:
        flow = fake.add_flow("Invoice Posting SAP")
        good = fake.add_session(flow, statuscode=4)
        odd = fake.add_session(flow, statuscode=4)
        odd["statuscode"] = 42  # a status this agent does not know
        orphan = fake.add_session(flow, statuscode=8)
        orphan["_regardingobjectid_value"] = None
        broken = fake.add_session(flow, statuscode=4)
        broken["completedon"] = None  # Succeeded, yet no end: as a schema change or a broken proxy might send it
        fake.add_session(flow, statuscode=5)  # Skipped: not a run, not an error
        agent = start(tmp_path, agents, fake)
        m = metrics_when(agent, lambda m: m.get('botwatch_agent_parse_errors_total{source="powerautomate"}', 0) >= 3
                         and runs_total(m) == 1 and up(m) == 1, "the good run recorded, the three bad ones counted")
        assert set(journal_runs(tmp_path)) == {f"powerautomate:{good['flowsessionid']}"}
        assert requests(m, "error") == 0  # every answer had the samples' trailing commas, and was read


def test_a_genuine_callback_is_recorded_at_once_and_a_forged_one_is_refused_and_counted(tmp_path, agents):
    with FakeDataverse(trailing_commas=True) as fake:
        flow = fake.add_flow("Invoice Posting SAP", owner=fake.add_user("Ana Diaz"))
        machine = fake.add_machine("RPA-VM-01")
        running = fake.add_session(flow, statuscode=2, machine=machine)
        # pulled once at start, then hourly: what is recorded sooner came by callback
        agent = start(tmp_path, agents, fake, "interval: 1h\nauto_register: true\ncallbacks: true")
        metrics_when(agent, lambda m: up(m) == 1, "the first pull")
        hook = f"{agent.url}/api/v1/webhooks/powerautomate/prod"

        def webhooks(m, outcome):
            return sample(m, "botwatch_agent_webhooks_total", connection="prod", outcome=outcome,
                          platform="powerautomate")

        # forged: a session Dataverse does not have
        status, _ = fake.send_callback(hook, {**fake.callback_body(running), "statuscode": 4,
                                              "flowsessionid": "d9687093-d0c0-ec11-983e-0022480b428a"})
        assert status == 200
        # forged: the run is still Running in Dataverse, the callback claims it succeeded
        assert fake.send_callback(hook, fake.callback_body(running, statuscode=4,
                                                           completedon="2022-09-05T08:04:41Z"))[0] == 200
        # malformed
        assert fake.send_callback(hook, b'{"statuscode": "done"}')[0] == 400
        m = agent.metrics()
        assert webhooks(m, "ignored") == 2 and webhooks(m, "malformed") == 1
        assert runs_total(m) == 0 and journal_runs(tmp_path) == {}
        # genuine: the run fails, Power Automate calls back, Dataverse confirms it
        fake.update_session(running, statuscode=9, error=("ActionFailed", "Window wasn't found."))
        status, answer = fake.send_callback(hook, fake.callback_body(running))
        assert status == 200 and answer["accepted"] == 1, answer
        m = agent.metrics()
        assert webhooks(m, "accepted") == 1 and runs_total(m) == 1
        run = journal_runs(tmp_path)[f"powerautomate:{running['flowsessionid']}"]
        assert run["outcome"] == "failure" and run["reason"] == "ui_drift" and run["host"] == "RPA-VM-01"
        # a claim of another ending for a run Dataverse has ended otherwise is refused too
        assert fake.send_callback(hook, fake.callback_body(running, statuscode=4))[0] == 200
        assert webhooks(agent.metrics(), "ignored") == 3
        # the callback was confirmed by reading the session, never believed on its own
        reads = [p for _, p, _h in fake.requests if p.startswith("/api/data/v9.2/flowsessions(")]
        assert len(reads) == 4
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert "Dataverse does not have: refused" in log and "which Dataverse has as 2: refused" in log


def test_callbacks_are_refused_unless_the_connection_takes_them(tmp_path, agents):
    with FakeDataverse() as fake:
        session = fake.add_session(fake.add_flow("Invoice Posting SAP"), statuscode=4)
        agent = start(tmp_path, agents, fake)
        metrics_when(agent, lambda m: runs_total(m) == 1, "the pulled run")
        status, answer = fake.send_callback(f"{agent.url}/api/v1/webhooks/powerautomate/prod",
                                            fake.callback_body(session))
        assert status == 404 and answer["error"] == "no receiver"


def test_the_example_estate_is_valid():
    example = Path(__file__).resolve().parents[1] / "examples" / "powerautomate" / "botwatch.yaml"
    done = subprocess.run([*BOTWATCH, "check-config", str(example)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
