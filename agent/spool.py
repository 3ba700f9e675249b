"""The local spool: every run event a wrapper (or SDK) produces is committed here first, then
delivered by a background deliverer (delivery.py). A run is therefore on disk before
`botwatch run` exits, whatever happens to the agent or the network afterwards.

Only sqlite3 is imported: this is on the hot path of `botwatch run`. The event JSON is built
by SQLite's own json_object(), so the wrapper does not need the json module either.
"""

import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
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
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    bot TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event TEXT NOT NULL,
    error TEXT,
    at REAL NOT NULL
);
"""
_FINISHED_FIELDS = ("started", "ended", "outcome", "exit_status", "reason", "signal", "timed_out",
                    "host", "output_tail", "cpu_seconds", "peak_rss_bytes")


def default_spool_path() -> str:
    env = os.environ.get("BOTWATCH_SPOOL")
    if env:
        return env
    from ._platform import user_state_dir

    return os.path.join(user_state_dir(), "spool.db")


class Spool:
    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='outbox'").fetchone():
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _add(self, kind: str, bot: str, run_id: str, agent_url, config, pairs: list) -> None:
        args, placeholders = [], []
        for key, value in pairs:
            placeholders.append("?, ?")
            args += [key, value]
        self.db.execute(
            "INSERT INTO outbox (kind, bot, run_id, created, agent_url, config, event) "
            f"VALUES (?, ?, ?, ?, ?, ?, json_object({', '.join(placeholders)}))",
            [kind, bot, run_id, time.time(), agent_url, config, *args],
        )

    def add_started(self, bot, run_id, at, host, *, agent_url=None, config=None) -> None:
        self._add("start", bot, run_id, agent_url, config, [
            ("type", "run_started"), ("bot", bot), ("run_id", run_id), ("time", at), ("host", host),
            ("source", "wrapper")])

    def add_sample(self, bot, run_id, at, cpu_seconds, rss_bytes, processes, *, agent_url=None, config=None) -> None:
        self._add("sample", bot, run_id, agent_url, config, [
            ("type", "resource_sample"), ("bot", bot), ("run_id", run_id), ("time", at),
            ("cpu_seconds", cpu_seconds), ("rss_bytes", rss_bytes), ("processes", processes), ("source", "wrapper")])

    def add_finished(self, bot, run_id, *, agent_url=None, config=None, source="wrapper", **fields) -> None:
        pairs = [("type", "run_finished"), ("bot", bot), ("run_id", run_id), ("source", source)]
        for key in _FINISHED_FIELDS:
            value = fields.get(key)
            if value is not None:
                pairs.append((key, int(value) if key == "timed_out" else value))
        self._add("finish", bot, run_id, agent_url, config, pairs)

    def add_event(self, kind: str, bot: str, run_id: str, event_json: str, *, agent_url=None, config=None) -> None:
        """Any event already serialised as a JSON object (SDKs: steps, failures, UI look-ups)."""
        self.db.execute(
            "INSERT INTO outbox (kind, bot, run_id, created, agent_url, config, event) VALUES (?, ?, ?, ?, ?, ?, json(?))",
            [kind, bot, run_id, time.time(), agent_url, config, event_json])

    # -- delivery side ------------------------------------------------------------------------
    def ready(self, now: float, limit: int = 500) -> list[tuple]:
        return self.db.execute(
            "SELECT seq, bot, run_id, agent_url, config, event, attempts FROM outbox "
            "WHERE next_attempt <= ? ORDER BY seq LIMIT ?", (now, limit)).fetchall()

    def next_attempt_at(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_attempt) FROM outbox").fetchone()
        return row[0]

    def pending(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'finish'").fetchone()[0]

    def delivered(self, seqs: list[int]) -> None:
        self.db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def retry_later(self, seqs: list[int], error: str, delay: float) -> None:
        self.db.executemany(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE seq = ?",
            [(time.time() + delay, error, s) for s in seqs])

    def bury(self, seq: int, error: str) -> None:
        """Move an event the agent refused for good (unknown bot, invalid) out of the queue."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT OR REPLACE INTO dead (seq, bot, run_id, event, error, at) "
                            "SELECT seq, bot, run_id, event, ?, ? FROM outbox WHERE seq = ?", (error, time.time(), seq))
            self.db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
