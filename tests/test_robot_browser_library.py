"""The Robot Framework listener with the real Browser library (robotframework-browser).

A real `robot --rpa` bot drives Debian's headless Chromium through the Browser library (its
node side prebuilt by the `bb` extra, no Node.js and no browser download: `New Browser`
points `executablePath` at the system's Chromium, found on PATH: /usr/bin/chromium on Debian)
against a page served on 127.0.0.1, under the botwatch listener with page-source snapshots, with a real agent. The bot fills a field that is
there, clicks the submit button with its fallback selector after the primary missed (a heal)
and fails on a button that is gone: the look-ups, the heal, the ui_drift failure naming the
screen and selector and the checked snapshot all reach the agent. The listener's rules in
detail are proven against a stand-in for the library in test_robot_ui.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import SDK_ENV, LocalHTTPServer, free_port, http_get, kill_session, require, wait_for, write_estate

PY = sys.executable
BOT = "invoice-portal-browser"
PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice - Invoice portal</title></head>
<body>
<nav id="menu">
  <button class="submit" onclick="document.getElementById('done').hidden = false">Submit invoice</button>
</nav>
<main>
  <label>Amount <input id="amount" name="amount"></label>
  <p id="done" hidden>Invoice submitted</p>
</main>
</body></html>
"""
SUITE = """\
*** Settings ***
Library    Browser    timeout=1s

*** Variables ***
${PORTAL}    http://127.0.0.1:8000
${CHROMIUM}    /usr/bin/chromium

*** Tasks ***
Submit Invoice
    [Tags]    screen:invoice
    New Browser    chromium    headless=True    executablePath=${CHROMIUM}    args=["--no-sandbox"]
    New Page    ${PORTAL}/invoice.html
    Fill Text    id=amount    120.50
    ${clicked}=    Run Keyword And Return Status    Click    id=btnSubmit
    IF    not ${clicked}    Click    css=#menu .submit
    Wait For Elements State    id=done    visible
    Click    id=btnArchive
    Log    not reached
"""


class _Portal(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/invoice.html":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def portal():
    chromium = require("chromium", "chromium")
    try:
        import Browser
    except ImportError:
        pytest.fail("the Browser library is missing: pip install robotframework-browser "
                    "(`make test` installs the test extra)", pytrace=False)
    if importlib.util.find_spec("BrowserBatteries") is None:  # the node side prebuilt, the `bb` extra
        if not (Path(Browser.__file__).parent / "wrapper" / "node_modules").is_dir():
            pytest.fail("the Browser library's node side is missing: pip install 'robotframework-browser[bb]' "
                        "(`make test` does), or run `rfbrowser init --skip-browsers` with Node.js", pytrace=False)
    with LocalHTTPServer(_Portal) as server:
        yield server.url, chromium


def test_a_real_browser_library_bot_reports_its_look_ups_heal_and_ui_drift_failure(tmp_path, agents, portal):
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", f"""\
        - name: {BOT}
          platform: robotframework
          ui:
            drift_warning: 0.3
            screens:
              invoice:
                selectors: {{amount: "id=amount", submit: "id=btnSubmit", menu_submit: "css=#menu .submit"}}
        """, port), port).start()
    url, chromium = portal
    suite = tmp_path / "portal.robot"
    suite.write_text(textwrap.dedent(SUITE))
    env = {k: v for k, v in os.environ.items() if k not in SDK_ENV}
    env.update(BOTWATCH_SPOOL=str(tmp_path / "spool.db"), BOTWATCH_DELIVERY_PATIENCE="60", BOTWATCH_AGENT_URL=agent.url)
    cmd = [PY, "-m", "robot", "--rpa", "--output", "NONE", "--log", "NONE", "--report", "NONE", "--console", "dotted",
           "-v", f"PORTAL:{url}", "-v", f"CHROMIUM:{chromium}",
           "--listener", f"botwatch.integrations.robot:bot={BOT};snapshots=html", str(suite)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output = proc.communicate(timeout=180)[0]
    finally:
        if proc.poll() is None:  # a hung browser: the robot, the library's node process and Chromium go
            kill_session(proc)
    assert proc.returncode == 1, output
    assert "[ ERROR ]" not in output and "[ WARN ]" not in output, output
    assert "TimeoutError: locator.click: Timeout 1000ms exceeded." in output  # robot's own message unchanged

    def metric(name: str, **labels) -> float | None:
        key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted({"bot": BOT, **labels}.items())) + "}"
        return agent.metrics().get(key)

    wait_for(lambda: metric("botwatch_runs_total") == 1, timeout=60, what=f"the run of {BOT} at the agent")
    # the look-ups: the amount field, the submit button (healed), the confirmation waited for, the gone button
    assert metric("botwatch_ui_lookups_total", screen="invoice") == 4
    assert metric("botwatch_ui_healed_lookups_total", screen="invoice") == 1
    assert metric("botwatch_ui_lookup_failures_total", screen="invoice", kind="not_found") == 1
    assert metric("botwatch_ui_lookup_failures_total", screen="invoice", kind="ambiguous") == 0
    assert metric("botwatch_run_failures_total", reason="ui_drift") == 1
    # the page source snapshot (Get Page Source) was checked: the baseline, the declared selectors
    assert metric("botwatch_ui_drift_score", screen="invoice") == 0
    assert metric("botwatch_ui_baseline_timestamp_seconds", screen="invoice") > 0
    assert metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="amount") == 1
    assert metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="menu_submit") == 1
    assert metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="submit") == 0

    status, body = http_get(agent.url + "/api/v1/status")
    assert status == 200
    (bot,) = [b for b in json.loads(body)["bots"] if b["bot"] == BOT]
    assert (bot["last_outcome"], bot["last_reason"]) == ("failure", "ui_drift")
    assert (bot["last_failure_screen"], bot["last_failure_selector"]) == ("invoice", "id=btnArchive")
