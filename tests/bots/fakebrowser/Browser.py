"""A stand-in for the Browser library (Robot Framework + Playwright) over a page held in memory.

Its keywords have the Browser library's names and argument names (`selector`), and fail with
the Browser library's messages, so that the botwatch listener sees what it sees with the real
library; the page is whatever `Show Page` last said it holds.
"""

import time

from robot.api.deco import keyword, library


class PlaywrightError(Exception):
    ROBOT_SUPPRESS_NAME = True


@library(scope="GLOBAL")
class Browser:
    def __init__(self):
        self.page = {}  # selector -> how many elements it matches
        self.later = {}  # selector -> look-ups that miss it before it appears

    @keyword("Show Page")
    def show_page(self, *elements):
        """`Show Page    id:a    css:.row=3`: the selectors the page answers, with their counts."""
        self.page = {}
        for item in elements:
            name, sep, count = item.rpartition("=")
            self.page[name if sep and count.isdigit() else item] = int(count) if sep and count.isdigit() else 1

    @keyword("Appear Later")
    def appear_later(self, selector_text, misses):
        """The element of `selector_text` is missed by the next `misses` look-ups, then found."""
        self.later[selector_text] = int(misses)

    def _find(self, selector, action, timeout_ms=100):
        if self.later.get(selector, 0) > 0:
            self.later[selector] -= 1
            count = 0
        else:
            count = self.page.get(selector, 0)
        if count == 0:
            raise PlaywrightError(f"TimeoutError: locator.{action}: Timeout {timeout_ms}ms exceeded.\n"
                                  f"Call log:\n  - waiting for locator('{selector}')")
        if count > 1:
            raise PlaywrightError(f"Error: locator.{action}: Error: strict mode violation: locator('{selector}') "
                                  f"resolved to {count} elements:")

    @keyword("Click")
    def click(self, selector, button="left"):
        self._find(selector, "click")

    @keyword("Fill Text")
    def fill_text(self, selector, txt):
        self._find(selector, "fill")

    @keyword("Get Text")
    def get_text(self, selector, assertion_operator=None, assertion_expected=None):
        self._find(selector, "textContent")
        if assertion_operator == "==" and assertion_expected != "Total: 120.50":
            raise AssertionError(f"Text 'Total: 120.50' (str) should be '{assertion_expected}' (str)")
        return "Total: 120.50"

    @keyword("Wait For Elements State")
    def wait_for_elements_state(self, selector, state="visible", timeout="1s"):
        time.sleep(0.05)
        if state in ("detached", "hidden"):
            if self.page.get(selector, 0):
                raise PlaywrightError("TimeoutError: locator.waitFor: Timeout 1000ms exceeded.")
            return
        self._find(selector, "waitFor", 1000)

    @keyword("Get Element Count")
    def get_element_count(self, selector):
        return self.page.get(selector, 0)

    @keyword("Get Page Source")
    def get_page_source(self):
        return "<html><body>" + "".join(f"<p>{s}</p>" for s in self.page) + "</body></html>"
