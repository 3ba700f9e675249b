"""The Prometheus rules in alerts/: promtool checks and unit-tests them, and they keep the conventions.

The rule files are parsed here to check what promtool cannot: names, severities, annotations,
runbook anchors, and that the unit tests in alerts/tests/ cover every alert (firing and not
firing) and every recording rule (its value).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import require

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yml")) + [ALERTS / "thresholds.example.yml"]
TEST_FILES = sorted((ALERTS / "tests").glob("*.test.yml"))
RUNBOOK = ALERTS / "RUNBOOK.md"
SEVERITIES = {"critical", "warning", "info"}
# The dashboards query these by name.
DASHBOARD_RECORDS = {
    "bot:botwatch_runs:rate1h",
    "bot:botwatch_run_failures:rate1h",
    "bot_reason:botwatch_run_failures:rate1h",
    "bot:botwatch_run_success:ratio1h",
    "bot:botwatch_run_success:ratio6h",
    "bot:botwatch_run_success:ratio1d",
    "team:botwatch_run_success:ratio1h",
    "team:botwatch_run_success:ratio1d",
    "bot:botwatch_fragility:score",
}


def promtool() -> str:
    return require("promtool", "prometheus")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_of(path: Path) -> list[dict]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


ALL_RULES = [(path, rule) for path in RULE_FILES for rule in rules_of(path)]
ALERT_RULES = [rule for _, rule in ALL_RULES if "alert" in rule]
ALERT_NAMES = sorted({rule["alert"] for rule in ALERT_RULES})
RECORD_NAMES = sorted({rule["record"] for _, rule in ALL_RULES if "record" in rule})
TESTS = [(path, case) for path in TEST_FILES for case in load(path)["tests"]]


def alert_tests() -> list[tuple[str, dict]]:
    return [(case.get("name", ""), t) for _, case in TESTS for t in case.get("alert_rule_test", [])]


def expr_tests() -> list[dict]:
    return [t for _, case in TESTS for t in case.get("promql_expr_test", [])]


def runbook_anchors() -> list[str]:
    """GitHub's anchors of the level-2 headings (lower case, spaces to dashes, punctuation dropped)."""
    anchors = []
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            title = line[3:].strip().lower()
            anchors.append(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


# -- promtool ------------------------------------------------------------------------------

def test_promtool_check_rules_accepts_every_rule_file():
    r = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                       timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for path in RULE_FILES:
        assert f"Checking {path}" in out, out
        assert f"SUCCESS: {len(rules_of(path))} rules found" in out, out


def test_promtool_test_rules_passes_every_unit_test_file():
    assert len(TEST_FILES) >= 4, TEST_FILES
    r = subprocess.run([promtool(), "test", "rules", *map(str, TEST_FILES)], capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "FAILED" not in out, out
    assert out.count("SUCCESS") == len(TEST_FILES), out
    for path in TEST_FILES:
        assert f"Unit Testing:  {path}" in out, out


def test_every_rule_file_is_loaded_by_some_unit_test_file():
    loaded = {(path.parent / f).resolve() for path in TEST_FILES for f in load(path)["rule_files"]}
    assert set(RULE_FILES) <= loaded, set(RULE_FILES) - loaded


# -- conventions of the alerts --------------------------------------------------------------

def test_there_is_an_alert_for_each_failure_the_issue_names():
    assert set(ALERT_NAMES) >= {
        "BotRunFailed", "BotFailing", "BotFailureRatioHigh1h", "BotFailureRatioHigh6h", "BotDown", "BotHung",
        "BotDurationRegression", "BotUiDriftHigh", "BotUiSelectorBroken", "BotUiHealedLookupsRising",
        "BotCredentialFailures", "BotwatchUnregisteredBots", "BotwatchAgentDown", "BotwatchAgentAbsent",
        "BotwatchAgentNotScraped", "BotwatchSpoolBacklog", "BotwatchEventsDropped",
    }


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_name_is_camel_case_with_a_bot_or_botwatch_prefix(name):
    assert re.fullmatch(r"(Bot|Botwatch)([A-Z][a-z0-9]*)+", name), name


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_every_alert_has_a_severity_of_critical_warning_or_info(rule):
    assert rule["labels"]["severity"] in SEVERITIES


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_every_alert_has_a_static_summary_a_templated_description_and_a_runbook_url(rule):
    ann = rule["annotations"]
    assert set(ann) == {"summary", "description", "runbook_url"}
    assert ann["summary"].endswith(".") and "{{" not in ann["summary"], ann["summary"]
    assert re.search(r"\{\{[^}]*\$(labels|value)", ann["description"]), ann["description"]


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_every_runbook_url_points_at_the_alerts_own_section_of_the_runbook(rule):
    anchor = rule["alert"].lower()
    assert rule["annotations"]["runbook_url"] == f"alerts/RUNBOOK.md#{anchor}"
    assert anchor in runbook_anchors(), f"RUNBOOK.md has no section `## {rule['alert']}`"


def test_every_runbook_section_belongs_to_an_alert_and_appears_once():
    anchors = runbook_anchors()
    assert sorted(anchors) == sorted(n.lower() for n in ALERT_NAMES)


def test_every_runbook_section_says_what_it_means_what_to_check_and_who_acts():
    sections = re.split(r"^## ", RUNBOOK.read_text(encoding="utf-8"), flags=re.M)[1:]
    assert len(sections) == len(ALERT_NAMES)
    for section in sections:
        title = section.splitlines()[0]
        for part in ("**Meaning.**", "**First checks.**", "**Who acts.**"):
            assert part in section, f"{title}: no {part}"


@pytest.mark.parametrize("rule", [r for r in ALERT_RULES if not r["alert"].startswith("Botwatch")],
                         ids=lambda r: r["alert"])
def test_every_bot_alert_joins_team_and_owner_from_the_ownership_series(rule):
    expr = " ".join(rule["expr"].split())
    assert "group_left(team, bot_owner, criticality) bot:botwatch_bot_info:routing" in expr, expr


def test_the_severity_of_a_failing_or_down_bot_follows_its_criticality():
    for name in ("BotFailing", "BotDown"):
        by_severity = {r["labels"]["severity"]: " ".join(r["expr"].split()) for r in ALERT_RULES if r["alert"] == name}
        assert set(by_severity) == {"critical", "warning"}
        assert 'criticality="high"' in by_severity["critical"]
        assert 'criticality!="high"' in by_severity["warning"]


def test_alerts_compare_with_recorded_thresholds_not_constants():
    exprs = {r["alert"]: r["expr"] for r in ALERT_RULES}
    for name, threshold in (("BotFailureRatioHigh1h", "bot:botwatch_threshold:failure_ratio1h"),
                            ("BotFailureRatioHigh6h", "bot:botwatch_threshold:failure_ratio6h"),
                            ("BotDurationRegression", "bot:botwatch_threshold:duration_regression_factor"),
                            ("BotUiDriftHigh", "bot:botwatch_threshold:ui_drift_score"),
                            ("BotUiSelectorBroken", "bot:botwatch_threshold:ui_lookup_failures1h"),
                            ("BotUiHealedLookupsRising", "bot:botwatch_threshold:ui_healed_lookups1h"),
                            ("BotwatchAgentNotScraped", "botwatch:threshold:scrape_age_seconds"),
                            ("BotwatchSpoolBacklog", "botwatch:threshold:spool_pending_runs"),
                            ("BotwatchUnregisteredBots", "botwatch:threshold:unregistered_bot_processes")):
        assert threshold in exprs[name], name
    for record in RECORD_NAMES:
        if ":threshold:" in record:
            assert any(record in r.get("expr", "") for _, r in ALL_RULES), f"{record} is used by no rule"


# -- conventions of the recording rules ------------------------------------------------------

@pytest.mark.parametrize("name", RECORD_NAMES)
def test_every_recording_rule_is_named_level_metric_operations(name):
    assert re.fullmatch(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*", name), name


def test_the_recording_rules_the_dashboards_rely_on_exist():
    assert DASHBOARD_RECORDS <= set(RECORD_NAMES), DASHBOARD_RECORDS - set(RECORD_NAMES)


def test_ratios_divide_only_by_denominators_above_zero():
    for _, rule in ALL_RULES:
        if rule.get("record", "").split(":")[-1].startswith("ratio"):
            expr = " ".join(rule["expr"].split())
            if "/" in expr:
                assert re.search(r"/ \(.*> 0\)", expr), f"{rule['record']}: {expr}"


# -- coverage of the unit tests ---------------------------------------------------------------

@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_case_where_it_fires_with_its_labels_and_annotations_in_full(name):
    rules = [r for r in ALERT_RULES if r["alert"] == name]
    fired = [a for _, t in alert_tests() if t["alertname"] == name for a in t.get("exp_alerts") or []]
    assert fired, f"no test case where {name} fires"
    for exp in fired:
        labels, annotations = exp.get("exp_labels", {}), exp.get("exp_annotations", {})
        assert labels.get("severity") in {r["labels"]["severity"] for r in rules}, exp
        assert set(annotations) == {"summary", "description", "runbook_url"}, exp
        assert annotations["runbook_url"] == f"alerts/RUNBOOK.md#{name.lower()}", exp
    # an alert made of several rules (one per severity) fires in a case for each of them
    assert {r["labels"]["severity"] for r in rules} == {a["exp_labels"]["severity"] for a in fired}
    if not name.startswith("Botwatch"):
        assert any({"team", "bot_owner", "bot", "instance", "job"} <= set(a["exp_labels"]) for a in fired), \
            f"no firing case of {name} shows the routing labels"


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_case_where_it_must_not_fire(name):
    quiet = [case for case, t in alert_tests() if t["alertname"] == name and not t.get("exp_alerts")]
    assert quiet, f"no test case where {name} must not fire"


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_every_recording_rule_has_its_value_tested(name):
    pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])")
    tested = [t for t in expr_tests() if pattern.search(t["expr"]) and t.get("exp_samples")]
    assert tested, f"no promql_expr_test asserts the value of {name}"


def test_bot_and_team_level_series_carry_their_bot_and_team_labels():
    for t in expr_tests():
        name = t["expr"].split("{")[0]
        if name not in RECORD_NAMES:
            continue
        level = name.split(":")[0].split("_")  # bot_reason: ["bot", "reason"]; botwatch: estate-wide
        for sample in t["exp_samples"]:
            labels = sample["labels"]
            for part in level:
                if part != "botwatch":
                    assert f'{part}="' in labels, (name, labels)
            if level[0] in ("bot", "team") and "_threshold:" not in name:
                # bot-level series keep the reporting agent; team-level ones sum over agents
                has_target = 'instance="' in labels and 'job="' in labels
                assert has_target == (level[0] == "bot"), (name, labels)


# -- the metrics the rules read --------------------------------------------------------------------



def exported_metric_names() -> set[str]:
    """Series names in the agent's real exposition of a bot that ran, failed, looked up a screen and
    sent a snapshot of it."""
    import textwrap

    from prometheus_client.exposition import generate_latest

    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunFinished, RunStarted, UiLookup, UiSnapshot
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.state.runtime import EstateState

    t0 = 1_700_000_000.0
    estate = parse_estate_text(textwrap.dedent("""\
        bots:
          - name: invoice-recon
            team: finance
            owner: ana.diaz@example.com
            every: 15m
            max_runtime: 10m
        """))
    state = EstateState(estate, None, clock=lambda: t0 + 60)
    state.apply([RunStarted("invoice-recon", "r1", t0),
                 UiLookup("invoice-recon", t0 + 5, "login", found=False, kind="not_found"),
                 UiLookup("invoice-recon", t0 + 6, "login", found=True, healed=True),
                 UiSnapshot("invoice-recon", t0 + 7, "login", "html", 0.1, {"submit": 1}, baseline_time=t0 - 86400),
                 RunFinished("invoice-recon", "r1", t0 + 30, "failure", started=t0, reason="credentials")])
    state.count_dropped("api")
    state.note_connection("uipath", "prod", up=True)  # and it pulls an Orchestrator
    state.controlplanes.note_pull("prod", {"invoice-recon"}, {})
    from botwatch.state.controlplanes import Robots
    from botwatch.state.workqueues import Backlog

    state.workqueues.note_backlogs("uipath", "prod", "Finance", {"Invoices": Backlog(team="finance", new=3)})
    state.controlplanes.note_robots("prod", Robots("uipath", {"RPA-FIN-VM01": {"available": 1}}, 1, 0))
    text = generate_latest(estate_registry(state, clock=state.clock)).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_rules_read_only_metrics_the_agent_exports():
    exported = exported_metric_names()
    used = set()
    for _, rule in ALL_RULES:
        used |= set(re.findall(r"(?<![:\w])botwatch_[a-z0-9_]+(?![:\w])", rule["expr"]))
    assert used and used <= exported, sorted(used - exported)


# -- packaging ------------------------------------------------------------------------------------

def test_the_rules_runbook_and_unit_tests_ship_in_the_package():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = data["tool"]["setuptools"]["package-data"]["botwatch.alerts"]
    assert {"*.yml", "*.md", "tests/*.yml"} <= set(globs), globs
    assert (ALERTS / "__init__.py").exists()
