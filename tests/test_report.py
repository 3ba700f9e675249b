"""`botwatch report`: a seeded 30-day simulation of 50 bots in 6 teams is written through the
real Journal API; the report's figures must equal those the test computes from the simulation's
own records (never from the journal)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from conftest import free_port, http_get, wait_for, write_estate
from lxml import html as lxml_html

from botwatch.config.estate import load_estate
from botwatch.core.events import RunFinished
from botwatch.state.fragility import estate_fragility
from botwatch.state.journal import Flip, Journal
from botwatch.report import gather, render
from botwatch.report.gather import bot_figures
from botwatch.report.model import REASONS

BOTWATCH = [sys.executable, "-m", "botwatch"]
DAY = 86_400.0
START = 1_780_000_000.0  # the window is (START, END]
END = START + 30 * DAY
EVERY = 2 * 3600.0
GRACE = 900.0
TEAMS = ("finance", "procurement", "controlling", "hr", "sales", "logistics")
PLATFORMS = ("uipath", "robotframework", "python", "powerautomate", "excel", "shell")
LIFECYCLES = ("prototype", "certified", "production")


@dataclass
class SimBot:
    name: str
    team: str
    platform: str
    lifecycle: str
    successes: int = 0
    failures: int = 0
    by_reason: dict = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    missed: int = 0
    incidents: list = field(default_factory=list)  # (opened, recovered)
    uptimes: list = field(default_factory=list)  # (recovered, next failure)
    open_incident: float | None = None


def simulate(seed: int = 20261124) -> tuple[list[SimBot], list, list]:
    """50 bots in 6 teams, a run every 2 hours for 30 days: failures with known reasons, missed
    runs (down flips after the grace), failing -> up flips at known times."""
    rng = random.Random(seed)
    bots, runs, flips = [], [], []
    for i in range(50):
        b = SimBot(f"bot-{i:02d}", TEAMS[i % 6], PLATFORMS[(i // 6) % 6], LIFECYCLES[i % 3])
        p_fail = rng.choice((0.0, 0.02, 0.05, 0.1, 0.3))
        p_miss = rng.choice((0.0, 0.01, 0.03))
        state, last_recovery = "new", None
        slot = START + 600 + rng.randrange(0, 3600)
        n = 0
        while slot + 3 * 3600 < END:
            if rng.random() < p_miss:
                b.missed += 1
                flips.append(Flip(b.name, slot + GRACE, state, "down", "missed schedule"))
                state = "down"
            else:
                started = slot + rng.uniform(0, 60)
                ended = started + rng.uniform(30, 1800)
                n += 1
                if rng.random() < p_fail:
                    reason = rng.choice(REASONS)
                    b.failures += 1
                    b.by_reason[reason] += 1
                    runs.append(RunFinished(b.name, f"r{n}", ended, "failure", started=started, reason=reason,
                                            exit_status=1))
                    if b.open_incident is None:
                        b.open_incident = ended
                        if last_recovery is not None:
                            b.uptimes.append((last_recovery, ended))
                    if state != "failing":
                        flips.append(Flip(b.name, ended, state, "failing", reason))
                        state = "failing"
                else:
                    b.successes += 1
                    runs.append(RunFinished(b.name, f"r{n}", ended, "success", started=started, exit_status=0))
                    if b.open_incident is not None:
                        b.incidents.append((b.open_incident, ended))
                        b.open_incident, last_recovery = None, ended
                    if state != "up":
                        flips.append(Flip(b.name, ended, state, "up", None))
                        state = "up"
            slot += EVERY
        bots.append(b)
    return bots, runs, flips


def write_world(tmp_path, bots, runs, flips):
    journal_path = tmp_path / "journal.db"
    j = Journal(journal_path)
    with j.transaction():
        for b in bots:
            j.ensure_bot(b.name, START)
        for r in runs:
            j.insert_run(r, r.ended)
        for f in sorted(flips, key=lambda f: f.at):
            j.insert_flip(f)
        j.set_ui_drift("bot-01", "invoice", "html", time=END - DAY, score=0.8, baseline_time=START,
                       run_id=None, selectors=None, source="test")
        j.set_ui_drift("bot-02", "login", "html", time=END - DAY, score=0.1, baseline_time=START,
                       run_id=None, selectors=None, source="test")
    j.close()
    lines = ["agent:", f"  journal: {journal_path}", "bots:"]
    for i, b in enumerate(bots):
        lines += [f"  - name: {b.name}", f"    team: {b.team}", f"    platform: {b.platform}",
                  f"    lifecycle: {b.lifecycle}", "    every: 2h"]
        if i % 5:
            lines += [f"    owner: {b.name}@example.com", f"    runbook: https://wiki.example.com/{b.name}"]
    estate = tmp_path / "botwatch.yaml"
    estate.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return journal_path, estate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    bots, runs, flips = simulate()
    journal_path, estate = write_world(tmp, bots, runs, flips)
    report = gather(journal_path, load_estate(estate), since=30 * DAY, end=END, progress=False)
    return {"bots": bots, "journal": journal_path, "estate": estate, "report": report, "tmp": tmp}


def expected_by(bots, key):
    out = defaultdict(lambda: {"successes": 0, "failures": 0, "missed": 0, "incidents": [], "uptimes": [],
                               "by_reason": dict.fromkeys(REASONS, 0), "open": 0})
    for b in bots:
        g = out[getattr(b, key)]
        g["successes"] += b.successes
        g["failures"] += b.failures
        g["missed"] += b.missed
        g["incidents"] += b.incidents
        g["uptimes"] += b.uptimes
        g["open"] += b.open_incident is not None
        for r, n in b.by_reason.items():
            g["by_reason"][r] += n
    return out


def mean_seconds(spans):
    return sum(b - a for a, b in spans) / len(spans) if spans else None


def test_the_simulation_has_what_the_report_must_find(world):
    bots = world["bots"]
    assert len(bots) == 50 and len({b.team for b in bots}) == 6
    assert sum(len(b.incidents) for b in bots) > 20
    assert sum(b.missed for b in bots) > 10
    assert all(sum(b.by_reason[r] for b in bots) > 0 for r in REASONS)


def test_each_bots_figures_equal_the_simulations(world):
    rows = {r.bot: r for r in world["report"].bots}
    assert set(rows) == {b.name for b in world["bots"]}
    for b in world["bots"]:
        f = rows[b.name].figures
        assert (f.runs, f.successes, f.failures, f.missed_runs) == (b.successes + b.failures, b.successes,
                                                                    b.failures, b.missed)
        assert f.success_ratio == pytest.approx(b.successes / (b.successes + b.failures))
        assert f.failures_by_reason == b.by_reason
        assert f.recoveries == len(b.incidents)
        assert f.open_incidents == (b.open_incident is not None)
        if b.incidents:
            assert f.mttr_seconds == pytest.approx(mean_seconds(b.incidents), abs=1e-6)
        else:
            assert f.mttr_seconds is None
        assert f.mtbf_seconds == (pytest.approx(mean_seconds(b.uptimes), abs=1e-6) if b.uptimes else None)


@pytest.mark.parametrize("dimension", ["team", "platform", "lifecycle"])
def test_group_figures_pool_the_simulations_runs_and_incidents(world, dimension):
    expected = expected_by(world["bots"], dimension)
    groups = {g.name: g for g in world["report"].group(dimension)}
    assert set(groups) == set(expected)
    for name, e in expected.items():
        f = groups[name].figures
        assert f.success_ratio == pytest.approx(e["successes"] / (e["successes"] + e["failures"]))
        assert f.failures_by_reason == e["by_reason"]
        assert f.missed_runs == e["missed"]
        assert f.recoveries == len(e["incidents"])
        assert f.mttr_seconds == pytest.approx(mean_seconds(e["incidents"]), abs=1e-6)
        assert round(f.mttr_seconds) == round(mean_seconds(e["incidents"]))  # to the second
        slo = world["report"].slo
        ratio = e["successes"] / (e["successes"] + e["failures"])
        assert f.error_budget_left == pytest.approx(1 - (1 - ratio) / (1 - slo))


def test_it_lists_drift_warnings_prototypes_on_schedules_and_governance_findings(world):
    rep = world["report"]
    assert [(d.bot, d.screen) for d in rep.drift_warnings] == [("bot-01", "invoice")]  # 0.1 is below 0.3
    assert sorted(b for b, _ in rep.prototypes_on_schedule) == sorted(
        b.name for b in world["bots"] if b.lifecycle == "prototype")
    assert {"owner", "runbook"} <= {c for c, _, _ in rep.governance["bot-00"]}
    assert rep.unregistered is None and any("--agent" in n for n in rep.notes)


def test_the_top_ten_fragile_bots_are_botwatch_fragility_scores(world):
    j = Journal(world["journal"], readonly=True)
    try:
        scores = estate_fragility(j, [b.name for b in world["bots"]], END)
    finally:
        j.close()
    top = sorted(scores.items(), key=lambda t: (-t[1].score, t[0]))[:10]
    assert world["report"].fragile == [(b, s.score) for b, s in top]
    assert len(world["report"].fragile) == 10


def test_an_incident_opened_before_the_window_counts_in_the_window_it_recovers_in():
    flips = [Flip("b", 100.0, "up", "failing"), Flip("b", 150.0, "failing", "down"),
             Flip("b", 400.0, "down", "up"), Flip("b", 1000.0, "up", "failing")]
    inside = bot_figures([], flips, start=200.0, end=2000.0, slo=0.95)
    assert (inside.recoveries, inside.mttr_seconds, inside.missed_runs) == (1, 300.0, 0)
    assert (inside.uptimes, inside.mtbf_seconds, inside.open_incidents) == (1, 600.0, 1)
    before = bot_figures([], flips, start=0.0, end=300.0, slo=0.95)
    assert (before.recoveries, before.missed_runs, before.open_incidents) == (0, 1, 1)


def test_the_markdown_has_a_table_per_group_and_per_bot(world):
    md = render(world["report"], "md")
    for heading in ("## By team", "## By platform", "## By lifecycle", "## Failures by reason", "## Bots",
                    "## Top 10 fragile bots", "## Governance findings"):
        assert heading in md
    assert "| team | bots | runs | success ratio |" in md
    for team in TEAMS:
        assert f"| {team} |" in md
    assert md.count("| bot-") >= 50


def test_the_html_parses_and_draws_the_team_ratios_against_the_slo(world):
    page = render(world["report"], "html")
    doc = lxml_html.fromstring(page)
    charts = {svg.findtext("title"): svg for svg in doc.xpath("//svg")}
    assert len(charts) == 5  # per team, by reason, and the three trend charts
    team_chart = charts["Success ratio per team"]
    assert {t.text for t in team_chart.xpath(".//text")} >= set(TEAMS) | {"SLO 95.00%"}
    assert len(team_chart.xpath(".//rect")) == 6
    assert "@media print" in page
    assert len(doc.xpath("//table")) >= 6


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_has_one_row_per_bot_and_group_rows_that_sum_them(world):
    rows = read_csv(render(world["report"], "csv"))
    bots = [r for r in rows if r["scope"] == "bot"]
    assert len(bots) == 50
    sim = {b.name: b for b in world["bots"]}
    for r in bots:
        assert int(r["failures"]) == sim[r["name"]].failures
        assert int(r["missed_runs"]) == sim[r["name"]].missed
    for dim in ("team", "platform", "lifecycle"):
        groups = [r for r in rows if r["scope"] == dim]
        for col in ("runs", "failures", "missed_runs", "recoveries", *(f"failures_{x}" for x in REASONS)):
            assert sum(int(g[col]) for g in groups) == sum(int(b[col]) for b in bots)
    estate = [r for r in rows if r["scope"] == "estate"][0]
    assert int(estate["runs"]) == sum(b.successes + b.failures for b in world["bots"])
    incidents = [i for b in world["bots"] for i in b.incidents]
    assert float(estate["mttr_seconds"]) == pytest.approx(mean_seconds(incidents), abs=0.001)


def test_the_cli_writes_each_format_to_the_out_file(world):
    tmp = world["tmp"]
    for fmt in ("csv", "html", "md"):
        out = tmp / f"report.{fmt}"
        proc = subprocess.run([*BOTWATCH, "report", "--since", "30d", "--until", str(END), "--config",
                               str(world["estate"]), "--format", fmt, "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "\x1b[" not in proc.stderr  # no progress bar when stderr is not a terminal
        assert out.read_text(encoding="utf-8") == render(world["report"], fmt)


def test_the_cli_refuses_both_a_prometheus_and_a_journal(tmp_path):
    proc = subprocess.run([*BOTWATCH, "report", "--prometheus", "http://127.0.0.1:9", "--journal",
                           str(tmp_path / "j.db"), "--format", "md", "--out", str(tmp_path / "r.md")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not both" in proc.stderr
    assert not (tmp_path / "r.md").exists()


def test_the_cli_exits_2_without_a_journal(tmp_path):
    proc = subprocess.run([*BOTWATCH, "report", "--format", "csv", "--out", str(tmp_path / "r.csv")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "BOTWATCH_CONFIG"})
    assert proc.returncode == 2
    assert "no journal" in proc.stderr


def test_the_unregistered_bots_come_from_a_running_agent_when_agent_is_given(tmp_path, agents, fake_robot):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: invoice-recon\n  team: finance\n  every: 1h\n",
                          port, extra="  process_interval: 0.2s\n")
    agent = agents(config, port).start()
    robot = subprocess.Popen([str(fake_robot), "--password", "hunter2-secret", "tasks.robot"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listed():
            status, body = http_get(agent.url + "/api/v1/unregistered")
            return status == 200 and any(p["pid"] == robot.pid for p in json.loads(body)["processes"])

        wait_for(listed, what="the unregistered robot in the agent's list")
        proc = subprocess.run([*BOTWATCH, "report", "--config", str(config), "--agent", agent.url,
                               "--format", "md", "--out", "-"], capture_output=True, text=True, timeout=300)
    finally:
        with contextlib.suppress(OSError):
            robot.kill()
        robot.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("## Unregistered bots")[1].split("## Governance findings")[0]
    assert f"| {robot.pid} |" in section
    assert "hunter2-secret" not in proc.stdout
