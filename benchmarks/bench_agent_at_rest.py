"""Benchmark 7: a `botwatch agent` at rest with 500 bots and 50 watched logs: CPU share of one
core and resident memory, against the same agent with no bots, measured over the same windows.

Two real agents run side by side (`python -m botwatch agent --config FILE`, each on a free
127.0.0.1 port, each with its own journal in a temporary directory, every interval at its
default): the estate's, with 500 bots of which 50 watch their own idle log file (UiPath
execution log, regex and Python logging formats, a few finished runs in each, read before
measuring), and the reference, the same agent with no bots. Once both are healthy, have
answered /metrics (so the first governance refresh is done) and have settled, each run is one
window in which both are measured alike:

    7a  CPU share of one core: the process's user + system CPU time (all threads, psutil) over
        the window's wall time. Goal: at most 1 % (absolute).
    7b  resident memory: psutil's RSS, sampled every second, the highest sample of the window.
        Goal: at most 60 MB (10^6 bytes; absolute).

Inside every window both agents are scraped on /metrics once every 15 s (by default), as a
Prometheus would: the scrapes are included in 7a and 7b. An idle `python -c "time.sleep()"` of
the same interpreter is sampled the same way and listed (the interpreter's own floor).

Run alone:  .venv/bin/python benchmarks/bench_agent_at_rest.py [--runs N] [--window S] [--json FILE]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL_CPU_PERCENT = 0.5  # of one core, scraped every 15 s (the lightweight-agent goals)
GOAL_RSS_MB = 45.0
MB = 1_000_000
BOTS = 500
WATCHED = 50
FORMATS = ("uipath", "regex", "python")
RUNS_PER_LOG = 3  # finished runs in each log file, the last one failed
TEAMS = ("finance", "procurement", "controlling", "hr", "logistics", "it")
PLATFORMS = ("uipath", "robotframework", "python", "powerautomate", "blueprism", "automationanywhere", "excel",
             "shell")
SAMPLE_EVERY = 1.0  # seconds between two RSS samples
READY_TIMEOUT = 120.0


# -- the estate ------------------------------------------------------------------------------------

def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="microseconds")


def uipath_log(process: str, t0: float) -> str:
    """A UiPath Robot execution log (NLog layout, CRLF) of RUNS_PER_LOG jobs of `process`."""
    lines = []

    def entry(t: float, level: str, message: str, job: str, **more) -> None:
        rec = {"message": message, "level": {"Info": "Information", "Error": "Error"}[level], "logType": "Default",
               "timeStamp": _iso(t), "fingerprint": f"{job}-{len(lines)}", "windowsIdentity": "CORP\\svc-robot",
               "machineName": "RPA-VM-01", "processName": process, "processVersion": "1.0.12", "fileName": "Main",
               "jobId": job, "robotName": "svc-robot", **more}
        stamp = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M:%S.%f")[:13]
        lines.append(f"{stamp} {level} {json.dumps(rec)}")

    for k in range(RUNS_PER_LOG):
        start = t0 + k * 1800
        job = f"00000000-0000-4000-8000-{zlib.crc32(f'{process}/{k}'.encode()):012d}"
        entry(start, "Info", f"{process} execution started", job)
        if k == RUNS_PER_LOG - 1:
            entry(start + 60, "Error", "Click 'Submit': UiPath.Core.SelectorNotFoundException: Cannot find the UI "
                                       "element corresponding to this selector: <webctrl id='btnSubmit' />", job)
        entry(start + 120, "Info", f"{process} execution ended", job, totalExecutionTimeInSeconds=120,
              totalExecutionTime="00:02:00")
    return "\r\n".join(lines) + "\r\n"


def regex_log(t0: float) -> str:
    lines = []
    for k in range(RUNS_PER_LOG):
        start = t0 + k * 1800
        stamp = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        end = dt.datetime.fromtimestamp(start + 90, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        lines.append(f"{stamp} Job {k + 1} started")
        lines.append(f"{stamp} read 120 rows from input.xlsx")
        status = "failed" if k == RUNS_PER_LOG - 1 else "ok"
        if status == "failed":
            lines.append(f"{end} ERROR Logon failed for user svc-export")
        lines.append(f"{end} Job {k + 1} finished: {status}")
    return "\n".join(lines) + "\n"


def python_log(logger: str, t0: float) -> str:
    lines = []
    for k in range(RUNS_PER_LOG):
        start = t0 + k * 1800
        a = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S,123")
        b = dt.datetime.fromtimestamp(start + 45, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S,456")
        lines.append(f"{a} - {logger} - INFO - run {k + 1} started")
        lines.append(f"{a} - {logger} - INFO - 42 orders fetched")
        if k == RUNS_PER_LOG - 1:
            lines += [f"{b} - {logger} - ERROR - cannot read the orders file",
                      "Traceback (most recent call last):",
                      '  File "sync.py", line 12, in <module>',
                      "ValueError: could not convert string to float: 'n/a'"]
        lines.append(f"{b} - {logger} - INFO - run {k + 1} finished")
    return "\n".join(lines) + "\n"


def estate(tmp: Path, n_bots: int, port: int, journal: str) -> dict:
    """The estate file's content; the watched bots' log files are written under tmp/logs."""
    t0 = time.time() - 3 * 3600
    bots = []
    for i in range(n_bots):
        name = f"bot-{i:03d}"
        bot: dict = {"name": name, "team": TEAMS[i % len(TEAMS)], "platform": PLATFORMS[i % len(PLATFORMS)],
                     "criticality": ("low", "medium", "high")[i % 3]}
        if i % 10 != 3:  # a few without owner and runbook: governance findings
            bot["owner"] = f"owner{i % 37}@example.com"
            bot["runbook"] = f"https://wiki.example.com/bots/{name}"
        if i % 5 < 2:
            bot |= {"every": ("1h", "4h", "24h")[i % 3], "grace": "30m"}
        elif i % 5 == 2:
            bot |= {"schedule": f"{i % 60} {6 + i % 12} * * 1-5", "timezone": "Europe/Amsterdam", "grace": "20m"}
        if i < WATCHED:
            fmt = FORMATS[i % len(FORMATS)]
            folder = tmp / "logs" / name
            folder.mkdir(parents=True)
            if fmt == "uipath":
                process = f"Bot{i:03d}_Prod"
                path = folder / "2024-05-01_Execution.log"
                path.write_bytes(uipath_log(process, t0).encode())
                spec = {"path": str(path), "format": "uipath", "process_name": process}
            elif fmt == "regex":
                path = folder / "export.log"
                path.write_text(regex_log(t0), encoding="utf-8")
                spec = {"path": str(path), "format": "regex", "start": r"Job (?P<run_id>\d+) started",
                        "end": r"Job (?P<run_id>\d+) finished: (?P<status>\w+)", "error": r"ERROR (?P<message>.*)"}
            else:
                path = folder / "sync.log"
                path.write_text(python_log(name.replace("-", "_"), t0), encoding="utf-8")
                spec = {"path": str(path), "format": "python", "start": r"run (?P<run_id>\d+) started",
                        "end": r"run (?P<run_id>\d+) finished"}
            bot["platform"] = {"uipath": "uipath", "regex": "shell", "python": "python"}[fmt]
            bot["watch"] = {"logs": [spec]}
        bots.append(bot)
    return {"agent": {"listen": f"127.0.0.1:{port}", "journal": journal}, "bots": bots}


# -- the processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    """The benchmark's environment without botwatch and OpenTelemetry settings: no OTLP export,
    no other estate file."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BOTWATCH_", "OTEL_"))}


class Proc:
    """A child process measured with psutil; ended by its pid."""

    def __init__(self, key: str, argv: list[str], cwd: Path, url: str | None = None):
        import psutil

        self.key, self.url = key, url
        self.log_path = cwd / f"{key}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=common.die_with_parent if sys.platform.startswith("linux") else None)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{self.key} exited with {self.proc.returncode}:\n{tail}")

    def wait_for(self, path: str, timeout: float = READY_TIMEOUT) -> bytes:
        """The body of `path` once it answers 200."""
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            try:
                status, body = self.get(path, timeout=timeout)
                if status == 200:
                    return body
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.key}: {path} did not answer 200 within {timeout:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        common.stop_process(self.proc, self._log, timeout=15)


def metric_sum(text: bytes, name: str) -> float:
    """Sum of the samples of `name` (a counter's `_total`, a gauge) in a /metrics body."""
    total = 0.0
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_agent(key: str, tmp: Path, n_bots: int) -> Proc:
    home = tmp / key
    home.mkdir()
    port = free_port()
    config = home / "botwatch.yaml"
    import yaml

    config.write_text(yaml.safe_dump(estate(home, n_bots, port, str(home / "journal.db")), sort_keys=False),
                      encoding="utf-8")
    return Proc(key, [sys.executable, "-m", "botwatch", "agent", "--config", str(config)], home,
                url=f"http://127.0.0.1:{port}")


# -- one window ------------------------------------------------------------------------------------

def window(procs: dict[str, Proc], seconds: float, scrape_every: float, start: int) -> dict[str, dict]:
    """Measure every process over `seconds` of wall time; the agents are scraped on /metrics at
    the middle of every `scrape_every` slot (in rotating order). Per process: CPU share of one
    core (%), highest RSS (bytes), scrapes and the CPU time spent across them."""
    slots = int(seconds // scrape_every) if scrape_every > 0 else 0
    scrape_at = [(k + 0.5) * scrape_every for k in range(slots)]
    agents = [k for k, p in procs.items() if p.url]
    out = {k: {"rss_max": 0, "scrapes": 0, "scrape_cpu_ms": 0.0, "scrape_wall_ms": 0.0} for k in procs}
    c0 = {k: p.cpu() for k, p in procs.items()}
    t0 = time.monotonic()
    n = 0
    while True:
        now = time.monotonic() - t0
        if now >= seconds:
            break
        for k, p in procs.items():
            out[k]["rss_max"] = max(out[k]["rss_max"], p.rss())
        while scrape_at and scrape_at[0] <= now:
            scrape_at.pop(0)
            order = agents[(start + n) % len(agents):] + agents[:(start + n) % len(agents)]
            n += 1
            for k in order:
                a, w = procs[k].cpu(), time.perf_counter()
                status, _body = procs[k].get("/metrics")
                w, b = time.perf_counter() - w, procs[k].cpu()
                if status != 200:
                    raise RuntimeError(f"{k}: /metrics answered {status}")
                out[k]["scrapes"] += 1
                out[k]["scrape_cpu_ms"] += (b - a) * 1000.0
                out[k]["scrape_wall_ms"] += w * 1000.0
        nxt = min([seconds, now + SAMPLE_EVERY] + scrape_at[:1])
        time.sleep(max(0.0, nxt - (time.monotonic() - t0)))
    wall = time.monotonic() - t0
    for k, p in procs.items():
        p.alive()
        out[k]["cpu_s"] = p.cpu() - c0[k]
        out[k]["wall_s"] = wall
        out[k]["cpu_percent"] = out[k]["cpu_s"] / wall * 100.0
        out[k]["rss_max"] = max(out[k]["rss_max"], p.rss())
    return out


# -- the benchmark ---------------------------------------------------------------------------------

def measure(runs: int, reps: int, warmup: int, window_s: float = 30.0, settle: float = 10.0,
            scrape_every: float = 15.0) -> dict:
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix="botwatch-bench-rest-"))
    procs: dict[str, Proc] = {}
    try:
        t_setup = time.monotonic()
        procs["estate"] = start_agent("estate", tmp, BOTS)
        procs["empty"] = start_agent("empty", tmp, 0)
        procs["python"] = Proc("python", [sys.executable, "-c", "import time; time.sleep(86400)"], tmp)
        expected_runs = WATCHED * RUNS_PER_LOG
        expected_failed = WATCHED
        for key in ("estate", "empty"):
            procs[key].wait_for("/healthz")
            procs[key].wait_for("/metrics")  # answered once the first governance refresh is done
        # the watched logs are read (every finished run recorded) before anything is measured
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            body = procs["estate"].wait_for("/metrics")
            seen = metric_sum(body, "botwatch_runs_total")
            if seen >= expected_runs:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent read {seen:.0f} of the {expected_runs} runs in its watched logs")
            time.sleep(0.5)
        problems = []
        if seen != expected_runs:
            problems.append(f"{seen:.0f} runs recorded from the logs, expected {expected_runs}")
        failed = metric_sum(body, "botwatch_run_failures_total")
        if failed != expected_failed:
            problems.append(f"{failed:.0f} failed runs recorded from the logs, expected {expected_failed}")
        if metric_sum(body, "botwatch_bot_info") != BOTS:
            problems.append(f"botwatch_bot_info has {metric_sum(body, 'botwatch_bot_info'):.0f} bots, expected {BOTS}")
        parse_errors = metric_sum(body, "botwatch_agent_parse_errors_total")
        if parse_errors:
            problems.append(f"{parse_errors:.0f} parse errors reading the logs")
        if problems:
            raise RuntimeError("; ".join(problems))
        metrics_bytes = {k: len(procs[k].wait_for("/metrics")) for k in ("estate", "empty")}
        time.sleep(settle)
        setup_s = time.monotonic() - t_setup
        threads = {k: procs[k].ps.num_threads() for k in ("estate", "empty")}
        system_procs = len(psutil.pids())

        for i in range(warmup):
            window(procs, window_s, scrape_every, start=i)
        per_run: dict[str, list[dict]] = {k: [] for k in procs}
        for i in range(runs):
            got = [window(procs, window_s, scrape_every, start=i * reps + r) for r in range(reps)]
            for k in procs:
                per_run[k].append({
                    "cpu_percent": statistics.median(g[k]["cpu_percent"] for g in got),
                    "rss_max": max(g[k]["rss_max"] for g in got),
                    "windows": [g[k] for g in got],
                })
        load = os.getloadavg() if hasattr(os, "getloadavg") else None
    finally:
        for p in procs.values():
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def series(key: str, field: str, scale: float = 1.0) -> list[float]:
        return [r[field] / scale for r in per_run[key]]

    cpu_m, cpu_r = series("estate", "cpu_percent"), series("empty", "cpu_percent")
    tick_percent = 100.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100) / window_s
    floored = [r for r in cpu_r if r <= 0]
    cpu_r_used = [max(r, tick_percent) for r in cpu_r]  # a window without a single clock tick
    rss_m, rss_r = series("estate", "rss_max", MB), series("empty", "rss_max", MB)
    windows = [w for r in per_run["estate"] for w in r["windows"]]
    scrapes = sum(w["scrapes"] for w in windows)
    scrape_cpu = sum(w["scrape_cpu_ms"] for w in windows) / max(scrapes, 1)
    scrape_wall = sum(w["scrape_wall_ms"] for w in windows) / max(scrapes, 1)
    total_cpu_ms = sum(w["cpu_s"] for w in windows) * 1000.0
    scrape_share = sum(w["scrape_cpu_ms"] for w in windows) / total_cpu_ms if total_cpu_ms else 0.0
    without = statistics.median(
        statistics.median((w["cpu_s"] * 1000.0 - w["scrape_cpu_ms"]) / 10.0 / w["wall_s"] for w in r["windows"])
        for r in per_run["estate"])  # percent of one core
    empty_windows = [w for r in per_run["empty"] for w in r["windows"]]
    e_scrapes = sum(w["scrapes"] for w in empty_windows)
    e_scrape_cpu = sum(w["scrape_cpu_ms"] for w in empty_windows) / max(e_scrapes, 1)
    py_cpu = series("python", "cpu_percent")
    py_rss = series("python", "rss_max", MB)
    scraped = (f"/metrics scraped every {scrape_every:g} s" if scrape_every > 0 and scrapes
               else "not scraped")
    what = f"{BOTS} bots, {WATCHED} watched idle logs, {scraped}"

    fig_cpu = common.figure(
        key="7a", title=f"`botwatch agent` at rest, CPU share of one core ({what})", unit="%",
        measured_runs=cpu_m, reference_runs=cpu_r_used, reference_title="the same agent with no bots, same windows",
        goal=round(GOAL_CPU_PERCENT / statistics.median(cpu_r_used), 2), reps=reps,
        samples={"runs": per_run["estate"], "reference_runs": per_run["empty"], "python_runs": per_run["python"]},
        extra={"scrapes": scrapes, "scrape_cpu_ms": scrape_cpu, "metrics_bytes": metrics_bytes})
    fig_cpu["passed"] = fig_cpu["measured"]["median"] <= GOAL_CPU_PERCENT
    fig_cpu["notes"] += [
        f"goal: at most {GOAL_CPU_PERCENT:g} % of one core absolute (the Goal column is that, as a ratio to the "
        f"reference's median); measured median {fig_cpu['measured']['median']:.3f} %: "
        f"{'PASS' if fig_cpu['passed'] else 'MISSED'}",
        f"of which the scrapes: {scrapes} in the measured windows, {common.num(scrape_cpu, 1)} ms CPU and "
        f"{common.num(scrape_wall, 1)} ms wall each ({metrics_bytes['estate'] / 1000:.0f} kB), "
        f"{scrape_share * 100:.0f} % of the agent's CPU time; the empty agent's scrape: "
        + (f"{common.num(e_scrape_cpu, 1)} ms CPU" if e_scrape_cpu > 0 else "under one clock tick of CPU")
        + f" ({metrics_bytes['empty'] / 1000:.1f} kB)",
        f"without the scrapes (their CPU time, measured across each request, subtracted): median {without:.3f} % "
        f"of one core",
        f"an idle `python -c \"time.sleep()\"` of the same interpreter, same windows: median "
        f"{statistics.median(py_cpu):.3f} % CPU",
        f"CPU time is counted in clock ticks: one tick over a {window_s:g} s window is {tick_percent:.3f} %",
    ]
    if floored:
        fig_cpu["notes"].append(f"{len(floored)} reference window(s) counted no CPU tick at all: set to one tick for "
                                "the ratio")
    fig_rss = common.figure(
        key="7b", title=f"`botwatch agent` at rest, resident memory, highest sample of each window ({what})",
        unit="MB", measured_runs=rss_m, reference_runs=rss_r,
        reference_title="the same agent with no bots, same windows",
        goal=round(GOAL_RSS_MB / statistics.median(rss_r), 2), reps=reps)
    fig_rss["passed"] = fig_rss["measured"]["median"] <= GOAL_RSS_MB
    fig_rss["notes"] += [
        f"goal: at most {GOAL_RSS_MB:g} MB (10^6 bytes) absolute (the Goal column is that, as a ratio to the "
        f"reference's median); measured median {fig_rss['measured']['median']:.1f} MB, highest sample of all "
        f"windows {max(rss_m):.1f} MB: {'PASS' if fig_rss['passed'] else 'MISSED'}",
        f"an idle `python -c \"time.sleep()\"` of the same interpreter: {statistics.median(py_rss):.1f} MB",
        f"first window {rss_m[0]:.1f} MB, last {rss_m[-1]:.1f} MB",
    ]
    details = [
        "",
        f"Set-up: the estate agent read {WATCHED * RUNS_PER_LOG} runs ({WATCHED} failed) from its {WATCHED} logs "
        f"({', '.join(FORMATS)}), answered /metrics and settled for {settle:g} s before the first window; set-up "
        f"took {setup_s:.0f} s. Each run is {reps} window(s) of {window_s:g} s, RSS sampled every "
        f"{SAMPLE_EVERY:g} s. Threads: estate agent {threads['estate']}, empty agent {threads['empty']}. "
        f"{system_procs} processes on the system (every agent's process sweep lists them all)"
        + (f"; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}." if load else "."),
    ]
    return {
        "benchmark": "agent_at_rest",
        "figures": [fig_cpu, fig_rss],
        "details": details,
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "window_s": window_s, "settle_s": settle,
                     "scrape_every_s": scrape_every, "bots": BOTS, "watched_logs": WATCHED, "formats": FORMATS,
                     "system_processes": system_procs, "threads": threads, "setup_s": setup_s},
    }


def _options(p) -> None:
    p.add_argument("--window", dest="window_s", type=float, default=30.0, help="seconds measured per window")
    p.add_argument("--settle", type=float, default=10.0, help="seconds of rest before the first window")
    p.add_argument("--scrape-every", dest="scrape_every", type=float, default=15.0,
                   help="seconds between two /metrics scrapes inside a window (0: no scrapes)")


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=5, reps=1, warmup=0, extra=_options)


if __name__ == "__main__":
    sys.exit(main())
