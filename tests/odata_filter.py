"""OData v4 `$filter` and `$orderby` for the Orchestrator stand-in: parsed, type-checked against
the entity's fields before any row is read, and turned into Python predicates and sort keys.

The subset is the one the Orchestrator API guide and its clients use: `eq ne gt ge lt le`,
`and or not`, parentheses, `contains/startswith/endswith`, string literals in single quotes (`''`
is a quote), numbers, `null`, `true`/`false`, bare GUIDs, bare DateTimeOffset literals
(`2024-01-01T00:00:00Z`, `2024-01-01T00:00:00.123+00:00`; in a URL the `+` must be sent as `%2B`,
a bare `+` is a space), enum members by name or by number in quotes (`State eq 'Faulted'`,
`Status eq '0'` as on the rate-limits page), typed enum literals (`Ns.JobState'Faulted'`), and
paths through navigation and complex properties (`Robot/Name`).

Decided here, not verified against a real Orchestrator:
- `datetime'...'` is the OData v2/v3 spelling and has no place in v4 (whose JSON this API speaks:
  `@odata.context`), so it is a syntax error, as a v4 service answers it.
- A GUID or DateTimeOffset property compared with a quoted string, or an enum with a bare number,
  is the v4 library's "incompatible types" error.
- Strings compare case-insensitively, as Orchestrator's SQL Server database does under the
  case-insensitive collation its install guide asks for.
- Null is two-valued: `null eq null` is true; an ordering comparison with null is false.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable, Mapping, TypeVar, Union

STRING = "Edm.String"
INT = "Edm.Int64"
DOUBLE = "Edm.Double"
BOOL = "Edm.Boolean"
DATETIME = "Edm.DateTimeOffset"
GUID = "Edm.Guid"
UNTYPED = "Edm.Untyped"  # open objects, arrays and complex values: present, not comparable
NUMERIC = {INT, DOUBLE, "Edm.Int32"}


class ODataQueryError(ValueError):
    """A query option the service refuses; the message is what it would say."""


@dataclass(frozen=True)
class FieldType:
    edm: str  # an Edm type, or the enum's type name
    members: tuple[str, ...] = ()  # an enum's members in declaration order: index = number

    @property
    def is_enum(self) -> bool:
        return bool(self.members)


Record = Mapping[str, Any]
Resolver = Callable[[str], FieldType]  # a property path's type; raises ODataQueryError if unknown
Getter = Callable[[Record, str], Any]  # a property path's raw value in a record
Predicate = Callable[[Record], bool]
R = TypeVar("R", bound=Record)

# ---------------------------------------------------------------------------------------- values

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})$")


@lru_cache(maxsize=65536)
def parse_datetime(text: str) -> datetime:
    """A DateTimeOffset as the API writes it (1 to 7 fractional digits, `Z` or an offset)."""
    m = _DATETIME.match(text)
    if not m:
        raise ValueError(f"not a DateTimeOffset: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0").ljust(7, "0")[:6])
    if zone == "Z":
        tz = timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tz)


def typed(value: Any, ftype: FieldType) -> Any:
    """A raw record value in a form that compares the way the service compares it."""
    if value is None:
        return None
    if ftype.is_enum:
        return ftype.members.index(value) if value in ftype.members else None
    if ftype.edm == DATETIME:
        return parse_datetime(value)
    if ftype.edm in (STRING, GUID):
        return str(value).casefold()
    return value


# ---------------------------------------------------------------------------------------- tokens

_TOKEN = re.compile(r"""
   (?P<ws>\s+)
 | (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,)
 | (?P<string>'(?:[^']|'')*')
 | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])
 | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))(?![\w:.])
 | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.:-])
 | (?P<typed>[A-Za-z_][\w.]*'(?:[^']|'')*')
 | (?P<name>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)
""", re.VERBOSE)

_COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
                "lt": operator.lt, "le": operator.le}
_OPERATOR_KINDS = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
                   "lt": "LessThan", "le": "LessThanOrEqual"}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda s, t: t in s, "startswith": lambda s, t: s.startswith(t), "endswith": lambda s, t: s.endswith(t)}
_V3_LITERALS = {"datetime", "datetimeoffset", "guid", "time", "binary", "x"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.lastgroup is None:
            raise _syntax(text, pos)
        if m.lastgroup != "ws":
            tokens.append(Token(m.lastgroup, m.group(), pos))
        pos = m.end()
    return tokens


def _syntax(text: str, pos: int) -> ODataQueryError:
    return ODataQueryError(f"Syntax error at position {pos} in '{text}'.")


# ------------------------------------------------------------------------------------------ tree


@dataclass(frozen=True)
class Literal:
    edm: str  # STRING, INT, DOUBLE, BOOL, GUID, DATETIME, "null", or "enum" (a typed enum literal)
    value: Any


@dataclass(frozen=True)
class Path:
    path: str


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node = Union[Literal, Path, Compare, Logical, Not, Call]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.text in words:
            self.i += 1
            return tok.text
        return None

    def expect(self, kind: str) -> Token:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise _syntax(self.text, tok.pos if tok else len(self.text))
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.disjunction()
        tok = self.peek()
        if tok is not None:
            raise _syntax(self.text, tok.pos)
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.keyword("or"):
            node = Logical("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.keyword("and"):
            node = Logical("and", node, self.negation())
        return node

    def negation(self) -> Node:
        if self.keyword("not"):
            return Not(self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.primary()
        op = self.keyword(*_COMPARISONS)
        return Compare(op, left, self.primary()) if op else left

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise _syntax(self.text, len(self.text))
        self.i += 1
        if tok.kind == "lparen":
            node = self.disjunction()
            self.expect("rparen")
            return node
        if tok.kind == "string":
            return Literal(STRING, tok.text[1:-1].replace("''", "'"))
        if tok.kind == "guid":
            return Literal(GUID, tok.text.lower())
        if tok.kind == "datetime":
            return Literal(DATETIME, parse_datetime(tok.text))
        if tok.kind == "number":
            if any(c in tok.text for c in ".eE"):
                return Literal(DOUBLE, float(tok.text))
            number = int(tok.text)
            return Literal("Edm.Int32" if -2**31 <= number < 2**31 else INT, number)
        if tok.kind == "typed":
            prefix, _, quoted = tok.text.partition("'")
            if prefix.lower() in _V3_LITERALS:  # OData v2/v3 typed literals are not v4 syntax
                raise _syntax(self.text, tok.pos)
            return Literal("enum", quoted[:-1].replace("''", "'"))
        if tok.kind == "name":
            words = {"null": Literal("null", None), "true": Literal(BOOL, True), "false": Literal(BOOL, False)}
            if tok.text in words:
                return words[tok.text]
            nxt = self.peek()
            if nxt is not None and nxt.kind == "lparen" and tok.text in _FUNCTIONS:
                self.i += 1
                args = [self.disjunction()]
                while (sep := self.peek()) is not None and sep.kind == "comma":
                    self.i += 1
                    args.append(self.disjunction())
                self.expect("rparen")
                return Call(tok.text, tuple(args))
            if tok.text in ("and", "or", "not", *_COMPARISONS):
                raise _syntax(self.text, tok.pos)
            return Path(tok.text)
        raise _syntax(self.text, tok.pos)


def parse_filter(text: str) -> Node:
    if not text.strip():
        raise _syntax(text, 0)
    return _Parser(text).parse()


# -------------------------------------------------------------------------------------- compiler

Operand = tuple[Union[FieldType, None], Callable[[Record], Any]]  # type (None: null), value of a row


def compile_filter(text: str, resolve: Resolver, get: Getter) -> Predicate:
    """A predicate for `$filter=text`; every type error is raised here, before any row is read."""
    return _Compiler(resolve, get).boolean(parse_filter(text))


class _Compiler:
    def __init__(self, resolve: Resolver, get: Getter):
        self.resolve, self.get = resolve, get

    def boolean(self, node: Node) -> Predicate:
        if isinstance(node, Logical):
            left, right = self.boolean(node.left), self.boolean(node.right)
            if node.op == "and":
                return lambda r: left(r) and right(r)
            return lambda r: left(r) or right(r)
        if isinstance(node, Not):
            inner = self.boolean(node.operand)
            return lambda r: not inner(r)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Path) and self.resolve(node.path).edm == BOOL:
            path = node.path
            return lambda r: self.get(r, path) is True
        if isinstance(node, Literal) and node.edm == BOOL:
            constant = bool(node.value)
            return lambda r: constant
        raise ODataQueryError("The $filter expression must evaluate to a single boolean value.")

    def operand(self, node: Node, other: Node) -> Operand:
        if isinstance(node, Path):
            ftype = self.resolve(node.path)
            path, get = node.path, self.get
            return ftype, lambda r: typed(get(r, path), ftype)
        if isinstance(node, Literal):
            if node.edm == "null":
                return None, lambda r: None
            other_type = self.resolve(other.path) if isinstance(other, Path) else None
            if other_type is not None and other_type.is_enum and node.edm in (STRING, "enum"):
                number = _enum_number(node.value, other_type)
                return other_type, lambda r: number
            if node.edm == "enum":
                raise ODataQueryError(f"The string '{node.value}' is not a valid enumeration type constant.")
            value = node.value.casefold() if node.edm in (STRING, GUID) else node.value
            return FieldType(node.edm), lambda r: value
        raise ODataQueryError("Only properties and literals can be compared.")

    def compare(self, node: Compare) -> Predicate:
        (ltype, left), (rtype, right) = self.operand(node.left, node.right), self.operand(node.right, node.left)
        if ltype is not None and rtype is not None and not _comparable(ltype, rtype):
            raise ODataQueryError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{ltype.edm}' and '{rtype.edm}' for operator kind '{_OPERATOR_KINDS[node.op]}'.")
        if node.op == "eq":
            return lambda r: left(r) == right(r)
        if node.op == "ne":
            return lambda r: left(r) != right(r)
        test = _COMPARISONS[node.op]

        def ordered(r: Record) -> bool:
            a, b = left(r), right(r)
            return a is not None and b is not None and bool(test(a, b))
        return ordered

    def call(self, node: Call) -> Predicate:
        if len(node.args) != 2 or not isinstance(node.args[0], Path) or not isinstance(node.args[1], Literal) \
                or node.args[1].edm != STRING or self.resolve(node.args[0].path).edm != STRING:
            raise ODataQueryError(f"No function signature for the function with name '{node.name}' matches "
                                  "the specified arguments.")
        path, needle, test, get = node.args[0].path, str(node.args[1].value).casefold(), _FUNCTIONS[node.name], self.get

        def matches(r: Record) -> bool:
            value = get(r, path)
            return isinstance(value, str) and bool(test(value.casefold(), needle))
        return matches


def _enum_number(text: str, ftype: FieldType) -> int:
    if text in ftype.members:
        return ftype.members.index(text)
    if text.isdigit() and int(text) < len(ftype.members):
        return int(text)
    raise ODataQueryError(f"The string '{text}' is not a valid enumeration type constant.")


def _comparable(a: FieldType, b: FieldType) -> bool:
    if UNTYPED in (a.edm, b.edm):
        return False
    if a.edm in NUMERIC and b.edm in NUMERIC:
        return True
    return a.edm == b.edm


# --------------------------------------------------------------------------------------- orderby

_ORDER_ITEM = re.compile(r"\s*([A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)(?:\s+(asc|desc))?\s*$")


def compile_orderby(text: str, resolve: Resolver, get: Getter) -> list[tuple[Callable[[Record], Any], bool]]:
    """Sort keys for `$orderby=text`, most significant first, with `True` for descending."""
    clauses: list[tuple[Callable[[Record], Any], bool]] = []
    for item in text.split(","):
        m = _ORDER_ITEM.match(item)
        if not m:
            raise ODataQueryError(f"Syntax error at position {text.find(item)} in '{text}'.")
        path, direction = m.group(1), m.group(2) or "asc"
        ftype = resolve(path)
        if ftype.edm == UNTYPED:
            raise ODataQueryError("The $orderby expression must evaluate to a single value of primitive type: "
                                  f"'{path}'.")
        clauses.append((_sort_key(path, ftype, get), direction == "desc"))
    return clauses


def _sort_key(path: str, ftype: FieldType, get: Getter) -> Callable[[Record], Any]:
    def key(r: Record) -> Any:
        value = typed(get(r, path), ftype)
        return (value is not None, value)  # null first in ascending order, as SQL Server sorts
    return key


def sort_records(records: list[R], clauses: list[tuple[Callable[[Record], Any], bool]]) -> None:
    """Sorts in place by the clauses (a stable sort per clause, least significant first)."""
    for key, descending in reversed(clauses):
        records.sort(key=key, reverse=descending)
