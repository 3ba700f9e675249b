"""The example alerts/alertmanager.yml: amtool accepts it, routes each demo team's alerts to that
team's receivers, and a real Alertmanager applies its inhibitions."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from botwatch.commands import stack
from conftest import free_port, http_get, require, wait_for

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "alerts" / "alertmanager.yml"
DEMO = ROOT / "examples" / "demo" / "botwatch.yaml"
AMTOOL = "amtool"

# Where each team of the demo estate is paged (critical) and ticketed (warning).
RECEIVERS = {
    "finance": {"critical": "finance-critical", "warning": "finance-warning"},
    "procurement": {"critical": "procurement-critical", "warning": "procurement-warning"},
    "controlling": {"critical": "controlling-critical", "warning": "controlling-warning"},
}
DEMO_BOTS = [(b["team"], b["name"]) for b in yaml.safe_load(DEMO.read_text(encoding="utf-8"))["bots"]]


def route(*labels: str, expect: str | None = None) -> str:
    """The receiver amtool resolves for a label set (and, with `expect`, its verdict on it)."""
    args = [require(AMTOOL, "prometheus-alertmanager"), "config", "routes", "test", f"--config.file={CONFIG}"]
    if expect:
        args.append(f"--verify.receivers={expect}")
    r = subprocess.run([*args, *labels], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def test_amtool_check_config_accepts_the_example():
    r = subprocess.run([require(AMTOOL, "prometheus-alertmanager"), "check-config", str(CONFIG)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout, r.stdout
    assert "3 inhibit rules" in r.stdout and "9 receivers" in r.stdout, r.stdout


def test_every_team_of_the_demo_estate_has_its_own_routes():
    assert {team for team, _ in DEMO_BOTS} == set(RECEIVERS)


@pytest.mark.parametrize("severity", ["critical", "warning"])
@pytest.mark.parametrize("team,bot", DEMO_BOTS)
def test_the_alerts_of_each_demo_team_reach_that_teams_receiver(team, bot, severity):
    expected = RECEIVERS[team][severity]
    got = route("alertname=BotFailing", f"bot={bot}", f"team={team}", f"severity={severity}",
                "bot_owner=someone@example.com", "instance=agent-a:9464", "job=botwatch", expect=expected)
    assert got == expected


@pytest.mark.parametrize("team", sorted(RECEIVERS))
def test_info_alerts_go_to_no_one(team):
    assert route("alertname=BotRunFailed", "bot=x", f"team={team}", "severity=info", expect="null") == "null"


def test_alerts_without_a_team_go_to_it_operations():
    assert route("alertname=BotwatchAgentDown", "instance=agent-a:9464", "job=botwatch", "severity=critical",
                 expect="it-operations-critical") == "it-operations-critical"
    assert route("alertname=BotwatchEventsDropped", "instance=agent-a:9464", "severity=warning",
                 expect="it-operations") == "it-operations"


@pytest.mark.parametrize("alertname", ["BotwatchQueueItemsOutOfSla", "BotwatchQueueBacklogGrowing"])
def test_queue_alerts_reach_the_team_of_the_queues_folder_and_robot_alerts_it_operations(alertname):
    queue = ("platform=uipath", "connection=prod", "folder=Procurement", "queue=Vendor_Invoices",
             "instance=agent-a:9464", "job=botwatch", "severity=warning")
    assert route(f"alertname={alertname}", *queue, "team=procurement",
                 expect="procurement-warning") == "procurement-warning"
    assert route(f"alertname={alertname}", *queue, expect="it-operations") == "it-operations"  # no folder team
    assert route("alertname=BotwatchRobotDisconnected", "platform=uipath", "connection=prod", "machine=RPA-VM01",
                 "severity=warning", expect="it-operations") == "it-operations"


def test_a_team_without_routes_of_its_own_lands_at_it_operations():
    assert route("alertname=BotDown", "bot=payroll", "team=hr", "severity=critical") == "it-operations-critical"
    assert route("alertname=BotDown", "bot=payroll", "team=hr", "severity=warning") == "it-operations"


def test_notifications_are_grouped_per_alert_and_bot():
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["route"]["group_by"] == ["alertname", "bot"]


# -- inhibition, on a real Alertmanager --------------------------------------------------------

def post_alerts(base: str, alerts: list[dict]) -> None:
    req = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def alert_states(base: str) -> dict[tuple[str, str], dict]:
    status, body = http_get(f"{base}/api/v2/alerts", timeout=10)
    assert status == 200, body
    return {(a["labels"]["alertname"], a["labels"].get("bot", "")): a["status"] for a in json.loads(body)}


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on 127.0.0.1 (clustering off) with the example's routes and inhibitions.
    Its receivers lose their integrations, so that nothing is sent anywhere."""
    config = stack.write_alertmanager_config(tmp_path / "alertmanager.yml")
    server = stack.alertmanager(require(stack.ALERTMANAGER, "prometheus-alertmanager"), config, tmp_path / "data",
                                f"127.0.0.1:{free_port()}", tmp_path / "alertmanager.log")
    try:
        server.start().wait_ready(timeout=60)
        yield server.url
    finally:
        server.stop()


def test_an_unscrapable_agent_and_a_failing_bot_inhibit_the_alerts_they_explain(alertmanager):
    agent_a = {"instance": "agent-a:9464", "job": "botwatch"}
    agent_b = {"instance": "agent-b:9464", "job": "botwatch"}
    finance = {"team": "finance", "bot_owner": "ana.diaz@example.com", "criticality": "high"}
    procurement = {"team": "procurement", "bot_owner": "li.wei@example.com", "criticality": "medium"}
    post_alerts(alertmanager, [{"labels": labels} for labels in (
        {"alertname": "BotwatchAgentDown", "severity": "critical", **agent_a},
        {"alertname": "BotFailing", "severity": "critical", "bot": "healthy-invoices", **agent_a, **finance},
        {"alertname": "BotFailing", "severity": "warning", "bot": "flaky-portal", **agent_b, **procurement},
        {"alertname": "BotRunFailed", "severity": "info", "bot": "flaky-portal", "reason": "ui_drift",
         **agent_b, **procurement},
        {"alertname": "BotRunFailed", "severity": "info", "bot": "slow-report", "reason": "timeout",
         **agent_b, "team": "controlling"},
        # an Orchestrator connection of agent-b that cannot be pulled, and what it explains
        {"alertname": "BotwatchControlPlaneDown", "severity": "critical", "platform": "uipath",
         "connection": "prod", **agent_b},
        {"alertname": "BotwatchQueueItemsOutOfSla", "severity": "warning", "platform": "uipath",
         "connection": "prod", "folder": "Finance", "queue": "Invoices", "team": "finance", **agent_b},
        {"alertname": "BotwatchRobotDisconnected", "severity": "warning", "platform": "uipath",
         "connection": "test", "machine": "RPA-FIN-VM01", **agent_b},
    )])
    explained = (("BotFailing", "healthy-invoices"), ("BotRunFailed", "flaky-portal"), ("BotwatchQueueItemsOutOfSla", ""))

    def inhibitions_applied():
        states = alert_states(alertmanager)
        if len(states) == 8 and all(states[k]["inhibitedBy"] for k in explained):
            return states
        return None

    states = wait_for(inhibitions_applied, timeout=60, interval=0.1, what="the inhibitions to apply")
    for key in explained:
        assert states[key]["state"] == "suppressed", (key, states[key])
    # the sources themselves, and alerts of other agents, bots and connections, stay active
    for key in (("BotwatchAgentDown", ""), ("BotFailing", "flaky-portal"), ("BotRunFailed", "slow-report"),
                ("BotwatchControlPlaneDown", ""), ("BotwatchRobotDisconnected", "")):
        assert states[key]["state"] == "active" and not states[key]["inhibitedBy"], (key, states[key])
