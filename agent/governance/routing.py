"""Alert routing: the teams an Alertmanager configuration routes, read from its `route` tree."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ..config.estate import LoadedEstate


class RoutingError(Exception):
    """The alert routing file cannot be read: `FILE:LINE: message`."""


@dataclass(frozen=True)
class RoutingTeams:
    """The teams an Alertmanager configuration routes: literal `team` values and regexes."""

    source: str
    names: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()

    def routes(self, team: str) -> bool:
        if team in self.names:
            return True
        # Alertmanager anchors its regex matchers: the whole value must match
        return any(re.fullmatch(p, team) for p in self.patterns)


_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        try:
            value: str = json.loads('"' + v[1:-1].replace('"', '\\"') + '"') if v[0] == "'" else json.loads(v)
            return value
        except ValueError:
            return v[1:-1]
    return v


def _split_matchers(s: str) -> list[str]:
    """`team="a"` or `{team="a", severity="b"}`: the single matchers (commas inside quotes kept)."""
    s = s.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    parts: list[str] = []
    cur = ""
    quote: str | None = None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote and not cur.endswith("\\" + quote):
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def routing_teams_from(data: object, source: str) -> RoutingTeams:
    """Collect the positive `team` matchers of every route (`matchers`, `match`, `match_re`)."""
    names: set[str] = set()
    patterns: list[str] = []

    def add(op: str, value: str) -> None:
        if op == "=":
            names.add(value)
        elif op == "=~":
            try:
                re.compile(value)
            except re.error:
                return
            patterns.append(value)

    def walk(route: object) -> None:
        if not isinstance(route, dict):
            return
        for m in route.get("matchers") or []:
            if not isinstance(m, str):
                continue
            for single in _split_matchers(m):
                mm = _MATCHER.match(single)
                if mm and mm.group(1) == "team":
                    add(mm.group(2), _unquote(mm.group(3)))
        match = route.get("match")
        if isinstance(match, dict) and isinstance(match.get("team"), str):
            add("=", match["team"])
        match_re = route.get("match_re")
        if isinstance(match_re, dict) and isinstance(match_re.get("team"), str):
            add("=~", match_re["team"])
        for child in route.get("routes") or []:
            walk(child)

    if isinstance(data, dict):
        walk(data.get("route"))
    return RoutingTeams(source, frozenset(names), tuple(patterns))


def load_routing_teams(path: str | os.PathLike[str] | None) -> RoutingTeams:
    """From an Alertmanager configuration file; None: the example shipped in botwatch.alerts."""
    if path is None:
        ref = resources.files("botwatch.alerts") / "alertmanager.yml"
        source, text = "botwatch.alerts/alertmanager.yml (shipped example)", ref.read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RoutingError(f"{source}:0: cannot read the alert routing file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RoutingError(f"{source}:{mark.line + 1 if mark else 1}: YAML syntax error: "
                           f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("route"), dict):
        raise RoutingError(f"{source}:1: not an Alertmanager configuration (no 'route')")
    return routing_teams_from(data, source)


def routing_for(estate: LoadedEstate) -> RoutingTeams:
    """The routing the estate names in `agent.alert_routing` (relative to the estate file), or
    the shipped example."""
    p = estate.estate.agent.alert_routing
    return load_routing_teams(estate.resolve(p) if p else None)
