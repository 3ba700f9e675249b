"""The UI drift proof: a real drifting application and a real bot.

The invoice portal (tests/drift_app.py) is served on 127.0.0.1 in four versions; a real Robot
Framework bot with SeleniumLibrary (tests/bots/invoice_portal.robot) submits an invoice in
headless Chromium under the botwatch listener, against each version in turn, with a real agent
whose estate declares the screens' selectors:

    v1  the baseline: the first snapshot of each screen becomes its baseline
    v2  cosmetic changes (colours, a news banner, today's date): the score stays low, no warning
    v3  the submit button moved into a side menu with a new id; the bot's fallback locator still
        finds it: the run succeeds, the look-up is healed, the score is high and the declared
        primary selector matches nothing: a warning, before any failure
    v4  the button is gone: the run fails with reason ui_drift, naming the screen and selector

once with page-source snapshots (`snapshots=html`) and once with screenshots (`snapshots=png`,
the header's date and the news slot masked).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import SDK_ENV, free_port, http_get, kill_session, require, wait_for, write_estate
from drift_app import MASK, DriftApp

PY = sys.executable
ROBOT_BOT = Path(__file__).parent / "bots" / "invoice_portal.robot"
PRIMARY = "id:btnSubmit"
FALLBACK = "xpath://button[normalize-space()='Submit invoice']"
WARNING = 0.3


@pytest.fixture(scope="module")
def browser_variables() -> list[str]:
    """The bot's variables that name Chromium and its driver, as found here."""
    return ["-v", f"CHROMIUM:{require('chromium', 'chromium')}",
            "-v", f"CHROMEDRIVER:{require('chromedriver', 'chromium-driver')}"]


@pytest.fixture(scope="module")
def portal(browser_variables):
    app = DriftApp().start()
    yield app
    app.stop()


def estate(bot: str, screens: str) -> str:
    return f"""\
- name: {bot}
  platform: robotframework
  team: finance
  owner: ana.diaz@example.com
  ui:
    drift_warning: {WARNING}
    screens:
{textwrap.indent(textwrap.dedent(screens), "      ")}"""


class Scenario:
    """One bot against one agent: runs the robot against a version, reads what the agent knows."""

    def __init__(self, tmp: Path, agent, bot: str, snapshots: str, portal: DriftApp, browser_variables: list[str]):
        self.tmp, self.agent, self.bot, self.snapshots, self.portal = tmp, agent, bot, snapshots, portal
        self.browser_variables = browser_variables
        self.runs = 0
        self.env = {k: v for k, v in os.environ.items() if k not in SDK_ENV}
        self.env.update(BOTWATCH_SPOOL=str(tmp / "spool.db"), BOTWATCH_DELIVERY_PATIENCE="60",
                        BOTWATCH_AGENT_URL=agent.url)

    def run(self, version: str) -> subprocess.CompletedProcess:
        out = self.tmp / version
        out.mkdir()
        # `;` after the `:` works too: the listener splits such a value at its own options
        cmd = [PY, "-m", "robot", "--rpa", "--output", str(out / "output.xml"), "--log", "NONE", "--report",
               "NONE", "--console", "dotted", "-v", f"PORTAL:{self.portal.version(version)}", *self.browser_variables,
               "--listener", f"botwatch.integrations.robot:bot={self.bot};snapshots={self.snapshots}",
               str(ROBOT_BOT)]
        proc = subprocess.Popen(cmd, cwd=out, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            output = proc.communicate(timeout=180)[0]
        finally:
            if proc.poll() is None:  # a hung browser: the robot, its chromedriver and Chromium go
                kill_session(proc)
        assert "[ ERROR ]" not in output, output
        self.runs += 1
        wait_for(lambda: self.metric("botwatch_runs_total") == self.runs, timeout=60,
                 what=f"run {self.runs} of {self.bot} ({version}) at the agent")
        return subprocess.CompletedProcess(cmd, proc.returncode, output)

    def metrics(self) -> dict[str, float]:
        return self.agent.metrics()

    def metric(self, name: str, **labels) -> float | None:
        key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted({"bot": self.bot, **labels}.items())) + "}"
        return self.metrics().get(key)

    def status(self) -> dict:
        status, body = http_get(self.agent.url + "/api/v1/status")
        assert status == 200
        (bot,) = [b for b in json.loads(body)["bots"] if b["bot"] == self.bot]
        return bot

    def last_run(self) -> dict:
        db = sqlite3.connect(self.tmp / "journal.db")
        db.row_factory = sqlite3.Row
        try:
            row = db.execute("SELECT * FROM runs WHERE bot = ? ORDER BY ended DESC LIMIT 1", (self.bot,)).fetchone()
            return dict(row)
        finally:
            db.close()

    def failures(self) -> float:
        return sum(v for k, v in self.metrics().items()
                   if k.startswith("botwatch_run_failures_total{") and f'bot="{self.bot}"' in k)


@pytest.fixture
def scenario(tmp_path, agents, portal, browser_variables):
    def make(bot: str, snapshots: str, screens: str) -> Scenario:
        port = free_port()
        agent = agents(write_estate(tmp_path / "botwatch.yaml", estate(bot, screens), port), port).start()
        return Scenario(tmp_path, agent, bot, snapshots, portal, browser_variables)

    return make


def test_page_source_drift_warns_when_the_button_moves_and_the_run_fails_as_ui_drift_when_it_is_gone(scenario):
    s = scenario("invoice-portal", "html", """\
        login:
          selectors: {user: "id:user", password: "id:password", sign_in: "id:btnLogin"}
        invoice:
          selectors: {supplier: "id:supplier", number: "id:number", amount: "css:#amount", submit: "id:btnSubmit"}
        """)

    # v1: the baseline
    r = s.run("v1")
    assert r.returncode == 0, r.stdout
    assert s.metric("botwatch_ui_drift_score", screen="invoice") == 0
    assert s.metric("botwatch_ui_drift_score", screen="login") == 0
    assert s.metric("botwatch_ui_baseline_timestamp_seconds", screen="invoice") > 0
    assert s.metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="submit") == 1
    assert s.metric("botwatch_ui_lookups_total", screen="invoice") == 6
    assert s.metric("botwatch_ui_lookups_total", screen="login") == 4
    baseline = s.metric("botwatch_ui_baseline_timestamp_seconds", screen="invoice")

    # v2: colours, a news banner, today's date: a low score, no warning
    r = s.run("v2")
    assert r.returncode == 0, r.stdout
    assert 0 < s.metric("botwatch_ui_drift_score", screen="invoice") < WARNING
    assert s.metric("botwatch_ui_drift_score", screen="login") < WARNING
    assert s.metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="submit") == 1
    assert s.metric("botwatch_ui_baseline_timestamp_seconds", screen="invoice") == baseline
    assert s.metric("botwatch_ui_healed_lookups_total", screen="invoice") == 0
    assert "drifted from its baseline" not in r.stdout

    # v3: the button moved into a menu with a new id; the fallback finds it
    r = s.run("v3")
    assert r.returncode == 0, r.stdout
    assert s.status()["last_outcome"] == "success"
    assert s.metric("botwatch_ui_healed_lookups_total", screen="invoice") == 1
    assert s.metric("botwatch_ui_lookup_failures_total", screen="invoice", kind="not_found") == 0
    assert s.metric("botwatch_ui_drift_score", screen="invoice") >= WARNING
    assert s.metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="submit") == 0
    assert s.metric("botwatch_ui_declared_selector_matches", screen="invoice", selector="amount") == 1
    assert s.metric("botwatch_ui_drift_score", screen="login") < WARNING  # only the invoice screen drifted
    assert s.failures() == 0  # the warning comes before any failure
    assert "botwatch: screen invoice has drifted from its baseline" in r.stdout  # in the robot's own log too

    # v4: the button is gone: the run fails as ui_drift, naming the screen and the selector
    r = s.run("v4")
    assert r.returncode == 1, r.stdout
    assert f"Button with locator '{FALLBACK}' not found." in r.stdout
    assert s.metric("botwatch_run_failures_total", reason="ui_drift") == 1
    assert s.failures() == 1
    assert s.metric("botwatch_ui_lookup_failures_total", screen="invoice", kind="not_found") == 1
    assert s.metric("botwatch_ui_drift_score", screen="invoice") >= WARNING
    run = s.last_run()
    assert (run["outcome"], run["reason"]) == ("failure", "ui_drift")
    assert (run["screen"], run["selector"]) == ("invoice", FALLBACK)
    assert run["output_tail"] == (f"screen invoice, selector {FALLBACK} (also tried {PRIMARY}): "
                                  f"Button with locator '{FALLBACK}' not found.")
    status = s.status()
    assert (status["last_reason"], status["last_failure_screen"], status["last_failure_selector"]) == (
        "ui_drift", "invoice", FALLBACK)


def test_screenshot_drift_stays_low_for_cosmetic_changes_and_warns_when_the_layout_changes(scenario):
    masked = json.dumps(MASK)
    s = scenario("invoice-portal-screens", "png", f"""\
        login: {{mask: {masked}}}
        invoice: {{mask: {masked}}}
        """)

    r = s.run("v1")
    assert r.returncode == 0, r.stdout
    assert s.metric("botwatch_ui_drift_score", screen="invoice") == 0
    assert s.metric("botwatch_ui_baseline_timestamp_seconds", screen="invoice") > 0

    r = s.run("v2")
    assert r.returncode == 0, r.stdout
    assert s.metric("botwatch_ui_drift_score", screen="invoice") < WARNING
    assert s.metric("botwatch_ui_drift_score", screen="login") < WARNING
    assert "drifted from its baseline" not in r.stdout

    r = s.run("v3")
    assert r.returncode == 0, r.stdout
    assert s.metric("botwatch_ui_drift_score", screen="invoice") >= WARNING
    assert s.metric("botwatch_ui_healed_lookups_total", screen="invoice") == 1
    assert s.failures() == 0
    assert "botwatch: screen invoice has drifted from its baseline (png snapshot" in r.stdout

    r = s.run("v4")
    assert r.returncode == 1, r.stdout
    assert s.metric("botwatch_ui_drift_score", screen="invoice") >= WARNING
    run = s.last_run()
    assert (run["outcome"], run["reason"], run["screen"], run["selector"]) == (
        "failure", "ui_drift", "invoice", FALLBACK)
