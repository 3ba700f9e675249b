"""What the agent knows of the work queues of the RPA control planes it pulls (Orchestrator
queues): each queue's backlog as its latest pull saw it, and the items processed since the
agent's journal began, which survive restarts (restored from the journal's daily totals).

A queue is (platform, connection, folder, queue name). The backlog is a snapshot, replaced by
each pull; the processed items only grow: a pull adds what ended since the one before, in the
same journal transaction as the source's checkpoint, so a restart neither loses nor repeats them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

QueueKey = tuple[str, str, str, str]  # platform, connection, folder, queue
PROCESSED_STATUSES = ("successful", "failed")
EXCEPTIONS = ("business", "application", "unknown")  # of a failed item
SLA_STATES = ("breached", "at_risk")
MAX_QUEUES = 20_000  # queues remembered at most; beyond it a pull's extra queues are not kept


@dataclass
class Backlog:
    """One queue's open items when it was last pulled."""

    team: str | None = None
    new: int = 0
    in_progress: int = 0
    oldest_new: float | None = None  # creation time of the oldest New item, on the agent's clock
    breached: int = 0  # open items past their due date (DueDate, or the queue's SLA)
    at_risk: int = 0  # open items past their risk SLA date, not yet breached
    pulled: float = 0.0


@dataclass
class Processed:
    """Items of one queue that ended, by status and exception, with retries and time spent."""

    items: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, exception) -> count
    retries: int = 0
    seconds: float = 0.0

    def add(self, status: str, exception: str, items: int, retries: int, seconds: float) -> None:
        key = (status, exception)
        self.items[key] = self.items.get(key, 0) + items
        self.retries += retries
        self.seconds += seconds


@dataclass(frozen=True)
class ItemTotals:
    """Items of a queue that ended on one UTC day with one status and exception (a journal row)."""

    queue: QueueKey
    day: str  # YYYY-MM-DD (UTC) of their end
    status: str  # successful | failed
    exception: str  # business | application | unknown | "" (successful)
    items: int
    retries: int
    seconds: float


class WorkQueues:
    def __init__(self, lock: threading.RLock | None = None, clock: Callable[[], float] = time.time) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.clock = clock
        self.backlogs: dict[QueueKey, Backlog] = {}
        self.processed: dict[QueueKey, Processed] = {}

    def restore(self, rows: Iterable[ItemTotals]) -> None:
        """The journal's totals, at start."""
        with self.lock:
            for r in rows:
                self.processed.setdefault(r.queue, Processed()).add(r.status, r.exception, r.items, r.retries,
                                                                    r.seconds)

    def note_backlogs(self, platform: str, connection: str, folder: str, backlogs: dict[str, Backlog]) -> None:
        """A folder's queues as a pull saw them: they replace what that folder had (a queue gone
        from it is forgotten)."""
        with self.lock:
            for key in [k for k in self.backlogs if k[:3] == (platform, connection, folder)]:
                if key[3] not in backlogs:
                    del self.backlogs[key]
            for name, backlog in backlogs.items():
                key = (platform, connection, folder, name)
                if key in self.backlogs or len(self.backlogs) < MAX_QUEUES:
                    self.backlogs[key] = backlog

    def add_processed(self, rows: Iterable[ItemTotals]) -> None:
        """Items that ended, once they are in the journal."""
        with self.lock:
            for r in rows:
                if r.queue in self.processed or len(self.processed) < MAX_QUEUES:
                    self.processed.setdefault(r.queue, Processed()).add(r.status, r.exception, r.items,
                                                                        r.retries, r.seconds)

    def forget_connection(self, platform: str, connection: str) -> None:
        with self.lock:
            for key in [k for k in self.backlogs if k[:2] == (platform, connection)]:
                del self.backlogs[key]

    def view(self) -> tuple[dict[QueueKey, Backlog], dict[QueueKey, Processed]]:
        """Copies of the backlogs and the processed totals, every queue either knows."""
        with self.lock:
            backlogs = {k: Backlog(**vars(b)) for k, b in self.backlogs.items()}
            processed = {k: Processed(dict(p.items), p.retries, p.seconds) for k, p in self.processed.items()}
            return backlogs, processed
