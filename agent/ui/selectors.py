"""Declared selectors: the elements a bot depends on, as it names them, turned into XPath.

A selector is CSS by default and XPath when it starts with `/` or `(`. The prefixes of Robot
Framework's SeleniumLibrary and Browser library are accepted too: `css:`/`css=`,
`xpath:`/`xpath=`, `id:`/`id=` (the element whose id attribute is that value) and
`name:`/`name=` (whose name attribute is). Every selector is compiled once (cssselect turns CSS
into XPath 1.0, lxml compiles the XPath) and counted against a snapshot's element tree.

On an accessibility tree the elements are the nodes' roles (lower case) with the attributes
`name`, `value` and `description`, so `button[name="Submit"]` or `//textbox[@name="Amount"]`
select there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# the strategy prefix of SeleniumLibrary and Browser locators (css:, xpath=, id:, name=)
LOCATOR_PREFIX = re.compile(r"^(css|xpath|id|name)\s*[:=]\s*", re.I)


@dataclass(frozen=True)
class Selector:
    """One declared selector: its name (the metric label), its text and its XPath form."""

    name: str
    text: str
    syntax: str  # css | xpath | id | name
    xpath: str
    origin: str = ""  # "" for the estate file's; FILE:LINE for one read from the bot's source

    def count(self, root) -> int:
        return len(self.select(root))

    def select(self, root) -> list:
        """The elements it matches under `root` (an lxml element), in document order."""
        result = _compiled(self.xpath)(root)
        if not isinstance(result, list):
            return []
        return [e for e in result if isinstance(getattr(e, "tag", None), str)]


def _literal(value: str) -> str:
    from cssselect.xpath import GenericTranslator

    return GenericTranslator.xpath_literal(value)


def to_xpath(text: str) -> tuple[str, str]:
    """(syntax, XPath) of a selector; ValueError with a readable message when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a selector must be a non-empty string")
    s = text.strip()
    syntax, body = "css", s
    m = LOCATOR_PREFIX.match(s)
    if m:
        syntax, body = m.group(1).lower(), s[m.end():].strip()
        if not body:
            raise ValueError(f"selector {text!r} has a {syntax!r} prefix but nothing after it")
    elif s.startswith(("/", "(")):
        syntax = "xpath"
    if syntax == "xpath":
        xpath = body
    elif syntax == "id":
        xpath = f"descendant-or-self::*[@id = {_literal(body)}]"
    elif syntax == "name":
        xpath = f"descendant-or-self::*[@name = {_literal(body)}]"
    else:
        from cssselect import HTMLTranslator, SelectorError

        try:
            xpath = HTMLTranslator().css_to_xpath(body)
        except SelectorError as exc:
            raise ValueError(f"invalid CSS selector {text!r}: {exc}") from None
        except Exception as exc:  # cssselect raises a few others on odd input
            raise ValueError(f"invalid CSS selector {text!r}: {exc}") from None
    try:
        _compiled(xpath)
    except Exception as exc:
        what = "XPath" if syntax == "xpath" else "selector"
        raise ValueError(f"invalid {what} {text!r}: {exc}") from None
    return syntax, xpath


@lru_cache(maxsize=4096)
def _compiled(xpath: str):
    from lxml import etree

    return etree.XPath(xpath)


def compile_selectors(declared: dict[str, str]) -> dict[str, Selector]:
    out = {}
    for name, text in declared.items():
        syntax, xpath = to_xpath(text)
        out[name] = Selector(name, text, syntax, xpath)
    return out
