"""Selectors read from a bot's source, checked by UI drift as declared ones are: each tool's
native form translated (or set aside as not checkable), merged under the estate file's
declarations, and a broken one raising the declared-selector metric for a bot that declared
nothing."""

from __future__ import annotations

import json
import textwrap
import urllib.request

import pytest
from conftest import free_port, parse_metrics, wait_for

from botwatch.config.estate import load_estate
from botwatch.deps.index import DependencyIndex
from botwatch.deps.model import Dependency
from botwatch.deps.to_ui import selector_name, translate, ui_dependencies
from botwatch.state.runtime import EstateState
from botwatch.ui.probe import DriftProbe

BOT_SOURCE = '''\
from botwatch.integrations.selenium import find
from selenium.webdriver.common.by import By


def submit(driver):
    find(driver, "invoice", (By.ID, "btnSubmit"))
    find(driver, "invoice", (By.NAME, "amount"))
    find(driver, "invoice", (By.CSS_SELECTOR, "#btnSubmit"))
    find(driver, "invoice", (By.LINK_TEXT, "Help"))
    driver.find_element(By.ID, "nowhere")
'''


def page(button_id: str = "btnSubmit") -> bytes:
    rows = "".join(f"<li class='item'>Invoice {i}</li>" for i in range(20))
    return (f"<html><head><title>Invoices</title></head><body><form id='f'><label>Amount</label>"
            f"<input name='amount'><button id='{button_id}' class='btn'>Submit</button>"
            f"<a href='/help'>Help</a></form><ul>{rows}</ul></body></html>").encode()


def dep(tool: str, value: str, screen: str = "invoice") -> Dependency:
    return Dependency("selector", value, "bot/main.py", 7, tool, screen=screen)


# -- translation, tool by tool ------------------------------------------------------------------

@pytest.mark.parametrize("tool, value, expected", [
    ("selenium", "id=btnSubmit", "id=btnSubmit"),
    ("selenium", "css=form #btnSubmit", "css=form #btnSubmit"),
    ("selenium", "xpath=//button[@id='btnSubmit']", "xpath=//button[@id='btnSubmit']"),
    ("selenium", "name=amount", "name=amount"),
    ("selenium", "link=Help", "xpath=//a[normalize-space(.) = 'Help']"),
    ("selenium", "tag=Button", "xpath=//button"),
    ("robotframework", "id:btnSubmit", "id=btnSubmit"),
    ("robotframework", "css:.btn", "css=.btn"),
    ("robotframework", "xpath://input[@name='amount']", "xpath=//input[@name='amount']"),
    ("robotframework", "//form//button", "xpath=//form//button"),
    ("robotframework", "css=form >> button", "css=form button"),
    ("playwright", "#btnSubmit", "css=#btnSubmit"),
    ("playwright", "xpath=//button", "xpath=//button"),
    ("playwright", 'internal:testid=[data-testid="pay"s]', "xpath=//*[@data-testid = 'pay']"),
    ("playwright", "form >> .btn", "css=form .btn"),
    ("botwatch", "input[name=amount]", "input[name=amount]"),
    ("uipath", "<html app='chrome.exe' title='Invoices' /><webctrl id='btnSubmit' tag='BUTTON' />",
     "xpath=//button[@id = 'btnSubmit']"),
    ("uipath", "<webctrl tag='INPUT' name='amount' idx='1' />", "xpath=(//input[@name = 'amount'])[1]"),
])
def test_each_tools_selectors_are_translated_into_what_the_drift_checker_matches(tool, value, expected):
    assert translate(dep(tool, value)) == (expected, "")


@pytest.mark.parametrize("tool, value, reason", [
    ("selenium", "partial link=", None),  # an empty text is still a locator: checkable
    ("robotframework", "submit", "a bare locator"),
    ("robotframework", "name:Calculator and type:Window", "a desktop locator"),
    ("robotframework", "jquery:#x", "run time"),
    ("playwright", 'internal:role=button[name="Save"i]', "accessibility tree"),
    ("playwright", 'internal:text="Help"i', "text selector"),
    ("playwright", 'button:has-text("Go")', "pseudo-classes"),
    ("uipath", "<wnd app='calc.exe' cls='CalcFrame' /><ctrl name='7' role='push button' />", "desktop selector"),
    ("uipath", "<uia automationid='num7Button' />", "desktop selector"),
    ("uipath", "<webctrl tag='A' href='*inv*' matching:href='regex' />", "regular-expression"),
    ("uipath", "<webctrl tag='TD' tableRow='2' />", "'tablerow' attribute"),
    ("uipath", "<webctrl tag='A' href='inv?' />", "'?' wildcard"),
])
def test_selectors_that_cannot_be_checked_on_a_snapshot_say_why(tool, value, reason):
    text, why = translate(dep(tool, value))
    if reason is None:
        assert text is not None and why == ""
    else:
        assert text is None and reason in why


def test_uipath_web_selectors_match_the_page_and_wildcards_are_honoured():
    from lxml import html

    from botwatch.ui.selectors import to_xpath

    root = html.fromstring(page())
    cases = {
        "<html app='chrome.exe' /><webctrl id='btnSubmit' tag='BUTTON' />": 1,
        "<webctrl parentid='f' tag='BUTTON' aaname='Submit' />": 1,  # its text, inside the form
        "<webctrl tag='LI' class='it*' />": 20,
        "<webctrl tag='A' href='*/he*' />": 1,
        "<webctrl tag='A' href='*elp' />": 1,
        "<webctrl tag='A' href='*hel' />": 0,
        "<webctrl css-selector='body&gt;form&gt;input' tag='INPUT' />": 1,
        "<webctrl tag='BUTTON' id='btnSend' />": 0,
    }
    for selector, count in cases.items():
        text, why = translate(dep("uipath", selector))
        assert text is not None, (selector, why)
        assert len(root.xpath(to_xpath(text)[1])) == count, (selector, text)


def test_only_selectors_with_a_known_screen_are_attached_and_names_are_bounded_labels():
    found = ui_dependencies([dep("selenium", "id=btnSubmit"), dep("selenium", "id=elsewhere", screen=""),
                             dep("uipath", "<wnd app='calc.exe' />", screen="calc"),
                             Dependency("url", "https://x.example.com", "bot/main.py", 3, "selenium")])
    assert [u.text for u in found.by_screen["invoice"]] == ["id=btnSubmit"]
    reasons = {n.dependency.value: n.reason for n in found.not_checkable}
    assert reasons["id=elsewhere"].startswith("no screen known")
    assert "desktop" in reasons["<wnd app='calc.exe' />"]
    assert selector_name("id=btnSubmit", set()) == "id-btnSubmit"
    long = selector_name("xpath=" + "//div" * 40, set())
    assert len(long) == 64 and long == selector_name("xpath=" + "//div" * 40, set())
    assert long != selector_name("xpath=" + "//div" * 41, set())
    assert selector_name("id=btnSubmit", {"id-btnSubmit"}) != "id-btnSubmit"


# -- in the drift checker -----------------------------------------------------------------------

def write_estate(tmp_path, bots: str) -> object:
    (tmp_path / "bot").mkdir(exist_ok=True)
    (tmp_path / "bot" / "main.py").write_text(BOT_SOURCE, encoding="utf-8")
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"agent:\n  journal: {tmp_path / 'journal.db'}\nbots:\n" + textwrap.indent(bots, "  "),
                      encoding="utf-8")
    return load_estate(config)


def metrics(state) -> dict:
    from prometheus_client import generate_latest

    from botwatch.exporters.prometheus import estate_registry

    return parse_metrics(generate_latest(estate_registry(state, clock=state.clock)).decode())


MATCHES = 'botwatch_ui_declared_selector_matches{{bot="{bot}",screen="invoice",selector="{name}"}}'


def test_a_bot_that_declared_nothing_is_checked_on_the_selectors_its_source_uses(tmp_path):
    loaded = write_estate(tmp_path, "- name: invoices\n  source: bot\n")
    index = DependencyIndex(loaded)
    index.refresh()
    probe = DriftProbe(loaded.estate, None, dependencies=index)
    state = EstateState(loaded.estate, None, clock=lambda: 100.0)
    first = probe.ingest(state, "invoices", "invoice", "html", page())
    assert first.selectors == {"id-btnSubmit": 1, "name-amount": 1, "link-Help": 1}
    assert first.extracted == {"id-btnSubmit": "bot/main.py:6", "name-amount": "bot/main.py:7",
                               "link-Help": "bot/main.py:9"}
    # `css=#btnSubmit` selects what `id=btnSubmit` does: checked once
    drifted = probe.ingest(state, "invoices", "invoice", "html", page(button_id="btnSend"))
    assert drifted.selectors["id-btnSubmit"] == 0 and drifted.score >= 0.7
    assert any("id-btnSubmit" in c and "0 elements" in c for c in drifted.changes)
    m = metrics(state)
    assert m[MATCHES.format(bot="invoices", name="id-btnSubmit")] == 0  # BotUiDeclaredSelectorBroken's input
    assert m[MATCHES.format(bot="invoices", name="name-amount")] == 1
    # a locator on no screen of the bot's is not checked anywhere
    assert not any(n.dependency.value == "id=nowhere" for n in probe.settings("invoices", "invoice").not_checkable)
    assert json.loads(json.dumps(drifted.to_json()))["extracted"]["id-btnSubmit"] == "bot/main.py:6"


def test_the_estate_files_declarations_win_over_the_selectors_read_from_the_source(tmp_path):
    loaded = write_estate(tmp_path, textwrap.dedent("""\
        - name: invoices
          source: bot
          ui:
            screens:
              invoice:
                selectors: {submit: "#btnSubmit", name-amount: "form input"}
        """))
    index = DependencyIndex(loaded)
    index.refresh()
    probe = DriftProbe(loaded.estate, None, dependencies=index)
    selectors = probe.settings("invoices", "invoice").selectors
    # the source's id=btnSubmit and css=#btnSubmit select as the declared `#btnSubmit` does: left out;
    # name=amount selects otherwise and is checked, but the declared name name-amount stays the estate's
    renamed = selector_name("name=amount", {"name-amount"})
    assert renamed.startswith("name-amount-") and renamed != "name-amount"
    assert {name: (sel.text, sel.origin) for name, sel in selectors.items()} == {
        "submit": ("#btnSubmit", ""), "name-amount": ("form input", ""),
        renamed: ("name=amount", "bot/main.py:7"),
        "link-Help": ("xpath=//a[normalize-space(.) = 'Help']", "bot/main.py:9")}


def test_without_the_index_or_before_its_first_reading_only_the_declared_selectors_count(tmp_path):
    loaded = write_estate(tmp_path, "- name: invoices\n  source: bot\n")
    index = DependencyIndex(loaded)
    probe = DriftProbe(loaded.estate, None, dependencies=index)
    assert probe.settings("invoices", "invoice").selectors == {}  # nothing read yet: never waited for
    index.refresh()
    assert "id-btnSubmit" in probe.settings("invoices", "invoice").selectors
    assert DriftProbe(loaded.estate, None).settings("invoices", "invoice").selectors == {}


def test_uipath_selectors_of_a_screen_are_checked_and_desktop_ones_reported_not_checkable(tmp_path):
    from botwatch.deps.estate import BotDependencies

    loaded = write_estate(tmp_path, "- name: invoices\n")
    reading = BotDependencies("invoices", [])
    reading.extraction.dependencies += [
        Dependency("selector", "<html app='chrome.exe' title='invoice' /><webctrl id='btnSubmit' tag='BUTTON' />",
                   "Main.xaml", 12, "uipath", "Click", "invoice", "chrome.exe"),
        Dependency("selector", "<wnd app='erp.exe' title='invoice' /><ctrl name='Post' role='push button' />",
                   "Main.xaml", 20, "uipath", "Click", "invoice", "erp.exe")]

    class Index:
        latest = {"invoices": reading}

    probe = DriftProbe(loaded.estate, None, dependencies=Index())
    first = probe.check("invoices", "invoice", "html", page())
    name = selector_name("<html app='chrome.exe' title='invoice' /><webctrl id='btnSubmit' tag='BUTTON' />", set())
    assert name.endswith("webctrl-id-btnSubmit-tag-BUTTON-" + name[-8:]) and len(name) == 64  # its tail, hashed
    assert first.selectors == {name: 1} and first.extracted == {name: "Main.xaml:12"}
    assert [(n["line"], n["reason"]) for n in first.to_json()["not_checkable"]] == [
        (20, "a desktop selector: it does not select on a web page")]
    assert probe.check("invoices", "invoice", "html", page(button_id="btnPost")).selectors == {name: 0}


def test_the_agent_checks_the_selectors_its_dependency_index_read(tmp_path, agents):
    port = free_port()
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "main.py").write_text(BOT_SOURCE, encoding="utf-8")
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n"
                      f"bots:\n  - name: invoices\n    source: bot\n", encoding="utf-8")
    agent = agents(config, port).start()

    def read() -> bool:
        with urllib.request.urlopen(f"{agent.url}/api/v1/dependencies", timeout=30) as r:
            return json.loads(r.read())["refreshed_at"] is not None

    wait_for(read, timeout=60, what="the dependency index's first reading")

    def post(body: bytes) -> dict:
        req = urllib.request.Request(f"{agent.url}/api/v1/snapshots/invoices/invoice", data=body, method="POST",
                                     headers={"Content-Type": "text/html"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    assert post(page())["selectors"]["id-btnSubmit"] == 1
    report = post(page(button_id="btnSend"))
    assert report["selectors"]["id-btnSubmit"] == 0 and report["extracted"]["id-btnSubmit"] == "bot/main.py:6"
    assert agent.metrics()[MATCHES.format(bot="invoices", name="id-btnSubmit")] == 0
