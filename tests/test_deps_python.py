"""Dependencies of Python bots: the corpus bots give exactly their hand-checked lists, each form of
Selenium, Playwright and botwatch call is read as documented, typed text and secrets never come
out, and broken or hostile source is a problem with its file and line, never an exception."""

from __future__ import annotations

import encodings.aliases
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from botwatch.deps import _files
from botwatch.deps import python_src
from fuzzing import bounded

CORPUS = Path(__file__).parent / "corpus" / "deps" / "python"
BOTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
# the problems each corpus bot has: (file, line), checked by reading its source
CORPUS_PROBLEMS = {
    "invoice_portal": {("pages/invoice_page.py", 24)},
    "supplier_sync": set(),
    "timesheet_checks": {("legacy_export.py", 21), ("smoke_checks.py", 12)},
}


def extract_folder(root: Path):
    """What the dependency walk hands the Python extractor: the folder's .py files in its order."""
    return python_src.extract(root, [f for f in _files(root) if f.suffix == ".py"])


def extract_source(tmp_path: Path, source: str, name: str = "bot.py", **more: str):
    (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    for other, text in more.items():  # pages__login_py="..." is pages/login.py
        path = tmp_path / (other.removesuffix("_py").replace("__", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return extract_folder(tmp_path)


def found(result, kind: str | None = None) -> set[tuple]:
    return {(d.kind, d.value, d.line, d.tool, d.context) for d in result.dependencies if kind in (None, d.kind)}


def values(result, kind: str = "selector") -> set[str]:
    return {d.value for d in result.dependencies if d.kind == kind}


# -- the corpus -------------------------------------------------------------------------------

def test_the_corpus_has_selenium_and_playwright_bots():
    tools = {e["tool"] for bot in BOTS for e in json.loads((CORPUS / f"{bot}.expected.json").read_text("utf-8"))}
    assert {"selenium", "playwright", "botwatch"} <= tools and len(BOTS) >= 3


@pytest.mark.parametrize("bot", BOTS)
def test_a_corpus_bot_gives_exactly_its_hand_checked_dependencies(bot):
    result = extract_folder(CORPUS / bot)
    got = sorted((d.kind, d.value, d.file, d.line, d.tool, d.context, d.screen) for d in result.dependencies)
    expected = sorted((e["kind"], e["value"], e["file"], e["line"], e["tool"], e.get("context", ""),
                       e.get("screen", "")) for e in json.loads((CORPUS / f"{bot}.expected.json").read_text("utf-8")))
    assert got == expected
    assert {(p.file, p.line) for p in result.problems} == CORPUS_PROBLEMS[bot]
    assert result.files_read == len([f for f in _files(CORPUS / bot) if f.suffix == ".py"])


def test_the_corpus_bots_typed_text_and_secrets_never_come_out():
    typed = ["pending", "robot", "2026-W05", "Mary", "Enter"]
    for bot in BOTS:
        for dep in extract_folder(CORPUS / bot).dependencies:
            assert not any(text == dep.value for text in typed), dep


# -- Selenium ---------------------------------------------------------------------------------

def test_every_selenium_strategy_keeps_its_name_with_the_value(tmp_path):
    result = extract_source(tmp_path, """\
        from selenium.webdriver.common.by import By
        def run(driver):
            driver.find_element(By.ID, "a")
            driver.find_element(By.NAME, "b")
            driver.find_element(By.XPATH, "//c")
            driver.find_element(By.CSS_SELECTOR, "#d")
            driver.find_elements(By.CLASS_NAME, "e")
            driver.find_element(By.TAG_NAME, "f")
            driver.find_element(By.LINK_TEXT, "G h")
            driver.find_element(By.PARTIAL_LINK_TEXT, "G")
        """)
    assert [d.value for d in result.dependencies] == [
        "id=a", "name=b", "xpath=//c", "css=#d", "class=e", "tag=f", "link=G h", "partial link=G"]
    assert {d.context for d in result.dependencies} == {"find_element", "find_elements"}
    assert {d.tool for d in result.dependencies} == {"selenium"} and not result.problems


def test_selenium_keyword_string_and_selenium_3_forms(tmp_path):
    result = extract_source(tmp_path, """\
        from selenium.webdriver.common.by import By as by
        def run(driver):
            driver.find_element(by=by.ID, value="kw")
            driver.find_element("css selector", "button.go")
            driver.find_element(value="default-id")
            driver.find_element_by_partial_link_text("Next")
            driver.find_elements_by_class_name("row")
            strategy = by.XPATH
            driver.find_element(strategy, "//local")
        """)
    assert found(result) == {
        ("selector", "id=kw", 3, "selenium", "find_element"),
        ("selector", "css=button.go", 4, "selenium", "find_element"),
        ("selector", "id=default-id", 5, "selenium", "find_element"),
        ("selector", "partial link=Next", 6, "selenium", "find_element_by_partial_link_text"),
        ("selector", "class=row", 7, "selenium", "find_elements_by_class_name"),
        ("selector", "xpath=//local", 9, "selenium", "find_element"),
    }


def test_page_object_locators_are_read_where_they_are_written_with_their_first_use(tmp_path):
    result = extract_source(tmp_path, """\
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
        from locators import Shared

        SEARCH = (By.NAME, "q")

        class Page:
            SUBMIT = (By.ID, "submit")
            UNUSED = (By.CSS_SELECTOR, ".never-used")

            def go(self):
                self.driver.find_element(*SEARCH).send_keys("text")
                WebDriverWait(self.driver, 5).until(EC.element_to_be_clickable(self.SUBMIT)).click()
                self.driver.find_element(*self.SUBMIT).click()
                self.driver.find_element(*Shared.MENU)
        """, locators_py="""\
        from selenium.webdriver.common.by import By

        class Shared:
            MENU = (By.XPATH, "//nav")
        """)
    got = {(d.file, d.value, d.line, d.context) for d in result.dependencies}
    assert got == {("bot.py", "name=q", 6, "find_element"),
                   ("bot.py", "id=submit", 9, "element_to_be_clickable"),
                   ("bot.py", "css=.never-used", 10, ""),
                   ("locators.py", "xpath=//nav", 4, "find_element")}


def test_relative_locators_and_dicts_of_them(tmp_path):
    result = extract_source(tmp_path, """\
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.relative_locator import locate_with
        def run(driver):
            driver.find_element(locate_with(By.TAG_NAME, "input").below({By.ID: "email"}))
        """)
    assert found(result) == {("selector", "tag=input", 4, "selenium", "locate_with"),
                             ("selector", "id=email", 4, "selenium", "below")}


def test_a_computed_locator_is_a_problem_and_a_parameter_is_not(tmp_path):
    result = extract_source(tmp_path, """\
        import os
        from selenium.webdriver.common.by import By
        def find(driver, locator, by, value):
            driver.find_element(*locator)
            driver.find_element(by, value)
            driver.find_element(By.ID, value)
            driver.find_element(By.ID, os.environ["FIELD"])
            driver.find_element(By.XPATH, f"//td[.='{value}']")
            driver.find_element(*make_locator())
        """)
    assert not result.dependencies
    assert [(p.file, p.line) for p in result.problems] == [("bot.py", 7), ("bot.py", 8), ("bot.py", 9)]
    assert all("computed at run time" in p.message for p in result.problems)


def test_selenium_urls_and_what_is_not_one(tmp_path):
    result = extract_source(tmp_path, """\
        import requests
        from selenium import webdriver
        HOME = "https://portal.example.com"
        def run(settings):
            driver = webdriver.Remote(command_executor="http://grid:4444/wd/hub")
            driver.get(HOME + "/login")
            driver.get(f"{HOME}/list")
            requests.get("https://api.example.com/health")
            settings.get("https://not-a-page.example.com")
            settings.get("timeout")
        """)
    assert found(result, "url") == {
        ("url", "http://grid:4444/wd/hub", 5, "selenium", "Remote"),
        ("url", "https://portal.example.com/login", 6, "selenium", "get"),
        ("url", "https://portal.example.com/list", 7, "selenium", "get"),
        ("url", "https://not-a-page.example.com", 9, "selenium", "get"),  # a get(URL) where Selenium is used
    }


def test_credentials_in_urls_are_never_copied(tmp_path):
    result = extract_source(tmp_path, """\
        def run(driver):
            driver.get("https://robot:Hunter2!@intranet.example.com/?token=abc123&page=2")
        """)
    (url,) = values(result, "url")
    assert "Hunter2" not in url and "abc123" not in url and "intranet.example.com" in url


# -- Playwright -------------------------------------------------------------------------------

def test_playwright_finders_are_written_as_playwright_writes_them(tmp_path):
    result = extract_source(tmp_path, """\
        import re
        from playwright.sync_api import Page
        def run(page: Page):
            page.get_by_role("button", name="Save").click()
            page.get_by_role("button", name='Say "hi"', exact=True).click()
            page.get_by_role("checkbox", checked=False, include_hidden=True, level=2).check()
            page.get_by_text("Welcome back").wait_for()
            page.get_by_text(re.compile("total: \\\\d+", re.IGNORECASE)).wait_for()
            page.get_by_label("Amount", exact=True).fill("1")
            page.get_by_placeholder("name@example.com").fill("2")
            page.get_by_alt_text("logo").click()
            page.get_by_title("Close").click()
            page.get_by_test_id("submit").click()
        """)
    assert [d.value for d in result.dependencies] == [
        'internal:role=button[name="Save"i]',
        'internal:role=button[name="Say \\"hi\\""s]',
        "internal:role=checkbox[checked=false][include-hidden=true][level=2]",
        'internal:text="Welcome back"i',
        "internal:text=/total: \\d+/i",
        'internal:label="Amount"s',
        'internal:attr=[placeholder="name@example.com"i]',
        'internal:attr=[alt="logo"i]',
        'internal:attr=[title="Close"i]',
        'internal:testid=[data-testid="submit"s]',
    ]


def test_the_finders_agree_with_playwright_itself():
    utils = pytest.importorskip("playwright._impl.isomorphic.locator_utils")
    import re

    from botwatch.deps import python_locators as loc

    assert loc.role_selector("button", [("name", loc.attribute_selector('a "b" \\ c', False))]) == \
        utils.get_by_role_selector("button", name='a "b" \\ c')
    assert "internal:text=" + loc.text_selector("Grüße \"x\"", True) == utils.get_by_text_selector("Grüße \"x\"", True)
    assert "internal:label=" + loc.regex_selector("a'b>>c", True) == \
        utils.get_by_label_selector(re.compile("a'b>>c", re.I))
    assert loc.TEXT_FINDERS["get_by_placeholder"](loc.attribute_selector("P", False)) == \
        utils.get_by_placeholder_selector("P")
    assert loc.test_id_selector("x") == utils.get_by_test_id_selector("data-testid", "x")


def test_chained_locators_frames_and_positions(tmp_path):
    result = extract_source(tmp_path, """\
        from playwright.sync_api import expect
        def run(page):
            page.locator("#form").locator("button.save").click()
            page.frame_locator("#pay").get_by_role("textbox").fill("x")
            page.locator("li").first.click()
            page.locator("li").nth(3).last.hover()
            page.locator("tr", has_text="Open", has=page.locator("td.red")).click()
            page.locator("tr").filter(has_not_text="Closed", visible=True).click()
            expect(page.locator("h1")).to_have_text("Hi")
        """)
    assert [(d.value, d.context) for d in result.dependencies] == [
        ("#form >> button.save", "click"),
        ("#pay >> internal:control=enter-frame >> internal:role=textbox", "fill"),
        ("li >> nth=0", "click"),
        ("li >> nth=3 >> nth=-1", "hover"),
        ('td.red', "locator"),
        ('tr >> internal:has-text="Open"i >> internal:has="td.red"', "click"),
        ('tr >> internal:has-not-text="Closed"i >> visible=true', "click"),
        ("h1", "expect"),
    ]


def test_a_computed_part_of_a_chain_ends_what_can_be_read(tmp_path):
    result = extract_source(tmp_path, """\
        from playwright.sync_api import Page
        def run(page: Page, rows):
            name = rows[0]
            page.locator("#grid").locator(name).get_by_role("button").click()
        """)
    assert [d.value for d in result.dependencies] == ["#grid", "internal:role=button"]
    assert [(p.line, p.message) for p in result.problems] == [
        (4, "locator: the selector is computed at run time and was not read")]


def test_page_actions_take_the_selector_and_never_the_text_typed(tmp_path):
    result = extract_source(tmp_path, """\
        import pyautogui
        from playwright.sync_api import Page
        SECRET = "s3cr3t-value"
        def run(page: Page, frame):
            page.fill("#password", SECRET)
            page.type("#user", "robot-user")
            page.press("#user", "Tab")
            page.select_option("select#country", "NL")
            frame.check("#agree")
            page.drag_and_drop("#from", "#to")
            page.locator("#pin").fill("123456")
            page.get_by_label("Code").type("typed-code")
            page.keyboard.type("keyboard-text")
            page.keyboard.press("Enter")
            pyautogui.click("button.png")
            page.wait_for_selector("text=Done")
        """)
    assert values(result) == {"#password", "#user", "select#country", "#agree", "#from", "#to", "#pin",
                              'internal:label="Code"i', "text=Done"}
    text = json.dumps([d.__dict__ for d in result.dependencies])
    for typed in ("s3cr3t-value", "robot-user", "123456", "typed-code", "keyboard-text", "NL", "button.png"):
        assert typed not in text


def test_playwright_urls(tmp_path):
    result = extract_source(tmp_path, """\
        import re
        from playwright.sync_api import expect
        BASE = "https://app.example.com"
        async def run(browser, page):
            context = await browser.new_context(base_url=BASE)
            await page.goto("/orders")
            await page.wait_for_url(BASE + "/done")
            await page.wait_for_url("**/done")
            await expect(page).to_have_url("https://app.example.com/end")
            await expect(page).to_have_url(re.compile(".*end"))
            return context
        """)
    assert found(result, "url") == {
        ("url", "https://app.example.com", 3, "playwright", "new_context"),
        ("url", "/orders", 6, "playwright", "goto"),
        ("url", "https://app.example.com/done", 7, "playwright", "wait_for_url"),
        ("url", "https://app.example.com/end", 9, "playwright", "to_have_url"),
    }


def test_page_objects_of_playwright_resolve_class_and_instance_attributes(tmp_path):
    result = extract_source(tmp_path, """\
        from playwright.sync_api import Page

        class Base:
            ROOT = "https://shop.example.com"

        class Cart(Base):
            CHECKOUT = "button#checkout"

            def __init__(self, page: Page, name: str) -> None:
                self.page = page
                self.name = name
                self.total = "#total"

            def open(self):
                self.page.goto(self.ROOT + "/cart")
                self.page.click(self.CHECKOUT)
                self.page.inner_text(self.total)
                self.page.click(self.name)
        """)
    assert found(result) == {("url", "https://shop.example.com/cart", 15, "playwright", "goto"),
                             ("selector", "button#checkout", 7, "playwright", "click"),
                             ("selector", "#total", 12, "playwright", "inner_text")}
    assert not result.problems  # self.name is a parameter of __init__


def test_names_bound_twice_are_not_guessed(tmp_path):
    result = extract_source(tmp_path, """\
        from playwright.sync_api import Page
        TARGET = "#a"
        TARGET = "#b"
        def run(page: Page):
            page.click(TARGET)
        """)
    assert not result.dependencies and [p.line for p in result.problems] == [5]


def test_other_libraries_calls_of_the_same_names_are_not_read(tmp_path):
    result = extract_source(tmp_path, """\
        import turtle
        def draw(queryset, items, cfg):
            turtle.goto(10, 20)
            queryset.filter(name="x").first()
            items.click("not a selector")
            cfg.fill("a", "b")
        """)
    assert not result.dependencies and not result.problems


# -- botwatch ---------------------------------------------------------------------------------

def test_botwatch_calls_give_screens_and_their_selectors(tmp_path):
    result = extract_source(tmp_path, """\
        import botwatch as bw
        from botwatch import snapshot, ui_lookup
        from botwatch.integrations import playwright as helper
        from botwatch.integrations.selenium import find
        from selenium.webdriver.common.by import By

        def run(driver, page, screen):
            bw.ui_lookup(screen="invoices", selector="<webctrl id='grid' />", found=True)
            ui_lookup("login", "#user", found=False, kind="not_found")
            snapshot("invoices", driver.page_source)
            find(driver, "login", "id:user", (By.NAME, "user"))
            helper.find(page, "cart", "role=button[name='Pay']")
            helper.snapshot(page, "cart")
            bw.ui_lookup(screen, "#x")
        """)
    assert {(d.kind, d.value, d.line, d.tool, d.screen) for d in result.dependencies} == {
        ("screen", "invoices", 8, "botwatch", ""),
        ("selector", "<webctrl id='grid' />", 8, "botwatch", "invoices"),
        ("screen", "login", 9, "botwatch", ""),
        ("selector", "#user", 9, "botwatch", "login"),
        ("screen", "invoices", 10, "botwatch", ""),
        ("screen", "login", 11, "botwatch", ""),
        ("selector", "id:user", 11, "botwatch", "login"),
        ("selector", "name=user", 11, "selenium", "login"),
        ("screen", "cart", 12, "botwatch", ""),
        ("selector", "role=button[name='Pay']", 12, "playwright", "cart"),
        ("screen", "cart", 13, "botwatch", ""),
        ("selector", "#x", 14, "botwatch", ""),
    }
    assert not result.problems


# -- credentials ------------------------------------------------------------------------------

def test_credentials_are_named_never_valued(tmp_path):
    result = extract_source(tmp_path, """\
        import os
        from os import environ, getenv
        import keyring
        from selenium import webdriver
        password = os.environ["BOT_PASSWORD"]
        token = getenv("API_TOKEN")
        key = environ.get("AWS_SECRET_ACCESS_KEY", "fallback-secret")
        dbpass = os.environ.get("DBPASSWORD")
        user = os.environ["BOT_USER"]
        home = os.getenv("HOME")
        keyboard = os.getenv("KEYBOARD_LAYOUT")
        stored = keyring.get_password("erp-login", user)
        """)
    assert found(result) == {
        ("credential", "BOT_PASSWORD", 5, "selenium", "os.environ"),
        ("credential", "API_TOKEN", 6, "selenium", "os.getenv"),
        ("credential", "AWS_SECRET_ACCESS_KEY", 7, "selenium", "os.environ.get"),
        ("credential", "DBPASSWORD", 8, "selenium", "os.environ.get"),
        ("credential", "erp-login", 12, "selenium", "keyring.get_password"),
    }
    assert "fallback-secret" not in json.dumps([d.__dict__ for d in result.dependencies])


def test_a_credential_in_a_module_of_no_library_takes_the_bots_library(tmp_path):
    (tmp_path / "bot").mkdir()
    result = extract_source(tmp_path / "bot", "from playwright.sync_api import Page\n",
                            settings_py="import os\nSECRET = os.environ['APP_SECRET']\n")
    assert [(d.value, d.tool, d.file) for d in result.dependencies] == [("APP_SECRET", "playwright", "settings.py")]
    (tmp_path / "plain").mkdir()
    alone = extract_source(tmp_path / "plain", "import os\nos.getenv('SERVICE_TOKEN')\n")
    assert [(d.value, d.tool) for d in alone.dependencies] == [("SERVICE_TOKEN", "botwatch")]


# -- steps ------------------------------------------------------------------------------------

def test_steps_are_the_browser_calls_in_source_order_normalised(tmp_path):
    result = extract_source(tmp_path, """\
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
        def login(driver, data):
            driver.get("https://x.example.com")
            driver.find_element_by_id("user").send_keys("u")
            WebDriverWait(driver, 5).until(EC.visibility_of_element_located((By.ID, "ok"))).click()
            data.clear()
            driver.switch_to.frame("inner")
            driver.quit()
        async def shop(page):
            await page.goto("https://shop.example.com")
            await page.get_by_role("button").click()
            await page.keyboard.press("Enter")
        """)
    assert [(s.line, s.name) for s in result.steps] == [
        (5, "get"), (6, "find_element"), (6, "send_keys"), (7, "visibility_of_element_located"), (7, "until"),
        (7, "click"), (9, "switch_to.frame"), (10, "quit"),
        (12, "goto"), (13, "get_by_role"), (13, "click"), (14, "keyboard.press")]


# -- reading files ----------------------------------------------------------------------------

def test_encodings_bom_and_coding_lines_keep_values_and_lines(tmp_path):
    source = "# -*- coding: latin-1 -*-\ndef run(driver):\n    driver.find_element_by_link_text('Exportación')\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    utf16 = "def run(page):\n    page.goto('https://ü.example.com')\n"
    (tmp_path / "wide.py").write_bytes(b"\xff\xfe" + utf16.encode("utf-16-le"))
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfdef run(page):\r\n\r\n    page.goto('https://b.example.com')\r\n")
    result = extract_folder(tmp_path)
    assert {(d.file, d.value, d.line) for d in result.dependencies} == {
        ("latin.py", "link=Exportación", 3), ("wide.py", "https://ü.example.com", 2),
        ("bom.py", "https://b.example.com", 3)}
    assert not result.problems and result.files_read == 3


@pytest.mark.parametrize("codec", ["rot13", "base64", "utf-16", "idna", "undefined", "punycode", "no-such-codec"])
def test_a_coding_line_python_would_refuse_is_read_as_utf8(tmp_path, codec):
    (tmp_path / "odd.py").write_bytes(f"# coding: {codec}\ndef run(page):\n    page.goto('https://é.example.com')\n"
                                      .encode("utf-8"))
    result = extract_folder(tmp_path)
    assert [(d.value, d.line) for d in result.dependencies] == [("https://é.example.com", 3)]


@pytest.mark.parametrize("data, line", [
    (b"def run(page):\n    page.goto('https://a.example.com')\n    page.click(\n", 3),
    (b"x = 1\ny = 2\nz = 'a\0b'\n", 3),
    (b"x = (" * 300 + b"1" + b")" * 300 + b"\n", 1),
    (b"\xff\xfe\x00", 1),
])
def test_a_file_that_is_not_python_is_a_problem_with_its_line(tmp_path, data, line):
    (tmp_path / "bad.py").write_bytes(data)
    (tmp_path / "good.py").write_text("def run(page):\n    page.goto('https://ok.example.com')\n", encoding="utf-8")
    result = extract_folder(tmp_path)
    assert [(p.file, p.line) for p in result.problems] == [("bad.py", line)]
    assert "not valid Python" in result.problems[0].message
    assert values(result, "url") == {"https://ok.example.com"}


def test_nesting_too_deep_is_a_problem_at_its_line_and_long_concatenations_are_read(tmp_path):
    (tmp_path / "deep.py").write_text(
        "def run(page):\n    page.goto('https://a.example.com' + " + " + ".join(["'/x'"] * 800) + ")\n"
        "    total = " + " - ".join(["n"] * 800) + "\n", encoding="utf-8")
    (tmp_path / "deeper.py").write_text("x = " + "+".join(["'a'"] * 20000) + "\n", encoding="utf-8")
    result = extract_folder(tmp_path)
    assert values(result, "url") == {"https://a.example.com" + "/x" * 800}
    assert [(p.file, p.line) for p in result.problems] == [("deep.py", 3), ("deeper.py", 0)]


def test_unreadable_and_oversized_files_are_problems(tmp_path, monkeypatch):
    (tmp_path / "big.py").write_text("x = 1\n" * 100, encoding="utf-8")
    monkeypatch.setattr(python_src, "MAX_FILE_BYTES", 100)
    result = python_src.extract(tmp_path, [tmp_path / "big.py", tmp_path / "gone.py"])
    assert [(p.file, p.line) for p in result.problems] == [("big.py", 0), ("gone.py", 0)]
    assert result.files_read == 0


# -- fuzzing ----------------------------------------------------------------------------------

CORPUS_SOURCES = [p.read_bytes() for bot in BOTS for p in sorted((CORPUS / bot).rglob("*.py"))]


def check_never_raises(tmp_path: Path, data: bytes) -> None:
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "bot.py").write_bytes(data)
    with bounded(f"extract({data[:200]!r})"):
        result = extract_folder(folder)
    lines = data.count(b"\n") + 2
    for problem in result.problems:
        assert problem.file == "bot.py" and isinstance(problem.line, int) and 0 <= problem.line <= lines, problem
    for dep in result.dependencies:
        assert dep.file == "bot.py" and 1 <= dep.line <= lines, dep


@settings(max_examples=150, deadline=None, derandomize=True)
@given(source=st.sampled_from(CORPUS_SOURCES), cut=st.floats(0, 1), junk=st.binary(max_size=20),
       at=st.floats(0, 1))
def test_fuzz_truncated_and_spliced_corpus_files(tmp_path_factory, source, cut, junk, at):
    truncated = source[:int(len(source) * cut)]
    where = int(len(truncated) * at)
    check_never_raises(tmp_path_factory.mktemp("t"), truncated[:where] + junk + truncated[where:])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path_factory, data):
    check_never_raises(tmp_path_factory.mktemp("b"), data)


RECEIVERS = ["page", "self.page", "driver", "self", "frame", "el", "page.keyboard", "pyautogui", "x()", "bw", "os.environ",
             "page.locator('a')", "LOC", "self.LOC", "Page.LOC", "m.Page", "(await page)", "page.locator(LOC).first"]
METHODS = ["find_element", "find_elements", "find_element_by_id", "get", "goto", "locator", "get_by_role", "get_by_text",
           "get_by_test_id", "frame_locator", "nth", "filter", "click", "fill", "type", "press", "select_option",
           "drag_and_drop", "wait_for_selector", "until", "ui_lookup", "snapshot", "find", "get_password", "getenv",
           "new_context", "to_have_url", "first", "Remote", "send_keys"]
ARGUMENTS = ["'#a'", "f'{LOC}'", "f'{x}'", "LOC", "self.LOC", "By.ID", "(By.ID, 'a')", "(By.XPATH, LOC)", "*LOC", "*self.LOC",
             "{By.ID: 'a'}", "re.compile('a', re.I)", "re.compile(x)", "'a' + LOC", "1", "None", "True", "-1", "x",
             "name='n'", "exact=True", "has=page.locator('b')", "has_text=LOC", "base_url=LOC", "level=2", "by=By.NAME",
             "value='v'", "screen='s'", "selector=LOC", "lambda: LOC", "[LOC, 'a']", "'https://u:p@h/'", "checked=x"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(calls=st.lists(st.tuples(st.sampled_from(RECEIVERS), st.lists(st.sampled_from(METHODS), min_size=1, max_size=4),
                                st.lists(st.sampled_from(ARGUMENTS), max_size=4)), min_size=1, max_size=8),
       where=st.sampled_from(["module", "function", "method"]))
def test_fuzz_valid_sources_of_mixed_calls(tmp_path_factory, calls, where):
    lines = []
    for receiver, methods, arguments in calls:
        positional = [a for a in arguments if "=" not in a or a.startswith(("'", "f'", "lambda", "("))]
        keywords = [a for a in arguments if a not in positional]
        expr = receiver + "".join(f".{m}({', '.join(positional + keywords)})" for m in methods)
        lines.append(expr)
    head = ("import re, os, botwatch as bw\nimport m\nfrom selenium.webdriver.common.by import By\n"
            "from playwright.async_api import Page\nLOC = (By.ID, 'x')\nLOC = LOC\n")
    if where == "module":
        body = "\n".join(lines)
    elif where == "function":
        body = "async def run(page, x):\n" + "\n".join("    " + line for line in lines)
    else:
        body = "class Page:\n    LOC = '#p'\n    async def run(self, x):\n" + "\n".join("        " + line for line in lines)
    source = head + body + "\n"
    try:
        compile(source, "bot.py", "exec", flags=0x2000)  # PyCF_ALLOW_TOP_LEVEL_AWAIT
    except SyntaxError:
        return  # a combination Python does not take: the other fuzz tests cover broken files
    check_never_raises(tmp_path_factory.mktemp("v"), source.encode())


@settings(max_examples=100, deadline=None, derandomize=True)
@given(codec=st.sampled_from(sorted(set(encodings.aliases.aliases.values()))), source=st.sampled_from(CORPUS_SOURCES),
       junk=st.binary(max_size=40))
def test_fuzz_coding_lines(tmp_path_factory, codec, source, junk):
    check_never_raises(tmp_path_factory.mktemp("c"), f"# -*- coding: {codec} -*-\n".encode() + junk + source)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(depth=st.integers(1, 3000), opener=st.sampled_from(["(", "[", "{", "f(", "page.locator(", "-", "not "]),
       size=st.integers(0, 300_000))
def test_fuzz_deep_nesting_and_huge_values(tmp_path_factory, depth, opener, size):
    closer = {"(": ")", "[": "]", "{": "}", "f(": ")", "page.locator(": ")"}.get(opener, "")
    deep = "x = " + opener * depth + "1" + closer * depth + "\n"
    huge = f"def run(page):\n    page.goto('https://{'a' * size}.example.com')\n    page.click('#{'b' * size}')\n"
    folder = tmp_path_factory.mktemp("d")
    check_never_raises(folder, (deep + huge).encode())
    chained = "def run(page):\n    page" + ".locator('x')" * depth + ".click()\n"
    check_never_raises(folder, chained.encode())
