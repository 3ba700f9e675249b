"""`botwatch inventory`: registered and discovered bots as CSV and JSON, from a real agent or offline
from its journal; and the local fragility score it shows."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import time
import uuid

import psutil
import pytest

from botwatch.config.estate import load_estate
from botwatch.core.events import RunFinished
from botwatch.state.fragility import WEIGHTS, fragility
from botwatch.state.journal import Flip, Journal
from botwatch.state.runtime import EstateState
from conftest import BOTWATCH, free_port, http_get, http_post_json, wait_for, write_estate

BOTS = """\
- name: invoice-recon
  owner: ana.diaz@example.com
  team: finance
  platform: python
  lifecycle: production
  criticality: high
  runbook: https://wiki.example.com/bots/invoice-recon
  certified: {by: it-coe@example.com, date: 2024-05-01}
  every: 1h
- name: scratch
  every: 1h
"""


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    return subprocess.run([*BOTWATCH, *args], capture_output=True, text=True, env=env, timeout=120)


def two_runs(now: float) -> list[dict]:
    """A success and a failure of invoice-recon, each 10 s long: failures 1/2, no duration variance."""
    return [
        {"type": "run_finished", "bot": "invoice-recon", "run_id": "r1", "started": now - 100, "ended": now - 90,
         "outcome": "success", "exit_status": 0},
        {"type": "run_finished", "bot": "invoice-recon", "run_id": "r2", "started": now - 50, "ended": now - 40,
         "outcome": "failure", "exit_status": 1, "reason": "business"},
    ]


@pytest.fixture
def robot_process(fake_robot):
    """Starts `robot` processes that no bot of the estate claims; they are ended after the test."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([str(fake_robot), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield start
    for p in procs:
        with contextlib.suppress(OSError):
            p.kill()
        p.wait(timeout=30)


def test_inventory_lists_registered_bots_and_an_unregistered_robot_from_a_real_agent(tmp_path, agents,
                                                                                   robot_process):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", BOTS, port, extra="  process_interval: 0.2s\n")
    agent = agents(config, port).start()
    now = time.time()
    assert http_post_json(agent.url + "/api/v1/events", {"events": two_runs(now)})[1]["accepted"] == 2
    secret = f"pw-{uuid.uuid4().hex}"
    robot = robot_process("--password", secret, "tasks.robot")

    def listed():
        status, body = http_get(agent.url + "/api/v1/unregistered")
        return status == 200 and any(p["pid"] == robot.pid for p in json.loads(body)["processes"])

    wait_for(listed, what="the unregistered robot in the agent's list")

    r = run_cli("inventory", "--config", str(config), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert f"state from agent {agent.url}" in r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["bot", "registered", "owner", "team", "platform", "lifecycle", "criticality", "state",
                             "last_run", "last_success", "success_ratio", "scheduled", "fragility",
                             "governance_findings", "pid", "user", "command"]
    by_bot = {row["bot"]: row for row in rows if row["registered"] == "yes"}
    recon = by_bot["invoice-recon"]
    assert (recon["owner"], recon["team"], recon["platform"], recon["lifecycle"], recon["criticality"]) == (
        "ana.diaz@example.com", "finance", "python", "production", "high")
    assert recon["state"] == "failing"
    assert recon["last_success"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 90))
    assert recon["last_run"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 40))
    assert recon["success_ratio"] == "0.500" and recon["scheduled"] == "yes"
    assert recon["fragility"] == "0.200"  # 0.40 x half the runs failed; no lateness, no duration variance
    assert recon["governance_findings"] == "0"
    scratch = by_bot["scratch"]
    assert scratch["state"] == "new" and scratch["owner"] == "" and scratch["fragility"] == "0.000"
    assert scratch["governance_findings"] == "4"  # owner, runbook, lifecycle, team_routed
    (shadow,) = [row for row in rows if row["pid"] == str(robot.pid)]
    assert (shadow["registered"], shadow["platform"], shadow["state"]) == ("no", "robotframework", "running")
    assert shadow["user"] == psutil.Process().username() and "--password [REDACTED]" in shadow["command"]

    j = run_cli("inventory", "--config", str(config), "--format", "json", "--agent", agent.url)
    assert j.returncode == 0, j.stderr
    items = json.loads(j.stdout)
    recon = next(i for i in items if i["bot"] == "invoice-recon")
    assert recon["registered"] is True and recon["fragility"] == 0.2 and recon["failed_checks"] == []
    assert recon["fragility_components"] == {"failures": 0.5, "drift": None, "heals": None, "lateness": 0.0,
                                             "duration_variance": 0.0}
    scratch = next(i for i in items if i["bot"] == "scratch")
    assert scratch["failed_checks"] == ["owner", "runbook", "lifecycle", "team_routed"]
    (shadow,) = [i for i in items if i["pid"] == robot.pid]
    assert shadow["registered"] is False and shadow["governance_findings"] is None
    for out in (r.stdout, r.stderr, j.stdout):
        assert secret not in out


def test_inventory_works_offline_from_the_journal(tmp_path):
    port = free_port()  # nothing listens there
    config = write_estate(tmp_path / "botwatch.yaml", BOTS, port)
    loaded = load_estate(config)
    now = time.time()
    journal = Journal(loaded.journal_path)
    state = EstateState(loaded.estate, journal)
    state.apply([RunFinished(bot="invoice-recon", run_id=e["run_id"], started=e["started"], ended=e["ended"],
                             outcome=e["outcome"], exit_status=e["exit_status"], reason=e.get("reason"))
                 for e in two_runs(now)])
    journal.close()

    r = run_cli("inventory", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert "not reachable" in r.stderr and "state from the journal" in r.stderr
    rows = {row["bot"]: row for row in csv.DictReader(io.StringIO(r.stdout))}
    assert set(rows) == {"invoice-recon", "scratch"}  # no agent: no unregistered processes
    assert rows["invoice-recon"]["state"] == "failing" and rows["invoice-recon"]["fragility"] == "0.200"
    assert rows["invoice-recon"]["last_success"].endswith("Z")

    j = run_cli("inventory", "--config", str(config), "--format", "json")
    assert [i["bot"] for i in json.loads(j.stdout)] == ["invoice-recon", "scratch"]


def test_inventory_without_a_journal_or_agent_still_lists_the_estate(tmp_path):
    config = write_estate(tmp_path / "botwatch.yaml", BOTS, free_port())
    r = run_cli("inventory", "--config", str(config), "--format", "json")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert [(i["bot"], i["state"], i["fragility"]) for i in items] == [("invoice-recon", None, None),
                                                                      ("scratch", None, None)]
    assert "no journal" in r.stderr


def test_inventory_exits_2_on_a_bad_estate_file(tmp_path):
    path = tmp_path / "botwatch.yaml"
    path.write_text("bots:\n  - name: a\n    certified: yes\n", encoding="utf-8")
    r = run_cli("inventory", "--config", str(path))
    assert r.returncode == 2 and f"{path}:3:" in r.stderr


# --- the local fragility score ---------------------------------------------------------------------

T = 1_800_000_000.0
DAY = 86_400.0


def run(rid: str, started: float | None, ended: float, outcome: str = "success") -> RunFinished:
    return RunFinished(bot="b", run_id=rid, started=started, ended=ended, outcome=outcome)


def test_a_bot_without_data_has_score_0():
    f = fragility([], [], T, first_seen=T - 10)
    assert f.score == 0 and f.components["failures"] is None and f.components["heals"] is None


def test_lateness_is_the_share_of_the_window_spent_late_or_down():
    flips = [Flip("b", T - DAY - 100, "new", "up"), Flip("b", T - 6 * 3600, "up", "late"),
             Flip("b", T - 5 * 3600, "late", "down"), Flip("b", T - 3 * 3600, "down", "up")]
    f = fragility([], flips, T, first_seen=T - 2 * DAY)
    assert f.components["lateness"] == pytest.approx(3 / 24)
    assert f.score == pytest.approx(WEIGHTS["lateness"] * 3 / 24)


def test_lateness_counts_the_state_computed_now_after_the_latest_flip():
    flips = [Flip("b", T - 2 * DAY, "new", "up")]
    f = fragility([], flips, T, first_seen=T - 2 * DAY, current=("down", T - 6 * 3600))
    assert f.components["lateness"] == pytest.approx(0.25)


def test_lateness_of_a_bot_first_seen_within_the_day_counts_from_then():
    f = fragility([], [Flip("b", T - 3600, "new", "late")], T, first_seen=T - 7200)
    assert f.components["lateness"] == pytest.approx(0.5)


def test_duration_variance_weighs_each_duration_by_how_long_it_stayed_the_latest():
    # 10 s was the latest for 12 h (from the window's start), then 30 s for 12 h: mean 20, stddev 10
    runs = [run("a", T - 2 * DAY, T - 2 * DAY + 10), run("b", T - 12 * 3600 - 30, T - 12 * 3600)]
    f = fragility(runs, [], T)
    assert f.components["duration_variance"] == pytest.approx(0.5)
    assert f.components["failures"] == 0.0  # only run b ended within the day


def test_failures_and_the_weighted_score_follow_the_recording_rule():
    runs = [run("a", T - 70, T - 60, "failure"), run("b", T - 40, T - 30, "failure"), run("c", T - 20, T - 10),
            run("d", T - 15, T - 5, "unknown")]
    f = fragility(runs, [], T, drift=0.5)
    assert f.components["failures"] == 0.5
    assert f.score == pytest.approx(0.40 * 0.5 + 0.20 * 0.5)


def test_the_score_never_exceeds_1():
    runs = [run(str(i), T - 1000 + i * 10 - (i % 2) * 9, T - 1000 + i * 10 + 1, "failure") for i in range(50)]
    flips = [Flip("b", T - 2 * DAY, "new", "down")]
    f = fragility(runs, flips, T, first_seen=T - 2 * DAY, drift=1.0)
    assert f.score <= 1.0 and f.components["lateness"] == 1.0


def test_the_journal_computation_matches_the_offline_inventory(tmp_path):
    from botwatch.state.fragility import estate_fragility

    journal = Journal(tmp_path / "j.db")
    with journal.transaction() as j:
        j.ensure_bot("b", T - 2 * DAY)
        for r in (run("a", T - 100, T - 90, "failure"), run("z", T - 2 * DAY, T - 2 * DAY + 5)):
            j.insert_run(r, T)
        j.insert_flip(Flip("b", T - 12 * 3600, "new", "late"))
    (f,) = estate_fragility(journal, ["b"], T).values()
    assert f.components["failures"] == 1.0 and f.components["lateness"] == pytest.approx(0.5)
    journal.close()
