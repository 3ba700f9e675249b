"""The fault suite: what botwatch does when the world around it fails. Each case asserts that
nothing recorded is lost and that the bot's own result is untouched.

Other fault cases live beside the feature they exercise (RELIABILITY.md lists them all):
SIGKILL during ingest and during a journal write (test_checkin_faults.py, test_agent.py,
test_journal.py), the Pushgateway and the OTLP endpoint down and back (test_pushgateway.py,
test_otlp.py), rotation shapes (test_logs.py), DST in schedules (test_state.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from botwatch.commands import stack
from conftest import (BOTWATCH, AgentProcess, free_port, http_get, http_post_json, metrics_when, python_bot, require,
                      wait_for,
                      write_estate)

CLOCKSTEP = [sys.executable, str(Path(__file__).parent / "clockstep.py")]


def journal_runs(path) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT bot, run_id, started, ended, outcome FROM runs ORDER BY ended").fetchall()
    finally:
        db.close()


def spooled_finish(spool: str) -> list[dict]:
    db = sqlite3.connect(spool)
    try:
        return [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox WHERE kind='finish' ORDER BY seq")]
    finally:
        db.close()


# -- the wall clock steps while a bot runs ------------------------------------------------------

def stepped_run(tmp_path, run_env, step: float, timeout: str, bot_seconds: float):
    """`botwatch run --timeout T` of a bot that sleeps; the wrapper's wall clock is stepped by
    `step` seconds once the bot runs. (exit status, the finished run the wrapper spooled)."""
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    started = tmp_path / "bot-started"
    bot = f"import time, pathlib; pathlib.Path({str(started)!r}).touch(); time.sleep({bot_seconds})"
    env = {**run_env, "BOTWATCH_NO_DELIVERY": "1"}
    proc = subprocess.Popen([*CLOCKSTEP, str(offset), "run", "--bot", "clocked", "--timeout", timeout, "--",
                             sys.executable, "-c", bot], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(started.exists, what="the bot to start")
    offset.write_text(str(step))
    out = proc.communicate(timeout=120)[0].decode()
    (finish,) = spooled_finish(env["BOTWATCH_SPOOL"])
    return proc.returncode, finish, out


def test_a_wall_clock_stepped_two_hours_ahead_during_a_run_neither_fires_its_timeout_nor_stretches_it(
        tmp_path, run_env):
    code, finish, out = stepped_run(tmp_path, run_env, step=7200, timeout="60s", bot_seconds=1.5)
    assert code == 0, out  # the bot's own result: the timeout (60 s) was never reached
    assert finish["outcome"] == "success" and not finish.get("timed_out")
    assert finish["ended"] - finish["started"] < 60  # the run lasted 1.5 s, not two hours


def test_a_wall_clock_stepped_back_during_a_run_still_ends_it_at_its_timeout(tmp_path, run_env):
    code, finish, out = stepped_run(tmp_path, run_env, step=-7200, timeout="2s", bot_seconds=60)
    assert code == 124, out  # ended by its 2 s timeout, not after 60 s (nor two hours)
    assert finish["timed_out"] and finish["reason"] == "timeout"
    assert 0 < finish["ended"] - finish["started"] < 60


def test_the_estate_state_survives_wall_clock_steps_both_ways_without_losing_a_run():
    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunFinished
    from botwatch.state.runtime import EstateState

    now = [1_790_000_000.0]
    state = EstateState(parse_estate_text("bots:\n  - name: hourly\n    every: 1h\n    grace: 15m\n"), None,
                        clock=lambda: now[0])
    state.apply([RunFinished("hourly", "r1", now[0] - 10, "success", started=now[0] - 20)])
    assert state.views()[0].state == "up"
    now[0] += 3 * 3600  # stepped ahead: by this clock the bot missed its schedule
    state.sweep()
    assert state.views()[0].state == "down"
    state.apply([RunFinished("hourly", "r2", now[0] - 5, "success", started=now[0] - 8)])
    now[0] -= 3 * 3600  # stepped back: a run now seems to end in the future
    state.apply([RunFinished("hourly", "r3", now[0] + 30, "success", started=now[0] + 25)])
    state.sweep()
    (view,) = state.views()
    assert view.runs_total == 3  # every run recorded, whichever way the clock went
    assert view.state == "up"
    assert view.duration_count == 3 and view.duration_sum == pytest.approx(10 + 3 + 5)


# -- the journal's disk is full ------------------------------------------------------------------

@pytest.mark.posix_only("a tmpfs mounted in a Linux mount namespace (unshare) and /proc/PID/root")
def test_a_full_journal_disk_keeps_every_run_in_the_bots_spools_until_space_returns(tmp_path, run_env):
    """The agent's journal on its own 1 MiB file system (a tmpfs in a private mount namespace),
    filled up while bots run: the bots' results are untouched, the agent warns and answers 503,
    the runs wait in the spool, and all of them arrive once space is freed."""
    unshare = require("unshare", "util-linux")
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: filler\n", port, journal=disk / "journal.db")
    log = tmp_path / "agent.log"
    script = (f"mount -t tmpfs -o size=1m tmpfs {disk} && "
              f"exec {sys.executable} -m botwatch agent --config {config}")
    with open(log, "wb") as fh:
        agent = subprocess.Popen([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script],
                                 stdout=fh, stderr=subprocess.STDOUT, env=run_env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: agent.poll() is None and _healthy(url), timeout=60, what=f"the agent ({log.read_text()})")
        inside = Path(f"/proc/{agent.pid}/root") / str(disk).lstrip("/")  # the agent's view of its disk
        assert os.statvfs(inside).f_blocks * os.statvfs(inside).f_frsize <= 1024 * 1024
        filler = inside / "filler"
        with open(filler, "wb") as fh:  # fill the file system to the last block
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        env = {**run_env, "BOTWATCH_AGENT_URL": url}

        def wrapped(i: int) -> int:
            bot = python_bot(f"raise SystemExit({i % 3})")
            return subprocess.run([*BOTWATCH, "run", "--bot", "filler", "--", *bot],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(wrapped, range(30)))
        assert codes == [i % 3 for i in range(30)]  # every bot's own exit status
        wait_for(lambda: "cannot write the journal" in log.read_text(), what="the agent's warning")
        assert _healthy(url)  # still serving
        status, body = http_get(url + "/metrics")
        assert status == 200 and b'botwatch_runs_total{bot="filler"} 0.0' in body
        assert len(spooled_finish(env["BOTWATCH_SPOOL"])) == 30  # every run waits in the spool
        filler.unlink()  # space again
        subprocess.run([*BOTWATCH, "run", "--bot", "filler", "--", *python_bot()], env=env, check=True)  # wakes delivery
        m = metrics_when(_Agent(url), lambda m: m.get('botwatch_runs_total{bot="filler"}') == 31,
                         "every run after space returned", timeout=180)
        assert m['botwatch_run_failures_total{bot="filler",reason="unknown"}'] == 20  # exit 1 and 2: 10 each
        assert log.read_text().count("cannot write the journal") == 1  # once, not once per request
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return http_get(url + "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


class _Agent:
    """metrics_when() of an agent process started outside AgentProcess."""

    def __init__(self, url: str):
        self.url = url

    def metrics(self):
        return AgentProcess.metrics(self)


# -- the agent is down while 1,000 runs happen ---------------------------------------------------

def test_1000_runs_wrapped_while_the_agent_is_down_arrive_with_their_original_timestamps(tmp_path, run_env):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: nightly\n",
                          port, extra="  limits: {events_per_second: 1000, burst: 5000}\n")
    env = {**run_env, "BOTWATCH_AGENT_URL": f"http://127.0.0.1:{port}"}  # nothing listens there yet
    before = time.time()

    def wrapped(i: int) -> int:
        bot = python_bot(f"raise SystemExit({int(i % 10 == 0)})")
        return subprocess.run([*BOTWATCH, "run", "--bot", "nightly", "--", *bot],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(wrapped, range(1000)))
    assert codes == [int(i % 10 == 0) for i in range(1000)]
    assert len(spooled_finish(env["BOTWATCH_SPOOL"])) == 1000
    agent_start = time.time()
    agent = AgentProcess(config, port, env=run_env).start()
    try:
        subprocess.run([*BOTWATCH, "run", "--bot", "nightly", "--", *python_bot()], env=env, check=True)  # wakes delivery
        m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="nightly"}') == 1001,
                         "the 1,000 runs replayed", timeout=300)
        assert m['botwatch_run_failures_total{bot="nightly",reason="unknown"}'] == 100
        runs = journal_runs(config.parent / "journal.db")
        assert len(runs) == 1001 and len({r[1] for r in runs}) == 1001  # each once
        replayed = [r for r in runs if r[3] < agent_start]
        assert len(replayed) == 1000  # with the times they ran at, not the time they arrived
        assert all(before <= started <= ended < agent_start for _, _, started, ended, _ in replayed)
    finally:
        agent.stop()


# -- log rotation under 10,000 lines a second ----------------------------------------------------

ROTATING_WRITER = textwrap.dedent(r'''
    import json, os, sys, time
    from datetime import datetime, timezone

    path, runs, lines_per_run, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    rotate_every = 10_000  # lines: then the file is renamed away, logrotate style, and a new one begun
    written, t0 = 0, time.monotonic()
    out = open(path, "a", buffering=1 << 16)

    def line(message, job, level="Information"):
        global out, written
        if written and written % rotate_every == 0:
            out.close()
            for k in range(8, 0, -1):
                if os.path.exists(f"{path}.{k}"):
                    os.replace(f"{path}.{k}", f"{path}.{k + 1}")
            os.replace(path, f"{path}.1")
            out = open(path, "a", buffering=1 << 16)
        stamp = datetime.now(timezone.utc).isoformat()
        entry = {"message": message, "level": level, "logType": "Default", "timeStamp": stamp,
                 "processName": "Flood", "jobId": job, "robotName": "bot", "machineName": "vm"}
        out.write(datetime.now().strftime("%H:%M:%S.%f")[:13] + (" Info " if level == "Information" else " Error ")
                  + json.dumps(entry) + "\n")
        written += 1
        ahead = written / rate - (time.monotonic() - t0)  # keep to `rate` lines a second
        if ahead > 0.005:
            out.flush()
            time.sleep(ahead)

    for r in range(runs):
        job = f"job-{r}"
        line("Flood execution started", job)
        for i in range(lines_per_run - 2):
            line(f"progress {i}", job)
        if r % 4 == 0:
            line("System.Exception: Logon failed for user bot", job, "Error")
        line("Flood execution ended", job)
    out.close()
    print(f"{written} lines in {time.monotonic() - t0:.2f} s", flush=True)
''')


def test_log_rotation_at_10000_lines_a_second_loses_no_run_and_counts_none_twice(tmp_path, agents):
    logs = tmp_path / "Logs"
    logs.mkdir()
    log = logs / "flood.log"
    port = free_port()
    bots = f"""\
- name: flood
  watch:
    logs:
      - {{path: "{log}", format: uipath}}
"""
    agent = agents(write_estate(tmp_path / "botwatch.yaml", bots, port,
                                extra="  process_interval: 60s\n"), port).start()
    runs, per_run = 400, 100  # 40,100 lines, four rotations, at 10,000 lines a second
    writer = subprocess.run([sys.executable, "-c", ROTATING_WRITER, str(log), str(runs), str(per_run), "10000"],
                            capture_output=True, text=True, timeout=300)
    assert writer.returncode == 0, writer.stderr
    written = int(writer.stdout.split()[0])
    assert written == runs * per_run + runs // 4  # every line of every run, plus the error lines
    assert len(list(logs.glob("flood.log.*"))) == (written - 1) // 10_000  # rotated every 10,000 lines
    m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="flood"}', 0) >= runs,
                     "every run of the flood", timeout=180)
    time.sleep(1.5)  # a few more polls: a file read twice would show now
    m = agent.metrics()
    assert m['botwatch_runs_total{bot="flood"}'] == runs
    assert m['botwatch_run_failures_total{bot="flood",reason="credentials"}'] == runs // 4
    assert m['botwatch_agent_parse_errors_total{source="log:uipath"}'] == 0


# -- Prometheus down and back --------------------------------------------------------------------

def test_prometheus_down_and_back_scrapes_the_right_totals_including_the_runs_made_meanwhile(tmp_path, agents):
    binary = require(stack.PROMETHEUS, "prometheus")
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", "- name: steady\n", port), port).start()
    config = stack.write_yaml(tmp_path / "prometheus.yml", {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "botwatch", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }, "# the agent, scraped every second")
    listen = f"127.0.0.1:{free_port()}"
    data = tmp_path / "prom-data"

    def post(n: int, first: int) -> None:
        events = [{"type": "run_finished", "bot": "steady", "run_id": f"s-{i}", "ended": time.time(),
                   "outcome": "success"} for i in range(first, first + n)]
        status, body = http_post_json(agent.url + "/api/v1/events", {"events": events})
        assert status == 200 and body["accepted"] == n

    def total(prom) -> float | None:
        q = urllib.parse.quote('botwatch_runs_total{bot="steady"}')
        result = prom.get_json(f"/api/v1/query?query={q}")["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    prom = stack.prometheus(binary, config, data, listen, tmp_path / "prometheus-1.log").start().wait_ready()
    try:
        post(5, 0)
        wait_for(lambda: total(prom) == 5, timeout=60, what="Prometheus to see 5 runs")
    finally:
        prom.stop()
    post(7, 5)  # Prometheus is down: the agent goes on recording
    assert agent.metrics()['botwatch_runs_total{bot="steady"}'] == 12
    prom = stack.prometheus(binary, config, data, listen, tmp_path / "prometheus-2.log").start().wait_ready()
    try:
        wait_for(lambda: total(prom) == 12, timeout=60, what="Prometheus, back, to see 12 runs")
        q = urllib.parse.quote('max_over_time(botwatch_runs_total{bot="steady"}[10m])')
        assert float(prom.get_json(f"/api/v1/query?query={q}")["data"]["result"][0]["value"][1]) == 12
        q = urllib.parse.quote('resets(botwatch_runs_total{bot="steady"}[10m])')  # no counter reset seen
        assert float(prom.get_json(f"/api/v1/query?query={q}")["data"]["result"][0]["value"][1]) == 0
    finally:
        prom.stop()

