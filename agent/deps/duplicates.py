"""Duplicate and overlapping bots: pairs of bots that seem to do the same work, scored from what
their sources share, for a CoE to look at (`botwatch duplicates`, the report's "Duplicate
candidates").

A pair's score (0..1) is

    0.7 x dependency similarity + 0.3 x step similarity + up to 0.05 for overlapping schedules

- dependency similarity: a weighted Jaccard over the two bots' normalised dependencies: the
  weight of what both have over the weight of what either has. What says "this exact work"
  weighs most (selectors, queues, mailboxes: 3; screens, URLs with a path, assets, credentials:
  2; files: 1); what many unrelated bots share weighs little (applications and sites, workflows
  of a common template: 0.5) or nothing (libraries).
- step similarity: the two bots' steps (activity types, keyword names) as multisets of single
  steps and of neighbouring pairs, Jaccard of each, averaged: reordered independent steps keep
  almost all of it, bots built from one template get much of it, so it never makes a pair alone.
- schedules: the UTC hours of a week in which each bot starts; their overlap (Jaccard) adds at
  most 0.05, and is shown as evidence.

Precision over recall: a pair is a candidate only when it shares at least MIN_SHARED distinctive
dependencies (weight 2 or more) and its score reaches the threshold (DEFAULT_MIN_SCORE). Sharing
an application, a site, a template's workflows or the libraries never makes a pair.

Values are compared after normalisation: whitespace collapsed, quotes unified, case folded,
variable references (`${name}`, `{name}`, `%name%`) reduced to a placeholder, so that renaming
a variable changes nothing; a URL without a path counts as its site (an application).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .estate import BotDependencies
from .model import Dependency, Step

if TYPE_CHECKING:
    from ..config.estate import LoadedEstate

WEIGHTS = {"selector": 3.0, "queue": 3.0, "mailbox": 3.0, "screen": 2.0, "url": 2.0, "asset": 2.0,
           "credential": 2.0, "file": 1.0, "application": 0.5, "workflow": 0.5, "library": 0.0}
DISTINCTIVE = 2.0  # the weight from which a shared dependency counts towards MIN_SHARED
MIN_SHARED = 3
DEFAULT_MIN_SCORE = 0.6
DEPENDENCY_SHARE, STEP_SHARE, SCHEDULE_BONUS = 0.7, 0.3, 0.05

# a reference week (Monday 00:00 UTC) over which schedules are laid out
_WEEK_START = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()
_WEEK = 7 * 24 * 3600
_MAX_STARTS = 10080  # a start a minute for a week: more adds no hour

_VARIABLE = re.compile(r"[$@&%]\{[^{}]*\}|\{\{[^{}]*\}\}|\{[A-Za-z_][\w.]*\}|%[A-Za-z_]\w*%")
_QUOTES = str.maketrans({"'": '"', "\u2018": '"', "\u2019": '"', "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class Schedule:
    """When a bot starts, as its estate entry says: a cron `schedule` or an `every` interval."""

    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"

    def describe(self) -> str:
        if self.cron:
            return f"{self.cron} ({self.timezone})"
        if self.every:
            return f"every {self.every:g}s"
        return "unscheduled"


@dataclass(frozen=True)
class Shared:
    """A dependency both bots have (alike once normalised): as the first bot writes it, and where
    each bot's source has it."""

    kind: str  # an application when it is a site's home URL
    value: str
    where_a: str  # FILE:LINE
    where_b: str


@dataclass
class Pair:
    bot_a: str  # the two names in order
    bot_b: str
    score: float
    dependency_similarity: float
    step_similarity: float
    schedule_overlap: float
    schedules: tuple[str, str]
    shared: list[Shared] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"bots": [self.bot_a, self.bot_b], "score": round(self.score, 3),
                "dependency_similarity": round(self.dependency_similarity, 3),
                "step_similarity": round(self.step_similarity, 3),
                "schedule_overlap": round(self.schedule_overlap, 3),
                "schedules": list(self.schedules),
                "shared": [{"kind": s.kind, "value": s.value, self.bot_a: s.where_a, self.bot_b: s.where_b}
                           for s in self.shared]}

    def evidence(self, limit: int = 3) -> list[str]:
        """The pair's case in a few lines: the weightiest shared dependencies, steps, schedules."""
        lines = [f"{s.kind} {s.value} ({s.where_a}; {s.where_b})" for s in self.shared[:limit]]
        more = len(self.shared) - limit
        if more > 0:
            lines.append(f"and {more} more shared dependencies")
        lines.append(f"steps {self.step_similarity:.0%} alike")
        if self.schedule_overlap:
            lines.append(f"schedules overlap {self.schedule_overlap:.0%}: {self.schedules[0]}; {self.schedules[1]}")
        return lines


def normalise(d: Dependency) -> tuple[str, str]:
    """(kind, value) as compared between bots."""
    value = _VARIABLE.sub("${}", d.value)
    if d.kind == "file":
        value = re.sub(r"[\\/]+", "/", value)
    value = " ".join(value.translate(_QUOTES).split()).casefold()
    if d.kind == "url":
        parts = urlsplit(value)
        if parts.netloc and parts.path.strip("/") == "" and not parts.query:
            return "application", parts.netloc  # a site's home: the application, not a screen of it
        value = value.rstrip("/")
    return d.kind, value


def _dependencies(bd: BotDependencies) -> dict[tuple[str, str], tuple[str, str]]:
    """Normalised (kind, value) -> (the value as first written, the FILE:LINE it is read from)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for d in sorted(set(bd.extraction.dependencies), key=lambda d: (d.file, d.line, d)):
        out.setdefault(normalise(d), (d.value, f"{d.file}:{d.line}" if d.line else d.file))
    return out


def dependency_similarity(a: dict[tuple[str, str], Any], b: dict[tuple[str, str], Any]) -> float:
    both = sum(WEIGHTS[k] for k, _ in a.keys() & b.keys())
    either = sum(WEIGHTS[k] for k, _ in a.keys() | b.keys())
    return both / either if either else 0.0


def step_similarity(a: list[Step], b: list[Step]) -> float:
    """Multiset Jaccard of single steps and of neighbouring pairs, averaged: tolerant of
    independent steps done in another order (only the pairs at the seams change)."""
    names_a, names_b = [s.name for s in a], [s.name for s in b]
    if not names_a or not names_b:
        return 0.0
    return (_jaccard(Counter(names_a), Counter(names_b))
            + _jaccard(Counter(zip(names_a, names_a[1:])), Counter(zip(names_b, names_b[1:])))) / 2


def _jaccard(a: Counter[Any], b: Counter[Any]) -> float:
    union = sum((a | b).values())
    return sum((a & b).values()) / union if union else 0.0


def start_hours(s: Schedule) -> frozenset[int]:
    """The hours of the reference week (0..167, UTC) in which the bot starts."""
    from ..core.schedule import next_due

    if not s.cron and not s.every:
        return frozenset()
    if s.every and s.every <= 3600:
        return frozenset(range(168))
    hours = set()
    t = _WEEK_START - 1
    for _ in range(_MAX_STARTS):
        due = next_due(after=t, schedule=s.cron, every=s.every, timezone=s.timezone)
        if due is None or due >= _WEEK_START + _WEEK:
            break
        if due >= _WEEK_START:
            hours.add(int(due - _WEEK_START) // 3600)
        t = due
    return frozenset(hours)


def schedule_overlap(a: Schedule, b: Schedule) -> float:
    ha, hb = start_hours(a), start_hours(b)
    return len(ha & hb) / len(ha | hb) if ha and hb else 0.0


def score_pair(a: BotDependencies, b: BotDependencies, schedule_a: Schedule = Schedule(),
               schedule_b: Schedule = Schedule()) -> Pair:
    """Every figure of a pair, whether or not it is a candidate (see `is_candidate`)."""
    if b.bot < a.bot:
        a, b, schedule_a, schedule_b = b, a, schedule_b, schedule_a
    deps_a, deps_b = _dependencies(a), _dependencies(b)
    deps = dependency_similarity(deps_a, deps_b)
    steps = step_similarity(a.extraction.steps, b.extraction.steps)
    overlap = schedule_overlap(schedule_a, schedule_b)
    score = min(1.0, DEPENDENCY_SHARE * deps + STEP_SHARE * steps + SCHEDULE_BONUS * overlap)
    common = sorted(deps_a.keys() & deps_b.keys(), key=lambda kv: (-WEIGHTS[kv[0]], kv))
    shared = [Shared(key[0], *deps_a[key], deps_b[key][1]) for key in common if WEIGHTS[key[0]] > 0]
    return Pair(a.bot, b.bot, score, deps, steps, overlap, (schedule_a.describe(), schedule_b.describe()), shared)


def is_candidate(pair: Pair, min_score: float = DEFAULT_MIN_SCORE) -> bool:
    distinctive = sum(1 for s in pair.shared if WEIGHTS[s.kind] >= DISTINCTIVE)
    return distinctive >= MIN_SHARED and pair.score >= min_score


def duplicates(estate: list[BotDependencies], schedules: dict[str, Schedule] | None = None,
               min_score: float = DEFAULT_MIN_SCORE) -> list[Pair]:
    """The candidate pairs of the bots given, highest score first (then by names)."""
    schedules = schedules or {}
    pairs = []
    for a, b in combinations(sorted(estate, key=lambda bd: bd.bot), 2):
        pair = score_pair(a, b, schedules.get(a.bot, Schedule()), schedules.get(b.bot, Schedule()))
        if is_candidate(pair, min_score):
            pairs.append(pair)
    return sorted(pairs, key=lambda p: (-p.score, p.bot_a, p.bot_b))


def estate_duplicates(loaded: LoadedEstate, min_score: float = DEFAULT_MIN_SCORE) -> tuple[list[Pair], int]:
    """The candidate pairs among the estate's bots that have a `source:`, and how many bots were read."""
    from .estate import bot_dependencies

    bots = [b for b in loaded.estate.bots if b.source]
    schedules = {b.name: Schedule(b.schedule, b.every, b.timezone) for b in bots}
    return duplicates([bot_dependencies(loaded, b) for b in bots], schedules, min_score), len(bots)
