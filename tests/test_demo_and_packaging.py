"""The README's promises: `botwatch demo` shows real runs, with Prometheus and Alertmanager beside
the agent; `pip install .` installs one package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from botwatch.commands import stack
from conftest import BOTWATCH, free_port, http_get, parse_metrics, require, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.posix_only("the demo is stopped with SIGTERM and must stop its servers and exit 0; Windows can only "
                        "terminate another process")
def test_the_demo_runs_its_bots_through_the_agent_with_prometheus_and_alertmanager(tmp_path):
    require(stack.PROMETHEUS, "prometheus")
    require(stack.ALERTMANAGER, "prometheus-alertmanager")
    port, prom_port, am_port = free_port(), free_port(), free_port()
    prom, am = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    env = {**os.environ}
    for k in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL", "BOTWATCH_SPOOL"):
        env.pop(k, None)
    proc = subprocess.Popen([*BOTWATCH, "demo", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "d"),
                             "--duration", "120", "--prometheus-listen", f"127.0.0.1:{prom_port}",
                             "--alertmanager-listen", f"127.0.0.1:{am_port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def enough_runs():
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except OSError:
                return None
            m = parse_metrics(body.decode())
            bots = ("healthy-invoices", "flaky-portal", "slow-report")
            return m if all(m.get(f'botwatch_runs_total{{bot="{b}"}}', 0) >= 1 for b in bots) else None

        m = wait_for(enough_runs, timeout=90, interval=0.5, what="a run of every demo bot")
        assert m['botwatch_bot_state{bot="healthy-invoices",state="up"}'] == 1
        assert m['botwatch_bot_info{bot="nightly-ledger",bot_owner="ana.diaz@example.com",criticality="high",'
                 'lifecycle="production",platform="robotframework",team="finance"}'] == 1

        # Prometheus loaded every shipped rule group, evaluates the rules without errors, scrapes the
        # agent as job botwatch and sends to the demo's Alertmanager.
        shipped = {g["name"] for path in stack.rule_files()
                   for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]}

        def rules_evaluated():
            groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return groups if rules and all(r["health"] == "ok" for r in rules) else None

        groups = wait_for(rules_evaluated, timeout=60, interval=0.5, what="Prometheus to evaluate the rules")
        assert {g["name"] for g in groups} == shipped
        assert any(r["name"] == "BotFailing" for g in groups for r in g["rules"])
        up = wait_for(lambda: get_json(f"{prom}/api/v1/query?query=up")["data"]["result"], timeout=60, interval=0.5,
                      what="Prometheus to scrape the agent")
        assert [(r["metric"]["job"], r["metric"]["instance"]) for r in up] == [("botwatch", f"127.0.0.1:{port}")]
        active = get_json(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        assert [a["url"] for a in active] == [f"{am}/api/v2/alerts"]
        # Alertmanager runs the shipped routing, with receivers that cannot send anywhere.
        config = yaml.safe_load(get_json(f"{am}/api/v2/status")["config"]["original"])
        example = yaml.safe_load((stack.alerts_dir() / "alertmanager.yml").read_text(encoding="utf-8"))
        assert without_defaults(config["route"]["routes"]) == example["route"]["routes"]
        assert config["inhibit_rules"] == example["inhibit_rules"]
        assert config["receivers"] == [{"name": r["name"]} for r in example["receivers"]]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert f"http://127.0.0.1:{port}/metrics" in text and "botwatch status --agent" in text
    assert prom in text and am in text and "botwatch grafana push" in text, text
    assert proc.returncode == 0, text
    for url in (prom, am):  # the demo stopped them
        with pytest.raises(OSError):
            http_get(f"{url}/-/ready", timeout=2)


def without_defaults(routes: list[dict]) -> list[dict]:
    """Routes as written: Alertmanager adds `continue: false` to each when it loads them."""
    return [{k: without_defaults(v) if k == "routes" else v for k, v in r.items() if (k, v) != ("continue", False)}
            for r in routes]


def get_json(url: str):
    status, body = http_get(url, timeout=10)
    assert status == 200, (url, body)
    return json.loads(body)


def test_pip_install_puts_one_package_named_botwatch_with_its_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("botwatch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"botwatch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    # every module and data file of agent/ (botwatch) and exporters/ (botwatch.exporters): a folder
    # left out of pyproject's package list is missing here
    sources = {f"botwatch/{p.relative_to(ROOT / 'agent').as_posix()}" for p in (ROOT / "agent").rglob("*")
               if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts}
    sources |= {f"botwatch/exporters/{p.name}" for p in (ROOT / "exporters").glob("*.py")}
    assert "botwatch/core/failure_patterns.yaml" in sources and "botwatch/governance/checks.py" in sources
    for expected in sorted(sources) + ["botwatch/dashboards/__init__.py", "botwatch/alerts/__init__.py",
                                       "botwatch/demo/botwatch.yaml", "botwatch/demo/bots/flaky_portal.py"]:
        assert expected in names, expected
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "botwatch = botwatch.commands.cli:main" in entry
