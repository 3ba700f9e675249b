"""When is a bot's next run due? Cron in the bot's own timezone (DST-safe, via cronsim) or a
fixed interval. Pure functions of timestamps: no timers."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim


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
