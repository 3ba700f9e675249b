"""The fragility score of alerts/README.md, computed from the agent's journal instead of Prometheus.

`bot:botwatch_fragility:score` (recording.rules.yml) weighs five components over the last day.
The journal holds enough for three of them exactly and one in part; the fifth is kept only in
the agent's memory (and in Prometheus):

| component | weight | from the journal |
|---|---|---|
| failures | 0.40 | exact: failed runs / finished runs that ended in the window |
| drift | 0.20 | partly: the highest latest snapshot drift score of the bot's screens, where the journal keeps UI drift records; failed look-ups are not journaled |
| heals | 0.15 | not available: look-up counters live in the agent's memory only |
| lateness | 0.15 | exact up to the sweep interval: share of the window the bot was `late` or `down`, from the state flips (and the state computed now, for the time since the latest flip) |
| duration_variance | 0.10 | exact: coefficient of variation of the latest run's duration over the window, each run weighted by how long it stayed the latest, capped at 1 |

As in the rules, a component without data counts as 0, the window of the state-based
components starts when the bot was first seen if that is within the day, and the score is
clamped to [0, 1]. A component that cannot be computed locally is reported as None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from ..core.events import RunFinished
    from .journal import Flip, Journal

WINDOW = 86_400.0
WEIGHTS = {"failures": 0.40, "drift": 0.20, "heals": 0.15, "lateness": 0.15, "duration_variance": 0.10}
LATE_STATES = ("late", "down")


@dataclass(frozen=True)
class Fragility:
    score: float
    components: dict[str, float | None]  # None: no data, or not computable from the journal

    def to_json(self) -> dict[str, float | dict[str, float | None]]:
        return {"score": round(self.score, 4),
                "components": {k: (None if v is None else round(v, 4)) for k, v in self.components.items()}}


def failures_component(runs: Iterable[RunFinished], now: float, window: float = WINDOW) -> float | None:
    """Failed / finished runs that ended within (now - window, now]."""
    total = failed = 0
    for r in runs:
        if now - window < r.ended <= now:
            total += 1
            failed += r.outcome == "failure"
    return failed / total if total else None


def lateness_component(flips: Iterable[Flip], now: float, start: float,
                       current: tuple[str, float] | None = None) -> float | None:
    """Share of [start, now] spent late or down. `flips`: the bot's state flips (at, old_state,
    new_state) in order; `current`: (state, since) computed now, for the time after the latest flip."""
    if now <= start:
        return None
    flips = sorted((f for f in flips if getattr(f, "kind", "state") == "state"), key=lambda f: f.at)
    before = [f for f in flips if f.at <= start]
    inside = [f for f in flips if start < f.at <= now]
    if before:
        state = before[-1].new_state
    elif inside:
        state = inside[0].old_state
    else:
        state = current[0] if current else "new"
    bad, t = 0.0, start
    for f in inside:
        if state in LATE_STATES:
            bad += f.at - t
        state, t = f.new_state, f.at
    if current is not None and current[0] != state:
        split = min(max(current[1], t), now)
        if state in LATE_STATES:
            bad += split - t
        state, t = current[0], split
    if state in LATE_STATES:
        bad += now - t
    return min(bad / (now - start), 1.0)


def duration_variance_component(runs: Iterable[RunFinished], now: float, window: float = WINDOW) -> float | None:
    """Coefficient of variation of the latest run's duration over the window, as
    stddev_over_time / avg_over_time of botwatch_last_run_duration_seconds would see it."""
    ordered = sorted((r for r in runs if r.ended <= now), key=lambda r: r.ended)
    start = now - window
    segments: list[tuple[float, float]] = []  # (duration, weight)
    for i, r in enumerate(ordered):
        begin = max(r.ended, start)
        end = ordered[i + 1].ended if i + 1 < len(ordered) else now
        if end <= start or end <= begin:
            continue
        d = r.duration
        if d is not None:
            segments.append((d, end - begin))
    weight = sum(w for _, w in segments)
    if weight <= 0:
        return None
    mean = sum(d * w for d, w in segments) / weight
    if mean <= 0:
        return None
    var = sum(w * (d - mean) ** 2 for d, w in segments) / weight
    return min(math.sqrt(var) / mean, 1.0)


def fragility(runs: Sequence[RunFinished], flips: Iterable[Flip], now: float, *, first_seen: float | None = None,
              current: tuple[str, float] | None = None, drift: float | None = None,
              window: float = WINDOW) -> Fragility:
    """One bot's score from its runs (RunFinished-like: ended, duration, outcome), state flips,
    the state computed now and, when known, its highest snapshot drift score."""
    start = max(now - window, first_seen) if first_seen is not None else now - window
    comps: dict[str, float | None] = {
        "failures": failures_component(runs, now, window),
        "drift": None if drift is None else min(max(drift, 0.0), 1.0),
        "heals": None,
        "lateness": lateness_component(flips, now, start, current),
        "duration_variance": duration_variance_component(runs, now, window),
    }
    score = sum(WEIGHTS[k] * v for k, v in comps.items() if v is not None)
    return Fragility(min(max(score, 0.0), 1.0), comps)


def estate_fragility(journal: Journal, bots: Iterable[str], now: float,
                     current: dict[str, tuple[str, float]] | None = None,
                     window: float = WINDOW) -> dict[str, Fragility]:
    """Every named bot's score from a (read-only) journal."""
    names = set(bots)
    current = current or {}
    runs: dict[str, list[RunFinished]] = {n: [] for n in names}
    latest_before: dict[str, RunFinished] = {}
    for r in journal.iter_runs():  # ordered by end
        if r.bot not in names:
            continue
        if r.ended <= now - window:
            latest_before[r.bot] = r  # only the one that was the latest when the window opened counts
        else:
            runs[r.bot].append(r)
    first_seen = journal.first_seen()
    drift = _drift_scores(journal)
    out = {}
    for n in sorted(names):
        bot_runs = ([latest_before[n]] if n in latest_before else []) + runs[n]
        out[n] = fragility(bot_runs, journal.flips(n, limit=100_000), now, first_seen=first_seen.get(n),
                           current=current.get(n), drift=drift.get(n), window=window)
    return out


def _drift_scores(journal: Journal) -> dict[str, float]:
    """bot -> the highest latest drift score of its screens (what botwatch_ui_drift_score shows
    now), from journals that keep UI drift records (older ones have none)."""
    reader = getattr(journal, "ui_drift", None)
    if reader is None:
        return {}
    try:
        rows = reader()
    except Exception:
        return {}
    out: dict[str, float] = {}
    for row in rows:
        try:
            out[row["bot"]] = max(out.get(row["bot"], 0.0), float(row["score"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out
