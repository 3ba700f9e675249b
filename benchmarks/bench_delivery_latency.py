"""Benchmark 9: delivery of a new run to a reachable agent while another target of the same spool
is away, against the same delivery from a spool with no target away.

One spool serves every bot of a host user, and bots may name different targets. Here the spool
also holds runs for a dead agent URL (a loopback port bound by this benchmark that never listens,
so every connection is refused at once) that have failed for over a minute: their attempts are
set to 6 and a deliverer process (`python -m botwatch.deliver`) is started on the spool; its
next failure puts that target in its longest backoff (about `MAX_BACKOFF`, 60 s), which is waited
for (the rows show attempts = 7). That deliverer holds the spool's lock for the whole benchmark.

Each repetition then runs `botwatch run --bot B --agent LIVE -- true` (the console script next
to this interpreter) against a real `botwatch agent` on a free loopback port and times, on one
monotonic clock, from the moment that process returns to the moment the run is visible at the
agent (its `runs_total` in `GET /api/v1/status` grows, polled every 10 ms). The run's own
deliverer finds the lock taken and exits: the resting deliverer must notice the new event itself
and send it while the dead target still rests.

The reference is the same run, the same agent, interleaved, from a second spool with no dead
target: the deliverer the run starts does the delivery (and exits when the spool is empty).
The goal is absolute, the issue's requirement: a newly spooled event for a reachable target is
sent within 1 s whatever other targets are doing (the measured median at most 1 s).

Run alone:  .venv/bin/python benchmarks/bench_delivery_latency.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL_S = 1.0  # a new run for a reachable target is sent within 1 s, whatever other targets do
TIMEOUT = 30.0  # bound on each wait: it stops a hang, it asserts no speed (below the dead target's backoff)
POLL_S = 0.01  # how often the agent is asked whether the run arrived
DEAD_RUNS = 20  # runs of the spool's dead target
ATTEMPTS_AFTER_A_MINUTE = 6  # 1 + 2 + 4 + 8 + 16 + 32 s of backoff: the next one is the longest
BOTS = {"measured": "beside-dead", "reference": "alone"}
DEAD_BOTS = ("old-config-1", "old-config-2")
IDLE_BOTS = 5
PYTHON = sys.executable
BOTWATCH = str(Path(sys.executable).parent / "botwatch")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, what: str, timeout: float = TIMEOUT, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def rows(spool: Path, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-n:]
    except OSError:
        return "(no log)"


# -- the agent -------------------------------------------------------------------------------------

class Agent:
    def __init__(self, config: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._logf = open(log, "wb")
        self.proc = subprocess.Popen([PYTHON, "-m", "botwatch", "agent", "--config", str(config)],
                                     cwd=config.parent, env=common.clean_env(), stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=subprocess.STDOUT, preexec_fn=common.die_with_parent)

    def wait_ready(self) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {self.proc.returncode}:\n{tail(self.log)}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(healthy, f"the agent on {self.url}", interval=0.1)

    def status(self) -> dict[str, dict]:
        """Every bot's state, from the agent's status API."""
        with urllib.request.urlopen(self.url + "/api/v1/status", timeout=10) as r:
            answer = json.loads(r.read())
        return {b["bot"]: b for b in answer["bots"]}

    def runs(self) -> dict[str, int]:
        return {name: b["runs_total"] for name, b in self.status().items()}

    def stop(self) -> None:
        common.stop_process(self.proc, self._logf, timeout=15)


def estate(port: int, journal: Path) -> dict:
    bots = [{"name": name, "team": "finance", "owner": "ana.diaz@example.com", "platform": "python",
             "lifecycle": "production"} for name in BOTS.values()]
    bots += [{"name": f"idle-{i:02d}", "team": "procurement", "owner": "sam.okafor@example.com",
              "platform": "uipath", "lifecycle": "production"} for i in range(IDLE_BOTS)]
    return {"agent": {"listen": f"127.0.0.1:{port}", "journal": str(journal)}, "bots": bots}


# -- deliverers ------------------------------------------------------------------------------------

def deliverers(spools: set[str]) -> list:
    """Deliverer processes (`python -m botwatch.deliver --spool S`) working on our spools only."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info.get("cmdline") or []
        if p.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if "botwatch.deliver" in cmd and "--spool" in cmd:
            i = cmd.index("--spool")
            if i + 1 < len(cmd) and cmd[i + 1] in spools:
                found.append(p)
    return found


def end_deliverers(spools: set[str]) -> int:
    """End the deliverers of our spools that are still there (by pid); how many there were."""
    left = deliverers(spools)
    common.end_processes(left, grace=5)
    return len(left)


# -- the benchmark ---------------------------------------------------------------------------------

def measure(runs: int, reps: int, warmup: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="botwatch-bench-delivery-"))
    # A bound socket that never listens: connections to the dead target are refused at once, and
    # nothing else can take the port while the benchmark runs.
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{sink.getsockname()[1]}"
    spool = {"measured": tmp / "measured" / "spool.db", "reference": tmp / "reference" / "spool.db"}
    spool_paths = {str(p) for p in spool.values()}
    rundir = tmp / "runs"  # no botwatch.yaml there: the runs name their agent with --agent only
    agent = resting = None
    ended_at_end = 0
    try:
        import yaml

        from botwatch.client.spool import Spool

        for p in spool.values():
            p.parent.mkdir()
        rundir.mkdir()
        t_setup = time.monotonic()
        port = free_port()
        config = tmp / "estate.yaml"
        config.write_text(yaml.safe_dump(estate(port, tmp / "journal.db"), sort_keys=False), encoding="utf-8")
        agent = Agent(config, port, tmp / "agent.log")
        agent.wait_ready()

        # the measured spool: runs of a dead target that have failed for over a minute
        s = Spool(str(spool["measured"]))
        ended = time.time() - 3600
        for i in range(DEAD_RUNS):
            s.add_finished(DEAD_BOTS[i % len(DEAD_BOTS)], f"old-{i:03d}", agent_url=dead_url, started=ended + i - 30,
                           ended=ended + i, outcome="success", exit_status=0, host="bench")
        s.close()
        Spool(str(spool["reference"])).close()  # the schema exists in steady state
        db = sqlite3.connect(spool["measured"])
        with db:
            db.execute("UPDATE outbox SET attempts = ?, next_attempt = 0", (ATTEMPTS_AFTER_A_MINUTE,))
        db.close()
        env = {k: common.clean_env(BOTWATCH_SPOOL=str(p), BOTWATCH_DELIVERY_PATIENCE="600") for k, p in spool.items()}
        resting = subprocess.Popen([PYTHON, "-m", "botwatch.deliver", "--spool", str(spool["measured"])],
                                   env=env["measured"], cwd=rundir, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   preexec_fn=common.die_with_parent)
        measured_log = spool["measured"].with_suffix(".log")

        def dead_rows() -> list[tuple[int, float]]:
            return rows(spool["measured"], "SELECT attempts, next_attempt FROM outbox WHERE agent_url = ?", dead_url)

        def dead_target_resting() -> bool:
            if resting.poll() is not None:
                raise RuntimeError(f"the deliverer exited with {resting.returncode}:\n{tail(measured_log)}")
            got = dead_rows()
            return len(got) == DEAD_RUNS and all(a == ATTEMPTS_AFTER_A_MINUTE + 1 for a, _ in got)

        wait_until(dead_target_resting, "the deliverer's attempt at the dead target (attempts = 7)")
        resting_until = min(t for _, t in dead_rows())
        backoff_s = resting_until - time.time()
        setup_s = time.monotonic() - t_setup

        expected = {k: 0 for k in BOTS}
        busy_settles = 0

        def settle() -> None:
            """Before each repetition: the last run's deliverers are gone (the reference's exits
            once its spool is empty, the measured run's own exits at once), the resting one is
            alive and still holds the dead target's runs."""
            nonlocal busy_settles
            t = time.monotonic()
            wait_until(lambda: [p.pid for p in deliverers(spool_paths)] == [resting.pid],
                       "the deliverers of the last run to exit", interval=0.02)
            if time.monotonic() - t > 0.1:
                busy_settles += 1
            if len(dead_rows()) != DEAD_RUNS:
                raise RuntimeError("the dead target's runs left the spool")

        def once(variant: str) -> dict:
            bot = BOTS[variant]
            expected[variant] += 1
            cmd = [BOTWATCH, "run", "--bot", bot, "--agent", agent.url, "--", "true"]
            t_start = time.monotonic()
            p = subprocess.run(cmd, env=env[variant], cwd=rundir, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=TIMEOUT)
            t_return = time.monotonic()
            if p.returncode != 0 or p.stdout or p.stderr:
                raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}, output {(p.stdout + p.stderr)[:500]!r}")
            polls = 0
            while True:
                polls += 1
                state = agent.status().get(bot, {})
                t_seen, wall_seen = time.monotonic(), time.time()
                seen = state.get("runs_total", 0)
                if seen >= expected[variant]:
                    break
                if t_seen - t_return > TIMEOUT:
                    where = rows(spool[variant], "SELECT attempts, next_attempt, last_error FROM outbox WHERE bot = ?",
                                 bot)
                    raise RuntimeError(f"{variant}: the run of {bot} was not at the agent {TIMEOUT:g} s after "
                                       f"`botwatch run` returned (in the spool: {where}); deliverer log:\n"
                                       f"{tail(spool[variant].with_suffix('.log'))}")
                time.sleep(POLL_S)
            if seen != expected[variant]:
                raise RuntimeError(f"{bot}: {seen} runs at the agent, expected {expected[variant]}")
            if variant == "measured" and resting.poll() is not None:
                raise RuntimeError(f"the resting deliverer exited with {resting.returncode}:\n{tail(measured_log)}")
            # the run's end (wall clock) is recorded just before the wrapper commits it to the spool
            return {"latency_s": t_seen - t_return, "wrapper_s": t_return - t_start, "polls": polls,
                    "from_end_s": wall_seen - state["last_run_end"]}

        names = list(BOTS)
        fns = {k: (lambda k=k: once(k)) for k in names}
        warm = common.interleaved(names, warmup, fns, before=settle) if warmup else {k: [] for k in names}
        samples: dict[str, list[list[dict]]] = {k: [] for k in names}
        for r in range(runs):
            got = common.interleaved(names, reps, fns, before=settle, start=warmup + r * reps)
            for k, v in got.items():
                samples[k].append(v)
        settle()
        final_dead = dead_rows()
        still_resting = resting.poll() is None
        runs_at_agent = agent.runs()
    finally:
        if resting is not None:
            common.stop_process(resting, timeout=10)
        ended_at_end = end_deliverers(spool_paths)
        if agent is not None:
            agent.stop()
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)

    for k, bot in BOTS.items():
        if runs_at_agent.get(bot) != expected[k]:
            raise RuntimeError(f"{bot}: {runs_at_agent.get(bot)} runs at the agent, expected {expected[k]}")
    if not still_resting:
        raise RuntimeError("the resting deliverer did not last the benchmark")

    per_run = {k: [statistics.median(x["latency_s"] for x in run) for run in samples[k]] for k in names}
    every = {k: [x["latency_s"] for run in samples[k] for x in run] for k in names}
    wrapper = {k: [x["wrapper_s"] for run in samples[k] for x in run] for k in names}
    from_end = {k: [x["from_end_s"] for run in samples[k] for x in run] for k in names}
    ref_median = statistics.median(per_run["reference"])
    fig = common.figure(
        key="9", title="new run for a reachable agent, `botwatch run` returned → run visible at the agent, while the "
                       "spool's other target (an agent that refuses connections) rests in its longest backoff",
        unit="s", measured_runs=per_run["measured"], reference_runs=per_run["reference"],
        reference_title="the same from a spool with no target away (the run's own deliverer sends it)",
        goal=round(GOAL_S / ref_median, 2), reps=reps,
        samples={"measured": samples["measured"], "reference": samples["reference"],
                 "warmup": {k: warm[k] for k in names}},
        extra={"dead_runs": DEAD_RUNS, "dead_target_backoff_s": backoff_s})
    med = fig["measured"]["median"]
    fig["passed"] = med <= GOAL_S
    attempts_after = sorted({a for a, _ in final_dead})
    fig["notes"] += [
        f"goal: at most {GOAL_S:g} s absolute, the issue's requirement (the Goal column is that, as a ratio to this "
        f"run's reference median); measured median {med:.3f} s: {'PASS' if fig['passed'] else 'MISSED'}; every "
        f"repetition: {min(every['measured']):.3f}–{max(every['measured']):.3f} s, "
        f"{sum(x <= GOAL_S for x in every['measured'])} of {len(every['measured'])} within the goal; ratio to the "
        f"reference {fig['ratio']['median']:.2f}x",
        f"measured: from `botwatch run --bot {BOTS['measured']} --agent LIVE -- true` returning to the run counted in "
        f"the agent's `GET /api/v1/status` (`runs_total`, polled every {POLL_S * 1000:.0f} ms, the time taken when "
        "the answer that showed it arrived), one monotonic clock; the spool also holds "
        f"{DEAD_RUNS} runs of a dead agent URL (connections refused) whose deliverer, started before, had just "
        f"failed its 7th attempt and rests {backoff_s:.0f} s; the run's own deliverer found the spool locked and "
        "exited, the resting deliverer (alive to the end) sent the run",
        f"the dead target's runs never left the spool: at the end {len(final_dead)} of {DEAD_RUNS} there, with "
        f"attempts {', '.join(map(str, attempts_after))} ("
        + ("not tried again during the measurement)" if attempts_after == [ATTEMPTS_AFTER_A_MINUTE + 1] else
           "its backoff ran out during the measurement: tried again, refused again)"),
        f"reference: the same command with bot {BOTS['reference']} and a spool of its own with nothing else in "
        "it, so the deliverer the run spawns (a fresh interpreter) takes the lock and sends it; its median "
        f"{ref_median:.3f} s",
        f"from the run's end (its `ended`, taken just before the wrapper commits the run to the spool; wall clock) "
        f"to visible at the agent: median {statistics.median(from_end['measured']):.3f} s, at most "
        f"{max(from_end['measured']):.3f} s (measured); {statistics.median(from_end['reference']):.3f} s, at most "
        f"{max(from_end['reference']):.3f} s (reference). The resting deliverer may send the run before "
        "`botwatch run` has exited, hence measured latencies near 0",
        f"`botwatch run` itself took a median {statistics.median(wrapper['measured']) * 1000:.0f} ms (measured) and "
        f"{statistics.median(wrapper['reference']) * 1000:.0f} ms (reference), not counted",
    ]
    if busy_settles:
        fig["notes"].append(f"{busy_settles} time(s) a deliverer of the last run took more than 0.1 s to exit "
                            "before the next repetition (waited for, untimed)")
    if ended_at_end:
        fig["notes"].append(f"{ended_at_end} deliverer(s) besides the resting one had to be ended after the "
                            "benchmark")
    details = [
        "",
        f"Set-up: a `botwatch agent` with {len(BOTS) + IDLE_BOTS} bots on a loopback port; {DEAD_RUNS} runs of "
        f"{len(DEAD_BOTS)} bots for the dead agent URL, attempts set to {ATTEMPTS_AFTER_A_MINUTE} and due, then the "
        f"deliverer's next failure put that target in a backoff of {backoff_s:.0f} s; set-up took {setup_s:.1f} s. "
        f"{warmup} warm-up repetition(s) of each, not counted; each run is the median of {reps} repetition(s).",
    ]
    return {
        "benchmark": "delivery_latency",
        "figures": [fig],
        "details": details,
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "goal_s": GOAL_S, "poll_s": POLL_S,
                     "dead_runs": DEAD_RUNS, "timeout_s": TIMEOUT, "setup_s": setup_s,
                     "dead_target_backoff_s": backoff_s},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=3, warmup=1)


if __name__ == "__main__":
    sys.exit(main())
