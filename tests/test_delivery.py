"""The deliverer serves each target on its own: no run waits behind a target that is away.

One spool serves every bot of a host user, and bots may name different targets (an old agent
URL left in one bot's config, a Pushgateway that is down). Here a real deliverer process holds
a spool whose runs for a dead target have failed for over a minute, so that the target rests in
its longest backoff; a new run for a live agent or a live Pushgateway must reach it while the
dead target still rests (before this, it waited out the other target's backoff: up to a minute).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from botwatch.client.delivery import MAX_BACKOFF
from botwatch.client.spool import Spool
from conftest import console_script, free_port, python_bot, wait_for, write_estate
from test_pushgateway import Pushgateway, deliverers, exits, parse_metrics, run_env, wrapped

pytestmark = pytest.mark.integration

# a minute of failures: 1 + 2 + 4 + 8 + 16 + 32 s of backoff, the next one is the longest
ATTEMPTS_AFTER_A_MINUTE = 6
# how long a test waits for the live target: a bound on a hang, well below the dead target's
# shortest next backoff (0.8 x MAX_BACKOFF), so that a run riding on the dead target's retry fails it
LIVE_WAIT = 0.5 * MAX_BACKOFF


@pytest.fixture
def spool(tmp_path):
    path = tmp_path / "spool.db"
    yield path
    for p in deliverers(path):  # the long-lived deliverers started here are killed, not waited for
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def age_outbox(spool: Path) -> None:
    """What a minute of failed attempts leaves: every waiting event at its longest backoff, due now."""
    db = sqlite3.connect(spool)
    with db:
        db.execute("UPDATE outbox SET attempts = ?, next_attempt = 0", (ATTEMPTS_AFTER_A_MINUTE,))
    db.close()


def rows(spool: Path, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(spool)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def start_deliverer(spool: Path, tmp_path: Path) -> subprocess.Popen:
    env = run_env(spool, BOTWATCH_DELIVERY_PATIENCE="600")
    return subprocess.Popen([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool)], env=env,
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_new_run_for_a_live_agent_does_not_wait_behind_a_dead_agents_backoff(tmp_path, spool, agents):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n- name: beta\n", port)
    live = agents(config, port).start()
    dead = dead_url()
    s = Spool(str(spool))
    for i in range(3):
        s.add_finished("beta", f"old-{i}", agent_url=dead, ended=1.0 + i, outcome="success")
    s.close()
    age_outbox(spool)
    deliverer = start_deliverer(spool, tmp_path)
    try:
        # it tried the dead agent once more and now rests in its longest backoff
        wait_for(lambda: {a for (a,) in rows(spool, "SELECT attempts FROM outbox")} == {ATTEMPTS_AFTER_A_MINUTE + 1},
                 what="the deliverer's attempt at the dead agent")
        resting_until = min(t for (t,) in rows(spool, "SELECT next_attempt FROM outbox"))
        assert resting_until - time.time() > LIVE_WAIT

        env = run_env(spool, BOTWATCH_AGENT_URL=live.url)
        assert wrapped(tmp_path, "alpha", ["--agent", live.url], exits(0), env)[0] == 0
        metrics = wait_for(lambda: (lambda m: m if m.get('botwatch_runs_total{bot="alpha"}') == 1 else None)(
            live.metrics()), timeout=LIVE_WAIT, what="the new run at the live agent")
        assert metrics['botwatch_runs_total{bot="alpha"}'] == 1
        # the dead agent's runs still rest, untouched: the new run went alone, it did not ride on a retry
        waiting = rows(spool, "SELECT attempts, next_attempt FROM outbox WHERE agent_url = ?", dead)
        assert len(waiting) == 3 and all(a == ATTEMPTS_AFTER_A_MINUTE + 1 for a, _ in waiting)
        assert all(t == resting_until or t > time.time() for _, t in waiting)
        # and nothing of the live agent's is left behind (a slow run also spools its start)
        wait_for(lambda: rows(spool, "SELECT COUNT(*) FROM outbox WHERE agent_url != ?", dead) == [(0,)],
                 timeout=LIVE_WAIT, what="the live agent's events all delivered")
        assert deliverer.poll() is None  # the same deliverer did both: the wrapper's own exited at once
    finally:
        deliverer.kill()
        deliverer.wait()


def test_a_new_run_for_a_live_pushgateway_does_not_wait_behind_a_dead_one(tmp_path, spool):
    live = Pushgateway(tmp_path).start()
    dead = dead_url()
    try:
        s = Spool(str(spool))
        for i in range(3):
            s.add_finished("beta", f"old-{i}", target=f"pushgateway:{dead}", ended=1.0 + i, outcome="success")
        from botwatch.client.delivery import apply_finished

        s.fold(apply_finished)
        s.close()
        db = sqlite3.connect(spool)
        with db:
            db.execute("UPDATE totals SET attempts = ?, next_attempt = 0", (ATTEMPTS_AFTER_A_MINUTE,))
        db.close()
        deliverer = start_deliverer(spool, tmp_path)
        try:
            dead_target = f"pushgateway:{dead}"
            wait_for(lambda: {a for (a,) in rows(spool, "SELECT attempts FROM totals WHERE target = ?", dead_target)}
                     == {ATTEMPTS_AFTER_A_MINUTE + 1}, what="the deliverer's attempt at the dead Pushgateway")
            resting = rows(spool, "SELECT bot, next_attempt FROM totals WHERE target = ?", dead_target)
            assert all(t - time.time() > LIVE_WAIT for _, t in resting)

            env = run_env(spool)
            assert wrapped(tmp_path, "alpha", ["--pushgateway", live.url], exits(0), env)[0] == 0
            wait_for(lambda: any(k.startswith('botwatch_runs_total{bot="alpha"') and v == 1
                                 for k, v in live.metrics().items()),
                     timeout=LIVE_WAIT, what="the new run at the live Pushgateway")
            assert [v for k, v in live.metrics().items() if k.startswith('botwatch_runs_total{bot="alpha"')] == [1]
            still = rows(spool, "SELECT attempts, pending FROM totals WHERE target = ?", dead_target)
            assert still and all(a == ATTEMPTS_AFTER_A_MINUTE + 1 and p == 1 for a, p in still), still
            assert deliverer.poll() is None
        finally:
            deliverer.kill()
            deliverer.wait()
    finally:
        live.stop()


def test_the_textfile_is_written_before_botwatch_run_returns(tmp_path, spool):
    out = tmp_path / "textfile"
    out.mkdir()
    env = run_env(spool, BOTWATCH_NO_DELIVERY="1")  # no deliverer at all: the wrapper writes it itself
    for expected in (1, 2):
        assert wrapped(tmp_path, "etl", ["--textfile-dir", str(out)], exits(0), env)[0] == 0
        m = parse_metrics((out / "botwatch_etl.prom").read_text())
        assert m['botwatch_runs_total{bot="etl"}'] == expected
    assert (out / "botwatch.prom").exists()  # the spool's own counter of dropped events, at 0
    assert rows(spool, "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert rows(spool, "SELECT COUNT(*) FROM totals WHERE pending = 1") == [(0,)]


def test_an_unwritable_textfile_dir_warns_and_leaves_the_run_to_the_deliverer(tmp_path, spool):
    out = tmp_path / "missing"  # not there yet
    env = run_env(spool, BOTWATCH_NO_DELIVERY="1")
    proc = subprocess.run([console_script("botwatch"), "run", "--bot", "etl", "--textfile-dir", str(out), "--",
                           *python_bot("raise SystemExit(3)")], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 3  # the bot's own status, whatever happened to the file
    assert rows(spool, "SELECT runs_total, pending FROM totals WHERE bot = 'etl'") == [(1, 1)]


def test_an_agent_that_takes_smaller_batches_gets_every_run_in_smaller_batches(tmp_path, spool, agents):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port, extra="  limits: {max_batch: 2}")
    live = agents(config, port).start()
    s = Spool(str(spool))
    for i in range(7):
        s.add_finished("alpha", f"r{i}", agent_url=live.url, ended=1.0 + i, outcome="success")
    s.close()
    proc = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool)],
                          env=run_env(spool, BOTWATCH_DELIVERY_PATIENCE="30"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    assert live.metrics()['botwatch_runs_total{bot="alpha"}'] == 7  # the 413 split the batch, buried nothing
    assert rows(spool, "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert rows(spool, "SELECT COUNT(*) FROM dead") == [(0,)]


def test_runs_waiting_out_a_backoff_go_as_soon_as_their_agent_answers_again(tmp_path, spool, agents):
    """An earlier deliverer gave up while the agent was away, leaving its runs in their longest
    backoff; the agent is back, and the next run's deliverer finds it reachable: the runs that
    waited go with it, not a minute later (patience could run out first and strand them)."""
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port)
    live = agents(config, port).start()
    s = Spool(str(spool))
    for i in range(5):
        s.add_finished("alpha", f"waited-{i}", agent_url=live.url, ended=1.0 + i, outcome="success")
    s.close()
    db = sqlite3.connect(spool)
    with db:
        db.execute("UPDATE outbox SET attempts = ?, next_attempt = ?",
                   (ATTEMPTS_AFTER_A_MINUTE + 1, time.time() + 0.9 * MAX_BACKOFF))
    db.close()
    env = run_env(spool, BOTWATCH_DELIVERY_PATIENCE="600")
    assert wrapped(tmp_path, "alpha", ["--agent", live.url], exits(0), env)[0] == 0
    wait_for(lambda: live.metrics().get('botwatch_runs_total{bot="alpha"}') == 6, timeout=LIVE_WAIT,
             what="the new run and the five that waited out a backoff")
    wait_for(lambda: rows(spool, "SELECT COUNT(*) FROM outbox") == [(0,)], timeout=LIVE_WAIT,
             what="an empty spool")


def test_an_agent_back_from_an_outage_gets_a_new_run_and_those_that_waited_without_waiting_out_the_backoff(
        tmp_path, spool, agents):
    """The deliverer rests on an agent that was away (its longest backoff); the agent comes back
    and a bot runs: its run probes the agent within seconds, and the runs that waited go with it.
    (A deliverer that only waited out the backoff could run out of patience first and strand them.)"""
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port)
    url = f"http://127.0.0.1:{port}"  # the agent is not started yet
    s = Spool(str(spool))
    for i in range(3):
        s.add_finished("alpha", f"waited-{i}", agent_url=url, ended=1.0 + i, outcome="success")
    s.close()
    age_outbox(spool)
    deliverer = start_deliverer(spool, tmp_path)
    try:
        wait_for(lambda: {a for (a,) in rows(spool, "SELECT attempts FROM outbox")} == {ATTEMPTS_AFTER_A_MINUTE + 1},
                 what="the deliverer's attempt at the agent that is away")
        live = agents(config, port).start()
        # the run starts no deliverer of its own: the resting one must do it all
        env = run_env(spool, BOTWATCH_NO_DELIVERY="1")
        assert wrapped(tmp_path, "alpha", ["--agent", url], exits(0), env)[0] == 0
        wait_for(lambda: live.metrics().get('botwatch_runs_total{bot="alpha"}') == 4, timeout=LIVE_WAIT,
                 what="the new run and the three that waited")
    finally:
        deliverer.kill()
        deliverer.wait()
