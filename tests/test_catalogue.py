"""The metric catalogue (exporters/catalogue.py) is the one list of metrics: a real agent's /metrics,
the OTLP names, the dashboards' inventory and the README's table all hold every one of its metrics."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, http_get, http_post_json, wait_for, write_estate
from orchestrator_fake import FakeOrchestrator

from botwatch.exporters.catalogue import CATALOGUE, METRICS
from botwatch.exporters.otlp_metrics import NAMES, to_metrics

ROOT = Path(__file__).resolve().parents[1]
BOTS = """\
- name: alpha
  team: finance
  every: 1h
  source: alpha.py
  ui:
    screens:
      invoice: {selectors: {submit: "#btnSubmit"}}
"""
PAGE = b"<html><body><form><button id='btnSubmit'>Submit</button></form></body></html>"


def series(name: str, kind: str) -> str:
    """The name a metric's samples carry in the Prometheus text format (counters end in _total)."""
    return name + "_total" if kind == "counter" else name


def families(text: str) -> dict[str, str]:
    """{catalogue name: type} of the `# TYPE` lines of an exposition."""
    out = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        out[name.removesuffix("_total") if kind == "counter" else name] = kind
    return out


def sampled(text: str) -> set[str]:
    """The families that have at least one sample in an exposition."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            sample = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            names.add(re.sub(r"(_total|_bucket|_sum|_count)$", "", sample))
    return names


@pytest.fixture
def orchestrator():
    """An Orchestrator tenant with one folder, one job, a queue with an item and a robot session:
    a control-plane connection that pulls."""
    with FakeOrchestrator() as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        fake.add_job(folder, release, state="Successful")
        fake.add_queue_item(fake.add_queue(folder, "Invoices", sla_minutes=60, release=release), status="Successful")
        fake.add_session(fake.add_robot(folder, "fin-unattended-1", machine_name="RPA-FIN-VM01"), folder)
        yield fake


def a_busy_agent(tmp_path, agents, orchestrator):
    """A real agent whose bot ran (a success, a failure), looked up a UI element and sent a snapshot,
    and which pulls an Orchestrator."""
    port = free_port()
    (tmp_path / "alpha.py").write_text("page.goto('https://erp.example.com/invoices')\n", encoding="utf-8")
    config = write_estate(tmp_path / "botwatch.yaml", BOTS, port)
    with config.open("a", encoding="utf-8") as f:
        f.write(f"platforms:\n  uipath:\n    - {{name: prod, url: '{orchestrator.url}', organization: {orchestrator.org}, "
                f"tenant: {orchestrator.tenant}, client_id: {orchestrator.client_id}, "
                f"client_secret: {orchestrator.client_secret}, auto_register: true, interval: 1s}}\n")
    agent = agents(config, port).start()
    now = time.time()
    status, answer = http_post_json(agent.url + "/api/v1/events", {"events": [
        {"type": "run_finished", "bot": "alpha", "run_id": "r1", "started": now - 30, "ended": now - 20,
         "outcome": "success"},
        {"type": "run_finished", "bot": "alpha", "run_id": "r2", "started": now - 10, "ended": now - 5,
         "outcome": "failure", "reason": "ui_drift"},
        {"type": "ui_lookup", "bot": "alpha", "time": now - 6, "screen": "invoice", "found": False,
         "kind": "not_found", "wait": 2.0},
    ]})
    assert status == 200 and answer["accepted"] == 3, answer
    req = urllib.request.Request(f"{agent.url}/api/v1/snapshots/alpha/invoice", data=PAGE, method="POST",
                                 headers={"Content-Type": "text/html"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    return agent


def exposition(agent) -> str:
    status, body = http_get(agent.url + "/metrics")
    assert status == 200
    return body.decode()


def test_it_serves_every_catalogue_metric_with_samples_on_a_real_agent(tmp_path, agents, orchestrator):
    agent = a_busy_agent(tmp_path, agents, orchestrator)
    text = wait_for(lambda: (lambda t: t if set(METRICS) <= sampled(t) else None)(exposition(agent)),
                    what="every catalogue metric sampled")
    assert families(text) == {m.name: m.type for m in CATALOGUE}  # nothing missing, nothing outside it
    for m in CATALOGUE:
        assert f"# HELP {series(m.name, m.type)} {m.help}\n" in text, m.name
    # and the same families pushed over OTLP carry every catalogue name
    pushed = to_metrics(text_string_to_metric_families(text), 0, time.time_ns())
    assert {m.name for m in pushed} == {m.otlp_name for m in CATALOGUE}


def test_it_names_every_catalogue_metric_in_otlp_once():
    assert NAMES == {m.name: (m.otlp_name, m.unit) for m in CATALOGUE}
    assert len({m.otlp_name for m in CATALOGUE}) == len(CATALOGUE)


def test_it_is_in_the_dashboards_inventory_of_known_series():
    from test_dashboards import KNOWN_SERIES, series_names

    expected = series_names({m.name: m.type for m in CATALOGUE})
    assert {name: KNOWN_SERIES.get(name) for name in expected} == expected


def test_it_is_the_readme_metrics_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Metrics", 1)[1].split("\n\n")[2]  # the paragraph after the introduction
    documented = set()
    for row in table.splitlines()[2:]:
        names = [n for n in re.findall(r"`([^`]+)`", row.split("|")[1]) if not n.startswith("{")]
        for name in names:
            if name.startswith("_"):  # `botwatch_agent_events_total`, `_events_dropped_total`
                name = "_".join(names[0].split("_")[:2]) + name
            documented.add(re.sub(r"\{.*\}$", "", name))
        # a metric may be documented in the meaning of a related one's row
        documented.update(re.findall(r"`(botwatch_\w+)", row.split("|", 2)[2]))
    assert documented == {series(m.name, m.type) for m in CATALOGUE}
