"""How a Python bot's locators are written down as dependency values, so that each can be matched
on a page later with the strategy it was written for.

Selenium: `strategy=value` with SeleniumLibrary's strategy names (`id=submit`, `css=#total`,
`xpath=//a`, `name=q`, `class=btn`, `tag=nav`, `link=Docs`, `partial link=Doc`): the form the
estate's declared selectors and botwatch's Selenium helper accept for id, name, css and xpath.

Playwright: its own selector text, as `page.locator()` takes it and as Playwright itself renders
a locator: `get_by_role("button", name="Save")` is `internal:role=button[name="Save"i]`,
`get_by_text("Go")` is `internal:text="Go"i`, chained locators are joined with ` >> `.
"""

from __future__ import annotations

import json
import re
from typing import Callable

# Selenium's By constants: the attribute name and the string value (By.ID == "id") -> the prefix
BY_ATTRIBUTES = {"ID": "id", "NAME": "name", "XPATH": "xpath", "CSS_SELECTOR": "css", "CLASS_NAME": "class",
                 "TAG_NAME": "tag", "LINK_TEXT": "link", "PARTIAL_LINK_TEXT": "partial link"}
BY_VALUES = {"id": "id", "name": "name", "xpath": "xpath", "css selector": "css", "class name": "class",
             "tag name": "tag", "link text": "link", "partial link text": "partial link"}
# the Selenium 3 finders: find_element_by_<suffix>
BY_SUFFIXES = {"id": "id", "name": "name", "xpath": "xpath", "css_selector": "css", "class_name": "class",
               "tag_name": "tag", "link_text": "link", "partial_link_text": "partial link"}


def selenium_locator(strategy: str, value: str) -> str:
    """`id=submit`: a Selenium locator as SeleniumLibrary writes it (strategy from BY_*)."""
    return f"{strategy}={value}"


def text_selector(text: str, exact: bool) -> str:
    """A text matched as Playwright's get_by_text/get_by_label match it: JSON-quoted, then `s`
    (exact, case-sensitive) or `i` (ignoring case, a substring)."""
    return json.dumps(text, ensure_ascii=False) + ("s" if exact else "i")


def attribute_selector(value: str, exact: bool) -> str:
    """A value inside a Playwright `[attr=...]` selector (name of a role, placeholder...)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' + ("s" if exact else "i")


def regex_selector(pattern: str, ignore_case: bool) -> str:
    """A regular expression as Playwright writes it in a selector: /pattern/flags."""
    escaped = re.sub(r'(^|[^\\])(\\\\)*(["\'`])', r"\1\2\\\3", pattern).replace(">>", "\\>\\>")
    return "/" + escaped + "/" + ("i" if ignore_case else "")


def role_selector(role: str, props: list[tuple[str, str]]) -> str:
    """`internal:role=button[name="Save"i]`: props in Playwright's order, values already quoted."""
    return f"internal:role={role}" + "".join(f"[{name}={value}]" for name, value in props)


# get_by_* methods whose one argument is a text: how each turns into a selector
TEXT_FINDERS: dict[str, Callable[[str], str]] = {
    "get_by_text": lambda quoted: "internal:text=" + quoted,
    "get_by_label": lambda quoted: "internal:label=" + quoted,
    "get_by_placeholder": lambda quoted: f"internal:attr=[placeholder={quoted}]",
    "get_by_alt_text": lambda quoted: f"internal:attr=[alt={quoted}]",
    "get_by_title": lambda quoted: f"internal:attr=[title={quoted}]",
}
# the order get_by_role writes its options in (Playwright's locator_utils)
ROLE_OPTIONS = ("checked", "disabled", "selected", "expanded", "include_hidden", "level", "name", "description",
                "pressed")


def test_id_selector(test_id: str) -> str:
    return f"internal:testid=[data-testid={attribute_selector(test_id, True)}]"


def chain(parts: list[str]) -> str:
    return " >> ".join(parts)


def has_selector(inner: str) -> str:
    return "internal:has=" + json.dumps(inner, ensure_ascii=False)


def has_not_selector(inner: str) -> str:
    return "internal:has-not=" + json.dumps(inner, ensure_ascii=False)


ENTER_FRAME = "internal:control=enter-frame"

# names of environment variables that hold a secret: a part (split at _ - .) that is one of these,
# or a name containing a longer one (DBPASSWORD)
_SECRET_PARTS = frozenset({"KEY", "PWD", "PASS", "PIN", "APIKEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD",
                           "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "AUTH"})
_SECRET_WORDS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL")


def names_a_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (APP_PASSWORD, API_KEY)."""
    upper = name.upper()
    if any(word in upper for word in _SECRET_WORDS):
        return True
    return any(part in _SECRET_PARTS for part in re.split(r"[^A-Z0-9]+", upper))
