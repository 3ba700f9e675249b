"""The local spool: every run event a wrapper (or SDK) produces is committed here first, then
delivered by a background deliverer (delivery.py). A run is therefore on disk before
`botwatch run` exits, whatever happens to the agent, the Pushgateway or the network afterwards.

Each event has a target: 'agent' (posted to the agent's events API), 'pushgateway:<URL>' or
'textfile:<DIR>'. For the last two there is no agent to keep counters, so the deliverer folds
each finished run, exactly once, into per-bot totals kept here (table `totals`) and publishes
the totals; they are complete, so a publication always replaces the previous one.

The spool is bounded: at most BOTWATCH_SPOOL_MAX_EVENTS events (default 10000) wait in it.
Adding one more drops the oldest, and the drops are counted per target in `meta` until the
count itself has been delivered (never silent).

Only sqlite3 is imported: this is on the hot path of `botwatch run`. The event JSON is built
by SQLite's own json_object(), so the wrapper does not need the json module either.

The spool, its -wal and -shm are private to the user (0600); folders botwatch creates for it
are 0700 (a folder that exists keeps its mode).
"""

from __future__ import annotations

import os
import sqlite3
import time

from .._platform import create_private, narrow_private, private_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import TracebackType
    from typing import Any, Literal, TypeVar

    _T = TypeVar("_T")
    Value = str | int | float | None  # what an event field or SQL parameter holds (a bool is an int)
    Totals = dict[str, Any]  # a row of TOTALS_COLUMNS, failures and buckets decoded from JSON
    # (seq, bot, run_id, agent_url, config, event JSON, attempts, kind)
    ReadyRow = tuple[int, str, str, str | None, str | None, str, int, str]

SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    bot TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created REAL NOT NULL,
    agent_url TEXT,
    config TEXT,
    event TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    target TEXT NOT NULL DEFAULT 'agent'
)""",
    """CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    bot TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event TEXT NOT NULL,
    error TEXT,
    at REAL NOT NULL
)""",
    # Per-bot aggregates for targets without an agent; bot '' is the spool's own row (drops).
    """CREATE TABLE IF NOT EXISTS totals (
    target TEXT NOT NULL,
    bot TEXT NOT NULL,
    host TEXT,
    runs_total INTEGER NOT NULL DEFAULT 0,
    failures TEXT NOT NULL DEFAULT '{}',
    buckets TEXT NOT NULL DEFAULT '[]',
    duration_sum REAL NOT NULL DEFAULT 0,
    duration_count INTEGER NOT NULL DEFAULT 0,
    last_run_end REAL,
    last_run_duration REAL,
    last_exit_status INTEGER,
    last_outcome TEXT,
    last_success REAL,
    last_failure REAL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    dropped_total INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (target, bot)
)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL)",
    # `events` in meta is the outbox's row count, so that the bound costs no table scan
    """CREATE TRIGGER IF NOT EXISTS outbox_added AFTER INSERT ON outbox BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'events'; END""",
    """CREATE TRIGGER IF NOT EXISTS outbox_removed AFTER DELETE ON outbox BEGIN
    UPDATE meta SET value = value - 1 WHERE key = 'events'; END""",
)
TOTALS_COLUMNS = ("target", "bot", "host", "runs_total", "failures", "buckets", "duration_sum", "duration_count",
                  "last_run_end", "last_run_duration", "last_exit_status", "last_outcome", "last_success",
                  "last_failure", "consecutive_failures", "dropped_total", "pending", "attempts", "next_attempt",
                  "last_error")
_FINISHED_FIELDS = ("started", "ended", "outcome", "exit_status", "reason", "signal", "timed_out",
                    "host", "output_tail", "cpu_seconds", "peak_rss_bytes")
DEFAULT_MAX_EVENTS = 10000
AGENT = "agent"


def default_spool_path() -> str:
    env = os.environ.get("BOTWATCH_SPOOL")
    if env:
        return env
    from .._platform import user_state_dir

    return os.path.join(user_state_dir(), "spool.db")


def max_events_from_env() -> int:
    try:
        return max(1, int(os.environ.get("BOTWATCH_SPOOL_MAX_EVENTS") or DEFAULT_MAX_EVENTS))
    except ValueError:
        return DEFAULT_MAX_EVENTS


_location_checked: set[str] = set()  # spool paths this process has looked at (network_share_warning)


def network_share_warning(path: str) -> str | None:
    """What to warn of when the spool at `path` is on a network share, where SQLite's WAL does
    not work (_platform/netpaths.py); said once per path and process, None otherwise. A bot
    never fails for it: the spool is used all the same."""
    key = os.path.abspath(path)
    if key in _location_checked:
        return None
    _location_checked.add(key)
    from .._platform.netpaths import network_path_here

    why = network_path_here(key)
    if why is None:
        return None
    return (f"the spool {path} is {why}; SQLite in WAL mode does not work on a network share, so runs "
            "recorded there may be lost: set BOTWATCH_SPOOL to a path on a local disk")


def _to_stderr(message: str) -> None:
    try:
        os.write(2, f"botwatch: warning: {message}\n".encode("utf-8", "replace"))
    except OSError:
        pass


class Spool:
    def __init__(self, path: str, timeout: float = 5.0, max_events: int | None = None,
                 warn: Callable[[str], object] = _to_stderr):
        """The spool at `path`; `warn` says what is wrong with where it is (once per process)."""
        self.path = path
        location = network_share_warning(path)
        if location:
            warn(location)
        self.max_events = max_events if max_events is not None else max_events_from_env()
        parent = os.path.dirname(os.path.abspath(path))
        private_dir(parent)
        create_private(path)  # 0600, and so its -wal and -shm (SQLite gives them the database's mode)
        for companion in (path + "-wal", path + "-shm"):
            narrow_private(companion)
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if self.db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """Create the schema, or bring a spool written by an older botwatch up to date."""
        with self._transaction():
            if self.db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return  # another process did it while we waited for the lock
            for statement in _SCHEMA[:4]:
                self.db.execute(statement)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(outbox)")}
            if "target" not in columns:
                self.db.execute("ALTER TABLE outbox ADD COLUMN target TEXT NOT NULL DEFAULT 'agent'")
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('events', (SELECT COUNT(*) FROM outbox))")
            for statement in _SCHEMA[4:]:
                self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT; inside one already begun, part of it."""
        return _Transaction(self.db)

    _transaction = transaction

    def data_version(self) -> int:
        """Changes whenever another connection (a wrapper adding a run) commits to the spool."""
        version: int = self.db.execute("PRAGMA data_version").fetchone()[0]
        return version

    def close(self) -> None:
        self.db.close()

    # -- adding (the wrapper's side) ------------------------------------------------------------
    def _insert(self, sql: str, args: list[Value]) -> None:
        """Insert one event and keep the spool within its bound, in one transaction."""
        with self._transaction():
            self.db.execute(sql, args)
            count = self.db.execute("SELECT value FROM meta WHERE key = 'events'").fetchone()[0]
            if count > self.max_events:
                self._drop_oldest(count - self.max_events)

    def _drop_oldest(self, n: int) -> None:
        # progress events (starts, samples, UI look-ups, steps) go before any finished run does
        rows = self.db.execute("SELECT seq, target FROM outbox ORDER BY (kind = 'finish'), seq LIMIT ?",
                               (n,)).fetchall()
        if not rows:
            return
        self.db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq, _ in rows])
        by_target: dict[str, int] = {}
        for _seq, target in rows:
            by_target[target] = by_target.get(target, 0) + 1
        now = time.time()
        for target, count in by_target.items():
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                            ("dropped:" + target, count))
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", ("dropped_at:" + target, now))

    def _add(self, kind: str, bot: str, run_id: str, agent_url: str | None, config: str | None,
             pairs: list[tuple[str, Value | dict[str, Value]]], target: str | None = None) -> None:
        args: list[Value] = []
        placeholders: list[str] = []
        for key, value in pairs:
            if isinstance(value, dict):  # a nested object (a run's items)
                placeholders.append(f"?, json_object({', '.join(['?, ?'] * len(value))})")
                args.append(key)
                for k, v in value.items():
                    args += [k, v]
                continue
            placeholders.append("?, ?")
            args += [key, value]
        self._insert(
            "INSERT INTO outbox (kind, bot, run_id, created, agent_url, config, target, event) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, json_object({', '.join(placeholders)}))",
            [kind, bot, run_id, time.time(), agent_url, config, target or AGENT, *args],
        )

    def add_started(self, bot: str, run_id: str, at: float, host: str | None, *, agent_url: str | None = None,
                    config: str | None = None, target: str | None = None) -> None:
        self._add("start", bot, run_id, agent_url, config, [
            ("type", "run_started"), ("bot", bot), ("run_id", run_id), ("time", at), ("host", host),
            ("source", "wrapper")], target)

    def add_sample(self, bot: str, run_id: str, at: float, cpu_seconds: float | None, rss_bytes: int | None,
                   processes: int | None, *, agent_url: str | None = None, config: str | None = None,
                   target: str | None = None) -> None:
        self._add("sample", bot, run_id, agent_url, config, [
            ("type", "resource_sample"), ("bot", bot), ("run_id", run_id), ("time", at),
            ("cpu_seconds", cpu_seconds), ("rss_bytes", rss_bytes), ("processes", processes), ("source", "wrapper")],
            target)

    def add_finished(self, bot: str, run_id: str, *, agent_url: str | None = None, config: str | None = None,
                     source: str = "wrapper", target: str | None = None, items: tuple[int, int] | None = None,
                     **fields: Value) -> None:
        """`items`: the (processed, failed) work items the run reported, None when it reported none."""
        pairs: list[tuple[str, Value | dict[str, Value]]] = [
            ("type", "run_finished"), ("bot", bot), ("run_id", run_id), ("source", source)]
        for key in _FINISHED_FIELDS:
            value = fields.get(key)
            if value is not None:
                pairs.append((key, int(value) if key == "timed_out" else value))
        if items is not None:
            pairs.append(("items", {"processed": items[0], "failed": items[1]}))
        self._add("finish", bot, run_id, agent_url, config, pairs, target)

    def add_event(self, kind: str, bot: str, run_id: str, event_json: str, *, agent_url: str | None = None,
                  config: str | None = None, target: str | None = None) -> None:
        """Any event already serialised as a JSON object (SDKs: steps, failures, UI look-ups)."""
        self._insert(
            "INSERT INTO outbox (kind, bot, run_id, created, agent_url, config, target, event) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, json(?))",
            [kind, bot, run_id, time.time(), agent_url, config, target or AGENT, event_json])

    # -- the bound ------------------------------------------------------------------------------
    def events(self) -> int:
        count: int = self.db.execute("SELECT value FROM meta WHERE key = 'events'").fetchone()[0]
        return count

    def dropped(self, target: str) -> tuple[int, float | None]:
        """(events of `target` dropped and not yet reported, time of the latest drop)."""
        rows: dict[str, float] = dict(self.db.execute("SELECT key, value FROM meta WHERE key IN (?, ?)",
                                    ("dropped:" + target, "dropped_at:" + target)))
        return int(rows.get("dropped:" + target, 0)), rows.get("dropped_at:" + target)

    def dropped_reported(self, target: str, n: int) -> None:
        """`n` drops of `target` reached their destination: only they are taken off the count."""
        self.db.execute("UPDATE meta SET value = value - ? WHERE key = ?", (n, "dropped:" + target))

    # -- delivery side: the agent ---------------------------------------------------------------
    def ready(self, now: float, limit: int = 500) -> list[ReadyRow]:
        """Agent events due for a (re)try, oldest first."""
        return self.db.execute(
            "SELECT seq, bot, run_id, agent_url, config, event, attempts, kind FROM outbox "
            "WHERE target = 'agent' AND next_attempt <= ? ORDER BY seq LIMIT ?", (now, limit)).fetchall()

    def waiting(self, now: float) -> list[tuple[int, str, str | None, str | None]]:
        """Agent events held back until later (a backoff, a deferral): (seq, bot, agent_url, config)."""
        return self.db.execute(
            "SELECT seq, bot, agent_url, config FROM outbox WHERE target = 'agent' AND next_attempt > ?",
            (now,)).fetchall()

    def newest_seq(self) -> int:
        """The number of the latest event ever spooled (grows with every new event)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def next_attempt_at(self) -> float | None:
        """When there is something to do next: an event to send, totals to publish; None if nothing."""
        row = self.db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(next_attempt) AS t FROM outbox "
            "UNION ALL SELECT MIN(next_attempt) FROM totals WHERE pending = 1)").fetchone()
        at: float | None = row[0]
        return at

    def pending(self) -> int:
        """Finished runs not yet delivered, and totals not yet published."""
        count: int = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE kind = 'finish') "
            "+ (SELECT COUNT(*) FROM totals WHERE pending = 1)").fetchone()[0]
        return count

    def delivered(self, seqs: list[int]) -> None:
        with self._transaction():
            self.db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def retry_later(self, seqs: list[int], error: str, delay: float) -> None:
        with self._transaction():
            self.db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE seq = ?",
                [(time.time() + delay, error, s) for s in seqs])

    def defer(self, seqs: list[int], until: float) -> None:
        """Hold events back until `until` without counting an attempt (their target is busy or
        backing off; 0 makes them due now)."""
        with self._transaction():
            self.db.executemany("UPDATE outbox SET next_attempt = ? WHERE seq = ?", [(until, s) for s in seqs])

    def bury(self, seq: int, error: str) -> None:
        """Move an event the agent refused for good (unknown bot, invalid) out of the queue."""
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO dead (seq, bot, run_id, event, error, at) "
                            "SELECT seq, bot, run_id, event, ?, ? FROM outbox WHERE seq = ?", (error, time.time(), seq))
            self.db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    # -- delivery side: totals for the Pushgateway and the textfile collector -------------------
    def fold(self, apply: Callable[[Totals, str], object], limit: int = 1000) -> int:
        """Fold spooled events of the targets without an agent into their bots' totals.

        `apply(totals, event_json)` updates one bot's totals (a dict of TOTALS_COLUMNS) with a
        finished run. The events are applied and removed in one transaction, so each run counts
        exactly once whatever happens to the publication afterwards; the touched totals are
        marked pending. Drops counted for those targets are folded into their spool row the
        same way. Returns the number of events folded.
        """
        with self._transaction():
            rows = self.db.execute(
                "SELECT seq, target, bot, kind, event FROM outbox WHERE target != 'agent' ORDER BY seq LIMIT ?",
                (limit,)).fetchall()
            touched: dict[tuple[str, str], Totals] = {}
            for seq, target, bot, kind, event in rows:
                if kind != "finish":
                    continue  # starts and samples matter to an agent only
                totals = touched.get((target, bot))
                if totals is None:
                    totals = touched[(target, bot)] = self._load_totals(target, bot)
                trial = {**totals, "failures": dict(totals["failures"]), "buckets": list(totals["buckets"])}
                try:
                    apply(trial, event)
                except Exception as exc:  # an event that cannot be counted must not block the others
                    self.db.execute("INSERT OR REPLACE INTO dead (seq, bot, run_id, event, error, at) "
                                    "SELECT seq, bot, run_id, event, ?, ? FROM outbox WHERE seq = ?",
                                    (f"{type(exc).__name__}: {exc}", time.time(), seq))
                    continue
                touched[(target, bot)] = trial
            for seq_chunk in _chunks([r[0] for r in rows], 500):
                self.db.execute(f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(seq_chunk))})", seq_chunk)
            for target in {t for t, _bot in touched}:
                if (target, "") not in touched and not self.db.execute(
                        "SELECT 1 FROM totals WHERE target = ? AND bot = ''", (target,)).fetchone():
                    touched[(target, "")] = self._load_totals(target, "")  # first publication: 0 dropped
            for key, value in self.db.execute(
                    "SELECT key, value FROM meta WHERE key LIKE 'dropped:%' AND key != 'dropped:agent' "
                    "AND value != 0").fetchall():
                target = key.removeprefix("dropped:")
                own = touched.get((target, ""))
                if own is None:
                    own = touched[(target, "")] = self._load_totals(target, "")
                own["dropped_total"] += value
                self.db.execute("UPDATE meta SET value = value - ? WHERE key = ?", (value, key))
            for totals in touched.values():
                totals["pending"], totals["next_attempt"] = 1, 0
                self._save_totals(totals)
        return len(rows)

    def _load_totals(self, target: str, bot: str) -> Totals:
        import json

        row = self.db.execute(f"SELECT {', '.join(TOTALS_COLUMNS)} FROM totals WHERE target = ? AND bot = ?",
                              (target, bot)).fetchone()
        if row is None:
            totals: Totals = {c: None for c in TOTALS_COLUMNS}
            totals.update(target=target, bot=bot, runs_total=0, failures={}, buckets=[], duration_sum=0.0,
                          duration_count=0, consecutive_failures=0, dropped_total=0, pending=1, attempts=0,
                          next_attempt=0)
            return totals
        totals = dict(zip(TOTALS_COLUMNS, row))
        totals["failures"] = json.loads(totals["failures"])
        totals["buckets"] = json.loads(totals["buckets"])
        return totals

    def _save_totals(self, totals: Totals) -> None:
        import json

        values = [json.dumps(totals[c]) if c in ("failures", "buckets") else totals[c] for c in TOTALS_COLUMNS]
        self.db.execute(f"INSERT OR REPLACE INTO totals ({', '.join(TOTALS_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(TOTALS_COLUMNS))})", values)

    def totals_due(self, now: float) -> list[Totals]:
        """Totals waiting to be published whose next attempt is due, by target, spool row last."""
        import json

        rows = self.db.execute(
            f"SELECT {', '.join(TOTALS_COLUMNS)} FROM totals WHERE pending = 1 AND next_attempt <= ? "
            "ORDER BY target, bot = '', bot", (now,)).fetchall()
        out: list[Totals] = []
        for row in rows:
            totals: Totals = dict(zip(TOTALS_COLUMNS, row))
            totals["failures"] = json.loads(totals["failures"])
            totals["buckets"] = json.loads(totals["buckets"])
            out.append(totals)
        return out

    def published(self, target: str, bot: str, sent: Totals | None = None) -> None:
        """The totals of (target, bot) were published; with `sent`, the totals that went out, only if
        no run or drop was folded in since (else they stay pending, to be published again)."""
        sql = ("UPDATE totals SET pending = 0, attempts = 0, next_attempt = 0, last_error = NULL "
               "WHERE target = ? AND bot = ?")
        args: tuple[Value, ...] = (target, bot)
        if sent is not None:
            sql += " AND runs_total = ? AND dropped_total = ?"
            args += (sent["runs_total"], sent["dropped_total"])
        self.db.execute(sql, args)

    def totals_due_now(self, target: str) -> None:
        """`target` answered: its totals still waiting out a backoff are due now."""
        self.db.execute("UPDATE totals SET next_attempt = 0 WHERE target = ? AND pending = 1", (target,))

    def defer_totals(self, target: str, bots: list[str], until: float) -> None:
        """Totals being published: not picked again before `until` (no attempt counted)."""
        with self._transaction():
            self.db.executemany("UPDATE totals SET next_attempt = ? WHERE target = ? AND bot = ?",
                                [(until, target, b) for b in bots])

    def publish_later(self, target: str, bots: list[str], error: str, delay: float) -> None:
        with self._transaction():
            self.db.executemany(
                "UPDATE totals SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE target = ? AND bot = ?", [(time.time() + delay, error, target, b) for b in bots])

    def republish_all(self, target: str) -> None:
        """Publish every group of `target` again (it was unreachable and may have lost them)."""
        self.db.execute("UPDATE totals SET pending = 1, next_attempt = 0 WHERE target = ?", (target,))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.db.in_transaction:  # inside a transaction already begun: part of it
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if not self.outer:
            return False
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
