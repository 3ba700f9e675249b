"""Sources as plugins: the Source base (thread, never-raise, backoff, warnings, checkpoints), the
registry, the journal's checkpoints (and the move of an older journal's log offsets into them),
and a source defined outside the agent (tests/toy_source.py) loaded by a real agent process."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from conftest import free_port, wait_for

TESTS = Path(__file__).resolve().parent


# -- the journal's checkpoints ---------------------------------------------------------------

def _old_journal(path: Path, rows: list[tuple[str, str, int]]) -> None:
    """A journal as agents before checkpoints wrote it: progress in table log_offsets."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (bot TEXT NOT NULL, run_id TEXT NOT NULL, host TEXT, started REAL, ended REAL NOT NULL,
            exit_status INTEGER, outcome TEXT NOT NULL, reason TEXT, signal INTEGER,
            timed_out INTEGER NOT NULL DEFAULT 0, output_tail TEXT, cpu_seconds REAL, peak_rss_bytes INTEGER,
            source TEXT, received REAL NOT NULL, PRIMARY KEY (bot, run_id));
        CREATE TABLE log_offsets (key TEXT PRIMARY KEY, identity TEXT NOT NULL, offset INTEGER NOT NULL,
            updated REAL NOT NULL);
        CREATE TABLE bots (name TEXT PRIMARY KEY, first_seen REAL NOT NULL);
    """)
    db.executemany("INSERT INTO log_offsets VALUES (?, ?, ?, 1700000000.0)", rows)
    db.commit()
    db.close()


def test_it_moves_an_older_journals_log_offsets_into_checkpoints(tmp_path):
    from botwatch.state.journal import Journal

    parser_state = 'json:{"open": {"run-1": {"started": 1.5}}}'
    _old_journal(tmp_path / "j.db", [
        ("alpha:/var/log/alpha.log", "2049:1234:9f86d081", 4096),
        ("alpha:/var/log/alpha.log#rotated", "2049:1233:60303ae2", 777),
        ("alpha#parser:robot:/runs/*.xml", parser_state, 1),
        ("snapshots:alpha/login", json.dumps({"a.html": "10:1700000000000000000"}), 1),
        ("snapshots:/var/log/s.log", "2049:99:aa", 12),  # a bot named "snapshots": its log, not the folder
    ])
    j = Journal(tmp_path / "j.db")
    try:
        assert j.offset("alpha:/var/log/alpha.log") == ("2049:1234:9f86d081", 4096)
        assert j.offset("alpha:/var/log/alpha.log#rotated") == ("2049:1233:60303ae2", 777)
        assert j.offset("alpha#parser:robot:/runs/*.xml") == (parser_state, 1)
        assert j.offset("snapshots:/var/log/s.log") == ("2049:99:aa", 12)
        assert j.get_checkpoint("snapshots", "alpha/login") == {"seen": {"a.html": "10:1700000000000000000"}}
    finally:
        j.close()
    db = sqlite3.connect(tmp_path / "j.db")
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        moved = db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    finally:
        db.close()
    assert "log_offsets" not in tables and moved == 5
    j = Journal(tmp_path / "j.db")  # opened again: nothing more to move, nothing lost
    try:
        assert j.offset("alpha:/var/log/alpha.log") == ("2049:1234:9f86d081", 4096)
    finally:
        j.close()


def test_it_keeps_a_checkpoint_per_source_and_identity(tmp_path):
    from botwatch.state.journal import Journal

    j = Journal(tmp_path / "j.db")
    try:
        assert j.get_checkpoint("toy", "a") is None
        with j.transaction() as t:
            t.put_checkpoint("toy", "a", {"count": 1})
            t.put_checkpoint("toy", "b", {"count": 2})
            t.put_checkpoint("other", "a", {"count": 3})
        with j.transaction() as t:
            t.put_checkpoint("toy", "a", {"count": 4, "files": ["x", "y"]})
        assert j.get_checkpoint("toy", "a") == {"count": 4, "files": ["x", "y"]}
        assert j.get_checkpoint("other", "a") == {"count": 3}
        assert [(i, s) for i, s, _ in j.checkpoints("toy")] == [("a", {"count": 4, "files": ["x", "y"]}),
                                                               ("b", {"count": 2})]
        with j.transaction() as t:
            t.delete_checkpoint("toy", "b")
        assert j.get_checkpoint("toy", "b") is None
    finally:
        j.close()


# -- the base class, in this process ---------------------------------------------------------

class _Counts:
    """The part of the estate state a source counts into."""

    def __init__(self):
        self.parse_errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def count_parse_error(self, source: str, n: int = 1) -> None:
        with self.lock:
            self.parse_errors[source] = self.parse_errors.get(source, 0) + n


def test_it_counts_a_crashing_poll_under_the_sources_label_and_goes_on_polling(caplog):
    from botwatch.sources import registry
    from botwatch.sources.base import Source

    class Flaky(Source, register=False):
        name = "flaky"
        error_labels = ("flaky-errors",)

        def __init__(self, state):
            super().__init__(state, None, interval=0.01)
            self.polls = 0

        def poll_once(self):
            self.polls += 1
            if self.polls <= 3:
                raise ValueError("not yet")

    counts = _Counts()
    source = Flaky(counts)
    with caplog.at_level(logging.WARNING, logger="botwatch.sources"):
        source.start()
        try:
            wait_for(lambda: source.polls >= 6, what="polls after the crashes")
            assert source.is_alive()
        finally:
            source.stop()
    assert counts.parse_errors == {"flaky-errors": 3} and source.crashes == 3
    assert "flaky" not in registry.sources()  # register=False
    warnings = [r for r in caplog.records if "botwatch-source-flaky" in r.getMessage()]
    assert len(warnings) == 1  # one warning per kind of crash and period, not one per crash


def test_it_backs_off_a_loop_that_keeps_crashing_up_to_a_cap(monkeypatch):
    from botwatch.sources import base

    waits: list[float] = []

    class Broken(base.Source, register=False):
        name = "broken"

        def poll_once(self):
            raise OSError("always")

        def wait(self, seconds):
            waits.append(seconds)
            return len(waits) >= 12

    monkeypatch.setattr(base, "MAX_BACKOFF", 8.0)
    source = Broken(_Counts(), None, interval=1.0)
    source._run()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert source.state.parse_errors == {"broken": 12}


def test_it_warns_once_per_key_and_period():
    from botwatch.sources.base import Source

    class Quiet(Source, register=False):
        name = "quiet"

    source = Quiet(_Counts(), None)
    assert source.warn(("missing", "/a"), "missing %s", "/a") is True
    assert source.warn(("missing", "/a"), "missing %s", "/a") is False
    assert source.warn(("missing", "/b"), "missing %s", "/b") is True
    assert source.warn(("missing", "/a"), "missing %s", "/a", every=0.0) is True


def test_it_saves_and_loads_checkpoints_under_the_sources_name(tmp_path):
    from botwatch.state.journal import Journal
    from botwatch.sources.base import Source

    class Keeper(Source, register=False):
        name = "keeper"

    j = Journal(tmp_path / "j.db")
    try:
        source = Keeper(_Counts(), j)
        assert source.load_checkpoint("x") is None
        assert source.save_checkpoint("x", {"at": 3}) is True
        assert Keeper(_Counts(), j).load_checkpoint("x") == {"at": 3}
        assert j.get_checkpoint("keeper", "x") == {"at": 3}
    finally:
        j.close()
    assert Keeper(_Counts(), None).load_checkpoint("x") is None  # no journal: nothing remembered


# -- the registry ----------------------------------------------------------------------------

def test_it_starts_the_built_in_sources_an_estate_asks_for(tmp_path):
    from botwatch.config.estate import load_estate
    from botwatch.sources import registry

    (tmp_path / "plain.yaml").write_text("bots:\n  - name: alpha\n")
    (tmp_path / "all.yaml").write_text(
        "agent:\n  snapshots: ./snaps\n"
        "bots:\n  - name: alpha\n    watch:\n      logs:\n        - path: ./alpha.log\n          format: regex\n          error: ERROR\n")
    names = lambda f: sorted(c.name for c in registry.wanted(load_estate(tmp_path / f)))  # noqa: E731
    assert names("plain.yaml") == ["processes"]
    assert names("all.yaml") == ["logs", "processes", "snapshots"]


def test_it_keeps_the_label_lists_of_the_metrics():
    from botwatch.exporters import prometheus
    from botwatch.state.runtime import EVENT_SOURCES

    assert {"api", "folder", "ping", "process", "robot", "sdk", "spool", "wrapper", "log:regex",
            "log:robot", "other"} <= set(EVENT_SOURCES)
    assert EVENT_SOURCES[-1] == "other"
    assert {"api", "ping", "snapshot", "process", "log:regex"} <= set(prometheus.PARSE_ERROR_SOURCES)


# -- a source from outside the agent, in a real agent process ---------------------------------

def _toy_estate(tmp_path: Path, port: int, modules: str = "[toy_source]") -> Path:
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"""\
agent:
  listen: 127.0.0.1:{port}
  journal: {tmp_path / 'journal.db'}
  source_modules: {modules}
bots:
  - name: toy-bot
""", encoding="utf-8")
    return config


def _toy_env(folder: Path) -> dict:
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TOY_SOURCE_DIR": str(folder)}


def test_it_runs_a_source_loaded_from_the_estates_source_modules(tmp_path, agents):
    folder = tmp_path / "toy"
    folder.mkdir()
    port = free_port()
    agent = agents(_toy_estate(tmp_path, port), port, _toy_env(folder)).start()
    events, errors = 'botwatch_agent_events_total{source="toy"}', 'botwatch_agent_parse_errors_total{source="toy"}'

    # started: its runs are recorded and its events counted under its own label
    first = wait_for(lambda: (m := agent.metrics()).get(events, 0) >= 3 and m, what="the toy's events")
    assert first['botwatch_runs_total{bot="toy-bot"}'] >= 3
    assert first[errors] == 0  # its error label is exported from the start
    assert json.loads((folder / "restored.json").read_text()) is None  # nothing to restore the first time

    # what it cannot read is counted under its label
    (folder / "bad").write_text("")
    wait_for(lambda: agent.metrics().get(errors) == 1, what="the toy's parse error")

    # a crashing poll loop: each crash counted, then it goes on producing events
    (folder / "crash").write_text("3")
    wait_for(lambda: agent.metrics().get(errors) == 4, what="three crashes counted")
    after_crashes = agent.metrics()[events]
    wait_for(lambda: agent.metrics()[events] >= after_crashes + 2, what="events after the crashes")
    assert (folder / "crash").read_text() == "0"

    # its checkpoint survives a restart: the new agent goes on from it
    agent.stop()
    from botwatch.state.journal import Journal

    j = Journal(tmp_path / "journal.db", readonly=True)
    try:
        saved = j.get_checkpoint("toy", "runs")
        runs_before = j.count_runs()
    finally:
        j.close()
    assert saved["count"] == runs_before >= 5
    (folder / "restored.json").unlink()
    again = agents(_toy_estate(tmp_path, port), port, _toy_env(folder)).start()
    wait_for(lambda: (folder / "restored.json").exists(), what="the restarted toy's first poll")
    assert json.loads((folder / "restored.json").read_text()) == saved
    wait_for(lambda: again.metrics().get('botwatch_runs_total{bot="toy-bot"}', 0) >= runs_before + 2,
             what="new runs after the restart (run ids continue from the checkpoint)")


def test_it_refuses_to_start_with_a_source_module_that_cannot_be_imported(tmp_path):
    import subprocess

    from conftest import BOTWATCH

    port = free_port()
    config = _toy_estate(tmp_path, port, modules="[no_such_source_module]")
    p = subprocess.run([*BOTWATCH, "agent", "--config", str(config)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **_toy_env(tmp_path)})
    assert p.returncode != 0
    assert "agent.source_modules" in p.stderr and "no_such_source_module" in p.stderr


def test_it_refuses_a_source_module_name_that_is_not_a_dotted_name(tmp_path):
    from botwatch.config.estate import ConfigError, load_estate

    config = _toy_estate(tmp_path, free_port(), modules='["../evil"]')
    with pytest.raises(ConfigError):
        load_estate(config)


def test_it_does_not_check_again_the_snapshots_an_older_journal_remembers(tmp_path, agents):
    folder = tmp_path / "snaps" / "alpha" / "login"
    folder.mkdir(parents=True)
    for name in ("a.json", "b.json"):  # neither is a snapshot: each one checked is a parse error
        (folder / name).write_text("not json")
    st = (folder / "a.json").stat()
    _old_journal(tmp_path / "journal.db",
                 [("snapshots:alpha/login", json.dumps({"a.json": f"{st.st_size}:{st.st_mtime_ns}"}), 1)])
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"""\
agent:
  listen: 127.0.0.1:{port}
  journal: {tmp_path / 'journal.db'}
  snapshots: ./snaps
bots:
  - name: alpha
""", encoding="utf-8")
    agent = agents(config, port).start()
    errors = 'botwatch_agent_parse_errors_total{source="snapshot"}'
    wait_for(lambda: agent.metrics().get(errors, 0) >= 1, what="b.json checked")
    agent.stop()
    # in name order: had a.json been checked again, it would have been counted before b.json
    assert _files_named_in_log(agent) == ["b.json"]


def _files_named_in_log(agent) -> list[str]:
    """The snapshot files the agent's log says it could not read."""
    return sorted({n for line in agent.log.read_text().splitlines() if "snapshot" in line
                   for n in ("a.json", "b.json") if n in line})
