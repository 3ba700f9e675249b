"""Number and time formatting shared by the renderers, and the rows they share."""

from __future__ import annotations

import time


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.2f}%"


def dur(seconds: float | None) -> str:
    """`1h 02m 03s`; n/a for None."""
    if seconds is None:
        return "n/a"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h:02d}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


QUEUE_HEAD = ["platform", "connection", "folder", "queue", "team", "successful", "failed", "success ratio",
              "business exceptions", "application exceptions", "retries", "mean processing"]


def queue_cells(q) -> list:
    """A work queue's row of the report (a model.QueueRow)."""
    return [q.platform, q.connection, q.folder, q.queue, q.team, q.successful, q.failed, pct(q.success_ratio),
            q.failed_by_exception.get("business", 0), q.failed_by_exception.get("application", 0), q.retries,
            dur(q.mean_seconds)]


def last_run_cells(b) -> list:
    """A bot's "last run" and "scheduled" cells (a model.BotRow)."""
    return [iso(b.last_run) if b.last_run else "never", "n/a" if b.scheduled is None else ("yes" if b.scheduled else "no")]


DUPLICATE_HEAD = ["bots", "score", "evidence"]


def duplicate_cells(d) -> list:
    """A duplicate candidate's row of the report (a model.DuplicateRow)."""
    return [f"{d.bot_a}, {d.bot_b}", f"{d.score:.2f}", "; ".join(d.evidence)]


APPLICATION_HEAD = ["application", "kind", "bots", "bots (team, criticality)"]


def application_cells(a) -> list:
    """An application's row of the report (a model.ApplicationRow)."""
    return [a.name, a.kind, len(a.bots), "; ".join(f"{bot} ({team}, {crit})" for bot, team, crit in a.bots)]
