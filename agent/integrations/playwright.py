"""Selector health and snapshots for Python bots that drive a browser with Playwright (sync API).

    from .playwright import find, snapshot

    with botwatch.run("invoice-portal"):
        page.goto(portal + "/invoice.html")
        snapshot(page, "invoice")                        # the page, for the drift check
        find(page, "invoice", "#amount").fill("120.50")
        find(page, "invoice", "id=btnSubmit", "role=button[name='Submit invoice']", timeout=5).click()

`find(page, screen, *locators)` tries the locators in order, the first being the primary one
and the others its fallbacks, and returns the Locator of the first one that matches exactly
one element (Playwright's strict mode). It records one look-up with `botwatch.ui_lookup()`:

- found with the primary locator: found;
- found only with a fallback: found and **healed** (recorded with the fallback that matched);
- found by none within `timeout`: not found, recorded with the primary locator, of kind
  `ambiguous` when a locator matched several elements (and none exactly one), else
  `not_found`; then it raises ElementNotFound, whose message names the screen and the
  selectors tried, e.g. "screen invoice, selector id=btnSubmit: Element with locator
  'id=btnSubmit' not found." (a run that fails with it fails for reason ui_drift).

The rule is the Selenium helper's (botwatch.integrations.selenium); both share `_lookups`.
The wait recorded is the time `find` took. With `timeout`, the locators are tried in rounds
until one matches, each round starting with the primary. `page` may also be a Frame, a
FrameLocator or a Locator, to look inside it.

Locators are Playwright's own selectors, passed to `page.locator()` as they are: CSS by
default, XPath when they start with `//`, and the engines `css=`, `xpath=`, `text=`, `id=`,
`role=button[name="Submit invoice"]`, `data-testid=`, chained with `>>`.

`snapshot(page, screen, kind="html")` sends the page (`html`: `page.content()`), a PNG
screenshot of the viewport (`png`: `page.screenshot()`), its accessibility tree (`a11y`), or
several (`both`: html and png; `all`: html, a11y and png) to the agent with
`botwatch.snapshot()`, and returns the agent's drift report of each. Neither function lets a
monitoring problem reach the bot: the only exception `find` raises is ElementNotFound, for the
bot's own element.
"""

from __future__ import annotations

import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from ..core.vocabulary import SNAPSHOT_KINDS as _ALL_KINDS
from . import _lookups

__all__ = ["find", "snapshot", "ElementNotFound", "accessibility_tree"]

SNAPSHOT_KINDS = {"html": ("html",), "png": ("png",), "a11y": ("a11y",), "both": ("html", "png"),
                  "all": _ALL_KINDS}


class ElementNotFound(_lookups.ElementNotFound, PlaywrightTimeoutError):
    """No locator matched exactly one element within the timeout: a Playwright TimeoutError (and
    so a Playwright Error), as a locator's action that waited in vain, so existing handlers
    still catch it. `screen_name`, `selector`, `kind` and `selectors` tell what was looked for."""


def find(page, screen: str, *locators: str, timeout: float = 0.0, poll: float = 0.2,
         snapshot_on_failure: str | None = None, bot: str | None = None):
    """The Locator of the first locator that matches exactly one element (see the module's
    documentation)."""
    if not locators:
        raise ValueError("find() needs at least one locator")
    for loc in locators:  # a malformed locator is the bot's error: it raises
        if not isinstance(loc, str) or not loc.strip():
            raise ValueError(f"a locator is a non-empty Playwright selector string, not {loc!r}")
    waiter = _page_of(page)

    def probe(loc):
        found = page.locator(loc)
        return found.count(), found

    def sleep(seconds):
        if waiter is not None and hasattr(waiter, "wait_for_timeout"):
            waiter.wait_for_timeout(seconds * 1000)  # Playwright's own pause: its events go on
        else:
            time.sleep(seconds)

    def on_failure():
        if waiter is not None:
            snapshot(waiter, screen, kind=snapshot_on_failure, bot=bot)

    return _lookups.find_first(screen, locators, probe, error=ElementNotFound, timeout=timeout, poll=poll,
                               unique=True, sleep=sleep, on_failure=on_failure if snapshot_on_failure else None,
                               bot=bot)


def snapshot(page, screen: str, kind: str = "html", *, bot: str | None = None) -> dict:
    """Send the page (`html`), a screenshot (`png`), its accessibility tree (`a11y`), or `both`
    (html, png) or `all` to the agent; the agent's drift report of each kind sent (None where
    there is none: the agent away, say). Never raises."""

    def take(one):
        if one == "html":
            return page.content()
        if one == "png":
            return page.screenshot()
        return accessibility_tree(page)

    return _lookups.send_snapshots("playwright", screen, kind, SNAPSHOT_KINDS, take, bot=bot)


def accessibility_tree(page):
    """The page's accessibility tree, as the agent reads it: on Chromium the DevTools tree
    (`Accessibility.getFullAXTree`, the same whatever Playwright's version), elsewhere
    `page.accessibility.snapshot()` where this Playwright still has it. Raises when neither
    can be had (a Firefox or WebKit page on a Playwright without `page.accessibility`)."""
    try:
        session = page.context.new_cdp_session(page)
    except PlaywrightError as exc:  # not Chromium
        legacy = getattr(page, "accessibility", None)
        if legacy is None:
            raise PlaywrightError(f"no accessibility tree: this Playwright has no page.accessibility and "
                                  f"the browser has no DevTools protocol ({str(exc).strip()[:120]})") from None
        tree = legacy.snapshot()
        if tree is None:
            raise PlaywrightError("no accessibility tree: the page has none") from None
        return tree
    try:
        return session.send("Accessibility.getFullAXTree")
    finally:
        try:
            session.detach()
        except PlaywrightError:
            pass


def _page_of(scope):
    """The Page of a Page, Frame, Locator or FrameLocator (None when there is none)."""
    if hasattr(scope, "screenshot") and hasattr(scope, "main_frame"):
        return scope
    owner = getattr(scope, "owner", None)  # a FrameLocator: the iframe's Locator
    for candidate in (scope, owner):
        try:
            found = getattr(candidate, "page", None)
        except Exception:
            found = None
        if found is not None:
            return found
    return None
