"""Selector health and snapshots for Python bots that drive a browser with Selenium.

    from botwatch.integrations.selenium import find, snapshot

    with botwatch.run("invoice-portal"):
        driver.get(portal + "/invoice.html")
        snapshot(driver, "invoice")                      # the page, for the drift check
        find(driver, "invoice", "id:amount").send_keys("120.50")
        find(driver, "invoice", "id:btnSubmit", "xpath://button[normalize-space()='Submit invoice']",
             timeout=5).click()

`find(driver, screen, *locators)` tries the locators in order, the first being the primary one
and the others its fallbacks, and records one look-up with `botwatch.ui_lookup()`:

- found with the primary locator: found;
- found only with a fallback: found and **healed** (recorded with the fallback that matched);
- found by none within `timeout`: not found (kind `not_found`, or `ambiguous` when `unique=True`
  and a locator matched several elements), recorded with the primary locator; then it raises
  ElementNotFound, whose message names the screen and the selector, e.g. "screen invoice,
  selector id:btnSubmit: Element with locator 'id:btnSubmit' not found." (a run that fails with
  it fails for reason ui_drift).

The wait recorded is the time `find` took. With `timeout`, the locators are tried in rounds
until one matches: each round tries the primary first. A driver's implicit wait applies to
each locator of a round; set it to 0 and use `timeout` instead.

Locators are written as in the estate file's declared selectors: CSS by default, XPath when
they start with `/` or `(`, or with a prefix `css:`, `xpath:`, `id:`, `name:` (or `css=` ...);
a Selenium `(By.ID, "amount")` tuple works too.

`snapshot(driver, screen, kind="html")` sends the page source (`html`), a PNG screenshot (`png`)
or both to the agent with `botwatch.snapshot()` and returns the agent's drift report of each
(`{"html": {"score": 0.04, "warning": False, ...}}`). Neither function lets a monitoring problem
reach the bot: the only exception `find` raises is ElementNotFound, for the bot's own element.
"""

from __future__ import annotations

import re
import time

from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By

from .. import sdk

__all__ = ["find", "snapshot", "ElementNotFound", "to_by"]

_PREFIX = re.compile(r"^(css|xpath|id|name)\s*[:=]\s*", re.I)
_BY = {"css": By.CSS_SELECTOR, "xpath": By.XPATH, "id": By.ID, "name": By.NAME}
SNAPSHOT_KINDS = {"html": ("html",), "png": ("png",), "both": ("html", "png")}


class ElementNotFound(NoSuchElementException):
    """No locator found the element (a NoSuchElementException, so existing handlers still work)."""

    def __init__(self, msg: str, screen: str, selector: str, kind: str = "not_found"):
        super().__init__(msg)
        self.msg = msg  # without the link to Selenium's troubleshooting page it appends
        # `screen` is Selenium's attribute for a screenshot: the screen's name is `screen_name`
        self.screen_name, self.selector, self.kind = screen, selector, kind

    def __str__(self) -> str:  # the message alone, without Selenium's "Message: " framing
        return self.msg or ""


def to_by(locator) -> tuple[str, str]:
    """(By strategy, value) of a locator: `id:x`, `css:#x`, `xpath://x`, `name:x`, CSS, XPath."""
    if isinstance(locator, tuple) and len(locator) == 2:
        return locator
    if not isinstance(locator, str) or not locator.strip():
        raise ValueError(f"a locator is a non-empty string or a (By, value) tuple, not {locator!r}")
    text = locator.strip()
    m = _PREFIX.match(text)
    if m:
        return _BY[m.group(1).lower()], text[m.end():].strip()
    if text.startswith(("/", "(")):
        return By.XPATH, text
    return By.CSS_SELECTOR, text


def _text(locator) -> str:
    return locator if isinstance(locator, str) else f"{locator[0]}:{locator[1]}"


def find(driver, screen: str, *locators, timeout: float = 0.0, poll: float = 0.2, unique: bool = False,
         snapshot_on_failure: str | None = None, bot: str | None = None):
    """The element the first matching locator finds (see the module's documentation)."""
    if not locators:
        raise ValueError("find() needs at least one locator")
    parsed = [(loc, to_by(loc)) for loc in locators]  # a malformed locator is the bot's error: it raises
    started = time.monotonic()
    deadline = started + max(0.0, float(timeout or 0))
    while True:
        ambiguous = None
        for index, (loc, (by, value)) in enumerate(parsed):
            elements = driver.find_elements(by, value)
            if not elements:
                continue
            if unique and len(elements) > 1:
                ambiguous = ambiguous or (loc, len(elements))
                continue
            _lookup(screen, _text(loc), True, healed=index > 0, wait=time.monotonic() - started, bot=bot)
            return elements[0]
        if time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
    primary = _text(locators[0])
    others = [_text(loc) for loc in locators[1:]]
    fallbacks = f" Fallbacks tried: {', '.join(others)}." if others else ""
    if ambiguous is not None:
        kind = "ambiguous"
        msg = (f"screen {screen}, selector {_text(ambiguous[0])}: {ambiguous[1]} elements match locator "
               f"'{_text(ambiguous[0])}' where one was expected (strict mode violation).{fallbacks}")
    else:
        kind = "not_found"
        msg = f"screen {screen}, selector {primary}: Element with locator '{primary}' not found.{fallbacks}"
    _lookup(screen, primary, False, kind=kind, wait=time.monotonic() - started, bot=bot)
    if snapshot_on_failure:
        snapshot(driver, screen, kind=snapshot_on_failure, bot=bot)
    raise ElementNotFound(msg, screen, primary, kind)


def snapshot(driver, screen: str, kind: str = "html", *, bot: str | None = None) -> dict:
    """Send the page (`html`), a screenshot (`png`) or both to the agent; the agent's drift report
    of each kind sent (None where there is none: the agent away, say). Never raises."""
    reports: dict = {}
    try:
        kinds = SNAPSHOT_KINDS.get(str(kind).lower())
        if kinds is None:
            sdk._warn(("selenium-snapshot-kind", str(kind)[:20]), "botwatch: snapshot(kind=%r) is not one of html, "
                      "png, both; nothing sent", kind)
            return reports
        for one in kinds:
            try:
                content = driver.page_source if one == "html" else driver.get_screenshot_as_png()
            except Exception as exc:  # a closed window, a dead session: the bot finds out itself
                sdk._warn(("selenium-snapshot", one, type(exc).__name__), "botwatch: no %s snapshot of screen %r "
                          "(%s: %s)", one, screen, type(exc).__name__, str(exc).strip()[:200])
                continue
            reports[one] = sdk.snapshot(screen, content, kind=one, bot=bot)
    except Exception as exc:
        sdk._internal_error("botwatch.integrations.selenium.snapshot()", exc)
    return reports


def _lookup(screen, selector, found, *, healed=False, kind=None, wait=None, bot=None) -> None:
    sdk.ui_lookup(screen, selector, found, kind=kind, wait=wait, healed=healed, bot=bot)
