"""`botwatch report`: a seeded 30-day simulation of 56 bots in 6 teams (50 from the start, 6
joining in its second, third and fourth weeks) is written through the real Journal API; the
report's figures must equal those the test computes from the simulation's own records (never
from the journal)."""

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
from datetime import UTC, datetime, timedelta

import pytest
from conftest import free_port, http_get, wait_for, write_estate
from lxml import html as lxml_html

from botwatch.config.estate import load_estate
from botwatch.core.events import RunFinished
from botwatch.state.fragility import estate_fragility
from botwatch.state.journal import Flip, Journal
from botwatch.state.workqueues import ItemTotals
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
    joined: float = START  # first seen by the agent
    missed: int = 0
    missed_at: list = field(default_factory=list)
    items: list = field(default_factory=list)  # (run ended, work items it processed)
    incidents: list = field(default_factory=list)  # (opened, recovered)
    uptimes: list = field(default_factory=list)  # (recovered, next failure)
    open_incident: float | None = None


JOINING = 6  # bots 50..55 join two at a time, a week apart: the estate grows 50, 52, 54, 56
# the window's ISO weeks: it starts on a Thursday evening and ends on a Saturday evening
WEEKS = [("2026-W22", "2026-05-25", True), ("2026-W23", "2026-06-01", False), ("2026-W24", "2026-06-08", False),
         ("2026-W25", "2026-06-15", False), ("2026-W26", "2026-06-22", True)]
QUEUE = ("uipath", "orchestrator", "Finance", "invoices")


def simulate(seed: int = 20261124) -> tuple[list[SimBot], list, list]:
    """50 bots in 6 teams, and 6 more joining later, a run every 2 hours for 30 days: failures
    with known reasons, missed runs (down flips after the grace), failing -> up flips at known
    times; the uipath bots' runs report work items. The late bots are flaky, so the success
    ratio falls week by week."""
    rng = random.Random(seed)
    bots, runs, flips = [], [], []
    for i in range(50 + JOINING):
        b = SimBot(f"bot-{i:02d}", TEAMS[i % 6], PLATFORMS[(i // 6) % 6], LIFECYCLES[i % 3])
        p_fail = rng.choice((0.0, 0.02, 0.05, 0.1, 0.3))
        p_miss = rng.choice((0.0, 0.01, 0.03))
        if i >= 50:
            b.joined = START + (9 + 7 * ((i - 50) // 2)) * DAY
            b.platform, p_fail = "powerautomate", 0.5
        state, last_recovery = "new", None
        slot = b.joined + 600 + rng.randrange(0, 3600)
        n = 0
        while slot + 3 * 3600 < END:
            if rng.random() < p_miss:
                b.missed += 1
                b.missed_at.append(slot + GRACE)
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
                    items = rng.randrange(0, 40) if b.platform == "uipath" else None
                    if items is not None:
                        b.items.append((ended, items))
                    runs.append(RunFinished(b.name, f"r{n}", ended, "success", started=started, exit_status=0,
                                            items_processed=items, items_failed=0 if items is not None else None))
                    if b.open_incident is not None:
                        b.incidents.append((b.open_incident, ended))
                        b.open_incident, last_recovery = None, ended
                    if state != "up":
                        flips.append(Flip(b.name, ended, state, "up", None))
                        state = "up"
            slot += EVERY
        bots.append(b)
    return bots, runs, flips


def queue_days() -> dict[str, int]:
    """The successful items of a work queue per UTC day: from the day before the window (not in
    it) to its last day, growing by 10 a day."""
    first = datetime(2026, 5, 27, tzinfo=UTC)
    return {(first + timedelta(days=d)).strftime("%Y-%m-%d"): 10 * d for d in range(33)}


def write_world(tmp_path, bots, runs, flips):
    journal_path = tmp_path / "journal.db"
    j = Journal(journal_path)
    with j.transaction():
        for b in bots:
            j.ensure_bot(b.name, b.joined)
        j.add_queue_items([ItemTotals(QUEUE, day, "successful", "", n, 0, n * 2.0) for day, n in queue_days().items()]
                          + [ItemTotals(QUEUE, day, "failed", "business", 3, 1, 6.0) for day in queue_days()])
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
    assert len(bots) == 50 + JOINING and len({b.team for b in bots}) == 6
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
    assert sum(g.bots for g in groups.values()) == 50 + JOINING
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
    assert md.count("| bot-") >= 50 + JOINING


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
    assert len(bots) == 50 + JOINING
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


# --- trends ---------------------------------------------------------------------------------


def weeks():
    """(label, first, last, partial) of each ISO week of the window: the week clipped to it."""
    out = []
    for label, day, partial in WEEKS:
        a = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()
        out.append((label, max(a, START), min(a + 7 * DAY, END), partial))
    return out


def expected_period(bots, runs, first, last):
    """A period's figures from the simulation's own records."""
    inside = [r for r in runs if first < r.ended <= last]
    existing = [b for b in bots if b.joined <= last]
    recovered = [(a, z) for b in bots for a, z in b.incidents if first < z <= last]
    open_at_end = sum(1 for b in bots for a, z in b.incidents if a <= last < z) + sum(
        1 for b in bots if b.open_incident is not None and b.open_incident <= last)
    by_reason = dict.fromkeys(REASONS, 0)
    for r in inside:
        if r.outcome == "failure":
            by_reason[r.reason] += 1
    queued = sum(n for day, n in queue_days().items()
                 if first - DAY < datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() < last)
    return {
        "bots": len(existing),
        "platform": {p: sum(b.platform == p for b in existing) for p in {b.platform for b in existing}},
        "lifecycle": {x: sum(b.lifecycle == x for b in existing) for x in {b.lifecycle for b in existing}},
        "runs": len(inside),
        "successes": sum(r.outcome == "success" for r in inside),
        "failures": sum(r.outcome == "failure" for r in inside),
        "by_reason": by_reason,
        "missed": sum(first < t <= last for b in bots for t in b.missed_at),
        "recoveries": len(recovered),
        "mttr": mean_seconds(recovered),
        "open": open_at_end,
        "items_from_runs": sum(n for b in bots for t, n in b.items if first < t <= last),
        "items_from_queues": queued,
    }


@pytest.fixture(scope="module")
def sim_runs():
    return simulate()[1]


def test_the_trends_cut_the_window_into_iso_weeks_and_mark_the_partial_ones(world):
    rep = world["report"]
    assert rep.period == "week"  # the default for 30 days
    assert [(p.label, p.first, p.last, p.partial) for p in rep.trends] == weeks()
    assert [time_iso(p.start) for p in rep.trends] == [d for _, d, _ in WEEKS]
    assert all(p.end - p.start == 7 * DAY for p in rep.trends)


def time_iso(ts):
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def test_each_weeks_figures_equal_the_simulations(world, sim_runs):
    rep = world["report"]
    for p, (label, first, last, _) in zip(rep.trends, weeks(), strict=True):
        e = expected_period(world["bots"], sim_runs, first, last)
        f = p.figures
        assert (p.bots, f.runs, f.successes, f.failures, f.missed_runs) == (
            e["bots"], e["runs"], e["successes"], e["failures"], e["missed"]), label
        assert f.failures_by_reason == e["by_reason"], label
        assert {g.name: g.bots for g in p.group("platform")} == e["platform"], label
        assert {g.name: g.bots for g in p.group("lifecycle")} == e["lifecycle"], label
        assert (f.recoveries, f.open_incidents) == (e["recoveries"], e["open"]), label
        assert f.mttr_seconds == pytest.approx(e["mttr"], abs=1e-6), label
        assert f.success_ratio == pytest.approx(e["successes"] / (e["successes"] + e["failures"])), label
        assert (p.items_from_runs, p.items_from_queues) == (e["items_from_runs"], e["items_from_queues"]), label
        assert p.items_processed == e["items_from_runs"] + e["items_from_queues"]


def test_the_trends_show_the_estate_growing_and_its_success_ratio_falling(world):
    rep = world["report"]
    assert [p.bots for p in rep.trends] == [50, 52, 54, 56, 56]
    assert [next(g.bots for g in p.group("platform") if g.name == "powerautomate") for p in rep.trends] == [
        6, 8, 10, 12, 12]
    full = [p.figures.success_ratio for p in rep.trends if not p.partial]
    assert full == sorted(full, reverse=True) and full[0] - full[-1] > 0.01
    # the queue grows by 10 items a day: each full week has 490 more than the one before
    queued = [p.items_from_queues for p in rep.trends]
    assert queued[2] - queued[1] == queued[3] - queued[2] == 490
    assert len({p.items_processed for p in rep.trends}) == 5


def test_the_periods_add_up_to_the_window(world):
    rep = world["report"]
    for name in ("runs", "successes", "failures", "missed_runs", "recoveries", "recovery_seconds"):
        assert sum(getattr(p.figures, name) for p in rep.trends) == pytest.approx(getattr(rep.estate, name)), name
    for reason in REASONS:
        assert sum(p.figures.failures_by_reason[reason] for p in rep.trends) == rep.estate.failures_by_reason[reason]
    assert sum(p.items_from_queues for p in rep.trends) == sum(q.successful for q in rep.queues)
    assert rep.trends[-1].figures.open_incidents == rep.estate.open_incidents


def test_by_month_the_window_has_two_partial_months(world, sim_runs):
    rep = gather(world["journal"], load_estate(world["estate"]), since=30 * DAY, end=END, progress=False,
                 period="month")
    assert [(p.label, p.partial) for p in rep.trends] == [("2026-05", True), ("2026-06", True)]
    june = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    assert [(p.first, p.last) for p in rep.trends] == [(START, june), (june, END)]
    for p in rep.trends:
        e = expected_period(world["bots"], sim_runs, p.first, p.last)
        assert (p.bots, p.figures.runs, p.figures.failures, p.figures.recoveries, p.items_processed) == (
            e["bots"], e["runs"], e["failures"], e["recoveries"], e["items_from_runs"] + e["items_from_queues"])
    # May's part of the window is the first ISO week's
    assert rep.trends[0].figures == world["report"].trends[0].figures


def test_an_incident_counts_in_the_week_it_recovers_in_measured_from_its_start(tmp_path):
    monday = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    j = Journal(tmp_path / "journal.db")
    with j.transaction():
        j.ensure_bot("late", monday + 9 * DAY)  # first seen in the second week
        j.ensure_bot("steady", monday - DAY)
        for n, (at, outcome) in enumerate([(monday + DAY, "success"), (monday + 6 * DAY, "failure"),
                                           (monday + 8 * DAY, "success")]):
            j.insert_run(RunFinished("steady", f"r{n}", at, outcome, reason="timeout" if outcome == "failure"
                                     else None), at)
        for f in (Flip("steady", monday + DAY, "new", "up"), Flip("steady", monday + 6 * DAY, "up", "failing"),
                  Flip("steady", monday + 7 * DAY + 3600, "failing", "down"),
                  Flip("steady", monday + 8 * DAY, "down", "up")):
            j.insert_flip(f)
    j.close()
    rep = gather(tmp_path / "journal.db", since=14 * DAY, end=monday + 14 * DAY, progress=False)
    first, second = rep.trends
    assert (first.label, second.label, first.partial, second.partial) == ("2026-W23", "2026-W24", False, False)
    assert (first.bots, second.bots) == (1, 2)
    assert (first.figures.runs, first.figures.failures, first.figures.recoveries, first.figures.open_incidents) == (
        2, 1, 0, 1)
    assert first.figures.mttr_seconds is None
    assert (second.figures.recoveries, second.figures.mttr_seconds, second.figures.missed_runs) == (1, 2 * DAY, 1)
    assert second.figures.open_incidents == 0


def test_the_period_rule_and_the_calendar():
    from botwatch.report.trends import choose, periods

    assert choose(91 * DAY, None) == "week" and choose(91 * DAY + 1, None) == "month"
    assert choose(400 * DAY, "week") == "week"
    with pytest.raises(ValueError, match="unknown period 'year'"):
        choose(DAY, "year")
    ts = lambda *d: datetime(*d, tzinfo=UTC).timestamp()  # noqa: E731
    # ISO weeks across a new year (2026 has a week 53); a window ending at Monday 00:00 ends a whole week
    ws = periods(ts(2026, 12, 30, 12), ts(2027, 1, 11), "week", 0.95)
    assert [(p.label, p.partial) for p in ws] == [("2026-W53", True), ("2027-W01", False)]
    assert ws[0].start == ts(2026, 12, 28) and ws[1].end == ts(2027, 1, 11)
    ms = periods(ts(2026, 11, 15), ts(2027, 2, 1), "month", 0.95)
    assert [(p.label, p.partial) for p in ms] == [("2026-11", True), ("2026-12", False), ("2027-01", False)]
    assert ms[1].end - ms[1].start == 31 * DAY
    # a window that starts exactly at a period's start does not touch the period before
    assert [p.label for p in periods(ts(2026, 12, 1), ts(2026, 12, 2), "month", 0.95)] == ["2026-12"]


def test_the_markdown_has_the_trend_tables(world):
    md = render(world["report"], "md")
    section = md.split("## Trends", 1)[1].split("\n## ", 1)[0]
    for title in ("### Reliability per week", "### Failures by reason per week", "### Bots per week by platform",
                  "### Bots per week by lifecycle"):
        assert title in section
    assert "| 2026-W22 (partial) | 2026-05-28 20:26:40Z | 2026-06-01 00:00:00Z |" in section
    p = world["report"].trends[2]
    assert f"| 2026-W24 | 2026-06-08 00:00:00Z | 2026-06-15 00:00:00Z | {p.figures.runs} |" in section
    assert "| period | bots | excel | powerautomate | python | robotframework | shell | uipath |" in section
    assert "| 2026-W26 (partial) | 56 | 6 | 12 | 8 | 12 | 6 | 12 |" in section


def test_the_html_draws_the_trends(world):
    rep = world["report"]
    doc = lxml_html.fromstring(render(rep, "html"))
    charts = {svg.findtext("title"): svg for svg in doc.xpath("//svg")}
    ratio = charts["Success ratio per week against the SLO"]
    texts = [t.text for t in ratio.xpath(".//text")]
    assert "SLO 95.00%" in texts
    assert [x for x in texts if x and x.startswith("2026-W")] == ["2026-W22*", "2026-W23", "2026-W24", "2026-W25",
                                                                "2026-W26*"]
    points = ratio.xpath(".//circle")
    assert len(points) == 5 and sum(c.get("fill") == "#fff" for c in points) == 2  # the partial weeks hollow
    heights = [float(c.get("cy")) for c in points if c.get("fill") != "#fff"]
    assert heights == sorted(heights)  # the full weeks' ratio falls: each point lower on the page
    reasons = charts["Failed runs by reason per week"]
    bars = sum(1 for p in rep.trends for n in p.figures.failures_by_reason.values() if n)
    assert len(reasons.xpath(".//rect[title]")) == bars
    assert {str(p.figures.failures) for p in rep.trends} <= {t.text for t in reasons.xpath("./text")}
    estate = charts["Bots by platform per week"]
    assert [t.text for t in estate.xpath("./text")][:5] == ["50", "52", "54", "56", "56"]
    assert doc.xpath("//h3[text()='Reliability per week']")


def test_the_csv_has_a_row_per_period_and_per_period_and_platform_or_lifecycle(world):
    rep = world["report"]
    text = render(rep, "csv")
    rows = read_csv(text)
    assert text.splitlines()[0].startswith("scope,name,team,platform,lifecycle,bots,runs,successes,failures,")
    periods = [r for r in rows if r["scope"] == "period"]
    assert [(r["name"], r["period_start"], r["partial"]) for r in periods] == [
        (label, f"{day}T00:00:00Z", "1" if partial else "0") for label, day, partial in WEEKS]
    for r, p in zip(periods, rep.trends, strict=True):
        assert (int(r["bots"]), int(r["runs"]), int(r["failures"]), int(r["missed_runs"]), int(r["recoveries"])) == (
            p.bots, p.figures.runs, p.figures.failures, p.figures.missed_runs, p.figures.recoveries)
        assert float(r["mttr_seconds"]) == pytest.approx(p.figures.mttr_seconds, abs=0.001)
        assert (int(r["items_processed"]), int(r["items_from_runs"]), int(r["items_from_queues"])) == (
            p.items_processed, p.items_from_runs, p.items_from_queues)
        for dim in ("platform", "lifecycle"):
            groups = [g for g in rows if g["scope"] == f"period_{dim}" and g["period_start"] == r["period_start"]]
            assert all(g[dim] == g["name"] for g in groups)
            assert sum(int(g["bots"]) for g in groups) == p.bots
            assert sum(int(g["runs"]) for g in groups) == p.figures.runs
    for r in rows:
        if not r["scope"].startswith("period"):
            assert r["period_start"] == r["items_processed"] == ""


def test_the_cli_takes_the_period_and_chooses_months_beyond_13_weeks(world):
    def report(*args):
        return subprocess.run([*BOTWATCH, "report", "--until", str(END), "--config", str(world["estate"]),
                               "--format", "csv", "--out", "-", *args], capture_output=True, text=True, timeout=300)

    proc = report("--since", "30d", "--period", "month")
    assert proc.returncode == 0, proc.stderr
    by_month = gather(world["journal"], load_estate(world["estate"]), since=30 * DAY, end=END, progress=False,
                      period="month")
    assert proc.stdout == render(by_month, "csv")
    proc = report("--since", "120d")
    assert proc.returncode == 0, proc.stderr
    assert [r["name"] for r in read_csv(proc.stdout) if r["scope"] == "period"] == [
        "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    proc = report("--since", "30d", "--period", "year")
    assert proc.returncode == 2 and "--period" in proc.stderr
