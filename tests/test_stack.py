"""botwatch.commands.stack: the configurations it derives from the shipped files, the ports it picks, and
the demo's notes when Prometheus or Alertmanager is missing. (The servers themselves run in
test_e2e_alerting.py and in the demo test.)"""

from __future__ import annotations

import socket

import pytest
import yaml

from botwatch.commands import demo as demo_runner
from botwatch.commands import stack

SHIPPED = yaml.safe_load((stack.alerts_dir() / "alertmanager.yml").read_text(encoding="utf-8"))


def test_the_rule_files_are_the_shipped_ones_without_the_example_overrides():
    assert [p.name for p in stack.rule_files()] == ["alerts.rules.yml", "recording.rules.yml", "thresholds.rules.yml"]


def test_prometheus_scrapes_the_agents_as_job_botwatch_with_the_shipped_rules():
    config = stack.prometheus_config(["127.0.0.1:9464"], alertmanager="127.0.0.1:9093", scrape_interval="5s")
    assert config["scrape_configs"] == [{"job_name": "botwatch", "static_configs": [{"targets": ["127.0.0.1:9464"]}]}]
    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    assert config["rule_files"] == [str(p.resolve()) for p in stack.rule_files()]
    assert config["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]}
    assert "alerting" not in stack.prometheus_config(["127.0.0.1:9464"])


def test_the_derived_alertmanager_config_keeps_routes_and_inhibitions_and_sends_nowhere():
    config = stack.alertmanager_config()
    assert config["route"] == SHIPPED["route"] and config["inhibit_rules"] == SHIPPED["inhibit_rules"]
    assert config["receivers"] == [{"name": r["name"]} for r in SHIPPED["receivers"]]


def test_with_a_webhook_each_sending_receiver_posts_to_its_own_path():
    config = stack.alertmanager_config("http://127.0.0.1:5001/")
    by_name = {r["name"]: r for r in config["receivers"]}
    assert by_name["null"] == {"name": "null"}  # sent nothing before, sends nothing now
    assert by_name["finance-critical"] == {"name": "finance-critical", "webhook_configs": [
        {"url": "http://127.0.0.1:5001/finance-critical", "send_resolved": True}]}
    assert all("webhook_configs" in r for name, r in by_name.items() if name != "null")


def test_timings_replace_the_roots_and_those_set_on_sub_routes():
    config = stack.alertmanager_config(timings={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2m"})
    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("1s", "1s", "2m")
    finance = next(r for r in route["routes"] if r["matchers"] == ['team="finance"'])
    assert finance["routes"][0]["repeat_interval"] == "2m" and "group_wait" not in finance
    with pytest.raises(ValueError, match="resolve_timeout"):
        stack.alertmanager_config(timings={"resolve_timeout": "1s"})


def test_a_taken_port_is_replaced_by_a_free_one_on_the_same_host():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = f"127.0.0.1:{s.getsockname()[1]}"
        picked = stack.pick_listen(taken)
    assert picked != taken and picked.startswith("127.0.0.1:")
    free = f"127.0.0.1:{stack.free_port()}"
    assert stack.pick_listen(free) == free


def test_the_demo_goes_on_without_prometheus_and_alertmanager_when_they_are_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stack, "find_binary", lambda names: None)
    assert demo_runner.start_monitoring(tmp_path, "127.0.0.1:9464", "127.0.0.1:9090", "127.0.0.1:9093") == (None, None)
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        "botwatch demo: Alertmanager is not installed (Debian: apt install prometheus-alertmanager); "
        "running without it.",
        "botwatch demo: Prometheus is not installed (Debian: apt install prometheus); running without it.",
    ]
    assert demo_runner.monitoring_help(None, None) == ""
