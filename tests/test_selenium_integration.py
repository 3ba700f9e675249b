"""botwatch.integrations.selenium: look-ups and snapshots of Python Selenium bots, proven with a
real headless Chromium (Debian's chromium and chromium-driver) on the drifting invoice portal."""

from __future__ import annotations

import traceback

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import botwatch
from botwatch.core.classify import Classifier
from botwatch.integrations.selenium import ElementNotFound, find, snapshot, to_by
from conftest import SDK_ENV, free_port, require, write_estate

BOT = "invoice-portal"
PRIMARY = "id:btnSubmit"
FALLBACK = "xpath://button[normalize-space()='Submit invoice']"


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = require("chromium", "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(arg)
    d = webdriver.Chrome(options=options, service=Service(require("chromedriver", "chromium-driver")))
    yield d
    d.quit()


def test_find_returns_the_primary_locators_element_and_records_a_found_look_up(driver, portal, sdk_events):
    driver.get(portal.version("v1") + "/invoice.html")
    with botwatch.run(BOT):
        button = find(driver, "invoice", PRIMARY, FALLBACK)
    assert button.get_attribute("id") == "btnSubmit"
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["screen"], lookup["selector"], lookup["found"], lookup["healed"]) == ("invoice", PRIMARY, True, False)
    assert lookup["wait"] >= 0 and lookup["run_id"] == sdk_events("run_started")[0]["run_id"]


def test_find_heals_with_the_fallback_when_the_primary_no_longer_matches(driver, portal, sdk_events):
    driver.get(portal.version("v3") + "/invoice.html")
    driver.find_element(By.ID, "number").send_keys("INV-2001")
    with botwatch.run(BOT):
        find(driver, "invoice", PRIMARY, FALLBACK).click()
    assert driver.find_element(By.ID, "result").text == "Invoice INV-2001 submitted"  # the menu's button worked
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["selector"], lookup["found"], lookup["healed"]) == (FALLBACK, True, True)


def test_find_raises_element_not_found_naming_the_screen_and_selector_and_the_run_fails_as_ui_drift(
        driver, portal, sdk_events):
    driver.get(portal.version("v4") + "/invoice.html")
    with pytest.raises(ElementNotFound) as caught:
        with botwatch.run(BOT):
            find(driver, "invoice", PRIMARY, FALLBACK)
    error = caught.value
    assert isinstance(error, NoSuchElementException)  # the bot's own `except NoSuchElementException` still works
    assert str(error) == (f"screen invoice, selector {PRIMARY}: Element with locator '{PRIMARY}' not found. "
                          f"Fallbacks tried: {FALLBACK}.")
    assert (error.screen_name, error.selector, error.kind) == ("invoice", PRIMARY, "not_found")
    assert Classifier().classify(output="".join(traceback.format_exception(error))).reason == "ui_drift"
    (lookup,) = sdk_events("ui_lookup")
    assert (lookup["selector"], lookup["found"], lookup["kind"]) == (PRIMARY, False, "not_found")
    (finished,) = sdk_events("run_finished")
    assert (finished["outcome"], finished["reason"]) == ("failure", "ui_drift")
    assert f"screen invoice, selector {PRIMARY}" in finished["output_tail"]


def test_find_with_unique_records_a_locator_matching_several_elements_as_ambiguous(driver, portal, sdk_events):
    driver.get(portal.version("v1") + "/invoice.html")
    with botwatch.run(BOT):
        assert find(driver, "invoice", "css:#recent td").text == "INV-1001"  # the first, as Selenium's
        with pytest.raises(ElementNotFound, match=r"^screen invoice, selector css:#recent td: 40 elements match"):
            find(driver, "invoice", "css:#recent td", unique=True)
        assert find(driver, "invoice", "css:#recent td", "id:recent", unique=True).tag_name == "table"
    assert [(e["found"], e["healed"], e.get("kind")) for e in sdk_events("ui_lookup")] == [
        (True, False, None), (False, False, "ambiguous"), (True, True, None)]


def test_find_waits_for_an_element_that_appears_later(driver, portal, sdk_events):
    driver.get(portal.version("v1") + "/invoice.html")
    driver.execute_script("setTimeout(() => { const b = document.createElement('button'); b.id = 'late';"
                          " document.body.appendChild(b); }, 300);")
    with botwatch.run(BOT):
        assert find(driver, "invoice", "id:late", timeout=30).get_attribute("id") == "late"
    (lookup,) = sdk_events("ui_lookup")
    assert lookup["found"] and lookup["wait"] > 0


def test_locators_are_written_as_the_estates_declared_selectors():
    assert to_by("id:btnSubmit") == (By.ID, "btnSubmit")
    assert to_by("id=btnSubmit") == (By.ID, "btnSubmit")
    assert to_by("name:amount") == (By.NAME, "amount")
    assert to_by("css:#menu .submit") == (By.CSS_SELECTOR, "#menu .submit")
    assert to_by("#menu .submit") == (By.CSS_SELECTOR, "#menu .submit")
    assert to_by("//button[@id='x']") == (By.XPATH, "//button[@id='x']")
    assert to_by("(//button)[2]") == (By.XPATH, "(//button)[2]")
    assert to_by("xpath=//nav") == (By.XPATH, "//nav")
    assert to_by((By.LINK_TEXT, "Read more")) == (By.LINK_TEXT, "Read more")
    with pytest.raises(ValueError):
        to_by("")


def test_snapshots_reach_the_agent_and_report_the_drift_of_the_screen(driver, portal, tmp_path, agents, monkeypatch):
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWATCH_SPOOL", str(tmp_path / "sdk_events.db"))
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", f"""\
        - name: {BOT}
          ui:
            screens:
              invoice:
                selectors: {{submit: "{PRIMARY}", amount: "css:#amount"}}
                mask: [[0, 0, 1280, 100]]
        """, port), port).start()
    driver.get(portal.version("v1") + "/invoice.html")
    with botwatch.run(BOT, agent_url=agent.url):
        first = snapshot(driver, "invoice", kind="both")
    assert set(first) == {"html", "png"}
    assert first["html"]["baseline"] and first["html"]["selectors"] == {"submit": 1, "amount": 1}
    assert first["png"]["baseline"]
    driver.get(portal.version("v3") + "/invoice.html")
    with botwatch.run(BOT, agent_url=agent.url):
        drifted = snapshot(driver, "invoice", kind="both")
    assert drifted["html"]["warning"] and drifted["html"]["selectors"]["submit"] == 0
    assert drifted["png"]["warning"]
    m = agent.metrics()
    assert m[f'botwatch_ui_declared_selector_matches{{bot="{BOT}",screen="invoice",selector="submit"}}'] == 0
    assert m[f'botwatch_ui_drift_score{{bot="{BOT}",screen="invoice"}}'] >= 0.3


class _ClosedDriver:
    """A driver whose browser has gone away."""

    @property
    def page_source(self):
        raise WebDriverException("invalid session id")

    def get_screenshot_as_png(self):
        raise WebDriverException("invalid session id")


def test_a_snapshot_of_a_closed_browser_is_warned_about_and_never_raises(sdk_events, caplog):
    with botwatch.run(BOT):
        assert snapshot(_ClosedDriver(), "invoice", kind="both") == {}
        assert snapshot(_ClosedDriver(), "invoice", kind="jpeg") == {}
    assert "no html snapshot of screen 'invoice'" in caplog.text
    assert "snapshot(kind='jpeg') is not one of html, png, both" in caplog.text
    assert sdk_events("run_finished")[0]["outcome"] == "success"
