"""No run is lost or doubled when the agent is SIGKILLed while runs are checked in and wrapped."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import BOTWATCH, free_port, python_bot, require, wait_for

KEY = "fault-suite-key"


def journal_runs(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT bot, run_id, outcome FROM runs").fetchall()
    finally:
        db.close()


def test_sigkill_while_1000_runs_are_checked_in_and_wrapped_loses_none_and_doubles_none(tmp_path, agents, run_env):
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    journal = tmp_path / "journal.db"
    config.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {journal}\n  ping_key: env:TEST_PING_KEY\n"
                      "  limits: {events_per_second: 1000, burst: 5000}\n"
                      "bots:\n  - name: wrapped\n  - name: pinged\n")
    env = {**run_env, "TEST_PING_KEY": KEY}
    agent = agents(config, port, env=env).start()
    url = f"http://127.0.0.1:{port}"
    n_wrapped, n_pinged = 400, 600
    curl = require("curl", "curl")

    def wrapped(i):
        return subprocess.run([*BOTWATCH, "run", "--bot", "wrapped", "--config", str(config), "--",
                               *python_bot(f"raise SystemExit({i % 2})")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == i % 2

    def pinged(i):
        # a client that retries until the agent answers, as crontab lines with curl --retry do
        r = subprocess.run([curl, "-fsS", "-o", os.devnull, "-m", "5", "--retry", "60", "--retry-connrefused",
                            "--retry-all-errors", "--retry-delay", "1", f"{url}/ping/{KEY}/pinged/{i % 2}?rid=p-{i}"],
                           capture_output=True)
        return r.returncode == 0

    tasks = [(wrapped, i) for i in range(n_wrapped)] + [(pinged, i) for i in range(n_pinged)]
    tasks.sort(key=lambda t: (t[1] * 1000 // (n_wrapped if t[0] is wrapped else n_pinged)))  # interleave
    with ThreadPoolExecutor(8) as pool:
        results = [pool.submit(fn, i) for fn, i in tasks]
        wait_for(lambda: len(journal_runs(journal)) >= 100, what="the first runs ingested")
        assert agent.kill() == (-signal.SIGKILL if os.name == "posix" else 1)  # 1: TerminateProcess
        time.sleep(1.0)  # down for a while: check-ins and deliveries fail and are retried
        restarted = agents(config, port, env=env).start()
        assert all(r.result() for r in results)  # every bot result untouched, every check-in answered

    def all_in():
        return len(journal_runs(journal)) >= n_wrapped + n_pinged

    wait_for(all_in, timeout=180, interval=0.5, what="every run after the restart")
    runs = journal_runs(journal)
    assert len(runs) == n_wrapped + n_pinged
    assert len({(b, r) for b, r, _ in runs}) == len(runs)  # each exactly once
    m = restarted.metrics()
    assert m['botwatch_runs_total{bot="wrapped"}'] == n_wrapped
    assert m['botwatch_runs_total{bot="pinged"}'] == n_pinged
    assert m['botwatch_run_failures_total{bot="pinged",reason="unknown"}'] == n_pinged // 2
    assert sqlite3.connect(journal).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
