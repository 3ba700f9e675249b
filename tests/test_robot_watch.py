"""A real `robot --rpa` run whose output.xml a real agent watches (no listener)."""

from __future__ import annotations

import subprocess
import sys

from conftest import free_port, wait_for

LIBRARY = '''\
class ElementNotFound(Exception):
    ROBOT_SUPPRESS_NAME = True


def click_submit():
    raise ElementNotFound("Element with locator 'id:submit' not found.")
'''

SUITE = '''\
*** Settings ***
Library    Portal.py

*** Tasks ***
Download Invoices
    Log    downloaded 3 invoices

Submit Invoices
    Click Submit
'''


def test_the_agent_watching_output_xml_records_the_rpa_run_with_reason_ui_drift(tmp_path, agents, run_env):
    bot_dir = tmp_path / "bot"
    bot_dir.mkdir()
    (bot_dir / "Portal.py").write_text(LIBRARY)
    (bot_dir / "portal.robot").write_text(SUITE)
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  process_interval: 1s\n"
        "bots:\n  - name: invoice-portal\n    platform: robotframework\n"
        "    watch:\n      logs:\n        - {path: bot/output.xml, format: robot}\n")
    agent = agents(config, port).start()
    r = subprocess.run([sys.executable, "-m", "robot", "--rpa", "--output", "output.xml", "--log", "NONE",
                        "--report", "NONE", "portal.robot"], cwd=bot_dir, env=run_env, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr  # one task failed

    def recorded():
        m = agent.metrics()
        return m if m.get('botwatch_runs_total{bot="invoice-portal"}') == 1 else None

    m = wait_for(recorded, timeout=60, what="the run read from output.xml")
    assert m['botwatch_run_failures_total{bot="invoice-portal",reason="ui_drift"}'] == 1
    assert m['botwatch_bot_state{bot="invoice-portal",state="failing"}'] == 1
