"""The agent's journal: finished runs and state flips in SQLite (WAL).

Every finished run and every flip is committed here before the agent acknowledges it, and the
estate state is rebuilt from it on start, so counters survive restarts. WAL with
synchronous=FULL keeps committed rows through a SIGKILL (and a power cut) of any process.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .events import RunFinished

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    bot TEXT NOT NULL,
    run_id TEXT NOT NULL,
    host TEXT,
    started REAL,
    ended REAL NOT NULL,
    exit_status INTEGER,
    outcome TEXT NOT NULL,
    reason TEXT,
    signal INTEGER,
    timed_out INTEGER NOT NULL DEFAULT 0,
    output_tail TEXT,
    cpu_seconds REAL,
    peak_rss_bytes INTEGER,
    source TEXT,
    received REAL NOT NULL,
    PRIMARY KEY (bot, run_id)
);
CREATE INDEX IF NOT EXISTS runs_by_end ON runs (bot, ended);
CREATE TABLE IF NOT EXISTS flips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    at REAL NOT NULL,
    old_state TEXT NOT NULL,
    new_state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS flips_by_bot ON flips (bot, id);
CREATE TABLE IF NOT EXISTS log_offsets (
    key TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    offset INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bots (
    name TEXT PRIMARY KEY,
    first_seen REAL NOT NULL
);
"""

_RUN_COLUMNS = ("bot", "run_id", "host", "started", "ended", "exit_status", "outcome", "reason", "signal",
                "timed_out", "output_tail", "cpu_seconds", "peak_rss_bytes", "source")


class JournalError(Exception):
    """The journal cannot be written (disk full, read-only, locked): the caller must not ack."""


@dataclass(frozen=True)
class Flip:
    bot: str
    at: float
    old_state: str
    new_state: str
    reason: str | None = None


class Journal:
    def __init__(self, path: str | Path, *, readonly: bool = False, busy_timeout_ms: int = 10000):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                           timeout=busy_timeout_ms / 1000)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout_ms / 1000,
                                           isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{self.path}: cannot open journal: {exc}") from exc
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator["Journal"]:
        """One atomic write; raises JournalError (after rollback) if it cannot be committed."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: {exc}") from exc
            try:
                yield self
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise JournalError(f"{self.path}: {exc}") from exc
                raise

    # --- writes (inside transaction()) ----------------------------------------------------

    def insert_run(self, run: RunFinished, received: float) -> bool:
        """Store a finished run; False if this (bot, run_id) is already recorded."""
        values = [getattr(run, c) for c in _RUN_COLUMNS]
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_COLUMNS)}, received) "
            f"VALUES ({', '.join('?' * len(_RUN_COLUMNS))}, ?)",
            [*values[:9], int(bool(run.timed_out)), *values[10:], received],
        )
        return cur.rowcount == 1

    def insert_flip(self, flip: Flip) -> None:
        self._db.execute(
            "INSERT INTO flips (bot, at, old_state, new_state, reason) VALUES (?, ?, ?, ?, ?)",
            (flip.bot, flip.at, flip.old_state, flip.new_state, flip.reason),
        )

    def ensure_bot(self, name: str, now: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO bots (name, first_seen) VALUES (?, ?)", (name, now))

    def set_offset(self, key: str, identity: str, offset: int, now: float) -> None:
        """Where a log reader is in a file (identity: what tells a rotated file from the next)."""
        self._db.execute("INSERT OR REPLACE INTO log_offsets (key, identity, offset, updated) VALUES (?, ?, ?, ?)",
                         (key, identity, offset, now))

    # --- reads ---------------------------------------------------------------------------

    def first_seen(self) -> dict[str, float]:
        with self._lock:
            return {r["name"]: r["first_seen"] for r in self._db.execute("SELECT name, first_seen FROM bots")}

    def iter_runs(self) -> Iterator[RunFinished]:
        """All finished runs in the order they ended (for rebuilding state)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY ended, rowid").fetchall()
        for r in rows:
            d = dict(r)
            d["timed_out"] = bool(d["timed_out"])
            yield RunFinished(**d)

    def last_flips(self) -> dict[str, Flip]:
        with self._lock:
            rows = self._db.execute(
                "SELECT bot, at, old_state, new_state, reason FROM flips WHERE id IN "
                "(SELECT MAX(id) FROM flips GROUP BY bot)").fetchall()
        return {r["bot"]: Flip(**dict(r)) for r in rows}

    def flip_counts(self, new_state: str) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT bot, COUNT(*) FROM flips WHERE new_state = ? GROUP BY bot", (new_state,))
            return {bot: n for bot, n in rows}

    def flips(self, bot: str | None = None, limit: int = 100) -> list[Flip]:
        with self._lock:
            if bot is None:
                rows = self._db.execute("SELECT bot, at, old_state, new_state, reason FROM flips "
                                        "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute("SELECT bot, at, old_state, new_state, reason FROM flips WHERE bot = ? "
                                        "ORDER BY id DESC LIMIT ?", (bot, limit)).fetchall()
        return [Flip(**dict(r)) for r in rows][::-1]

    def recent_runs(self, bot: str, limit: int = 10) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, started, ended, exit_status, outcome, reason FROM runs WHERE bot = ? "
                "ORDER BY ended DESC LIMIT ?", (bot, limit)).fetchall()
        return [dict(r) for r in rows]

    def offset(self, key: str) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute("SELECT identity, offset FROM log_offsets WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def count_runs(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
