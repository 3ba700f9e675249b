"""What the agent is told besides runs, kept as last reported: the backlog of the bot hosts'
spools (from their deliverers) and what the process sweep found that no run shows (shadow bots,
command lines holding a credential)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

MAX_SPOOLS = 10_000  # spools whose backlog is remembered
SPOOL_REPORT_TTL = 86_400.0  # seconds a spool's report counts


class SpoolBacklogs:
    """Runs waiting in the spools of the bot hosts, as their deliverers last said."""

    def __init__(self, lock: threading.RLock | None = None, clock: Callable[[], float] = time.time) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.clock = clock
        self.pending: dict[str, tuple[int, float]] = {}  # spool -> (runs, when)

    def note(self, spool: str, pending: int, now: float | None = None) -> None:
        """A deliverer said how many runs its spool still holds (after the batch it delivered)."""
        now = self.clock() if now is None else now
        with self.lock:
            if spool not in self.pending and len(self.pending) >= MAX_SPOOLS:
                oldest = min(self.pending, key=lambda k: self.pending[k][1])
                del self.pending[oldest]
            self.pending[spool] = (max(0, int(pending)), now)

    def pending_runs(self, now: float | None = None) -> int:
        """Runs waiting in the spools that reported within SPOOL_REPORT_TTL (a host gone for longer
        is the agent-down or missed-schedule alerts' business, not a backlog)."""
        now = self.clock() if now is None else now
        with self.lock:
            return sum(n for n, at in self.pending.values() if now - at <= SPOOL_REPORT_TTL)


class ProcessSweep:
    """What the latest sweep of the process watcher found besides runs: the shadow bots (processes
    of known bot runtimes no registered bot claims) and the bots whose running command line holds
    a credential (governance)."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.unregistered: list[dict[str, Any]] = []  # listed processes, command lines redacted
        self.unregistered_counts: dict[str, int] = {}  # per platform
        self.unregistered_at: float | None = None
        self.cmdline_secrets: dict[str, int] = {}  # bot -> pid

    def set_unregistered(self, processes: list[dict[str, Any]], counts: dict[str, int], at: float) -> None:
        """The shadow bots of the latest process sweep: listed processes (redacted command
        lines) and the count per platform."""
        with self.lock:
            self.unregistered = list(processes)
            self.unregistered_counts = dict(counts)
            self.unregistered_at = at

    def unregistered_view(self) -> tuple[list[dict[str, Any]], dict[str, int], float | None]:
        with self.lock:
            return [dict(p) for p in self.unregistered], dict(self.unregistered_counts), self.unregistered_at

    def note_cmdline_secrets(self, secrets: dict[str, int]) -> None:
        """The process sweep's bots whose running command line holds a credential (bot -> pid)."""
        with self.lock:
            self.cmdline_secrets = dict(secrets)
