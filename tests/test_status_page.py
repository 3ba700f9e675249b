"""The status page at `/`: rendered from the estate state (a controlled clock), and the real page of
a real agent on the demo estate, looked at by a real headless Chromium at a phone's size."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from botwatch.config.estate import BotConfig, Estate
from botwatch.core.events import RunFinished, UiSnapshot
from botwatch.governance import Finding
from botwatch.state.journal import Journal
from botwatch.state.runtime import EstateState
from botwatch.server.status_page import STATE_COLOURS, page_for_state, render_status_page
from conftest import free_port, http_get, http_post_json, require, wait_for

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


class FakeGovernance:
    def __init__(self, latest):
        self.latest = latest


def run(bot, run_id, ended, ok=True, started=None, **kw):
    return RunFinished(bot=bot, run_id=run_id, ended=ended, started=started if started is not None else ended - 10,
                       outcome="success" if ok else "failure", exit_status=0 if ok else 1, **kw)


@pytest.fixture
def estate_state(tmp_path):
    """One bot in each state at T0."""
    bots = [
        BotConfig(name="green-bot", owner="ana.diaz@example.com", team="finance", every=3600,
                  runbook="https://wiki.example.com/bots/green-bot",
                  ui={"drift_warning": 0.3, "screens": {"invoice": {"selectors": {"submit": "#btnSubmit"}}}}),
        BotConfig(name="late-bot", owner="li.wei@example.com", team="procurement", every=600, grace=3600),
        BotConfig(name="failing-bot", owner="sam.okafor@example.com", team="controlling", every=3600,
                  runbook="javascript:alert(1)"),
        BotConfig(name="down-bot", team="finance", every=60, grace=60),
        BotConfig(name="paused-bot", team="finance", paused=True),
        BotConfig(name="new-bot", team="<i>ops</i>"),
    ]
    clock = Clock()
    st = EstateState(Estate(bots=bots), Journal(tmp_path / "j.db"), clock=clock)
    st.apply([
        run("green-bot", "g1", T0 - 3000, ok=False, reason="credentials"),
        run("green-bot", "g2", T0 - 60),
        run("late-bot", "l1", T0 - 690, started=T0 - 700),
        run("failing-bot", "f1", T0 - 60, ok=False, reason="ui_drift", screen="login", selector="#user<name>"),
        run("down-bot", "d1", T0 - 1000),
        UiSnapshot(bot="green-bot", time=T0 - 30, screen="invoice", kind="html", score=0.42,
                   selectors={"submit": 0}, baseline_time=T0 - 86400),
    ])
    return st


def card(page: str, bot: str) -> str:
    m = re.search(rf"<article [^>]*data-bot='{re.escape(bot)}'.*?</article>", page, re.S)
    assert m, f"no card for {bot}"
    return m.group(0)


def test_every_state_gets_its_traffic_light_its_word_and_a_count(estate_state):
    page = page_for_state(estate_state, version="1.2.3")
    expected = {"green-bot": "up", "late-bot": "late", "failing-bot": "failing", "down-bot": "down",
                "paused-bot": "paused", "new-bot": "new"}
    for bot, state in expected.items():
        c = card(page, bot)
        assert f"data-state='{state}'" in c
        assert f"<span class='state s-{state}'>{state}</span>" in c  # the word, not the colour only
    for state in expected.values():
        assert re.search(rf"<li class='light s-{state}' data-state='{state}'><span class='n'>1</span>", page)
    for state, colour in STATE_COLOURS.items():
        assert f".s-{state}{{background:{colour};" in page
    assert page.index("data-bot='down-bot'") < page.index("data-bot='failing-bot'") < page.index(
        "data-bot='late-bot'") < page.index("data-bot='green-bot'")  # the most urgent first
    assert "<meta http-equiv='refresh' content='30'>" in page
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    assert "<script" not in page


def test_a_bot_card_shows_owner_runbook_recent_runs_with_reasons_and_drift(estate_state):
    page = page_for_state(estate_state)
    green = card(page, "green-bot")
    assert "<a href='mailto:ana.diaz@example.com'>ana.diaz@example.com</a>" in green
    assert "<a href='https://wiki.example.com/bots/green-bot' rel='noopener noreferrer'>runbook</a>" in green
    assert "<dt>last success</dt><dd>60s ago</dd>" in green
    runs = re.findall(r"<li class='run (\w+)'><span class='outcome'>([^<]*)</span>", green)
    assert runs == [("ok", "success"), ("bad", "failure: credentials")]  # newest first
    assert "screen <b>invoice</b> drifted: score 0.42 (warning at 0.30)" in green
    assert "selector <code>submit</code> matches nothing" in green

    failing = card(page, "failing-bot")
    assert "failure: ui_drift" in failing
    assert "last run failed on the UI on screen <b>login</b>: <code>#user&lt;name&gt;</code>" in failing
    assert "href='javascript:" not in failing  # shown as text, never a link
    assert "no runbook" in card(page, "down-bot") and "no owner" in card(page, "down-bot")


def test_a_bot_with_five_runs_and_more_lists_its_last_five(estate_state):
    estate_state.apply([run("late-bot", f"x{i}", T0 - 5000 + i) for i in range(8)])
    page = page_for_state(estate_state)
    assert card(page, "late-bot").count("<li class='run ") == 5


def test_governance_findings_are_counted_by_check_without_their_details(estate_state):
    secret_detail = "AWS key in bot.py"
    findings = {"green-bot": [Finding("owner", True, "ok"), Finding("plaintext_secret", False, secret_detail),
                              Finding("certified", False, "no certification record")],
                "late-bot": [Finding("owner", True, "ok")]}
    page = page_for_state(estate_state, FakeGovernance(findings))
    assert "<dt>governance</dt><dd class='warn'>2 findings (certified, plaintext_secret)</dd>" in card(page, "green-bot")
    assert "<dt>governance</dt><dd class=''>none</dd>" in card(page, "late-bot")
    assert secret_detail not in page
    assert "<dt>governance</dt>" not in page_for_state(estate_state, FakeGovernance(None))  # not computed yet


def test_names_and_texts_are_escaped(estate_state):
    views = estate_state.views()
    evil = dataclasses.replace(views[0], name="<script>alert(1)</script>")
    page = render_status_page([evil, *views[1:]], now=T0)
    assert "<script>alert(1)</script>" not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;i&gt;ops&lt;/i&gt;" in card(page, "new-bot")


def test_a_big_estate_shows_the_most_urgent_bots_with_a_note_and_counts_them_all(estate_state):
    views = estate_state.views()
    many = [dataclasses.replace(views[0], name=f"bot-{i:04d}") for i in range(250)]
    asked = []
    page = render_status_page(many, now=T0, max_bots=200, recent_runs=lambda bot: asked.append(bot) or [])
    assert page.count("<article ") == 200 and len(asked) == 200
    assert "Showing the 200 most urgent of 250 bots" in page
    assert "<span class='n'>250</span> <span class='label'>up</span>" in page


# -- the real page, in a real browser -----------------------------------------------------------

DEMO_BOTS = [b["name"] for b in yaml.safe_load((ROOT / "examples/demo/botwatch.yaml").read_text())["bots"]]
EXPECTED_BADGES = {  # STATE_COLOURS as the browser computes them
    "healthy-invoices": ("up", "rgb(46, 125, 50)"),
    "slow-report": ("late", "rgb(230, 81, 0)"),
    "flaky-portal": ("failing", "rgb(198, 40, 40)"),
}


def demo_estate(tmp_path: Path, port: int) -> Path:
    """The demo estate on a free port, its intervals stretched to an hour so that the states the
    test sets up hold however long the browser takes."""
    data = yaml.safe_load((ROOT / "examples/demo/botwatch.yaml").read_text())
    data["agent"].update(listen=f"127.0.0.1:{port}", journal=str(tmp_path / "journal.db"))
    for bot in data["bots"]:
        if "every" in bot:
            bot.update(every="1h", grace="1h")
    path = tmp_path / "botwatch.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def browser():
    chromium = require("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def test_the_status_page_shows_every_demo_bot_in_chromium_with_the_right_colours_on_a_phone(
        tmp_path, agents, browser):
    port = free_port()
    agent = agents(demo_estate(tmp_path, port), port).start()
    now = time.time()
    events = [  # healthy: succeeded a minute ago; failing: two UI failures; late: last ran 61 minutes ago
        {"type": "run_finished", "bot": "healthy-invoices", "run_id": "h1", "started": now - 70, "ended": now - 60,
         "outcome": "success", "exit_status": 0},
        *({"type": "run_finished", "bot": "flaky-portal", "run_id": f"f{i}", "started": now - 40 + i,
           "ended": now - 35 + i, "outcome": "failure", "exit_status": 1, "reason": "ui_drift"} for i in range(2)),
        {"type": "run_finished", "bot": "slow-report", "run_id": "s1", "started": now - 3660, "ended": now - 3650,
         "outcome": "success", "exit_status": 0},
    ]
    status, body = http_post_json(agent.url + "/api/v1/events", {"events": events})
    assert status == 200 and body["accepted"] == 4, body

    def states():
        _, raw = http_get(agent.url + "/api/v1/status")
        got = {b["bot"]: b["state"] for b in json.loads(raw)["bots"]}
        return got if all(got.get(b) == s for b, (s, _) in EXPECTED_BADGES.items()) else None

    wait_for(states, what="the healthy, failing and late states")

    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    try:
        page = context.new_page()
        response = page.goto(agent.url + "/")
        assert response.status == 200
        shown = page.eval_on_selector_all("article.bot", "els => els.map(e => e.dataset.bot)")
        assert sorted(shown) == sorted(DEMO_BOTS)
        for bot, (state, colour) in EXPECTED_BADGES.items():
            badge = page.locator(f"article[data-bot='{bot}'] .state")
            assert badge.inner_text().strip().lower() == state
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == colour
        assert "failure: ui_drift" in page.locator("article[data-bot='flaky-portal']").inner_text()
        assert page.locator("article[data-bot='healthy-invoices'] a[href^='mailto:']").inner_text() == \
            "ana.diaz@example.com"
        assert page.locator("article[data-bot='healthy-invoices'] a", has_text="runbook").get_attribute("href") == \
            "https://wiki.example.com/bots/healthy-invoices"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
        shot = tmp_path / "status-page-phone.png"
        page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    finally:
        context.close()
