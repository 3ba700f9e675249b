"""What the browser helpers (selenium, playwright) share: the look-up rule and the snapshot loop.

`find_first(screen, locators, probe, ...)` tries the locators in order, the first being the
primary one and the others its fallbacks, and records one look-up with `botwatch.ui_lookup()`:

- found with the primary locator: found;
- found only with a fallback: found and healed (recorded with the fallback that matched);
- found by none within `timeout`: not found (kind `not_found`, or `ambiguous` when `unique` and a
  locator matched several elements), recorded with the primary locator; then it raises the
  helper's ElementNotFound, whose message names the screen and the selectors tried.

With `timeout`, the locators are tried in rounds until one matches, each round starting with
the primary. The wait recorded is the time the search took. `probe(locator)` is the helper's
own look-up: (how many elements the locator matches, what `find` returns for it).

`send_snapshots(...)` sends one or more kinds of snapshot of a screen with `botwatch.snapshot()`
and never raises: a snapshot that cannot be taken is warned about once and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ..client import sdk

__all__ = ["ElementNotFound", "find_first", "locator_text", "send_snapshots"]


class ElementNotFound(Exception):
    """No locator found exactly the element: the base of each helper's ElementNotFound, which also
    derives from its library's own error (so that the bot's existing handlers still catch it).

    `screen_name` is the screen, `selector` the primary locator, `kind` not_found or ambiguous,
    `selectors` every locator tried, in order."""

    def __init__(self, msg: str, screen: str, selector: str, kind: str = "not_found",
                 selectors: Sequence[str] = ()):
        super().__init__(msg)
        self.msg = msg  # the message alone (Selenium would append a link to its troubleshooting page)
        # `screen_name`, not `screen`: Selenium's exceptions have `screen` for a screenshot
        self.screen_name, self.selector, self.kind = screen, selector, kind
        self.selectors = tuple(selectors) or (selector,)

    def __str__(self) -> str:  # the message alone, without a library's own framing ("Message: ")
        return self.msg or ""


def locator_text(locator) -> str:
    """A locator as it is recorded: the text itself, a (strategy, value) pair as `strategy:value`."""
    if isinstance(locator, tuple) and len(locator) == 2:
        return f"{locator[0]}:{locator[1]}"
    return str(locator)


def find_first(screen: str, locators: Sequence, probe: Callable[[object], tuple[int, object]], *,
               error: type[ElementNotFound], timeout: float = 0.0, poll: float = 0.2, unique: bool = False,
               sleep: Callable[[float], None] = time.sleep, on_failure: Callable[[], object] | None = None,
               bot: str | None = None):
    """What `probe` gives for the first locator that matches (exactly one element when `unique`);
    records the look-up, and raises `error` when none matched within `timeout`."""
    if not locators:
        raise ValueError("find() needs at least one locator")
    started = time.monotonic()
    deadline = started + max(0.0, float(timeout or 0))
    while True:
        ambiguous = None
        for index, loc in enumerate(locators):
            count, found = probe(loc)
            if not count:
                continue
            if unique and count > 1:
                ambiguous = ambiguous or (loc, count)
                continue
            _lookup(screen, locator_text(loc), True, healed=index > 0, wait=time.monotonic() - started, bot=bot)
            return found
        if time.monotonic() >= deadline:
            break
        sleep(max(0.0, min(poll, deadline - time.monotonic())))
    texts = [locator_text(loc) for loc in locators]
    primary = texts[0]
    fallbacks = f" Fallbacks tried: {', '.join(texts[1:])}." if len(texts) > 1 else ""
    if ambiguous is not None:
        kind, selector = "ambiguous", locator_text(ambiguous[0])
        msg = (f"screen {screen}, selector {selector}: {ambiguous[1]} elements match locator "
               f"'{selector}' where one was expected (strict mode violation).{fallbacks}")
    else:
        kind, selector = "not_found", primary
        msg = f"screen {screen}, selector {primary}: Element with locator '{primary}' not found.{fallbacks}"
    _lookup(screen, primary, False, kind=kind, wait=time.monotonic() - started, bot=bot)
    if on_failure is not None:
        on_failure()
    raise error(msg, screen, primary, kind, texts)


def send_snapshots(helper: str, screen: str, kind, kinds: Mapping[str, tuple[str, ...]],
                   take: Callable[[str], object], *, bot: str | None = None) -> dict:
    """Take (`take(one)`) and send each kind of snapshot that `kind` names in `kinds`; the agent's
    drift report of each kind sent (None where there is none: the agent away, say). Never raises."""
    reports: dict = {}
    try:
        chosen = kinds.get(str(kind).lower())
        if chosen is None:
            sdk._warn((f"{helper}-snapshot-kind", str(kind)[:20]), "botwatch: snapshot(kind=%r) is not one of %s; "
                      "nothing sent", kind, ", ".join(kinds))
            return reports
        for one in chosen:
            try:
                content = take(one)
            except Exception as exc:  # a closed window, a dead session: the bot finds out itself
                sdk._warn((f"{helper}-snapshot", one, type(exc).__name__), "botwatch: no %s snapshot of screen %r "
                          "(%s: %s)", one, screen, type(exc).__name__, str(exc).strip()[:200])
                continue
            reports[one] = sdk.snapshot(screen, content, kind=one, bot=bot)
    except Exception as exc:
        sdk._internal_error(f"botwatch.integrations.{helper}.snapshot()", exc)
    return reports


def _lookup(screen, selector, found, *, healed=False, kind=None, wait=None, bot=None) -> None:
    sdk.ui_lookup(screen, selector, found, kind=kind, wait=wait, healed=healed, bot=bot)
