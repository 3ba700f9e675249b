"""What a UiPath workflow's property values say: literal strings, and the tops of selectors.

A property is written as an attribute (`QueueType="Invoices"`) or as a property element holding
an argument (`<ui:GetRobotAsset.AssetName><InArgument ...>[expr]</InArgument>`). Its value is a
literal or an expression:

- a bare attribute value is a literal (`{}` escapes one that starts with `{`);
- `{x:Null}` and other markup extensions are no value;
- `[...]` is a Visual Basic expression; it counts only when it is a single string literal
  (`["Invoices"]`, `""` standing for a quote), anything else (`[in_Config("Queue").ToString]`,
  `["https://" + host]`) is skipped: its value is known only when the bot runs;
- `<CSharpValue>` holds a C# expression, taken on the same terms (`"Invoices"`, `@"C:\\in"`).

A selector is a chain of elements (`<wnd app='sap.exe' title='SAP Easy Access' /><ctrl ... />`).
Its top is the first element when that names the application (`app=`): a window or a browser
page. The top gives the application and the screen (its `title=`, else its `url=`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Top", "literal", "string_literal", "selector_top", "selector_elements"]

_VB_STRING = re.compile(r'\s*"((?:[^"]|"")*)"\s*', re.S)
_CS_STRING = re.compile(r'\s*"((?:[^"\\\r\n]|\\.)*)"\s*', re.S)
_CS_VERBATIM = re.compile(r'\s*@"((?:[^"]|"")*)"\s*', re.S)
_CS_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|x[0-9A-Fa-f]{1,4}|.)", re.S)
_CS_SIMPLE = {"'": "'", '"': '"', "\\": "\\", "0": "\0", "a": "\a", "b": "\b", "f": "\f", "n": "\n",
              "r": "\r", "t": "\t", "v": "\v"}

# the first element of a selector: <tag attr='v' attr="v" ... /> (attribute values end at their quote)
_FIRST = re.compile(r"\s*<\s*([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*(?:'[^']*'|\"[^\"]*\"))*)\s*/?>")
_ATTR = re.compile(r"([\w:.-]+)\s*=\s*(?:'([^']*)'|\"([^\"]*)\")")
_SELECTOR_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}
_SELECTOR_ENTITY = re.compile("|".join(_SELECTOR_ENTITIES))


def string_literal(expression: str, language: str = "vb") -> str | None:
    """The string an expression is when it is one string literal ("vb" or "csharp"), else None."""
    if language == "csharp":
        if m := _CS_VERBATIM.fullmatch(expression):
            return m.group(1).replace('""', '"')
        if m := _CS_STRING.fullmatch(expression):
            return _CS_ESCAPE.sub(_cs_unescape, m.group(1))
        return None
    if m := _VB_STRING.fullmatch(expression):
        return m.group(1).replace('""', '"')
    return None


def _cs_unescape(m: re.Match[str]) -> str:
    code = m.group(1)
    if code[0] in "uUx" and len(code) > 1:
        return chr(min(int(code[1:], 16), 0x10FFFF))
    return _CS_SIMPLE.get(code, code)


def literal(value: str) -> str | None:
    """The literal string a XAML property value stands for; None for an expression or none."""
    if value.startswith("{}"):
        return value[2:]
    if value.startswith("{"):
        return None  # {x:Null}, {Binding ...}: markup extensions
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return string_literal(stripped[1:-1])
    return value


@dataclass(frozen=True)
class Top:
    """The top of a selector: the application and the window or page it names."""

    tag: str  # wnd, html, uia, java, sap...
    app: str
    title: str
    url: str

    @property
    def screen(self) -> str:
        return self.title or self.url


def selector_top(selector: str) -> Top | None:
    """The top of a selector when its first element names the application (`app=`), else None
    (a partial selector, meaningful inside the window or page of its container)."""
    m = _FIRST.match(selector)
    if m is None:
        return None
    attrs = {a.group(1).lower(): _unescape(a.group(2) if a.group(2) is not None else a.group(3))
             for a in _ATTR.finditer(m.group(2))}
    app = attrs.get("app", "")
    if not app:
        return None
    return Top(m.group(1).lower(), app, attrs.get("title", ""), attrs.get("url", ""))


def selector_elements(selector: str) -> list[tuple[str, dict[str, str]]] | None:
    """Each element of a selector in order, as (tag in lower case, attributes with lower-case
    names and unescaped values); None when the text is not a chain of elements."""
    out = []
    pos = 0
    while pos < len(selector) and selector[pos:].strip():
        m = _FIRST.match(selector, pos)
        if m is None:
            return None
        out.append((m.group(1).lower(), {a.group(1).lower(): _unescape(a.group(2) if a.group(2) is not None
                                                                       else a.group(3))
                                         for a in _ATTR.finditer(m.group(2))}))
        pos = m.end()
    return out or None


def _unescape(value: str) -> str:
    """A selector attribute's value: selectors escape `&`, `<`, `'` as XML does (`&amp;Save`)."""
    return _SELECTOR_ENTITY.sub(lambda m: _SELECTOR_ENTITIES[m.group(0)], value) if "&" in value else value
