"""A small PromQL reader for the tests: enough to find the metric selectors of an expression,
their ranges and the call around them (no PromQL parser runs here: Prometheus 2.42 has no
parse_query API and promtool parses without telling)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<var>\$\{[^}]*\}|\$\w+)
  | (?P<matchers>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^{}"'])*\})
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(),@])
""", re.X)
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log2", "log10",
    "minute", "month", "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2"}


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m, f"cannot read PromQL at {expr[pos:pos + 30]!r} in {expr!r}"
        if m.lastgroup not in ("ws", "comment"):
            out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def selectors(expr: str) -> list[dict]:
    """Every metric selector: {name, matchers, range, call} (call: the function whose argument it is)."""
    toks = tokens(expr)
    stack: list[str | None] = []  # the call (or None for a plain parenthesis) of each open "("
    found, i, agg = [], 0, None
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in LABEL_LISTS:
            i += 1
            if nxt == "(":  # skip the label list
                while toks[i][1] != ")":
                    i += 1
                i += 1
            if agg and i < len(toks) and toks[i][1] == "(":
                stack.append(agg)
                agg, i = None, i + 1
            continue
        if kind == "ident" and text in AGGREGATIONS and nxt in ("(", "by", "without"):
            if nxt == "(":
                stack.append(text)
                i += 2
            else:
                agg, i = text, i + 1
            continue
        if kind == "ident" and text in FUNCTIONS and nxt == "(":
            stack.append(text)
            i += 2
            continue
        if kind == "ident" and text not in KEYWORDS:
            sel = {"name": text, "matchers": "", "range": None, "call": stack[-1] if stack else None}
            i += 1
            if i < len(toks) and toks[i][0] == "matchers":
                sel["matchers"] = toks[i][1]
                i += 1
            if i < len(toks) and toks[i][0] == "range":
                sel["range"] = toks[i][1][1:-1].strip()
                i += 1
            found.append(sel)
            continue
        if text == "(":
            stack.append(None)
        elif text == ")":
            stack.pop()
        i += 1
    assert not stack, f"unbalanced parentheses in {expr!r}"
    return found
