"""Trends: the report's figures per calendar week or month of its window, so that a quarterly
review reads the direction and not one number. The gatherers (gather.py, prom.py) fill the
periods; this module only cuts the window and adds a bot's figures into a period.

Periods are UTC: ISO weeks (Monday 00:00 to the next Monday) or calendar months. Like the
window, a period is (start, end]: a run that ends at Monday 00:00:00 belongs to the week before.
The first and last periods are clipped to the window, and marked partial when it cuts them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .model import BotRow, Figures, GroupRow, Period

PERIODS = ("week", "month")
DIMENSIONS = ("platform", "lifecycle")  # the estate's size is shown by these
WEEKS_UP_TO = 13 * 7 * 86_400.0  # a window up to 13 weeks (a quarter) is cut into weeks, a longer one into months


def choose(window: float, period: str | None) -> str:
    """The period asked for, or by default week for a window up to 13 weeks and month beyond."""
    if period is not None:
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}: one of {', '.join(PERIODS)}")
        return period
    return "week" if window <= WEEKS_UP_TO else "month"


def _floor(t: datetime, period: str) -> datetime:
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next(t: datetime, period: str) -> datetime:
    if period == "week":
        return t + timedelta(days=7)
    return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)


def _label(t: datetime, period: str) -> str:
    if period == "week":
        year, week, _ = t.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{t.year}-{t.month:02d}"


def periods(start: float, end: float, period: str, slo: float) -> list[Period]:
    """The periods the window (start, end] touches, oldest first, with empty figures."""
    out = []
    # the period holding the window's first instant (just after start)
    cur = _floor(datetime.fromtimestamp(start, UTC) + timedelta(microseconds=1), period)
    while cur.timestamp() < end:
        nxt = _next(cur, period)
        a, b = cur.timestamp(), nxt.timestamp()
        out.append(Period(_label(cur, period), a, b, max(a, start), min(b, end), Figures(slo=slo)))
        cur = nxt
    return out


def add_bot(p: Period, row: BotRow, figures: Figures, *, exists: bool, items: int = 0) -> None:
    """Adds one bot's figures of the period (and counts it in the estate's size if it existed by
    the period's end) to the period and to its platform and lifecycle groups."""
    p.figures.add(figures)
    p.items_from_runs += items
    if exists:
        p.bots += 1
    for dim in DIMENSIONS:
        name = getattr(row, dim)
        g = p.groups.get((dim, name))
        if g is None:
            if not exists and not figures.runs:
                continue
            g = p.groups[(dim, name)] = GroupRow(dim, name, 0, Figures(slo=p.figures.slo))
        g.bots += exists
        g.figures.add(figures)


def period_of(trends: list[Period], t: float) -> Period:
    """The period holding time t; before the first or after the last: that one (the window's
    first and last UTC days count whole in the work queues' daily totals)."""
    for p in trends:
        if t < p.end:
            return p
    return trends[-1]


def day_start(day: str) -> float:
    """A journal day (YYYY-MM-DD, UTC) as Unix seconds."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
