"""Scale-out: Prometheus HTTP service discovery (/sd lists this agent and the estate's other
agents; a real Prometheus finds and scrapes the agent through it), the cap on bots per agent,
and bounded label values."""

from __future__ import annotations

import json
import urllib.parse

from botwatch.commands import stack
from conftest import free_port, http_get, require, wait_for, write_estate

BOTS = "- name: alpha\n  every: 1h\n"


def test_sd_lists_this_agent_and_the_estates_other_agents(tmp_path, agents):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", BOTS, port,
                          extra="  sd_targets: ['10.0.0.7:9464', 'rpa-vm-08.example.com:9464']\n")
    agent = agents(config, port).start()
    status, body = http_get(agent.url + "/sd")
    assert status == 200
    assert json.loads(body) == [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"__meta_botwatch_agent": "local"}},
        {"targets": ["10.0.0.7:9464", "rpa-vm-08.example.com:9464"], "labels": {"__meta_botwatch_agent": "estate"}},
    ]


def test_a_real_prometheus_finds_and_scrapes_the_agent_through_sd(tmp_path, agents):
    binary = require(stack.PROMETHEUS, "prometheus")
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", BOTS, port), port).start()
    config = stack.write_yaml(tmp_path / "prometheus.yml", {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "botwatch", "http_sd_configs": [
            {"url": agent.url + "/sd", "refresh_interval": "1s"}]}],
    }, "# service discovery through the agent's /sd")
    listen = f"127.0.0.1:{free_port()}"
    prom = stack.prometheus(binary, config, tmp_path / "prom-data", listen, tmp_path / "prometheus.log")
    try:
        prom.start().wait_ready()
        query = urllib.parse.quote('up{job="botwatch"} == 1')

        def scraped():
            result = prom.get_json(f"/api/v1/query?query={query}")["data"]["result"]
            return [r["metric"]["instance"] for r in result]

        assert wait_for(scraped, timeout=60, what="Prometheus to scrape the agent it found through /sd") == [
            f"127.0.0.1:{port}"]
    finally:
        prom.stop()


def test_an_sd_target_that_is_not_host_port_is_a_config_error_naming_its_line():
    import pytest

    from botwatch.config.estate import ConfigError, parse_estate_text

    with pytest.raises(ConfigError) as exc:
        parse_estate_text("agent:\n  sd_targets: ['rpa-vm-08.example.com']\nbots: []\n", "estate.yaml")
    assert "estate.yaml:2" in str(exc.value) and "HOST:PORT" in str(exc.value)


def test_auto_registration_stops_at_max_bots_and_counts_what_it_refuses():
    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunStarted
    from botwatch.state.runtime import EstateState

    estate = parse_estate_text("agent:\n  auto_register: true\n  limits: {max_bots: 3}\nbots:\n  - name: alpha\n")
    state = EstateState(estate, None)
    result = state.apply([RunStarted(f"flood-{i}", "r1", 1.0) for i in range(5)])
    assert sorted(state.bots) == ["alpha", "flood-0", "flood-1"]
    assert result.accepted == 2 and len(result.rejected) == 3
    assert "max_bots (3)" in result.rejected[0]["error"]
    assert state.self_metrics()["dropped"]["bot_limit"] == 3


def test_label_values_from_the_estate_file_are_bounded_with_an_error_at_their_line():
    import pytest

    from botwatch.config.estate import ConfigError, parse_estate_text

    with pytest.raises(ConfigError) as exc:
        parse_estate_text(f"bots:\n  - name: alpha\n    team: {'t' * 65}\n", "estate.yaml")
    assert "estate.yaml:3" in str(exc.value) and "64" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse_estate_text(f"bots:\n  - name: alpha\n    owner: {'o' * 250}@example.com\n", "estate.yaml")
    assert "estate.yaml:3" in str(exc.value)
    assert parse_estate_text(f"bots:\n  - name: alpha\n    team: {'t' * 64}\n").bots[0].team == "t" * 64


def test_event_sources_a_client_makes_up_are_counted_as_other_and_every_source_starts_at_zero():
    from prometheus_client import generate_latest

    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunStarted
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.state.runtime import EVENT_SOURCES, EstateState

    state = EstateState(parse_estate_text("bots:\n  - name: alpha\n"), None)
    state.apply([RunStarted("alpha", f"r{i}", 1.0, source=f"made-up-{i}") for i in range(500)]
                + [RunStarted("alpha", "w", 1.0, source="wrapper")])
    events = state.self_metrics()["events"]
    assert events == {"other": 500, "wrapper": 1}
    text = generate_latest(estate_registry(state)).decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("botwatch_agent_events_total{")]
    assert len(lines) == len(EVENT_SOURCES)  # bounded, and each at 0 before its first event
    assert 'botwatch_agent_events_total{source="log:uipath"} 0.0' in lines
    assert 'botwatch_agent_events_total{source="other"} 500.0' in lines
