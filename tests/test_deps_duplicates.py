"""Duplicate candidates (botwatch.deps.duplicates, `botwatch duplicates`, the report's section)
over an estate of the real projects of tests/corpus/deps and variants made from them: a copy
with renamed variables and reordered independent steps (Robot Framework and UiPath), a bot that
shares only its application, and the unrelated others. The copies are found with their
evidence; nothing else is."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from botwatch.config.estate import load_estate
from botwatch.deps.duplicates import (DEFAULT_MIN_SCORE, Schedule, duplicates, estate_duplicates, is_candidate,
                                      normalise, schedule_overlap, score_pair)
from botwatch.deps.estate import BotDependencies
from botwatch.deps.model import Dependency, Extraction, Step
from conftest import BOTWATCH

CORPUS = Path(__file__).resolve().parent / "corpus" / "deps"
WEB_ORDERS = CORPUS / "robot" / "robocorp__example-web-store-order-processor"
RBC = CORPUS / "uipath" / "yashbrahmbhatt__uipath"
ORIGINALS = {  # bot -> corpus project
    "web-orders": "robot/robocorp__example-web-store-order-processor",
    "rbc-banking": "uipath/yashbrahmbhatt__uipath",
    "calculator": "robot/robocorp__example-windows-calculator",
    "rpa-challenge": "robot/robocorp__example-shared-rpachallenge",
    "onboarding": "robot/robocorp__example-customer-onboarding-challenge",
    "reframework": "uipath/UiPath-Services__StudioTemplates",
    "bot-optimizer": "uipath/RakeshMadhavakurup__UiPath-Bot-Optimizer-Framework",
    "invoice-portal": "python/invoice_portal",
    "supplier-sync": "python/supplier_sync",
    "timesheets": "python/timesheet_checks",
}
SAME_SHOP = """\
*** Settings ***
Documentation       Checks that the shop's front page is up: the same site, other work.
Library             RPA.Browser.Selenium

*** Variables ***
${SHOP}             https://www.saucedemo.com

*** Tasks ***
Check the front page
    Open Available Browser    ${SHOP}
    Wait Until Page Contains Element    css:.login_logo
    Page Should Contain Element    css:.login_credentials_wrap
    Capture Page Screenshot
    [Teardown]    Close Browser
"""


def renamed(text: str, names: dict[str, str]) -> str:
    """Every Robot Framework reference to a variable of `names` (${x}, @{x}, &{x}, ${x}[...]) renamed."""
    for old, new in names.items():
        text = re.sub(r"([$@&]\{)" + re.escape(old) + r"\b", lambda m: m.group(1) + new, text)
    return text


def moved(text: str, block: str, before: str) -> str:
    """`block` (whole lines) taken out and put again just before `before`."""
    assert block in text and before in text
    return text.replace(block, "", 1).replace(before, block + before, 1)


def robot_copy(folder: Path) -> Path:
    """web-orders, copied: variables renamed, independent steps and keywords in another order."""
    shutil.copytree(WEB_ORDERS, folder)
    suite = folder / "tasks.robot"
    text = renamed(suite.read_text(encoding="utf-8"),
                   {"SWAG_LABS_URL": "SHOP_URL", "EXCEL_FILE_NAME": "ORDERS_WORKBOOK", "order": "purchase",
                    "orders": "purchases", "product_name": "item_title", "secret": "login"})
    # the orders are read before the shop is opened; the names typed in the other order
    text = moved(text, "    ${purchases}=    Collect orders\n", "    Open Swag Labs\n")
    text = moved(text, "    Input Text    last-name    ${purchase[\"last_name\"]}\n",
                 "    Input Text    first-name    ${purchase[\"first_name\"]}\n")
    # two keywords defined in the other order
    cart = text[text.index("\nOpen cart\n") + 1:text.index("\nAssert cart page\n") + 1]
    text = moved(text, cart, "Assert items in cart\n    [Arguments]")
    suite.write_text(text, encoding="utf-8")
    return folder


def uipath_copy(folder: Path) -> Path:
    """rbc-banking, copied with its workflows' variables renamed."""
    shutil.copytree(RBC, folder)
    for xaml in folder.rglob("*.xaml"):
        text = xaml.read_bytes().decode("utf-8")  # its line ends kept
        for old, new in {"window": "browserWindow", "User": "userName", "Pass": "userSecret", "path": "savePath"}.items():
            text = re.sub(r'(Name="|\[|\(|\b)' + old + r'(?=["\])\s.,])', lambda m: m.group(1) + new, text)
        xaml.write_bytes(text.encode("utf-8"))
    return folder


@pytest.fixture(scope="module")
def estate(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("dups")
    sources = {bot: CORPUS / project for bot, project in ORIGINALS.items()}
    sources["web-orders-copy"] = robot_copy(tmp / "web-orders-copy")
    sources["rbc-banking-copy"] = uipath_copy(tmp / "rbc-banking-copy")
    (tmp / "shop-check").mkdir()
    (tmp / "shop-check" / "tasks.robot").write_text(SAME_SHOP, encoding="utf-8")
    sources["shop-check"] = tmp / "shop-check"
    schedules = {"web-orders": "0 7 * * 1-5", "web-orders-copy": "30 7 * * 1-5", "shop-check": "0 7 * * 1-5"}
    entries = "".join(f"  - name: {bot}\n    source: {path}\n"
                      + (f"    schedule: \"{schedules[bot]}\"\n" if bot in schedules else "")
                      for bot, path in sources.items())
    path = tmp / "botwatch.yaml"
    path.write_text(f"bots:\n{entries}  - name: no-source\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def found(estate):
    done = subprocess.run([*BOTWATCH, "duplicates", "--config", str(estate), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_copies_are_found_and_nothing_else(found):
    assert found["bots_read"] == len(ORIGINALS) + 3
    assert [p["bots"] for p in found["pairs"]] == [["rbc-banking", "rbc-banking-copy"],
                                                  ["web-orders", "web-orders-copy"]] \
        or [p["bots"] for p in found["pairs"]] == [["web-orders", "web-orders-copy"],
                                                  ["rbc-banking", "rbc-banking-copy"]]
    assert all(p["score"] >= DEFAULT_MIN_SCORE for p in found["pairs"])


def test_the_robot_copys_evidence_names_its_shared_selectors_and_urls_with_both_places(found):
    pair = next(p for p in found["pairs"] if p["bots"] == ["web-orders", "web-orders-copy"])
    shared = {(s["kind"], s["value"]): s for s in pair["shared"]}
    assert ("selector", "css:.shopping_cart_link") in shared
    assert ("url", "https://www.saucedemo.com/checkout-complete.html") in shared
    # the locator that holds a renamed variable is the same locator
    assert ("selector", 'xpath://div[@class="inventory_item" and descendant::div[contains(text(), '
            '"${product_name}")]]') in shared
    cart = shared[("selector", "css:.shopping_cart_link")]
    assert cart["web-orders"].endswith("tasks.robot:75") and re.search(r"tasks\.robot:\d+$", cart["web-orders-copy"])
    assert pair["step_similarity"] > 0.9  # reordered, not rewritten
    assert pair["schedules"] == ["0 7 * * 1-5 (UTC)", "30 7 * * 1-5 (UTC)"] and pair["schedule_overlap"] == 1.0
    kinds = [s["kind"] for s in pair["shared"]]
    assert "library" not in kinds and kinds.index("selector") < kinds.index("url")  # the weightiest first


def test_the_uipath_copys_evidence_names_its_screens_and_selectors(found):
    pair = next(p for p in found["pairs"] if p["bots"] == ["rbc-banking", "rbc-banking-copy"])
    kinds = {s["kind"] for s in pair["shared"]}
    assert {"selector", "screen"} <= kinds
    assert pair["dependency_similarity"] == 1.0 and pair["score"] > 0.95


def test_the_bot_of_the_same_shop_and_the_template_siblings_are_not_pairs(estate):
    pairs, _ = estate_duplicates(load_estate(estate), min_score=0.0)
    bots = {(p.bot_a, p.bot_b) for p in pairs}
    assert ("shop-check", "web-orders") not in bots and ("shop-check", "web-orders-copy") not in bots
    assert ("bot-optimizer", "reframework") not in bots  # one template (REFramework), other work


def test_the_text_lists_each_pair_with_its_evidence_and_exits_0_without_pairs(estate, tmp_path):
    done = subprocess.run([*BOTWATCH, "duplicates", "--config", str(estate)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 duplicate candidate(s)" in done.stdout and "web-orders and web-orders-copy" in done.stdout
    assert "css:.shopping_cart_link" in done.stdout and "tasks.robot:75" in done.stdout
    lone = tmp_path / "botwatch.yaml"
    lone.write_text(f"bots:\n  - name: web-orders\n    source: {WEB_ORDERS}\n", encoding="utf-8")
    done = subprocess.run([*BOTWATCH, "duplicates", "--config", str(lone)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "no duplicate candidates among the 1 bot(s)" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("bots:\n  - name: x\n    every: -5s\n", encoding="utf-8")
    done = subprocess.run([*BOTWATCH, "duplicates", "--config", str(bad)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2


# the scoring, on bots made up of a few dependencies

def dep(kind: str, value: str, line: int = 1) -> Dependency:
    return Dependency(kind, value, "main.robot", line, "robotframework")


def bot(name: str, deps: list[Dependency], steps: tuple[str, ...] = ()) -> BotDependencies:
    return BotDependencies(name, ["."], Extraction(deps, [], [Step("main.robot", i, s) for i, s in enumerate(steps)]))


LIBRARIES = [dep("library", v) for v in ("RPA.Browser.Selenium", "RPA.HTTP", "OperatingSystem", "Collections")]
STEPS = ("open available browser", "input text", "click button", "close browser")


def test_identical_bots_score_1():
    deps = [dep("selector", "css:#a"), dep("selector", "css:#b"), dep("url", "https://a.example.com/x"),
            dep("queue", "Invoices")]
    pair = score_pair(bot("b", deps, STEPS), bot("a", deps, STEPS))
    assert (pair.bot_a, pair.bot_b) == ("a", "b") and pair.score == 1.0 and is_candidate(pair)


def test_libraries_alone_do_not_make_a_pair():
    pair = score_pair(bot("a", LIBRARIES, STEPS), bot("b", LIBRARIES, STEPS))
    assert pair.dependency_similarity == 0.0 and pair.shared == [] and not is_candidate(pair, 0.0)


def test_an_application_alone_does_not_make_a_pair():
    app = [dep("application", "SAP Logon"), dep("url", "https://erp.example.com/")]
    a = bot("a", [*app, dep("selector", "<wnd app='saplogon.exe' title='Orders' />")], STEPS)
    b = bot("b", [*app, dep("selector", "<wnd app='saplogon.exe' title='Vendors' />")], STEPS)
    pair = score_pair(a, b)
    assert {s.kind for s in pair.shared} == {"application"}  # the site's home page is the application
    assert not is_candidate(pair, 0.0)
    assert duplicates([a, b], min_score=0.0) == []


def test_a_renamed_variable_quotes_and_spacing_do_not_change_a_value():
    assert normalise(dep("selector", "xpath://div[text()='${name}']")) == \
        normalise(dep("selector", 'xpath://div[text()="${other_name}"]'))
    assert normalise(dep("selector", "<webctrl  id='x'\n tag='A' />")) == normalise(dep("selector", '<webctrl id="x" tag="A" />'))
    assert normalise(dep("file", "Data\\\\Config.xlsx")) == normalise(dep("file", "data/config.xlsx"))
    assert normalise(dep("url", "https://Shop.example.com/")) == ("application", "shop.example.com")
    assert normalise(dep("url", "https://shop.example.com/cart/")) == ("url", "https://shop.example.com/cart")


def test_schedules_overlap_in_the_hours_they_start():
    weekdays_7 = Schedule("0 7 * * 1-5")
    assert schedule_overlap(weekdays_7, Schedule("45 7 * * 1-5")) == 1.0
    assert schedule_overlap(weekdays_7, Schedule("0 7 * * 1")) == pytest.approx(1 / 5)
    assert schedule_overlap(weekdays_7, Schedule("0 8 * * 1-5", timezone="Europe/London")) == 0.0  # 08:00 UTC in Jan
    assert schedule_overlap(weekdays_7, Schedule()) == 0.0
    assert schedule_overlap(Schedule(every=600), weekdays_7) == pytest.approx(5 / 168)


def test_pairs_come_highest_score_first_then_by_name():
    shared = [dep("selector", f"css:#s{i}") for i in range(4)]
    a, b = bot("a", shared, STEPS), bot("b", shared, STEPS)
    c = bot("c", [*shared, dep("queue", "Other")], STEPS[:2])
    pairs = duplicates([c, b, a], min_score=0.5)
    assert [(p.bot_a, p.bot_b) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs[0].score == 1.0 and pairs[1].score == pairs[2].score < 1.0


# the CoE report's section

def test_the_report_lists_the_copies_with_their_scores_and_evidence(estate, tmp_path):
    from botwatch.report import render
    from botwatch.report.gather import gather
    from botwatch.state.journal import Journal

    Journal(tmp_path / "journal.db").close()
    rep = gather(tmp_path / "journal.db", load_estate(estate), since=7 * 86400, progress=False)
    assert [(d.bot_a, d.bot_b) for d in rep.duplicates] == [("rbc-banking", "rbc-banking-copy"),
                                                            ("web-orders", "web-orders-copy")]
    section = render(rep, "md").split("## Duplicate candidates", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| web-orders, web-orders-copy |")]
    assert len(rows) == 1 and "| 1.00 |" in rows[0] and "selector cart_contents_container" in rows[0]
    assert "more shared dependencies" in rows[0] and "schedules overlap 100%" in rows[0]
    assert "shop-check" not in section and "reframework" not in section
    html = render(rep, "html")
    assert "<h2>Duplicate candidates</h2>" in html and "rbc-banking, rbc-banking-copy" in html


def test_the_report_says_when_no_bot_has_a_source(tmp_path):
    from botwatch.report import render
    from botwatch.report.gather import gather
    from botwatch.state.journal import Journal

    Journal(tmp_path / "journal.db").close()
    (tmp_path / "botwatch.yaml").write_text("bots:\n  - name: alone\n", encoding="utf-8")
    rep = gather(tmp_path / "journal.db", load_estate(tmp_path / "botwatch.yaml"), since=86400, progress=False)
    assert rep.duplicates is None
    assert "## Duplicate candidates\n\nNot read (no bot in the estate file has a `source:`)." in render(rep, "md")


# -- the metric: the agent's dependency index scores the pairs in the background ---------------------

def test_the_agent_exports_each_bots_duplicate_candidates(tmp_path):
    from prometheus_client import generate_latest

    from botwatch.config.estate import load_estate
    from botwatch.deps.index import DependencyIndex
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.state.runtime import EstateState

    original = CORPUS / "robot" / "robocorp__example-web-store-order-processor"
    shutil.copytree(original, tmp_path / "orders")
    shutil.copytree(original, tmp_path / "orders-copy")
    (tmp_path / "other.py").write_text("driver.get('https://intranet.example.com')\n", encoding="utf-8")
    estate = tmp_path / "botwatch.yaml"
    estate.write_text("bots:\n  - {name: orders, source: orders}\n  - {name: orders-copy, source: orders-copy}\n"
                      "  - {name: other, source: other.py}\n  - {name: no-source}\n", encoding="utf-8")
    loaded = load_estate(estate)
    index = DependencyIndex(loaded)
    registry = estate_registry(EstateState(loaded.estate), dependencies=index)
    assert "botwatch_bot_duplicate_candidates{" not in generate_latest(registry).decode()  # nothing read yet
    index.refresh()
    samples = {line.split("{bot=")[1] for line in generate_latest(registry).decode().splitlines()
               if line.startswith("botwatch_bot_duplicate_candidates{")}
    assert samples == {'"orders"} 1.0', '"orders-copy"} 1.0', '"other"} 0.0'}  # no sample without a source
    reads = index.reads_total
    index.refresh()  # nothing changed: nothing read, the same counts
    assert index.reads_total == reads and index.latest_duplicate_counts == {"orders": 1, "orders-copy": 1, "other": 0}
