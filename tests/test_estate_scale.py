"""An estate on one machine: 10 real agents x 200 bots with simulated runs, found by a real
Prometheus through one agent's /sd, scraped with the shipped rules and remote-written to a real
VictoriaMetrics. The estate dashboard's own queries must give the plan's totals on both engines.

Exactness: the instant-vector panels (bots per state, runs in progress, hung runs, traffic lights,
agents) are asserted exactly. The panels built on `rate(...[1h])` recording rules are not exact by
nature: Prometheus extrapolates a rate to the end of its window. Every counter here was scraped at
0 before the first run was delivered, so nothing is extrapolated towards the start, and towards the
end at most 1.1 scrape intervals: with n samples in the window the rule evaluated over, the value
lies between the exact total and (1 + 1.1 / (n - 1)) times it. n is read at the earliest evaluation
stamp behind the recorded values, less one sample for a scrape stamped but not yet committed then
(Estate.samples_seen_by_rules). Those panels are asserted within that bound, and the raw counters
they are built on exactly.

Also here: the scale-out examples (examples/scale-out) pass promtool and are valid file_sd.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

import estate_scale as es
from conftest import http_get, require

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "scale-out"
ENGINES = ("prometheus", "victoriametrics")
# panels over the agents' raw counters through rate([1m]): the two engines compute such rates
# differently (Prometheus extrapolates, VictoriaMetrics does not), so only their presence is compared
RAW_RATE_PANELS = {"Agent events per second by source", "Dropped events and parse errors (A)",
                   "Dropped events and parse errors (B)", "Items and empty runs (A)", "Items and empty runs (B)",
                   "Queue items processed per hour (A)", "Queue items processed per hour (B)"}


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    e = es.Estate(tmp_path_factory.mktemp("estate"))
    try:
        e.start()
        e.delivery = e.deliver()
        e.settle()
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def plan(estate):
    return estate.plan


def server(estate, engine):
    return {"prometheus": estate.prom, "victoriametrics": estate.vm}[engine].url


def tolerance(estate) -> float:
    """How far above the exact total a 1h rate-based panel may read (see the module docstring)."""
    n = estate.samples_in_window
    assert n >= 4, f"only {n} samples of each counter in the window"
    return 1.1 / (n - 1)


def answers(estate, engine) -> dict[str, list[dict]]:
    url = server(estate, engine)
    return {title: es.query(url, expr, estate.at) for title, expr in es.estate_queries()}


@pytest.fixture(scope="module")
def results(estate):
    return {engine: answers(estate, engine) for engine in ENGINES}


def value(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def by(result: list[dict], label: str) -> dict[str, float]:
    out = {r["metric"].get(label): float(r["value"][1]) for r in result}
    assert len(out) == len(result), f"{label} is not unique in {result}"
    return out


# -- the set-up is what it claims to be -----------------------------------------------------------

def test_prometheus_finds_all_ten_agents_through_one_agents_sd(estate):
    status, body = http_get(estate.agents[0].url + "/sd")
    assert status == 200
    listed = [t for group in json.loads(body) for t in group["targets"]]
    assert sorted(listed) == sorted(f"127.0.0.1:{a.port}" for a in estate.agents)
    up = es.query(estate.prom.url, 'up{job="botwatch"}', estate.at)
    assert sorted(r["metric"]["instance"] for r in up if r["value"][1] == "1") == sorted(listed)


def test_the_agents_accept_every_event_of_the_plan(estate, plan):
    sent = sum(len(b.events(0.0)) for b in plan.bots)
    assert estate.delivery == {"sent": sent, "accepted": sent}
    assert len(plan.bots) == es.AGENTS * es.BOTS_PER_AGENT == 2000


@pytest.mark.parametrize("engine", ENGINES)
def test_the_raw_counters_and_gauges_add_up_exactly(estate, plan, engine):
    url = server(estate, engine)
    assert es.scalar(url, "sum(botwatch_runs_total)", estate.at) == plan.runs()
    failures = by(es.query(url, "sum by (reason) (botwatch_run_failures_total)", estate.at), "reason")
    assert failures == plan.failures_by_reason()
    teams = by(es.query(url, "count by (team) (botwatch_bot_info)", estate.at), "team")
    assert teams == dict(plan.teams())
    states = by(es.query(url, "count by (state) (botwatch_bot_state == 1)", estate.at), "state")
    assert states == dict(plan.states())
    assert es.scalar(url, "count(botwatch_bot_info)", estate.at) == len(plan.bots)


# -- the estate dashboard, on both engines ----------------------------------------------------------

def test_every_estate_dashboard_query_is_checked_here():
    assert {title for title, _ in es.estate_queries()} == set(CHECKS) | RAW_RATE_PANELS


@pytest.mark.parametrize("engine", ENGINES)
def test_every_estate_dashboard_query_returns_data(results, engine):
    empty = [title for title, result in results[engine].items() if not result]
    assert not empty, f"{engine}: no data for {empty}"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("title", sorted({t for t, _ in es.estate_queries()} - RAW_RATE_PANELS))
def test_the_estate_dashboard_shows_the_plans_totals(estate, plan, results, engine, title):
    CHECKS[title](results[engine][title], plan, tolerance(estate))


def test_both_engines_give_the_same_answers(results):
    for title in results["prometheus"]:
        if title in RAW_RATE_PANELS or title == "Top 10 fragile bots":  # topk picks among equal scores
            continue
        prom, vm = (sorted((json.dumps(r["metric"], sort_keys=True), float(r["value"][1])) for r in results[e][title])
                    for e in ENGINES)
        assert [m for m, _ in prom] == [m for m, _ in vm], title
        for (m, a), (_, b) in zip(prom, vm):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (title, m, a, b)


# what each panel must show, from the plan: check(result, plan, tolerance)
def _count(state):
    return lambda result, plan, tol: _exact(value(result), plan.states()[state])


def _exact(got: float, want: float) -> None:
    assert got == want, f"{got} != {want}"


def _traffic_lights(result, plan, tol):
    from botwatch.dashboards.build import STATE_CODES

    code = {state: c for state, c, _colour, _text in STATE_CODES}
    assert by(result, "bot") == {b.name: code[b.state] for b in plan.bots}


def _failures_per_hour(result, plan, tol):
    got = by(result, "reason")
    want = plan.failures_by_reason()
    assert set(got) == set(want)
    for reason, n in want.items():
        assert n * (1 - 1e-9) <= got[reason] <= n * (1 + tol), (reason, got[reason], n, tol)


def _top_fragile(result, plan, tol):
    scores = by(result, "bot")
    assert len(scores) == 10
    # a bot whose every run failed scores at least 0.40 (its failure component); no other bot can
    assert set(scores) <= plan.always_failing(), set(scores) - plan.always_failing()
    assert all(s >= 0.4 - 1e-9 for s in scores.values()), scores


def _shadow_total(result, plan, tol):
    # processes of bot runtimes on this machine that no bot claims: whatever the host runs
    assert value(result) >= 0


def _shadow_by_platform(result, plan, tol):
    from botwatch.sources.runtimes import PLATFORMS

    got = by(result, "platform")
    assert set(PLATFORMS) <= set(got), got
    assert all(n >= 0 for n in got.values()), got


def _team_success(result, plan, tol):
    got = by(result, "team")
    want = plan.team_success_ratio()
    assert set(got) == set(want) == set(es.TEAMS)
    for team, ratio in want.items():
        assert abs(got[team] - ratio) <= tol, (team, got[team], ratio, tol)


def _by_queue(result) -> dict[tuple[str, str], float]:
    return {(r["metric"]["folder"], r["metric"]["queue"]): float(r["value"][1]) for r in result}


def _oldest_waiting(result, plan, tol):
    cp = plan.control_plane
    got = _by_queue(result)
    assert set(got) == set(cp.oldest)
    for queue, created in cp.oldest.items():  # the age at the evaluation time, as of a pull and scrape before it
        assert abs(got[queue] - (cp.at - created)) <= 5, (queue, got[queue], cp.at - created)


def _sessions_by_state(result, plan, tol):
    got = by(result, "state")
    cp = plan.control_plane
    assert got == {s: float(cp.sessions.get(s, 0)) for s in ("available", "busy", "disconnected", "unknown",
                                                              "unresponsive")}, got


CHECKS = {
    "Queue items waiting": lambda result, plan, tol: _exact(value(result), sum(plan.control_plane.waiting.values())),
    "Queue items past SLA": lambda result, plan, tol: _exact(value(result), plan.control_plane.breached),
    "Robot sessions disconnected": lambda result, plan, tol: _exact(
        value(result), plan.control_plane.sessions["disconnected"]),
    "Unattended capacity in use": lambda result, plan, tol: _exact(
        value(result), plan.control_plane.busy / plan.control_plane.capacity),
    "Queue backlog by queue": lambda result, plan, tol: _exact(_by_queue(result), {
        k: float(v) for k, v in plan.control_plane.waiting.items()}),
    "Oldest waiting item by queue": _oldest_waiting,
    "Items past SLA and at risk": lambda result, plan, tol: _exact(by(result, "sla"), {
        "breached": float(plan.control_plane.breached), "at_risk": float(plan.control_plane.at_risk)}),
    "Robot sessions by state (A)": _sessions_by_state,
    "Robot sessions by state (B)": lambda result, plan, tol: _exact(value(result), plan.control_plane.capacity),
    "variable team": lambda result, plan, tol: (
        _exact(len(result), len(plan.bots)),
        _exact(sorted({r["metric"]["team"] for r in result}), sorted(es.TEAMS))),
    "variable bot": lambda result, plan, tol: _exact(sorted(r["metric"]["bot"] for r in result),
                                                     sorted(b.name for b in plan.bots)),
    "Bots failing": _count("failing"),
    "Bots down": _count("down"),
    "Bots late": _count("late"),
    "Bots drifting": lambda result, plan, tol: _exact(value(result), len(plan.drifting())),
    "Runs in progress": lambda result, plan, tol: _exact(value(result), plan.in_progress()),
    "Hung runs": lambda result, plan, tol: _exact(value(result), plan.hung()),
    "Bot traffic lights": _traffic_lights,
    "Bot state over time": _traffic_lights,
    "Failures per hour by reason": _failures_per_hour,
    "Top 10 fragile bots": _top_fragile,
    "Success ratio by team (1 h)": _team_success,
    "Bots by platform": lambda result, plan, tol: _exact(by(result, "platform"), dict(plan.platforms())),
    "Agents reporting": lambda result, plan, tol: _exact(value(result), es.AGENTS),
    "Agents gone silent": lambda result, plan, tol: _exact(value(result), 0),
    "Runs waiting in spools": lambda result, plan, tol: _exact(value(result), 0),
    "Shadow bot processes": _shadow_total,
    "Shadow bot processes by platform": _shadow_by_platform,
}


# -- the scale-out examples ----------------------------------------------------------------------------

def test_the_scale_out_prometheus_example_passes_promtool_check_config(tmp_path):
    promtool = require("promtool", "prometheus")
    config = EXAMPLES / "prometheus.yml"
    text = yaml.safe_load(config.read_text(encoding="utf-8"))
    # what it references exists beside it
    for rule_file in text["rule_files"]:
        assert (config.parent / rule_file).is_file(), rule_file
    for job in text["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            for pattern in sd["files"]:
                assert list(config.parent.glob(pattern)), pattern
    assert text["remote_write"][0]["url"].endswith("/api/v1/write")
    p = subprocess.run([promtool, "check", "config", config.name], cwd=config.parent, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout + p.stderr


def test_the_file_sd_example_is_a_valid_target_list():
    groups = json.loads((EXAMPLES / "file_sd" / "agents.json").read_text(encoding="utf-8"))
    assert isinstance(groups, list) and groups
    for group in groups:
        assert set(group) <= {"targets", "labels"} and group["targets"]
        for target in group["targets"]:
            host, _, port = target.rpartition(":")
            assert host and port.isdigit() and 0 < int(port) < 65536, target
        for name, val in group.get("labels", {}).items():
            assert isinstance(val, str) and name.replace("_", "a").isalnum() and not name.startswith("__"), name


def test_the_otel_collector_example_receives_otlp_http_on_4318_and_exports_it():
    config = yaml.safe_load((EXAMPLES / "otel-collector.yaml").read_text(encoding="utf-8"))
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    pipelines = config["service"]["pipelines"]
    assert "otlp" in pipelines["metrics"]["receivers"]
    for pipeline in pipelines.values():
        assert set(pipeline["exporters"]) <= set(config["exporters"])
        assert set(pipeline["receivers"]) <= set(config["receivers"])
