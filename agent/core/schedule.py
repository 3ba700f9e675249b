"""When is a bot's next run due? Cron in the bot's own timezone (DST-safe, via cronsim) or a
fixed interval. Pure functions of timestamps: no timers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from cronsim import CronSim


class Window(Protocol):
    """A maintenance window, as the estate file declares it (config.MaintenanceWindow)."""

    @property
    def schedule(self) -> str: ...

    @property
    def duration(self) -> float: ...


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def next_due(*, after: float, schedule: str | None = None, every: float | None = None,
             timezone: str = "UTC") -> float | None:
    """The first expected run strictly after `after` (epoch seconds), or None if unscheduled."""
    if every:
        return after + every
    if schedule:
        local = datetime.fromtimestamp(after, _zone(timezone))
        return next(CronSim(schedule, local)).timestamp()
    return None


def maintenance_at(now: float, windows: Iterable[Window], timezone: str = "UTC") -> tuple[bool, float | None]:
    """(inside a window now, end of the latest window that ended before now).

    Each window starts at its cron `schedule` (in the bot's timezone) and lasts `duration`."""
    inside = False
    last_end: float | None = None
    local = datetime.fromtimestamp(now, _zone(timezone))
    for w in windows:
        start = next(CronSim(w.schedule, local, reverse=True)).timestamp()
        end = start + w.duration
        if start <= now < end:
            inside = True
            # the window before this one may have ended too; only the latest end matters
        elif end <= now:
            last_end = end if last_end is None else max(last_end, end)
    return inside, last_end


def maintenance_changes_at(now: float, windows: Iterable[Window], timezone: str = "UTC") -> float:
    """The earliest time from `now` on after which `maintenance_at` may answer otherwise: the
    next start of a window or the end of the latest one, whichever comes first (inf without
    windows). Earlier is harmless (a caller asks again), later never happens: each window's
    latest start only moves at its next cron time, and its end is that start plus its duration."""
    soonest = float("inf")
    local, before = datetime.fromtimestamp(now, _zone(timezone)), datetime.fromtimestamp(now - 1.0, _zone(timezone))
    for w in windows:
        end = next(CronSim(w.schedule, local, reverse=True)).timestamp() + w.duration
        # searched from a second back: a start at `now` itself counts (the search is strictly after)
        starts = (t.timestamp() for t in CronSim(w.schedule, before))
        following = next(t for t in starts if t >= now)
        soonest = min(soonest, following, end if end >= now else soonest)
    return soonest
