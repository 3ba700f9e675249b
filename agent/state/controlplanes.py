"""What the agent knows of the RPA control planes it pulls: each connection's health, requests
and webhooks, and the processes they run that no bot claims (listed as unregistered)."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

RECENT_RUNS = 64  # run keys remembered per unregistered process
MAX_UNREGISTERED = 10_000  # processes remembered at most (the oldest seen is forgotten first)
REQUEST_OUTCOMES = ("ok", "throttled", "error", "auth")
# a robot session's state as metrics label it: Orchestrator's Available, Busy, Disconnected and
# Unknown, and unresponsive for a session that stopped reporting (IsUnresponsive)
SESSION_STATES = ("available", "busy", "disconnected", "unknown", "unresponsive")
MAX_MACHINES = 10_000  # machines remembered per connection at most


@dataclass
class Robots:
    """A connection's robot sessions as its latest pull saw them."""

    platform: str
    machines: dict[str, dict[str, int]]  # machine -> session state -> sessions
    unattended_capacity: int  # unattended sessions connected (available or busy)
    unattended_busy: int  # of those, running a job


# what became of a webhook: accepted, deferred (left to the next pull) and ignored count each item it
# carries (a job...); bad_signature, malformed and unknown (a type the receiver does not take) the webhook
WEBHOOK_OUTCOMES = ("accepted", "deferred", "ignored", "bad_signature", "malformed", "unknown")


@dataclass
class ConnectionHealth:
    platform: str
    up: bool | None = None  # None: not pulled yet
    last_success: float | None = None


class ControlPlanes:
    def __init__(self, lock: threading.RLock | None = None, clock: Callable[[], float] = time.time) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.clock = clock
        self.connections: dict[str, ConnectionHealth] = {}
        self.requests: dict[tuple[str, str], int] = {}  # (connection, outcome) -> count
        self.webhooks: dict[tuple[str, str], int] = {}  # (connection, outcome) -> count
        self.unregistered: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        # per unregistered process, the run keys seen lately (not counted twice)
        self.recent_runs: dict[tuple[str, str, str, str], collections.OrderedDict[str, None]] = {}
        # per connection: the bots its latest full pull saw, and their runs stuck waiting to start
        self.bots_seen: dict[str, set[str]] = {}
        self.stuck: dict[str, dict[str, int]] = {}
        self.robots: dict[str, Robots] = {}  # per connection

    def note_connection(self, platform: str, connection: str, up: bool) -> None:
        with self.lock:
            health = self.connections.setdefault(connection, ConnectionHealth(platform))
            health.up = up
            if up:
                health.last_success = self.clock()

    def count_request(self, platform: str, connection: str, outcome: str) -> None:
        with self.lock:
            self.connections.setdefault(connection, ConnectionHealth(platform))
            key = (connection, outcome if outcome in REQUEST_OUTCOMES else "error")
            self.requests[key] = self.requests.get(key, 0) + 1

    def count_webhook(self, platform: str, connection: str, outcome: str, n: int = 1) -> None:
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(f"unknown webhook outcome {outcome!r}")
        with self.lock:
            self.connections.setdefault(connection, ConnectionHealth(platform))
            self.webhooks[(connection, outcome)] = self.webhooks.get((connection, outcome), 0) + n

    def note_unregistered(self, platform: str, connection: str, folder: str, process: str,
                          run_key: str | None = None) -> None:
        """A run of a process no bot claims (not recorded): listed with the time it was last seen.
        A run read again (`run_key` seen lately: a job still running, pulled at every pull) is
        not counted again."""
        with self.lock:
            key = (platform, connection, folder, process)
            seen = self.unregistered.pop(key, None) or {"platform": platform, "connection": connection,
                                                        "folder": folder, "process": process, "runs": 0}
            recent = self.recent_runs.setdefault(key, collections.OrderedDict())
            if run_key is None or run_key not in recent:
                seen["runs"] += 1
            if run_key is not None:
                recent[run_key] = None
                recent.move_to_end(run_key)
                while len(recent) > RECENT_RUNS:
                    recent.popitem(last=False)
            seen["last_seen"] = self.clock()
            self.unregistered[key] = seen  # re-inserted: the dict keeps the least recently seen first
            while len(self.unregistered) > MAX_UNREGISTERED:
                oldest = next(iter(self.unregistered))
                del self.unregistered[oldest]
                self.recent_runs.pop(oldest, None)

    def note_pull(self, connection: str, bots: set[str], stuck: dict[str, int]) -> None:
        """What a full pull of `connection` saw: its bots and, per bot, the runs stuck waiting to
        start (an Orchestrator job Pending past the connection's limit)."""
        with self.lock:
            self.bots_seen[connection] = set(bots)
            self.stuck[connection] = {bot: n for bot, n in stuck.items() if n}

    def note_robots(self, connection: str, robots: Robots) -> None:
        with self.lock:
            if len(robots.machines) > MAX_MACHINES:
                robots.machines = dict(sorted(robots.machines.items())[:MAX_MACHINES])
            self.robots[connection] = robots

    def robots_view(self) -> dict[str, Robots]:
        with self.lock:
            return {name: Robots(r.platform, {m: dict(s) for m, s in r.machines.items()}, r.unattended_capacity,
                                 r.unattended_busy) for name, r in self.robots.items()}

    def stuck_runs(self) -> dict[str, int]:
        """Per bot any connection saw: its stuck runs (0 included)."""
        with self.lock:
            out = {bot: 0 for bots in self.bots_seen.values() for bot in bots}
            for counts in self.stuck.values():
                for bot, n in counts.items():
                    out[bot] = out.get(bot, 0) + n
            return out

    def view(self) -> dict[str, Any]:
        with self.lock:
            return {
                "connections": {name: {"platform": h.platform, "up": h.up, "last_success": h.last_success}
                                for name, h in self.connections.items()},
                "requests": dict(self.requests),
                "webhooks": dict(self.webhooks),
                "unregistered": [dict(v) for v in self.unregistered.values()],
            }
