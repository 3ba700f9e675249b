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
from typing import Any, Iterator

from .._platform import create_private, narrow_private, private_dir
from ..core.events import RunFinished
from .workqueues import ItemTotals

Row = dict[str, Any]  # a row by column name: SQLite values, as the table declares them
JsonObject = dict[str, Any]  # a decoded JSON object (a checkpoint's state)

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
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT NOT NULL,
    identity TEXT NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (source, identity)
);
CREATE TABLE IF NOT EXISTS bots (
    name TEXT PRIMARY KEY,
    first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ui_baselines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    screen TEXT NOT NULL,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    source TEXT,
    digest TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    raw BLOB,
    UNIQUE (bot, screen, kind)
);
CREATE TABLE IF NOT EXISTS ui_drift (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot TEXT NOT NULL,
    screen TEXT NOT NULL,
    kind TEXT NOT NULL,
    time REAL NOT NULL,
    score REAL NOT NULL,
    baseline_time REAL,
    run_id TEXT,
    selectors TEXT,
    source TEXT,
    UNIQUE (bot, screen, kind)
);
CREATE TABLE IF NOT EXISTS queue_item_days (
    platform TEXT NOT NULL,
    connection TEXT NOT NULL,
    folder TEXT NOT NULL,
    queue TEXT NOT NULL,
    day TEXT NOT NULL,
    status TEXT NOT NULL,
    exception TEXT NOT NULL,
    items INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (platform, connection, folder, queue, day, status, exception)
);
"""
# Columns added after the first release, created on open when an older journal lacks them.
_MIGRATIONS = (
    ("flips", "kind", "ALTER TABLE flips ADD COLUMN kind TEXT NOT NULL DEFAULT 'state'"),
    ("runs", "screen", "ALTER TABLE runs ADD COLUMN screen TEXT"),
    ("runs", "selector", "ALTER TABLE runs ADD COLUMN selector TEXT"),
    ("runs", "items_processed", "ALTER TABLE runs ADD COLUMN items_processed INTEGER"),
    ("runs", "items_failed", "ALTER TABLE runs ADD COLUMN items_failed INTEGER"),
    ("runs", "empty", "ALTER TABLE runs ADD COLUMN empty INTEGER NOT NULL DEFAULT 0"),
)
# Where the agent's sources are (table checkpoints): the log offsets of journals written before
# it kept them in table log_offsets, moved there on open (see _move_log_offsets).
LOG_CHECKPOINTS = "logs"
SNAPSHOT_CHECKPOINTS = "snapshots"
_SNAPSHOT_KEY = "snapshots:"  # the snapshot folder's keys in log_offsets
STATE_FLIP = "state"  # flips of the bot state machine (new, up, late, down, failing, paused)
UI_FLIP = "ui"  # a UI baseline accepted: kept in the history, never read as a bot state

_RUN_COLUMNS = ("bot", "run_id", "host", "started", "ended", "exit_status", "outcome", "reason", "signal",
                "timed_out", "output_tail", "cpu_seconds", "peak_rss_bytes", "source", "screen", "selector",
                "items_processed", "items_failed", "empty")
_FLAG_COLUMNS = ("timed_out", "empty")  # booleans, stored as 0 or 1
_RECENT_COLUMNS = ("run_id", "started", "ended", "exit_status", "outcome", "reason", "items_processed", "items_failed",
                   "empty")  # what the status page lists of a run


class JournalError(Exception):
    """The journal cannot be written (disk full, read-only, locked): the caller must not ack."""


@dataclass(frozen=True)
class Flip:
    """A change of a bot's state (kind "state"), or another recorded change of a bot that must
    not be read as one: kind "ui" is a UI baseline accepted (`botwatch drift accept`)."""

    bot: str
    at: float
    old_state: str
    new_state: str
    reason: str | None = None
    kind: str = STATE_FLIP


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
                # private to the agent's user: 0600 (SQLite gives -wal and -shm the database's
                # mode), in folders created 0700; a folder that exists keeps its mode
                private_dir(str(self.path.parent))
                create_private(str(self.path))
                for companion in ("-wal", "-shm"):
                    narrow_private(f"{self.path}{companion}")
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout_ms / 1000,
                                           isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
                self._migrate()
            self._columns = {t: {r[1] for r in self._db.execute(f"PRAGMA table_info({t})")}
                             for t in ("runs", "flips", "ui_baselines", "ui_drift", "checkpoints", "queue_item_days")}
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{self.path}: cannot open journal: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        # a read-only journal written before some columns existed is read without them
        self._run_columns = tuple(c for c in _RUN_COLUMNS if c in self._columns["runs"])
        # a state flip: every flip of a journal older than flip kinds
        self._state_only = " AND kind = 'state'" if "kind" in self._columns["flips"] else ""
        self._flip_kind = ", kind" if "kind" in self._columns["flips"] else ""

    def _migrate(self) -> None:
        for table, column, ddl in _MIGRATIONS:
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                try:
                    self._db.execute(ddl)
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        self._move_log_offsets()

    def _move_log_offsets(self) -> None:
        """Moves the rows of table log_offsets (journals older than checkpoints) into checkpoints,
        in one transaction, so an upgraded agent keeps its place in every log and folder."""
        import json

        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_offsets'").fetchone():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_offsets'")
            for key, identity, offset, updated in (self._db.execute(
                    "SELECT key, identity, offset, updated FROM log_offsets").fetchall() if exists.fetchone() else ()):
                # a log file's (identity, offset), or a parser's "json:"+state (a bot named
                # "snapshots" has log keys that look like the folder's: its identities are no JSON)
                row = (LOG_CHECKPOINTS, key, {"identity": identity, "offset": offset})
                if key.startswith(_SNAPSHOT_KEY):
                    try:
                        seen = json.loads(identity)
                    except ValueError:
                        seen = None
                    if isinstance(seen, dict):
                        row = (SNAPSHOT_CHECKPOINTS, key[len(_SNAPSHOT_KEY):], {"seen": seen})
                self._db.execute("INSERT OR IGNORE INTO checkpoints (source, identity, state, updated) "
                                 "VALUES (?, ?, ?, ?)", (row[0], row[1], json.dumps(row[2], sort_keys=True), updated))
            self._db.execute("DROP TABLE IF EXISTS log_offsets")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        columns = self._run_columns
        values = [int(bool(getattr(run, c))) if c in _FLAG_COLUMNS else getattr(run, c) for c in columns]
        cur = self._db.execute(
            f"INSERT OR IGNORE INTO runs ({', '.join(columns)}, received) "
            f"VALUES ({', '.join('?' * len(columns))}, ?)",
            [*values, received],
        )
        return cur.rowcount == 1

    def insert_flip(self, flip: Flip) -> None:
        self._db.execute(
            "INSERT INTO flips (bot, at, old_state, new_state, reason, kind) VALUES (?, ?, ?, ?, ?, ?)",
            (flip.bot, flip.at, flip.old_state, flip.new_state, flip.reason, flip.kind),
        )

    def put_ui_baseline(self, bot: str, screen: str, kind: str, *, created: float, digest: str,
                        fingerprint: bytes, raw: bytes | None, source: str | None, replace: bool) -> bool:
        """Store a screen's baseline; False if it has one and `replace` is off."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        cur = self._db.execute(
            f"{verb} INTO ui_baselines (bot, screen, kind, created, source, digest, fingerprint, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (bot, screen, kind, created, source, digest, fingerprint, raw))
        return cur.rowcount == 1

    def set_ui_drift(self, bot: str, screen: str, kind: str, *, time: float, score: float,
                     baseline_time: float | None, run_id: str | None, selectors: dict[str, int] | None,
                     source: str | None) -> None:
        """The latest drift of a screen (per kind of snapshot); an older reading never replaces a newer."""
        import json

        row = self._db.execute("SELECT time FROM ui_drift WHERE bot = ? AND screen = ? AND kind = ?",
                               (bot, screen, kind)).fetchone()
        if row is not None and row[0] > time:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO ui_drift (bot, screen, kind, time, score, baseline_time, run_id, selectors, "
            "source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (bot, screen, kind, time, score, baseline_time, run_id,
             json.dumps(selectors, sort_keys=True) if selectors is not None else None, source))

    def ensure_bot(self, name: str, now: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO bots (name, first_seen) VALUES (?, ?)", (name, now))

    def put_checkpoint(self, source: str, identity: str, state: JsonObject, now: float | None = None) -> None:
        """Where a source is in one of the things it reads (`identity`: a file, a folder...):
        `state`, any JSON object, replacing the one before."""
        import json
        import time

        self._db.execute("INSERT OR REPLACE INTO checkpoints (source, identity, state, updated) VALUES (?, ?, ?, ?)",
                         (source, identity, json.dumps(state, sort_keys=True), time.time() if now is None else now))

    def add_queue_items(self, rows: list[ItemTotals]) -> None:
        """Adds items of work queues that ended to their days' totals."""
        self._db.executemany(
            "INSERT INTO queue_item_days (platform, connection, folder, queue, day, status, exception, items, "
            "retries, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(platform, connection, folder, queue, day, status, exception) DO UPDATE SET items = items + "
            "excluded.items, retries = retries + excluded.retries, seconds = seconds + excluded.seconds",
            [(*r.queue, r.day, r.status, r.exception, r.items, r.retries, r.seconds) for r in rows])

    def delete_checkpoint(self, source: str, identity: str) -> None:
        self._db.execute("DELETE FROM checkpoints WHERE source = ? AND identity = ?", (source, identity))

    def set_offset(self, key: str, identity: str, offset: int, now: float) -> None:
        """Where a log reader is in a file (identity: what tells a rotated file from the next)."""
        self.put_checkpoint(LOG_CHECKPOINTS, key, {"identity": identity, "offset": offset}, now)

    # --- reads ---------------------------------------------------------------------------

    def first_seen(self) -> dict[str, float]:
        with self._lock:
            return {r["name"]: r["first_seen"] for r in self._db.execute("SELECT name, first_seen FROM bots")}

    def iter_runs(self, bot: str | None = None) -> Iterator[RunFinished]:
        """All finished runs (of `bot`, when given) in the order they ended (for rebuilding state)."""
        where, args = ("WHERE bot = ? ", (bot,)) if bot is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(self._run_columns)} FROM runs {where}ORDER BY ended, rowid",
                                    args).fetchall()
        for r in rows:
            d = dict(r)
            for c in _FLAG_COLUMNS:
                if c in d:
                    d[c] = bool(d[c])
            yield RunFinished(**d)

    def last_flips(self) -> dict[str, Flip]:
        """Each bot's latest state flip (the state machine resumes from it; other kinds are skipped)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT bot, at, old_state, new_state, reason{self._flip_kind} FROM flips WHERE id IN "
                f"(SELECT MAX(id) FROM flips WHERE 1{self._state_only} GROUP BY bot)").fetchall()
        return {r["bot"]: Flip(**dict(r)) for r in rows}

    def flip_counts(self, new_state: str) -> dict[str, int]:
        """State flips into `new_state`, per bot."""
        with self._lock:
            rows = self._db.execute(f"SELECT bot, COUNT(*) FROM flips WHERE new_state = ?{self._state_only} "
                                    "GROUP BY bot", (new_state,))
            return {bot: n for bot, n in rows}

    def flips(self, bot: str | None = None, limit: int = 100) -> list[Flip]:
        """The latest flips of every kind, oldest first."""
        cols = f"bot, at, old_state, new_state, reason{self._flip_kind}"
        with self._lock:
            if bot is None:
                rows = self._db.execute(f"SELECT {cols} FROM flips ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute(f"SELECT {cols} FROM flips WHERE bot = ? ORDER BY id DESC LIMIT ?",
                                        (bot, limit)).fetchall()
        return [Flip(**dict(r)) for r in rows][::-1]

    def ui_baseline(self, bot: str, screen: str, kind: str, *, header_only: bool = False) -> Row | None:
        """A screen's baseline: id, created, source, digest (and fingerprint, raw unless `header_only`)."""
        if not self._columns.get("ui_baselines"):
            return None  # a read-only journal older than UI baselines
        cols = "id, created, source, digest" + ("" if header_only else ", fingerprint, raw")
        with self._lock:
            row = self._db.execute(f"SELECT {cols} FROM ui_baselines WHERE bot = ? AND screen = ? AND kind = ?",
                                   (bot, screen, kind)).fetchone()
        return dict(row) if row else None

    def ui_baselines(self, bot: str | None = None) -> list[Row]:
        """Every baseline's bot, screen, kind, created, source (no fingerprints)."""
        if not self._columns.get("ui_baselines"):
            return []
        with self._lock:
            rows = self._db.execute("SELECT bot, screen, kind, created, source FROM ui_baselines "
                                    + ("WHERE bot = ? " if bot else "") + "ORDER BY bot, screen, kind",
                                    (bot,) if bot else ()).fetchall()
        return [dict(r) for r in rows]

    def ui_baseline_screens(self, bot: str) -> list[str]:
        """The screens a bot has a baseline of (any kind)."""
        if not self._columns.get("ui_baselines"):
            return []
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT screen FROM ui_baselines WHERE bot = ?", (bot,))]

    def ui_drift(self, after_id: int = 0) -> list[Row]:
        """Latest drift per (bot, screen, kind) written after row id `after_id`, oldest first; the
        selectors decoded."""
        import json

        if not self._columns.get("ui_drift"):
            return []
        with self._lock:
            rows = self._db.execute("SELECT id, bot, screen, kind, time, score, baseline_time, run_id, selectors, "
                                    "source FROM ui_drift WHERE id > ? ORDER BY id", (after_id,)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            try:
                d["selectors"] = json.loads(d["selectors"]) if d["selectors"] else None
            except ValueError:
                d["selectors"] = None
            out.append(d)
        return out

    def ui_drift_latest(self, bot: str, screen: str, kind: str) -> Row | None:
        if not self._columns.get("ui_drift"):
            return None
        with self._lock:
            row = self._db.execute("SELECT time, score, baseline_time FROM ui_drift WHERE bot = ? AND screen = ? "
                                   "AND kind = ?", (bot, screen, kind)).fetchone()
        return dict(row) if row else None

    def ui_drift_seq(self) -> int:
        """The id of the latest drift row written (cheap: tells whether there is anything new)."""
        if not self._columns.get("ui_drift"):
            return 0
        with self._lock:
            seq: int = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM ui_drift").fetchone()[0]
            return seq

    def recent_runs(self, bot: str, limit: int = 10) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(c for c in _RECENT_COLUMNS if c in self._run_columns)} FROM runs WHERE bot = ? "
                "ORDER BY ended DESC LIMIT ?", (bot, limit)).fetchall()
        return [dict(r) for r in rows]

    def queue_item_days(self, since_day: str = "") -> list[ItemTotals]:
        """The work queues' daily totals from `since_day` (YYYY-MM-DD) on."""
        if not self._columns.get("queue_item_days"):
            return []  # a read-only journal older than work queues
        with self._lock:
            rows = self._db.execute(
                "SELECT platform, connection, folder, queue, day, status, exception, items, retries, seconds "
                "FROM queue_item_days WHERE day >= ? ORDER BY platform, connection, folder, queue, day",
                (since_day,)).fetchall()
        return [ItemTotals((r[0], r[1], r[2], r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows]

    def get_checkpoint(self, source: str, identity: str) -> JsonObject | None:
        """The state last put for (source, identity); None when there is none (or it is unreadable)."""
        import json

        if not self._columns.get("checkpoints"):
            return None  # a read-only journal older than checkpoints
        with self._lock:
            row = self._db.execute("SELECT state FROM checkpoints WHERE source = ? AND identity = ?",
                                   (source, identity)).fetchone()
        try:
            state = json.loads(row[0]) if row else None
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def checkpoints(self, source: str) -> Iterator[tuple[str, JsonObject, float]]:
        """Every (identity, state, updated) of a source, by identity."""
        import json

        if not self._columns.get("checkpoints"):
            return
        with self._lock:
            rows = self._db.execute("SELECT identity, state, updated FROM checkpoints WHERE source = ? "
                                    "ORDER BY identity", (source,)).fetchall()
        for identity, text, updated in rows:
            try:
                state = json.loads(text)
            except ValueError:
                continue
            if isinstance(state, dict):
                yield identity, state, updated

    def offset(self, key: str) -> tuple[str, int] | None:
        """Where a log reader was in a file: (identity, offset), as set_offset put it."""
        state = self.get_checkpoint(LOG_CHECKPOINTS, key)
        try:
            return (str(state["identity"]), int(state["offset"])) if state else None
        except (KeyError, TypeError, ValueError):
            return None

    def count_runs(self) -> int:
        with self._lock:
            count: int = self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            return count
