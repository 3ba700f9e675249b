"""Robot Framework variables as the extractor resolves them: the plain scalars of Variables
sections (`${SUBMIT}    id:submit`) and of `${x} =    Set Variable    value` / `VAR    ${x}    value`
in a test or keyword body, substituted into an argument where their value is known.

A value is only what the source writes: built-in variables (`${OUTPUT_DIR}`, `${/}`), environment
variables, extended syntax (`${order}[item]`, `${row.name}`), arguments and keyword results stay as
written. Substitution is bounded (depth and length), so cycles and growth stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .robot_keywords import normalize

MAX_DEPTH = 8
MAX_LENGTH = 4096


@dataclass(frozen=True)
class Definition:
    name: str  # as written, without a trailing `=`: `${SUBMIT}`
    value: str  # the raw value, variables not substituted
    file: str
    line: int  # the line of the value itself (a `...` continuation line when it is there)


def search(text: str) -> Any:
    """Robot Framework's own search for the first variable in `text` (falsy when there is none)."""
    from robot.variables import search_variable  # type: ignore[import-untyped]
    return search_variable(text, ignore_errors=True)


def scalar_name(written: str) -> str | None:
    """The normalised name of `${name}`, `${name} =` or `${name}=default` (an argument with a
    default), or None when `written` does not start with a plain scalar."""
    match = search(written)
    if not match or match.identifier != "$" or match.before or match.items:
        return None
    if match.after.strip() and not match.after.lstrip().startswith("="):
        return None
    base = match.base
    if not base or search(base) or base.startswith("{"):  # `${a${b}}`, inline Python `${{ }}`
        return None
    return normalize(base)


def is_lone_variable(text: str) -> bool:
    """`text` is one variable reference, of any kind, with nothing around it: its value is unknown."""
    match = search(text)
    return bool(match) and not match.before and not match.after


class Scope:
    """The variables an argument can use: the body's own (innermost), then each Variables
    section in the order Robot Framework looks them up (the file, then its resources)."""

    def __init__(self, tables: list[dict[str, Definition]]) -> None:
        self.local: dict[str, Definition | None] = {}  # None: an argument or a keyword's result
        self.tables = tables

    def define(self, written: str, value: str, file: str, line: int) -> None:
        key = scalar_name(written)
        if key is not None:
            self.local[key] = Definition(search(written).match, value, file, line)

    def shadow(self, written: str) -> None:
        """`written` is assigned at run time (an argument, a loop variable, a keyword's result)."""
        key = scalar_name(written)
        if key is not None:
            self.local[key] = None

    def lookup(self, key: str) -> Definition | None:
        if key in self.local:
            return self.local[key]
        for table in self.tables:
            if key in table:
                return table[key]
        return None

    def resolve(self, text: str) -> str:
        """`text` with each variable of known value substituted; the others left as written. A
        variable whose own value resolves to a lone unknown variable is left as written too."""
        resolved = self._resolve(text, 0, {})
        return text if resolved is None else resolved

    def _resolve(self, text: str, depth: int, known: dict[str, str]) -> str | None:
        """None when the value grows beyond MAX_LENGTH."""
        # `known`: each variable's value once worked out, so that values naming others many
        # times over are not worked out again (the work stays linear in the definitions)
        if len(text) > MAX_LENGTH:
            return None
        if depth > MAX_DEPTH:
            return text
        out: list[str] = []
        size = 0
        rest = text
        while rest:
            match = search(rest)
            if not match:
                out.append(rest)
                break
            value = self._value(match, depth, known)
            out += (match.before, value)
            size += len(match.before) + len(value)
            if size > MAX_LENGTH:
                return None
            rest = match.after
        return "".join(out)

    def _value(self, match: Any, depth: int, known: dict[str, str]) -> str:
        written = str(match.match)
        if match.identifier != "$" or match.items:
            return written
        base = match.base
        if not base or search(base) or base.startswith("{"):
            return written
        key = normalize(base)
        if key not in known:
            definition = self.lookup(key)
            known[key] = written  # while it is worked out: a cycle meets it unresolved
            if definition is not None:
                value = self._resolve(definition.value, depth + 1, known)
                known[key] = written if value is None or is_lone_variable(value) else value
        return known[key]
