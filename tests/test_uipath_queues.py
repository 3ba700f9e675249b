"""UiPath Orchestrator queues and robots: a real agent pulls the stand-in Orchestrator
(tests/orchestrator_fake.py) and its queue and robot metrics match the stand-in's own state;
the items processed survive a restart, none counted twice, none lost."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from botwatch.sources.platform import parse_time
from conftest import BOTWATCH, free_port, metrics_when
from orchestrator_fake import FakeOrchestrator
from test_uipath_orchestrator import UP, estate

pytestmark = pytest.mark.integration

ENDED = {"Successful": "successful", "Failed": "failed", "Retried": "failed"}
EXCEPTION = {"BusinessException": "business", "ApplicationException": "application"}


def q_labels(folder: str, queue: str) -> str:
    return f'connection="prod",folder="{folder}",platform="uipath",queue="{queue}"'


def key(name: str, labels: str, **more: str) -> str:
    """A sample's key as the exposition writes it: labels in name order."""
    pairs = sorted([*re.findall(r'\w+="[^"]*"', labels), *(f'{k}="{v}"' for k, v in more.items())])
    return f"{name}{{{','.join(pairs)}}}"


def expected_queues(fake: FakeOrchestrator, server_now: float) -> dict[str, dict]:
    """What the metrics must say of each queue, computed from the stand-in's rows."""
    queues = {q["Id"]: q for q in fake.rows("QueueDefinitions")}
    out: dict[str, dict] = {}
    for q in queues.values():
        out[q_labels(q["OrganizationUnitFullyQualifiedName"], q["Name"])] = {
            "new": 0, "in_progress": 0, "breached": 0, "at_risk": 0, "oldest": None, "successful": 0, "failed": 0,
            "business": 0, "application": 0, "unknown": 0, "retries": 0, "seconds": 0.0}
    for item in fake.rows("QueueItems"):
        q = queues[item["QueueDefinitionId"]]
        e = out[q_labels(q["OrganizationUnitFullyQualifiedName"], q["Name"])]
        status = item["Status"]
        if status in ("New", "InProgress"):
            e["new" if status == "New" else "in_progress"] += 1
            created = parse_time(item["CreationTime"])
            if status == "New":
                e["oldest"] = min(e["oldest"] or created, created)
            due, risk = parse_time(item["DueDate"]), parse_time(item["RiskSlaDate"])
            if due is not None and due < server_now:
                e["breached"] += 1
            elif risk is not None and risk < server_now:
                e["at_risk"] += 1
        elif status in ENDED:
            e[ENDED[status]] += 1
            if ENDED[status] == "failed":
                e[EXCEPTION.get(item["ProcessingExceptionType"], "unknown")] += 1
            e["retries"] += 1 if item["RetryNumber"] else 0
            e["seconds"] += parse_time(item["EndProcessing"]) - parse_time(item["StartProcessing"])
    return out


def assert_queues_match(m: dict[str, float], expected: dict[str, dict], server_now: float) -> None:
    for labels, e in expected.items():
        assert m[key("botwatch_queue_items", labels, status="new")] == e["new"], labels
        assert m[key("botwatch_queue_items", labels, status="in_progress")] == e["in_progress"], labels
        assert m[key("botwatch_queue_items_past_sla", labels, sla="breached")] == e["breached"], labels
        assert m[key("botwatch_queue_items_past_sla", labels, sla="at_risk")] == e["at_risk"], labels
        age = m[f"botwatch_queue_oldest_item_age_seconds{{{labels}}}"]
        if e["oldest"] is None:
            assert age == 0
        else:  # on the server's clock, however far the agent's is from it
            assert age == pytest.approx(server_now - e["oldest"], abs=30), labels
        for status in ("successful", "failed"):
            assert m[key("botwatch_queue_items_processed_total", labels, status=status)] == e[status], labels
        for exception in ("business", "application", "unknown"):
            assert m[key("botwatch_queue_item_failures_total", labels, exception=exception)] == e[exception]
        assert m[f"botwatch_queue_item_retries_total{{{labels}}}"] == e["retries"], labels
        assert m[f"botwatch_queue_item_processing_seconds_total{{{labels}}}"] == pytest.approx(e["seconds"], abs=0.01)


def processed_total(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("botwatch_queue_items_processed_total{"))


def test_queue_and_robot_metrics_match_the_orchestrator(tmp_path, agents):
    # the stand-in's clock is frozen two hours behind the agent's: ages and SLAs are on its clock
    server_now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    with FakeOrchestrator(seed=4, wall_clock=lambda: server_now) as fake:
        fake.populate(n_folders=3, n_processes=4, n_jobs=40, seed=9, anchor=server_now, items_per_queue=60)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\nfolder_teams: {'Finance*': finance}")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        expected = expected_queues(fake, server_now.timestamp())
        n = sum(e["successful"] + e["failed"] for e in expected.values())
        assert n and any(e["breached"] for e in expected.values()) and any(e["retries"] for e in expected.values())
        m = metrics_when(agent, lambda m: m.get(UP) == 1 and processed_total(m) == n, f"{n} items processed")
        assert_queues_match(m, expected, server_now.timestamp())
        # the queues of a folder mapped to a team carry it, for routing
        finance = [k for k in m if k.startswith("botwatch_queue_info{") and 'folder="Finance' in k]
        assert finance and all('team="finance"' in k for k in finance)
        # robots: sessions per machine by state, the unattended capacity connected and busy
        robots = {r["Id"]: r for r in fake.rows("Robots")}
        by_machine: Counter[tuple[str, str]] = Counter()
        for s in fake.rows("Sessions"):
            by_machine[(s["HostMachineName"], "unresponsive" if s["IsUnresponsive"] else s["State"].lower())] += 1
        for (machine, state), count in by_machine.items():
            key = f'botwatch_robot_sessions{{connection="prod",machine="{machine}",platform="uipath",state="{state}"}}'
            assert m[key] == count, key
        sessions = fake.rows("Sessions")
        connected = [s for s in sessions if robots[s["_Robot"][1]]["Type"] == "Unattended"
                     and s["State"] in ("Available", "Busy")]
        assert sum(1 for s in sessions if s["State"] == "Disconnected") >= 1
        assert m['botwatch_robot_unattended_capacity{connection="prod",platform="uipath"}'] == len(connected)
        assert m['botwatch_robot_unattended_busy{connection="prod",platform="uipath"}'] == sum(
            1 for s in connected if s["State"] == "Busy")


def test_items_processed_survive_a_restart_none_twice_none_lost(tmp_path, agents):
    with FakeOrchestrator(seed=2) as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        queue = fake.add_queue(folder, "Invoices", sla_minutes=60, release=release)
        for _ in range(7):
            fake.add_queue_item(queue, status="Successful")
        fake.add_queue_item(queue, status="Failed", exception_type="BusinessException", reason="Invoice on hold")
        waiting = [fake.add_queue_item(queue, status="New") for _ in range(3)]
        port = free_port()
        config = estate(tmp_path, fake, port)
        env = {"UIPATH_SECRET": fake.client_secret}
        agent = agents(config, port, env=env).start()
        labels = q_labels("Finance", "Invoices")
        metrics_when(agent, lambda m: processed_total(m) == 8 and m.get(key("botwatch_queue_items", labels, status="new")) == 3,
                     "the first pull's items")
        assert agent.kill() != 0
        # while the agent is down: two waiting items are processed, one fails with an application error
        now = datetime.now(timezone.utc)
        for item, status in zip(waiting[:2], ("Successful", "Failed")):
            item.update(Status=status, StartProcessing=(now - timedelta(seconds=20)).isoformat().replace("+00:00", "Z"),
                        EndProcessing=now.isoformat().replace("+00:00", "Z"),
                        ProcessingExceptionType="ApplicationException" if status == "Failed" else None)
        agent = agents(config, port, env=env).start()
        m = metrics_when(agent, lambda m: m.get(UP) == 1 and processed_total(m) >= 10
                         and m.get(key("botwatch_queue_items", labels, status="new")) == 1, "the items of the restart")
        assert m[key("botwatch_queue_items_processed_total", labels, status="successful")] == 8
        assert m[key("botwatch_queue_items_processed_total", labels, status="failed")] == 2
        assert m[key("botwatch_queue_item_failures_total", labels, exception="business")] == 1
        assert m[key("botwatch_queue_item_failures_total", labels, exception="application")] == 1
        # more pulls count nothing again
        pulls = fake.counts["QueueItems"]
        m = metrics_when(agent, lambda m: fake.counts["QueueItems"] >= pulls + 3, "three more pulls")
        assert processed_total(m) == 10


def test_a_scope_without_queues_and_robots_turns_them_off_and_keeps_the_jobs(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        fake.add_job(folder, release, state="Successful")
        fake.add_queue_item(fake.add_queue(folder, "Invoices"), status="New")
        fake.add_session(fake.add_robot(folder, "fin-1", machine_name="RPA-FIN-VM01"), folder)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\n"
                                              "scope: OR.Folders.Read OR.Jobs.Read OR.Execution.Read")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: m.get(UP) == 1 and m.get('botwatch_runs_total{bot="invoice-recon"}') == 1,
                         "the job recorded, the connection up")
        jobs = fake.counts["Jobs"]
        metrics_when(agent, lambda m: fake.counts["Jobs"] >= jobs + 3, "three more pulls")
        assert not any(k.startswith(("botwatch_queue_items{", "botwatch_robot_sessions{")) for k in agent.metrics())
        assert fake.counts["QueueDefinitions"] == 1 and fake.counts["Sessions"] == 1  # asked once, then off
        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        assert log.count("no access to queues") == 1 and log.count("no access to robots") == 1, log


def test_the_coe_report_has_a_work_queue_section_from_the_journal(tmp_path, agents):
    with FakeOrchestrator(seed=5) as fake:
        folder = fake.add_folder("Finance")
        queue = fake.add_queue(folder, "Invoices", release=fake.add_release(folder, "Invoice Recon"))
        for _ in range(3):
            fake.add_queue_item(queue, status="Successful")
        fake.add_queue_item(queue, status="Failed", exception_type="BusinessException", reason="Invoice on hold")
        port = free_port()
        config = estate(tmp_path, fake, port, "folder_teams: {'Fin*': finance}")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: processed_total(m) == 4, "the four items")
        agent.stop()
        env = {**os.environ, "UIPATH_SECRET": fake.client_secret, "COLUMNS": "200"}
        report = subprocess.run([*BOTWATCH, "report", "--format", "md", "--out", "-", "--config", str(config)],
                                capture_output=True, text=True, timeout=60, env=env)
        assert report.returncode == 0, report.stderr
        section = report.stdout.split("## Work queues", 1)[1].split("\n## ", 1)[0]
        (row,) = [line for line in section.splitlines() if "Invoices" in line]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:8] == ["uipath", "prod", "Finance", "Invoices", "finance", "3", "1", "75.00%"], cells
        assert cells[8:11] == ["1", "0", "0"], cells  # business, application exceptions, retries
