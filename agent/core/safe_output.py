"""Text from outside botwatch made safe to print or to open in a spreadsheet.

Process names and command lines, an agent's answers, error messages and estate fields are
written by others. On a terminal, a control character in them is obeyed: an ESC sequence can
move the cursor, clear or rewrite the screen, set the window title or hide text, and C1
controls (U+0080..U+009F) act like ESC on some terminals. `for_terminal` shows every control
character (all of C0, DEL and C1) as an escape (`\\x1b`, `\\n`) instead, and also
bidirectional overrides and line/paragraph separators, which reorder or split what is shown.

In a spreadsheet, a CSV cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
read as a formula (`=HYPERLINK(...)`, `=cmd|...`). `csv_cell` prefixes such a cell with a
single quote, as OWASP advises, so that it is shown as the text it is; numbers stay numbers
(a negative number, `-0.25`, is a number, not a formula).
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def for_terminal(value: object) -> str:
    """`value` as text with every control character shown as an escape (see the module docstring)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: object) -> str | int | float:
    """A value for csv.writer: None as an empty cell, numbers as they are, text escaped for a
    terminal (`botwatch inventory` prints to one) and quoted when a spreadsheet would read it
    as a formula."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else str(value)
    formula = text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text)
    text = for_terminal(text)
    return "'" + text if formula else text
