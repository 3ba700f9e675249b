"""The selectors read from a bot's source, as UI drift checks them: each turned from the native
form of its tool into a selector the drift checker matches on a page (CSS, XPath, `id=`,
`name=`; see botwatch.ui.selectors), or set aside as not checkable, with the reason.

- Selenium (`id=x`, `css=...`, `xpath=...`, `name=`, `class=`, `tag=`, `link=`, `partial link=`)
  and Robot Framework's SeleniumLibrary and Browser library (`id:x`, `css:...`, `xpath:...`,
  `//...`, `identifier:`...) map strategy by strategy. A bare Robot locator is not checkable:
  SeleniumLibrary reads it as an id or name, the Browser library as CSS, and the source does not
  say which library a keyword belongs to.
- Playwright: CSS (without Playwright's own pseudo-classes), `xpath=`, `id=`, `data-testid=`, test
  ids and attribute look-ups (`get_by_placeholder`...), and chains of plain CSS. Text, label and
  role selectors match the text or accessibility tree the browser computes, which a snapshot does
  not hold: not checkable.
- UiPath: a web selector's `<webctrl>` attributes (tag, id, name, class, type, href, src, title,
  parentid, parentname, parentclass, css-selector, idx, aaname, innertext) become XPath, `*`
  wildcards included; `aaname` counts only on an element that has no id, name or css-selector
  (it is the text or the label, which the page may hold elsewhere). Desktop selectors (`<wnd>`,
  `<ctrl>`, `<uia>`...), `?` wildcards, regular-expression or fuzzy matching and attributes with
  no counterpart on a page are not checkable.

A checkable selector is attached to the screen its dependency names; one without a screen is
not checkable ("no screen known"): the drift checker compares snapshots screen by screen.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Iterable

from .model import Dependency
from .uipath_values import selector_elements

MAX_PER_SCREEN = 50  # extracted selectors checked per screen: their names are metric labels
NAME_LENGTH = 64  # as the estate file's selector names


@dataclass(frozen=True)
class UiSelector:
    """A selector from the source, in the form the drift checker matches, on its screen."""

    screen: str
    text: str  # what botwatch.ui.selectors.to_xpath takes
    dependency: Dependency

    @property
    def origin(self) -> str:
        return f"{self.dependency.file}:{self.dependency.line}"


@dataclass(frozen=True)
class NotCheckable:
    dependency: Dependency
    reason: str

    def to_json(self) -> dict[str, object]:
        d = self.dependency
        out: dict[str, object] = {"selector": d.value, "tool": d.tool, "file": d.file, "line": d.line,
                                  "reason": self.reason}
        if d.screen:
            out["screen"] = d.screen
        return out


@dataclass
class UiDependencies:
    by_screen: dict[str, list[UiSelector]]
    not_checkable: list[NotCheckable]


def ui_dependencies(dependencies: Iterable[Dependency]) -> UiDependencies:
    """The bot's selectors by screen, and those that cannot be checked. Needs the drift extra
    (each translation is compiled once, as the checker will)."""
    by_screen: dict[str, list[UiSelector]] = {}
    skipped: list[NotCheckable] = []
    for d in sorted(set(dependencies), key=lambda d: (d.file, d.line, d.value)):  # the first in the source wins
        if d.kind != "selector":
            continue
        text, reason = translate(d)
        if text is None:
            skipped.append(NotCheckable(d, reason))
        elif not d.screen:
            skipped.append(NotCheckable(d, "no screen known: the source does not say which screen it is on"))
        else:
            by_screen.setdefault(d.screen, []).append(UiSelector(d.screen, text, d))
    return UiDependencies(by_screen, skipped)


def selector_name(value: str, taken: set[str]) -> str:
    """A metric label for an extracted selector, from its text as the source writes it (so that
    it stays the same when the code around it moves): `id=btnSubmit` is `id-btnSubmit`. A long
    one keeps its tail (the element, in a UiPath selector) and a hash of the whole; one that
    clashes with a name already taken gets the hash too."""
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", value).strip("-.") or "selector"
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    if len(slug) <= NAME_LENGTH and slug not in taken:
        return slug
    return f"{slug[-(NAME_LENGTH - 9):].lstrip('-.')}-{digest}"


# -- translation -----------------------------------------------------------------------------------

def translate(d: Dependency) -> tuple[str | None, str]:
    """(selector the drift checker takes, "") or (None, why it cannot be checked)."""
    by_tool = {"selenium": _selenium, "robotframework": _robot, "playwright": _playwright, "uipath": _uipath,
               "botwatch": _botwatch}
    try:
        return by_tool[d.tool](d.value.strip())
    except _NotCheckable as exc:
        return None, str(exc)


class _NotCheckable(Exception):
    pass


def _checked(text: str) -> tuple[str, str]:
    """`text` when the drift checker compiles it; else not checkable, with the reason."""
    from ..ui.selectors import to_xpath

    try:
        to_xpath(text)
    except ValueError as exc:
        raise _NotCheckable(str(exc)) from None
    return text, ""


def _botwatch(text: str) -> tuple[str, str]:
    """The SDK's and helpers' selectors: the estate file's syntax, or a UiPath selector."""
    return _uipath(text) if text.startswith("<") else _checked(text)


def _lit(value: str) -> str:
    from cssselect.xpath import GenericTranslator

    return GenericTranslator.xpath_literal(value)


def _xpath(path: str) -> tuple[str, str]:
    return _checked("xpath=" + path)


_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def _web_strategy(strategy: str, value: str) -> tuple[str, str]:
    """A SeleniumLibrary / Selenium strategy and its value."""
    if strategy in ("id", "name", "css", "xpath"):
        return _checked(f"{strategy}={value}")
    if strategy == "identifier":
        return _xpath(f"//*[@id = {_lit(value)} or @name = {_lit(value)}]")
    if strategy == "class":
        if not value or any(c.isspace() for c in value):
            raise _NotCheckable(f"class locator {value!r} must be one class name")
        return _xpath(f"//*[contains(concat(' ', normalize-space(@class), ' '), {_lit(' ' + value + ' ')})]")
    if strategy == "tag":
        if not _TAG.match(value):
            raise _NotCheckable(f"tag locator {value!r} is not a tag name")
        return _xpath(f"//{value.lower()}")
    if strategy in ("link", "link text"):
        return _xpath(f"//a[normalize-space(.) = {_lit(' '.join(value.split()))}]")
    if strategy in ("partial link", "partial link text"):
        return _xpath(f"//a[contains(normalize-space(.), {_lit(' '.join(value.split()))})]")
    raise _NotCheckable(f"the {strategy!r} strategy is resolved by the browser at run time, not on a snapshot")


_SELENIUM = re.compile(r"^(id|name|css|xpath|class|tag|link|partial link)=(.*)$", re.S)


def _selenium(text: str) -> tuple[str, str]:
    m = _SELENIUM.match(text)
    if m is None:
        raise _NotCheckable(f"not a Selenium locator: {text!r}")
    return _web_strategy(m.group(1), m.group(2))


_ROBOT_STRATEGY = re.compile(r"^([A-Za-z][A-Za-z -]*?)\s*[:=]\s*(.*)$", re.S)
_ROBOT_WEB = frozenset({"id", "name", "identifier", "css", "xpath", "class", "tag", "link", "partial link"})
_ROBOT_RUNTIME = frozenset({"dom", "jquery", "sizzle", "element", "data", "default", "text", "nth", "id-or-name"})
_ROBOT_DESKTOP_PART = re.compile(r"\s(?:and|or|>)\s+[A-Za-z]+:")


def _robot(text: str) -> tuple[str, str]:
    if ">>" in text:
        return _playwright(text)  # the Browser library's chains
    if text.startswith(("//", "(")):
        return _checked("xpath=" + text)
    if _ROBOT_DESKTOP_PART.search(text):
        raise _NotCheckable("a desktop locator (RPA.Windows, RPA.Desktop): it does not select on a web page")
    m = _ROBOT_STRATEGY.match(text)
    if m is None:
        raise _NotCheckable("a bare locator: SeleniumLibrary reads it as an id or name, the Browser library as "
                            "CSS, and the source does not say which library reads it")
    strategy, value = m.group(1).strip().lower(), m.group(2).strip()
    if strategy in _ROBOT_WEB:
        return _web_strategy(strategy, value)
    if strategy in _ROBOT_RUNTIME:
        raise _NotCheckable(f"the {strategy!r} strategy is resolved by the browser at run time, not on a snapshot")
    raise _NotCheckable(f"the {strategy!r} strategy is not a web one (a desktop, image or custom locator)")


_PW_ATTR = re.compile(r'^\[([A-Za-z_][\w-]*)=("(?:[^"\\]|\\.)*")([si]?)\]$', re.S)
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _attribute_match(attr: str, quoted: str, flag: str) -> str:
    """Playwright's `[attr="v"s]` (exact) or `[attr="v"i]` (a substring, ignoring case) as an XPath test."""
    value = json.loads(quoted)
    if flag == "s":
        return f"@{attr} = {_lit(value)}"
    lower = f"translate(@{attr}, '{_ASCII_UPPER}', '{_ASCII_UPPER.lower()}')"
    return f"contains({lower}, {_lit(value.lower())})"


def _playwright(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(">>")]
    if len(parts) > 1:
        parts = [p[4:].strip() if p.startswith("css=") else p for p in parts]
        if all(p and not re.match(r"^[\w-]+=", p) and not p.startswith(("/", "(", '"', "'", "..")) for p in parts):
            return _checked("css=" + " ".join(parts))  # nested plain CSS: each part inside the one before
        raise _NotCheckable("a chain of Playwright selectors with other engines than CSS")
    engine, _, body = text.partition("=")
    engine = engine.strip()
    if engine in ("internal:testid", "internal:attr"):
        m = _PW_ATTR.match(body)
        if m is None:
            raise _NotCheckable(f"cannot read the attribute of {text!r}")
        return _xpath(f"//*[{_attribute_match(*m.groups())}]")
    if engine in ("internal:role", "role"):
        raise _NotCheckable("a role selector matches the accessibility tree the browser computes, which a page "
                            "snapshot does not hold")
    if engine in ("internal:text", "internal:label", "text", "internal:has-text") or text.startswith(('"', "'")):
        raise _NotCheckable("a text selector matches the text the browser renders, which a snapshot does not model")
    if engine.startswith("internal:") or engine in ("nth", "visible", "internal:control"):
        raise _NotCheckable(f"the Playwright {engine!r} engine has no counterpart on a snapshot")
    if engine in ("css", "xpath", "id"):
        return _checked(f"{engine}={body.strip()}")
    if engine in ("data-testid", "data-test-id", "data-test"):
        return _xpath(f"//*[@{engine} = {_lit(body.strip())}]")
    if text.startswith(("//", "..")):
        return _checked("xpath=" + text)
    try:
        return _checked("css=" + text)
    except _NotCheckable as exc:
        raise _NotCheckable(f"{exc} (Playwright's own pseudo-classes, :has-text() or :visible, are not "
                            "checkable)") from None


# UiPath: the tops and elements of desktop selectors
_DESKTOP_TAGS = frozenset({"wnd", "ctrl", "uia", "java", "sap", "wpf", "silverlight", "tbar"})
_WEB_SIMPLE = ("id", "name", "type", "href", "src", "title", "aria-label")
_WEB_HANDLED = frozenset({"isleaf", "app", "url", "parentid", "parentname", "parentclass", "idx", "css-selector",
                          "tag", "aaname", "class", "innertext", "visibleinnertext"})


def _uipath(text: str) -> tuple[str, str]:
    elements = selector_elements(text)
    if elements is None:
        raise _NotCheckable("not a UiPath selector (a chain of <element attr='...'/>)")
    if any(tag in _DESKTOP_TAGS for tag, _ in elements):
        raise _NotCheckable("a desktop selector: it does not select on a web page")
    if elements[0][0] == "html":
        elements = elements[1:]
    if not elements:
        raise _NotCheckable("it names the page only, no element on it")
    path = ""
    for tag, attrs in elements:
        if tag != "webctrl":
            raise _NotCheckable(f"<{tag}> elements have no counterpart on a web page")
        path += _webctrl(attrs)
        idx = attrs.get("idx", "")
        if idx.isdigit() and int(idx) > 0:
            path = f"({path})[{int(idx)}]"  # the idx-th of the elements matched so far
    return _xpath(path)


def _value_test(expr: str, value: str) -> str | None:
    """An XPath test of `expr` against a UiPath value with `*` wildcards (None: anything matches)."""
    if "?" in value:
        raise _NotCheckable(f"the '?' wildcard in {value!r}")
    if "*" not in value:
        return f"{expr} = {_lit(value)}"
    parts = value.split("*")
    tests = []
    if parts[0]:
        tests.append(f"starts-with({expr}, {_lit(parts[0])})")
    if parts[-1]:
        tail = parts[-1]
        tests.append(f"substring({expr}, string-length({expr}) - {len(tail) - 1}) = {_lit(tail)}")
    tests += [f"contains({expr}, {_lit(p)})" for p in parts[1:-1] if p]
    return " and ".join(tests) or None


def _webctrl(attrs: dict[str, str]) -> str:
    """One <webctrl> as XPath steps (its parent's, then its own; `idx` is the caller's)."""
    for key, value in attrs.items():
        if key.startswith(("matching:", "fuzzylevel:")) and value.strip().lower() not in ("", "exact"):
            raise _NotCheckable(f"{key}='{value}': regular-expression or fuzzy matching")
        if key not in _WEB_HANDLED and key not in _WEB_SIMPLE and not key.startswith(("matching:", "fuzzylevel:",
                                                                                           "omit:")):
            raise _NotCheckable(f"the {key!r} attribute has no counterpart on a page")
    prefix = ""
    for key, attr in (("parentid", "id"), ("parentname", "name"), ("parentclass", "class")):
        if attrs.get(key):
            test = _value_test(f"@{attr}", attrs[key])
            if test:
                prefix += f"//*[{test}]"
    tests = [t for k in _WEB_SIMPLE if k in attrs and (t := _value_test(f"@{k}", attrs[k]))]
    if attrs.get("class"):
        test = _value_test("normalize-space(@class)", " ".join(attrs["class"].split()))
        if test:
            tests.append(test)
    for key in ("innertext", "visibleinnertext"):
        if attrs.get(key):
            test = _value_test("normalize-space(.)", " ".join(attrs[key].split()))
            if test:
                tests.append(test)
    strong = any(attrs.get(k) for k in ("id", "name", "css-selector"))
    if attrs.get("aaname") and not strong:
        name = " ".join(attrs["aaname"].split())
        alternatives = [t for e in ("normalize-space(.)", "@aria-label", "@title", "@value", "@placeholder", "@alt")
                        if (t := _value_test(e, name))]
        if alternatives:
            tests.append("(" + " or ".join(alternatives) + ")")
    tag = attrs.get("tag", "").lower()
    step = "//" + (tag if _TAG.match(tag) else "*")
    if attrs.get("css-selector"):
        step = _css_steps(attrs["css-selector"], tag)
    return prefix + step + "".join(f"[{t}]" for t in tests)


def _css_steps(css: str, tag: str) -> str:
    """A `css-selector` attribute as XPath steps, from anywhere in the page (one selector, no list)."""
    from cssselect import HTMLTranslator, SelectorError

    if "," in css:
        raise _NotCheckable(f"css-selector {css!r} is a list of selectors")
    try:
        path = HTMLTranslator().css_to_xpath(css, prefix="//")
    except (SelectorError, Exception) as exc:
        raise _NotCheckable(f"css-selector {css!r}: {exc}") from None
    if tag and _TAG.match(tag):
        path += f"[self::{tag}]"
    return path
