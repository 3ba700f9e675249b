"""Selector health and snapshots for Python bots that drive a browser with Selenium.

    from .selenium import find, snapshot

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
The look-up rule and the snapshot loop are shared with the Playwright helper (`_lookups`).
"""

from __future__ import annotations


from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By

from ..ui.selectors import LOCATOR_PREFIX
from . import _lookups

__all__ = ["find", "snapshot", "ElementNotFound", "to_by"]

_BY = {"css": By.CSS_SELECTOR, "xpath": By.XPATH, "id": By.ID, "name": By.NAME}
SNAPSHOT_KINDS = {"html": ("html",), "png": ("png",), "both": ("html", "png")}


class ElementNotFound(_lookups.ElementNotFound, NoSuchElementException):
    """No locator found the element (a NoSuchElementException, so existing handlers still work).
    `screen` is Selenium's attribute for a screenshot: the screen's name is `screen_name`."""


def to_by(locator) -> tuple[str, str]:
    """(By strategy, value) of a locator: `id:x`, `css:#x`, `xpath://x`, `name:x`, CSS, XPath."""
    if isinstance(locator, tuple) and len(locator) == 2:
        return locator
    if not isinstance(locator, str) or not locator.strip():
        raise ValueError(f"a locator is a non-empty string or a (By, value) tuple, not {locator!r}")
    text = locator.strip()
    m = LOCATOR_PREFIX.match(text)
    if m:
        return _BY[m.group(1).lower()], text[m.end():].strip()
    if text.startswith(("/", "(")):
        return By.XPATH, text
    return By.CSS_SELECTOR, text


def find(driver, screen: str, *locators, timeout: float = 0.0, poll: float = 0.2, unique: bool = False,
         snapshot_on_failure: str | None = None, bot: str | None = None):
    """The element the first matching locator finds (see the module's documentation)."""
    if not locators:
        raise ValueError("find() needs at least one locator")
    for loc in locators:
        to_by(loc)  # a malformed locator is the bot's error: it raises

    def probe(loc):
        elements = driver.find_elements(*to_by(loc))
        return len(elements), (elements[0] if elements else None)

    def on_failure():
        snapshot(driver, screen, kind=snapshot_on_failure, bot=bot)

    return _lookups.find_first(screen, locators, probe, error=ElementNotFound, timeout=timeout, poll=poll,
                               unique=unique, on_failure=on_failure if snapshot_on_failure else None, bot=bot)


def snapshot(driver, screen: str, kind: str = "html", *, bot: str | None = None) -> dict:
    """Send the page (`html`), a screenshot (`png`) or both to the agent; the agent's drift report
    of each kind sent (None where there is none: the agent away, say). Never raises."""

    def take(one):
        return driver.page_source if one == "html" else driver.get_screenshot_as_png()

    return _lookups.send_snapshots("selenium", screen, kind, SNAPSHOT_KINDS, take, bot=bot)
