"""UiPath Orchestrator as a source: a real agent pulls a faithful stand-in Orchestrator
(tests/orchestrator_fake.py: the documented token endpoint, folder header, OData paging and
filters, 429 with Retry-After, token expiry, faults) and records every job exactly once as a run."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from botwatch.core.classify import Classifier
from botwatch.sources.platform import bot_slug, odata_time, parse_time
from conftest import BOTWATCH, free_port, http_get, metrics_when, wait_for
from orchestrator_fake import TERMINAL_STATES, FakeOrchestrator

pytestmark = pytest.mark.integration

# what the built-in taxonomy makes of the Info of the stand-in's Faulted jobs, where it is certain
REASON_OF_INFO = [
    (re.compile(r"SelectorNotFoundException|Could not find the user-interface \(UI\) element"), "ui_drift"),
    (re.compile(r"BusinessRuleException"), "business"),
    (re.compile(r"Logon fail|user name or password|bad password"), "credentials"),
]


def expected_reason(job: dict) -> str | None:
    """The failure reason of an ended job's run; None for a success."""
    if job["State"] == "Stopped":
        return "killed"
    if job["State"] != "Faulted":
        return None
    for pattern, reason in REASON_OF_INFO:
        if pattern.search(job["Info"] or ""):
            return reason
    # other Infos: whatever the taxonomy says of the text the run carries (the Info reached it)
    return Classifier().classify(output=job["Info"] or "").reason


def estate(tmp_path: Path, fake: FakeOrchestrator, port: int, connection: str = "", bots: str = "[]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n"
        f"platforms:\n  uipath:\n    - name: prod\n      url: '{fake.url}'\n      organization: {fake.org}\n"
        f"      tenant: {fake.tenant}\n      client_id: {fake.client_id}\n      client_secret: env:UIPATH_SECRET\n"
        f"      interval: 1s\n      history: 2d\n"
        + "".join(f"      {line}\n" for line in connection.splitlines())
        + f"bots: {bots}\n", encoding="utf-8")
    return config


def journal_rows(tmp_path: Path) -> list[dict]:
    """Every run in the journal (read beside the running agent: WAL)."""
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT bot, run_id, host, started, ended, outcome, reason, output_tail, source "
                          "FROM runs").fetchall()
    finally:
        db.close()
    keys = ("bot", "run_id", "host", "started", "ended", "outcome", "reason", "output_tail", "source")
    return [dict(zip(keys, r)) for r in rows]


def journal_runs(tmp_path: Path) -> dict[str, dict]:
    """The journal's runs by run id."""
    return {r["run_id"]: r for r in journal_rows(tmp_path)}


def terminal_jobs(fake: FakeOrchestrator) -> dict[str, dict]:
    return {f"uipath:{j['Key']}": j for j in fake.rows("Jobs") if j["State"] in TERMINAL_STATES}


UP = 'botwatch_agent_controlplane_up{connection="prod",platform="uipath"}'


def runs_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_runs_total{"))


def assert_each_job_once(tmp_path: Path, fake: FakeOrchestrator) -> None:
    """Every ended job of the stand-in is exactly one run in the journal (no other run, none
    twice under any bot), with its bot, outcome, reason, host, times and so duration, and its
    Info in the run's output when it failed."""
    rows, jobs = journal_rows(tmp_path), terminal_jobs(fake)
    twice = [run_id for run_id, n in Counter(r["run_id"] for r in rows).items() if n > 1]
    assert not twice, f"recorded more than once: {twice[:5]}"
    runs = {r["run_id"]: r for r in rows}
    assert set(runs) == set(jobs), (f"missing: {sorted(set(jobs) - set(runs))[:5]}, "
                                    f"not an ended job: {sorted(set(runs) - set(jobs))[:5]}")
    for run_id, job in jobs.items():
        run = runs[run_id]
        assert run["bot"] == bot_slug(job["ReleaseName"]), (run, job["ReleaseName"])
        assert run["outcome"] == ("success" if job["State"] == "Successful" else "failure"), (run, job["State"])
        assert run["reason"] == expected_reason(job), (job["State"], job["Info"], run["reason"])
        assert run["host"] == job["HostMachineName"], (run, job["HostMachineName"])
        started, ended = parse_time(job["StartTime"]), parse_time(job["EndTime"])
        assert run["ended"] == pytest.approx(ended, abs=0.001)
        if started is None:  # a Pending job canceled: it never started, its run has no duration
            assert run["started"] is None and job["State"] == "Stopped", (run, job)
        else:
            assert run["started"] == pytest.approx(started, abs=0.001)
            assert run["ended"] - run["started"] == pytest.approx(ended - started, abs=0.002)
        if job["State"] == "Faulted":
            assert (job["Info"] or "")[:60] in (run["output_tail"] or ""), (job["Info"], run["output_tail"])
        assert run["source"] == "uipath"


def test_it_reads_orchestrator_times_and_names_bots():
    assert parse_time("2024-06-03T12:00:00.1234567Z") == pytest.approx(1717416000.123456)
    assert parse_time("2024-06-03T14:00:00+02:00") == 1717416000.0
    assert parse_time(None) is None and parse_time("yesterday") is None
    assert odata_time(1717416000.5) == "2024-06-03T12:00:00.500Z"
    assert bot_slug("Invoice Recon_Prod") == "invoice-recon_prod"
    assert bot_slug("Überweisung ++") == "berweisung"


def test_it_records_every_job_of_every_folder_once_with_outcome_reason_machine_and_times(tmp_path, agents,
                                                                                      monkeypatch):
    # pages of 10 and a fault on every 7th request: paging and retries are exercised
    with FakeOrchestrator(fail_every=7, seed=3) as fake:
        fake.populate(n_folders=3, n_processes=3, n_jobs=120, seed=5, anchor=datetime.now(timezone.utc))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 10\n"
                                              "folder_teams: {'Finance*': finance}")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        n = len(terminal_jobs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n and m.get(UP) == 1,
                         f"the {n} ended jobs as runs and a whole pull done", timeout=120)
        assert_each_job_once(tmp_path, fake)
        # the jobs not ended are runs in progress
        live = sum(1 for j in fake.rows("Jobs") if j["State"] not in TERMINAL_STATES)
        assert sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == live
        # bots registered from Orchestrator carry the platform and their folder's team
        finance = {bot_slug(j["ReleaseName"]) for j in fake.rows("Jobs")
                   if j["OrganizationUnitFullyQualifiedName"].startswith("Finance")}
        assert finance
        for bot in finance:
            info = [k for k in m if k.startswith("botwatch_bot_info{") and f'bot="{bot}"' in k]
            assert info and 'platform="uipath"' in info[0] and 'team="finance"' in info[0], info
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="error",platform="uipath"}'] >= 1
        assert fake.faults_served >= 1
        # each job is one event, however often the pulls read it again
        ok = 'botwatch_agent_controlplane_requests_total{connection="prod",outcome="ok",platform="uipath"}'
        later = metrics_when(agent, lambda later: later[ok] >= m[ok] + 12, "a few more pulls")
        assert later['botwatch_agent_events_total{source="uipath"}'] == n + live


def test_a_restart_mid_pull_loses_and_repeats_nothing_and_a_late_ending_job_is_recorded(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeOrchestrator(seed=4) as fake:
        fake.populate(n_folders=2, n_processes=2, n_jobs=60, seed=9, anchor=now)
        long_running = fake.add_job(fake.rows("Folders")[0]["Id"], fake.rows("Releases")[0]["Id"], state="Running",
                                    started=now - timedelta(hours=5))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\npage_size: 5")
        env = {"UIPATH_SECRET": fake.client_secret}
        agent = agents(config, port, env=env).start()
        metrics_when(agent, lambda m: runs_total(m) >= 10, "the first pages recorded")
        agent.kill()  # mid-pull, as a crash would
        # meanwhile Orchestrator goes on: the long job ends (5 h after it began), new jobs end
        fake.update_job(long_running, state="Faulted",
                        info="UiPath.Core.BusinessRuleException: Vendor 4711 is blocked for payment")
        for _ in range(5):
            fake.add_job(fake.rows("Folders")[1]["Id"], fake.rows("Releases")[-1]["Id"], state="Successful")
        agent = agents(config, port, env=env).start()
        n = len(terminal_jobs(fake))
        metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended jobs", timeout=120)
        assert_each_job_once(tmp_path, fake)
        assert journal_runs(tmp_path)[f"uipath:{long_running['Key']}"]["reason"] == "business"


def test_it_waits_out_a_429_counts_it_and_misses_nothing(tmp_path, agents):
    with FakeOrchestrator(seed=6) as fake:
        fake.populate(n_folders=1, n_processes=2, n_jobs=30, seed=2, anchor=datetime.now(timezone.utc))
        fake.error_once("/odata/Jobs", 429, retry_after=2)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        n = len(terminal_jobs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended jobs")
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="throttled",platform="uipath"}'] == 1
        assert fake.throttled_total == 1
        assert_each_job_once(tmp_path, fake)


def test_a_revoked_secret_is_one_clear_error_and_the_agent_goes_on(tmp_path, agents):
    with FakeOrchestrator(token_ttl=1.0) as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        fake.add_job(folder, release, state="Successful")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: runs_total(m) == 1, "the first job")
        fake.revoke_secret()  # the token expires within a second; a new one is refused
        m = metrics_when(agent, lambda m: m.get('botwatch_agent_controlplane_up{connection="prod",platform="uipath"}') == 0,
                         "the connection down")
        assert m['botwatch_agent_controlplane_requests_total{connection="prod",outcome="auth",platform="uipath"}'] >= 1
        assert http_get(agent.url + "/healthz")[0] == 200
        # a few more failed pulls: still one line for the outage, and never the secret
        metrics_when(agent, lambda m: m['botwatch_agent_controlplane_requests_total'
                                        '{connection="prod",outcome="auth",platform="uipath"}'] >= 3, "more refusals")
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("credentials refused") == 1, log
        assert fake.client_secret not in log


def test_a_process_no_rule_names_is_listed_as_unregistered_and_its_runs_not_recorded(tmp_path, agents):
    with FakeOrchestrator() as fake:
        finance = fake.add_folder("Finance")
        hr = fake.add_folder("HR")
        invoices = fake.add_release(finance, "Invoice Recon")
        payroll = fake.add_release(hr, "Payroll Check")
        fake.add_job(finance, invoices, state="Successful")
        fake.add_job(hr, payroll, state="Faulted")
        fake.add_job(hr, payroll, state="Running")  # read again at every pull: one run all the same
        port = free_port()
        config = estate(tmp_path, fake, port, "processes:\n  - {process: 'Invoice.*', folder: 'Finance', bot: invoices}",
                        bots="[{name: invoices, team: ap}]")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoices"}') == 1, "the invoices run")

        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            assert status == 200
            return [p for p in json.loads(body).get("control_plane", []) if p["process"] == "Payroll Check"]

        (entry,) = wait_for(listed, what="Payroll Check listed as unregistered")
        assert entry["folder"] == "HR" and entry["platform"] == "uipath" and entry["connection"] == "prod"
        pulls = fake.counts["Jobs"]
        wait_for(lambda: fake.counts["Jobs"] >= pulls + 6, what="three more pulls of both folders")
        (entry,) = listed()
        assert entry["runs"] == 2, entry
        # and so do `botwatch status --unregistered` and `botwatch inventory`
        env = {**os.environ, "COLUMNS": "200"}
        status = subprocess.run([*BOTWATCH, "status", "--unregistered", "--agent", agent.url], capture_output=True,
                                text=True, timeout=60, env=env)
        assert status.returncode == 0 and "Payroll Check" in status.stdout and "HR" in status.stdout, status
        inventory = subprocess.run([*BOTWATCH, "inventory", "--format", "json", "--config", str(config),
                                    "--agent", agent.url], capture_output=True, text=True, timeout=60, env=env)
        assert inventory.returncode == 0, inventory.stderr
        rows = {r["bot"]: r for r in json.loads(inventory.stdout)}
        assert rows["Payroll Check"]["registered"] is False and rows["Payroll Check"]["platform"] == "uipath"
        assert rows["invoices"]["registered"] is True
        report = subprocess.run([*BOTWATCH, "report", "--format", "md", "--out", "-", "--config", str(config),
                                 "--agent", agent.url], capture_output=True, text=True, timeout=60, env=env)
        assert report.returncode == 0, report.stderr
        unregistered = report.stdout.split("## Unregistered bots", 1)[1].split("\n## ", 1)[0]
        assert "Payroll Check" in unregistered and "prod: folder HR" in unregistered
        assert set(journal_runs(tmp_path)) == {f"uipath:{j['Key']}" for j in fake.rows("Jobs")
                                               if j["ReleaseName"] == "Invoice Recon"}


def test_bad_items_are_counted_and_the_rest_recorded(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        good = fake.add_job(folder, release, state="Successful")
        broken = fake.add_job(folder, release, state="Faulted")
        broken["Key"] = None  # as a broken proxy or a schema change might send it
        odd = fake.add_job(folder, release, state="Successful")
        odd["State"] = "Teleported"
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: m.get('botwatch_agent_parse_errors_total{source="uipath"}', 0) >= 2
                         and runs_total(m) == 1 and m.get(UP) == 1,
                         "the good job recorded, the two bad ones counted, the pull done")
        assert set(journal_runs(tmp_path)) == {f"uipath:{good['Key']}"}


def test_a_job_pending_past_the_limit_is_a_stuck_run_of_its_bot(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeOrchestrator() as fake:
        folder = fake.add_folder("Finance")
        invoices, payments = fake.add_release(folder, "Invoice Recon"), fake.add_release(folder, "Payments")
        stuck = fake.add_job(folder, invoices, state="Pending", created=now - timedelta(hours=2))
        fake.add_job(folder, invoices, state="Pending", created=now - timedelta(minutes=1))  # just queued
        fake.add_job(folder, payments, state="Successful")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\nstuck_pending_after: 30m"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        m = metrics_when(agent, lambda m: 'botwatch_bot_stuck_runs{bot="invoice-recon"}' in m, "the stuck run")
        assert m['botwatch_bot_stuck_runs{bot="invoice-recon"}'] == 1
        assert m['botwatch_bot_stuck_runs{bot="payments"}'] == 0
        assert m['botwatch_run_in_progress{bot="invoice-recon"}'] == 2  # both are runs in progress
        fake.update_job(stuck, state="Running")  # a robot took it
        metrics_when(agent, lambda m: m['botwatch_bot_stuck_runs{bot="invoice-recon"}'] == 0, "no stuck run")


def test_the_inventory_lists_the_automations_orchestrator_runs_with_team_last_run_ratio_and_schedule(tmp_path, agents):
    now = datetime.now(timezone.utc)
    with FakeOrchestrator() as fake:
        finance = fake.add_folder("Finance")
        invoices, adhoc = fake.add_release(finance, "Invoice Recon"), fake.add_release(finance, "Adhoc Export")
        fake.add_job(finance, invoices, state="Successful", source_type="Schedule", ended=now - timedelta(minutes=30))
        last = fake.add_job(finance, invoices, state="Faulted", source_type="Schedule", ended=now - timedelta(minutes=5))
        fake.add_job(finance, adhoc, state="Successful", source_type="Manual", ended=now - timedelta(minutes=9))
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\nfolder_teams: {'Finance': finance}")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: runs_total(m) == 3, "the three jobs")
        inventory = subprocess.run([*BOTWATCH, "inventory", "--format", "json", "--config", str(config),
                                    "--agent", agent.url], capture_output=True, text=True, timeout=60,
                                   env={**os.environ, "UIPATH_SECRET": fake.client_secret})
        assert inventory.returncode == 0, inventory.stderr
        rows = {r["bot"]: r for r in json.loads(inventory.stdout)}
        recon, export = rows["invoice-recon"], rows["adhoc-export"]
        assert (recon["platform"], recon["team"], recon["scheduled"], recon["success_ratio"]) == (
            "uipath", "finance", True, 0.5)
        assert recon["last_run"] == datetime.fromtimestamp(parse_time(last["EndTime"]), timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        assert (export["platform"], export["scheduled"], export["success_ratio"]) == ("uipath", False, 1.0)
        # and the CoE report lists them the same way
        report = subprocess.run([*BOTWATCH, "report", "--format", "md", "--out", "-", "--config", str(config),
                                 "--agent", agent.url], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "UIPATH_SECRET": fake.client_secret})
        assert report.returncode == 0, report.stderr
        bots = report.stdout.split("\n## Bots\n", 1)[1].split("\n## ", 1)[0]
        (row,) = [line for line in bots.splitlines() if line.startswith("| invoice-recon ")]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:3] == ["finance", "uipath"] and cells[-1] == "yes", cells
        assert cells[-2] == recon["last_run"].replace("T", " "), cells
