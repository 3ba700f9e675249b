"""botwatch.integrations.playwright: look-ups and snapshots of Python Playwright bots, proven with
a real headless Chromium (Debian's chromium, driven by Playwright) on the drifting invoice portal."""

from __future__ import annotations

import json
import traceback

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

import botwatch
from botwatch.core.classify import Classifier
from botwatch.integrations.playwright import ElementNotFound, accessibility_tree, find, snapshot
from conftest import SDK_ENV, free_port, require, wait_for, write_estate

BOT = "invoice-portal"
PRIMARY = "id=btnSubmit"
FALLBACK = "role=button[name='Submit invoice']"


@pytest.fixture(scope="module")
def browser():
    chromium = require("chromium", "chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def test_find_returns_the_primary_selectors_locator_and_records_a_found_look_up(page, portal, sdk_events):
    page.goto(portal.version("v1") + "/invoice.html")
    with botwatch.run(BOT):
        button = find(page, "invoice", PRIMARY, FALLBACK)
    assert isinstance(button, Locator) and button.get_attribute("id") == "btnSubmit"
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["screen"], lookup["selector"], lookup["found"], lookup["healed"]) == ("invoice", PRIMARY, True, False)
    assert lookup["wait"] >= 0 and lookup["run_id"] == sdk_events("run_started")[0]["run_id"]


def test_find_heals_with_the_fallback_when_the_primary_no_longer_matches(page, portal, sdk_events):
    page.goto(portal.version("v3") + "/invoice.html")
    page.locator("#number").fill("INV-2001")
    with botwatch.run(BOT):
        find(page, "invoice", PRIMARY, FALLBACK).click()
    assert page.locator("#result").text_content() == "Invoice INV-2001 submitted"  # the menu's button worked
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["selector"], lookup["found"], lookup["healed"]) == (FALLBACK, True, True)


def test_find_raises_element_not_found_naming_the_screen_and_selectors_and_the_run_fails_as_ui_drift(
        page, portal, sdk_events):
    page.goto(portal.version("v4") + "/invoice.html")
    with pytest.raises(ElementNotFound) as caught:
        with botwatch.run(BOT):
            find(page, "invoice", PRIMARY, FALLBACK)
    error = caught.value
    assert isinstance(error, PlaywrightTimeoutError) and isinstance(error, PlaywrightError)  # the bot's handlers
    assert str(error) == (f"screen invoice, selector {PRIMARY}: Element with locator '{PRIMARY}' not found. "
                          f"Fallbacks tried: {FALLBACK}.")
    assert (error.screen_name, error.selector, error.kind, error.selectors) == (
        "invoice", PRIMARY, "not_found", (PRIMARY, FALLBACK))
    classified = Classifier().classify(output="".join(traceback.format_exception(error)))
    assert (classified.reason, classified.kind) == ("ui_drift", "not_found")
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["selector"], lookup["found"], lookup["kind"]) == (PRIMARY, False, "not_found")
    (finished,) = sdk_events("run_finished")
    assert (finished["outcome"], finished["reason"]) == ("failure", "ui_drift")
    assert f"screen invoice, selector {PRIMARY}" in finished["output_tail"]


def test_a_selector_matching_several_elements_is_recorded_as_ambiguous_as_playwrights_strict_mode_has_it(
        page, portal, sdk_events):
    page.goto(portal.version("v1") + "/invoice.html")
    cells = "css=#recent td"
    with pytest.raises(PlaywrightError, match="strict mode violation"):
        page.locator(cells).text_content(timeout=5000)  # Playwright itself refuses it
    with botwatch.run(BOT):
        with pytest.raises(ElementNotFound) as caught:
            find(page, "invoice", cells)
        assert find(page, "invoice", cells, "xpath=//table[@id='recent']").evaluate("e => e.tagName") == "TABLE"
        assert find(page, "invoice", cells + " >> nth=0").text_content() == "INV-1001"
    error = caught.value
    assert str(error) == (f"screen invoice, selector {cells}: 40 elements match locator '{cells}' where one "
                          "was expected (strict mode violation).")
    assert error.kind == "ambiguous"
    classified = Classifier().classify(output="".join(traceback.format_exception(error)))
    assert (classified.reason, classified.kind) == ("ui_drift", "ambiguous")
    assert [(e["selector"], e["found"], e["healed"], e.get("kind")) for e in sdk_events("ui_lookup")] == [
        (cells, False, False, "ambiguous"), ("xpath=//table[@id='recent']", True, True, None),
        (cells + " >> nth=0", True, False, None)]


def test_find_waits_for_an_element_that_appears_later(page, portal, sdk_events):
    page.goto(portal.version("v1") + "/invoice.html")
    page.evaluate("setTimeout(() => { const b = document.createElement('button'); b.id = 'late';"
                  " b.textContent = 'Later'; document.body.appendChild(b); }, 300)")
    with botwatch.run(BOT):
        assert find(page, "invoice", "text=Later", timeout=30).get_attribute("id") == "late"
    (lookup,) = sdk_events("ui_lookup")
    assert lookup["found"] and lookup["wait"] > 0


def test_find_looks_inside_a_frame_or_locator_given_instead_of_the_page(page, portal, sdk_events):
    page.goto(portal.version("v3") + "/invoice.html")
    with botwatch.run(BOT):
        menu = page.locator("#menu")
        assert find(menu, "invoice", "button.menu-item >> nth=1").get_attribute("id") == "export-pdf"
        assert find(page.main_frame, "invoice", "#btnSave").text_content() == "Save draft"
    assert [e["found"] for e in sdk_events("ui_lookup")] == [True, True]


def test_an_empty_or_missing_selector_is_the_bots_own_mistake_and_records_nothing(page, sdk_events):
    with botwatch.run(BOT):
        with pytest.raises(ValueError):
            find(page, "invoice")
        with pytest.raises(ValueError):
            find(page, "invoice", "#amount", " ")
    assert sdk_events("ui_lookup") == []


def test_look_ups_and_snapshots_reach_the_agent_and_report_the_drift_of_the_screen(
        page, portal, tmp_path, agents, monkeypatch):
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWATCH_SPOOL", str(tmp_path / "sdk_events.db"))
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", f"""\
        - name: {BOT}
          ui:
            screens:
              invoice:
                selectors: {{submit: "{PRIMARY}", amount: "css=#amount"}}
                mask: [[0, 0, 1280, 100]]
        """, port), port).start()
    page.goto(portal.version("v1") + "/invoice.html")
    with botwatch.run(BOT, agent_url=agent.url):
        first = snapshot(page, "invoice", kind="all")
        find(page, "invoice", PRIMARY, FALLBACK)
    assert set(first) == {"html", "a11y", "png"}
    assert first["html"]["baseline"] and first["html"]["selectors"] == {"submit": 1, "amount": 1}
    assert first["a11y"]["baseline"] and first["png"]["baseline"]
    page.goto(portal.version("v3") + "/invoice.html")
    with botwatch.run(BOT, agent_url=agent.url):
        drifted = snapshot(page, "invoice", kind="all")
        find(page, "invoice", PRIMARY, FALLBACK)
    assert drifted["html"]["warning"] and drifted["html"]["selectors"]["submit"] == 0
    assert drifted["png"]["warning"]
    assert drifted["a11y"]["score"] > 0 and not drifted["a11y"]["baseline"]  # the side menu is new
    page.goto(portal.version("v4") + "/invoice.html")
    with pytest.raises(ElementNotFound):
        with botwatch.run(BOT, agent_url=agent.url):
            find(page, "receipt", PRIMARY, snapshot_on_failure="html")  # a screen without a snapshot yet
    labels = f'bot="{BOT}",screen="invoice"'
    receipt_failures = f'botwatch_ui_lookup_failures_total{{bot="{BOT}",kind="not_found",screen="receipt"}}'

    def delivered():
        m = agent.metrics()
        return m if m.get(f"botwatch_ui_lookups_total{{{labels}}}") == 2 and m.get(receipt_failures) == 1 else None

    m = wait_for(delivered, timeout=60, what="the three look-ups at the agent")
    assert m[f"botwatch_ui_healed_lookups_total{{{labels}}}"] == 1
    assert m[f'botwatch_ui_declared_selector_matches{{{labels},selector="submit"}}'] == 0
    assert m[f"botwatch_ui_drift_score{{{labels}}}"] >= 0.3
    assert m[f'botwatch_ui_drift_score{{bot="{BOT}",screen="receipt"}}'] == 0  # the failure's snapshot: a baseline


def test_the_accessibility_tree_is_one_the_agent_reads_with_its_roles_and_names(page, portal):
    from botwatch.ui.dom import parse_a11y

    page.goto(portal.version("v1") + "/invoice.html")
    tree = parse_a11y(json.dumps(accessibility_tree(page)).encode())
    assert len(tree.xpath("//button[@name='Submit invoice']")) == 1
    assert len(tree.xpath("//textbox[@name='Amount']")) == 1


def test_a_snapshot_of_a_closed_page_is_warned_about_and_never_raises(browser, sdk_events, caplog):
    closed = browser.new_page()
    closed.close()
    with botwatch.run(BOT):
        assert snapshot(closed, "invoice", kind="all") == {}
        assert snapshot(closed, "invoice", kind="jpeg") == {}
    assert "no html snapshot of screen 'invoice'" in caplog.text
    assert "no a11y snapshot of screen 'invoice'" in caplog.text
    assert "snapshot(kind='jpeg') is not one of html, png, a11y, both, all" in caplog.text
    assert sdk_events("run_finished")[0]["outcome"] == "success"
