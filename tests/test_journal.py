"""The journal survives SIGKILL at any moment: every acknowledged run is there, the file is sound."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import textwrap
import time

from botwatch.core.events import RunFinished
from botwatch.state.journal import Flip, Journal, JournalError

WRITER = textwrap.dedent("""
    import sys, time
    from botwatch.core.events import RunFinished
    from botwatch.state.journal import Journal, Flip
    j = Journal(sys.argv[1])
    i = 0
    while True:
        with j.transaction() as t:
            for k in range(5):
                t.insert_run(RunFinished(bot="b", run_id=f"{sys.argv[2]}-{i}-{k}", ended=time.time(),
                                         outcome="success", output_tail="x" * 2000), time.time())
            t.insert_flip(Flip("b", time.time(), "up", "up", "churn"))
        print(f"{sys.argv[2]}-{i}", flush=True)  # acknowledged only after the commit returned
        i += 1
""")


def test_sigkill_at_random_moments_loses_no_acknowledged_run_and_never_corrupts(tmp_path):
    path = tmp_path / "journal.db"
    acknowledged: list[str] = []
    rng = random.Random(7)
    for round_ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{round_}"], stdout=subprocess.PIPE,
                                text=True)
        first = proc.stdout.readline()  # it is writing
        assert first
        acknowledged.append(first.strip())
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()  # SIGKILL; on Windows, TerminateProcess: no chance to finish either way
        out, _ = proc.communicate()
        acknowledged += out.split()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in db.execute("SELECT run_id FROM runs")}
    missing = [a for a in acknowledged if any(f"{a}-{k}" not in ids for k in range(5))]
    assert not missing
    # and the agent can open it and go on
    j = Journal(path)
    with j.transaction() as t:
        assert t.insert_run(RunFinished(bot="b", run_id="after", ended=1.0, outcome="success"), 1.0)
    assert j.count_runs() == len(ids) + 1


def test_a_read_only_journal_refuses_writes_with_a_clear_error(tmp_path):
    path = tmp_path / "journal.db"
    Journal(path).close()
    ro = Journal(path, readonly=True)
    try:
        with ro.transaction() as t:
            t.insert_flip(Flip("b", 1.0, "new", "up"))
    except JournalError as exc:
        assert str(path) in str(exc)
    else:
        raise AssertionError("a write to a read-only journal must fail")


def test_an_unopenable_journal_is_a_journal_error_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    try:
        Journal(blocker / "journal.db")
    except JournalError as exc:
        assert str(blocker / "journal.db") in str(exc)
    else:
        raise AssertionError("expected an error")
