"""Benchmark 4: CPU time of a process sweep over 500 processes, against prometheus-process-exporter's
CPU time per scrape of the same processes.

500 idle processes (`sleep`, each with a distinctive argv[0]: `bwbench.<group>.<n>`) are started
for the benchmark and ended afterwards. The estate has five bots whose `watch.process` matches
ten of them each (50 in all); the other 450 are in nine pools of 50 that no bot claims.

    4a  `ProcessWatcher.sweep()` (CPU time of the benchmark process, `time.process_time()`)
        against prometheus-process-exporter as packaged (its defaults: per-thread metrics and
        smaps on), grouping the same 500 processes into the same 14 groups by command line
    4b  the same sweep against the exporter with `-threads=false -gather-smaps=false`: the
        least it does per scrape

The exporter's CPU time is read from /proc/<pid>/stat (utime + stime, all its threads) before
and after a series of scrapes over HTTP; what it uses while idle over the same wall time,
measured right after, is subtracted.

Run alone:  .venv/bin/python benchmarks/bench_process_sweep.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL = 0.5
PROCESSES = 500
BOTS = ["invoice-recon", "payroll-sync", "claims-intake", "vendor-onboarding", "report-mailer"]
PER_BOT = 10
POOLS = [f"pool{k}" for k in range(9)]  # the other 450, 50 in each, claimed by no bot
SWEEPS = 10  # sweeps per repetition (CPU time per sweep is their mean)
SCRAPES = 5  # scrapes per repetition
SLEEP = "/bin/sleep"
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
EXPORTER = common.PROCESS_EXPORTER
EXPORTERS = {  # key: (title, extra flags)
    "default": ("prometheus-process-exporter, package defaults", []),
    "lean": ("prometheus-process-exporter `-threads=false -gather-smaps=false`",
             ["-threads=false", "-gather-smaps=false"]),
}
EXPORTER_CONFIG = r"""# the same 500 processes, grouped by argv[0]: bwbench.<group>.<n>
process_names:
  - name: "{{.Matches.group}}"
    cmdline:
    - '^bwbench\.(?P<group>[a-z0-9-]+)\.\d+ '
"""


# -- the processes ---------------------------------------------------------------------------------

def groups() -> list[tuple[str, int]]:
    """(group, count) for the 500 processes: the bots' and the pools'."""
    out = [(b, PER_BOT) for b in BOTS]
    rest = PROCESSES - PER_BOT * len(BOTS)
    per_pool = rest // len(POOLS)
    out += [(p, per_pool + (1 if i < rest % len(POOLS) else 0)) for i, p in enumerate(POOLS)]
    return out


class Sleepers:
    """The idle processes, started by this benchmark and ended by it (by pid)."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        linux = sys.platform.startswith("linux")
        for group, count in groups():
            for n in range(count):
                self.procs.append(subprocess.Popen(
                    [f"bwbench.{group}.{n}", "600"], executable=SLEEP, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                    preexec_fn=common.die_with_parent if linux else None))

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


# -- the exporter ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    def __init__(self, key: str, flags: list[str], config: str, workdir: str):
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = open(os.path.join(workdir, f"exporter-{key}.log"), "wb")
        self.proc = subprocess.Popen(
            [EXPORTER, "-config.path", config, f"-web.listen-address=127.0.0.1:{self.port}", *flags],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
            preexec_fn=common.die_with_parent if sys.platform.startswith("linux") else None)
        import psutil

        self.ps = psutil.Process(self.proc.pid)

    def scrape(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=30) as r:
            return r.read()

    def wait_ready(self, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the exporter ({self.key}) exited with {self.proc.returncode}")
            try:
                return self.scrape()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def measure(self, n: int) -> tuple[float, float, float]:
        """(CPU ms per scrape with its idle use subtracted, idle ms over the same wall time,
        wall ms per scrape) over `n` scrapes."""
        c0, t0 = self.cpu(), time.perf_counter()
        for _ in range(n):
            self.scrape()
        c1, t1 = self.cpu(), time.perf_counter()
        time.sleep(t1 - t0)  # idle, as long as the scrapes took
        c2 = self.cpu()
        idle = c2 - c1
        return ((c1 - c0) - idle) * 1000.0 / n, idle * 1000.0, (t1 - t0) * 1000.0 / n

    def stop(self) -> None:
        common.stop_process(self.proc, self.log, timeout=10)


def group_counts(text: bytes) -> dict[str, int]:
    """`namedprocess_namegroup_num_procs` per group from a scrape."""
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith("namedprocess_namegroup_num_procs{"):
            labels, value = line.rsplit(" ", 1)
            group = labels.split('groupname="', 1)[1].split('"', 1)[0]
            out[group] = int(float(value))
    return out


# -- botwatch --------------------------------------------------------------------------------------

def make_watcher(journal_path: str):
    from botwatch.config.estate import BotConfig, Estate, ProcessMatch, WatchConfig
    from botwatch.state.journal import Journal
    from botwatch.sources.processes import ProcessWatcher
    from botwatch.state.runtime import EstateState

    bots = [BotConfig(name=b, platform="python",
                      watch=WatchConfig(process=ProcessMatch(cmdline=rf"^bwbench\.{b}\.\d+ ")))
            for b in BOTS]
    estate = Estate(bots=bots)
    journal = Journal(journal_path)
    state = EstateState(estate, journal)
    return ProcessWatcher(estate, state, interval=60.0), state, journal


def sweeps(watcher, n: int) -> tuple[float, float]:
    """(CPU ms per sweep, wall ms per sweep) over `n` sweeps."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        watcher.sweep()
    return (time.process_time() - c0) * 1000.0 / n, (time.perf_counter() - t0) * 1000.0 / n


# -- the benchmark ---------------------------------------------------------------------------------

def measure(runs: int, reps: int, warmup: int) -> dict:
    if not os.access(EXPORTER, os.X_OK):
        raise RuntimeError("prometheus-process-exporter not found: install the Debian package (make bench does)")
    tmp = tempfile.mkdtemp(prefix="botwatch-bench-procs-")
    sleepers = Sleepers()
    exporters: dict[str, Exporter] = {}
    journal = None
    try:
        sleepers.start()
        config = os.path.join(tmp, "process-exporter.yml")
        Path(config).write_text(EXPORTER_CONFIG, encoding="utf-8")
        for key, (_title, flags) in EXPORTERS.items():
            exporters[key] = Exporter(key, flags, config, tmp)
        expected = dict(groups())
        for e in exporters.values():
            e.wait_ready()
        time.sleep(1.2)  # every process older than the watcher's settling time: decisions are cached
        watcher, state, journal = make_watcher(os.path.join(tmp, "journal.db"))
        import psutil

        system_procs = len(psutil.pids())
        t0 = time.process_time()
        watcher.sweep()  # the first sweep decides every process
        first_ms = (time.process_time() - t0) * 1000.0

        # correctness: both see the same 500 processes in the same groups; botwatch has the
        # five bots running with their ten processes each
        problems = []
        for e in exporters.values():
            got = {g: n for g, n in group_counts(e.scrape()).items() if g in expected}
            if got != expected:
                problems.append(f"exporter {e.key} sees {got}, expected {expected}")
        watcher.sweep()
        running = {b: v.active_procs for b, v in state.bots.items()}
        want = {b: PER_BOT for b in BOTS}
        seen = {b: sum(p.values()) for b, p in running.items()}
        if seen != want:
            problems.append(f"botwatch sees {seen} processes per bot, expected {want}")
        if sleepers.alive() != PROCESSES:
            problems.append(f"{sleepers.alive()} of the {PROCESSES} processes are alive")
        if problems:
            raise RuntimeError("; ".join(problems))

        fns = {"botwatch": lambda: sweeps(watcher, SWEEPS)}
        for key, e in exporters.items():
            fns[key] = (lambda e=e: e.measure(SCRAPES))
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        per_run: dict[str, list[float]] = {k: [] for k in fns}
        raw: dict[str, list[list]] = {k: [] for k in fns}
        for i in range(runs):
            got = common.interleaved(list(fns), reps, fns, start=i * reps)
            for k, v in got.items():
                per_run[k].append(statistics.median(x[0] for x in v))
                raw[k].append([list(x) for x in v])
        if sleepers.alive() != PROCESSES:
            raise RuntimeError(f"only {sleepers.alive()} of the {PROCESSES} processes lived through the benchmark")
        for e in exporters.values():
            if e.proc.poll() is not None:
                raise RuntimeError(f"the exporter ({e.key}) exited during the benchmark")
        metrics_bytes = {k: len(e.scrape()) for k, e in exporters.items()}
    finally:
        for e in exporters.values():
            e.stop()
        sleepers.stop()
        if journal is not None:
            journal.close()
        shutil.rmtree(tmp, ignore_errors=True)

    ticks = statistics.median(per_run["lean"]) * SCRAPES / (1000 / TICKS)
    figures = []
    bw_wall = statistics.median(x[1] for run in raw["botwatch"] for x in run)
    for fkey, key in (("4a", "default"), ("4b", "lean")):
        title, _flags = EXPORTERS[key]
        idle = [x[1] for run in raw[key] for x in run]
        wall = [x[2] for run in raw[key] for x in run]
        f = common.figure(
            key=fkey,
            title=(f"CPU time per `ProcessWatcher.sweep()`, {PROCESSES} processes ({len(BOTS) * PER_BOT} of "
                   f"{len(BOTS)} bots)" if fkey == "4a" else "the same sweep"),
            unit="ms", measured_runs=per_run["botwatch"], reference_runs=per_run[key],
            reference_title=f"{title}, CPU per scrape", goal=GOAL, reps=reps,
            samples={"raw": raw["botwatch"], "reference_raw": raw[key],
                     "fields": "botwatch: [cpu ms/sweep, wall ms/sweep]; exporter: "
                               "[cpu ms/scrape net of idle, idle cpu ms over the same wall time, wall ms/scrape]"},
            extra={"idle_ms": common.summary(idle), "scrape_wall_ms": common.summary(wall),
                   "metrics_bytes": metrics_bytes[key]})
        f["notes"].append(
            f"the exporter's idle CPU over the wall time of {SCRAPES} scrapes (subtracted): median "
            f"{common.num(statistics.median(idle), 1)} ms (max {common.num(max(idle), 1)} ms); a scrape takes "
            f"{common.num(statistics.median(wall), 1)} ms wall and returns {metrics_bytes[key] / 1000:.0f} kB")
        figures.append(f)
    figures[0]["notes"].insert(0, f"a sweep takes {common.num(bw_wall, 1)} ms wall; the first sweep, which decides "
                                  f"every process afresh, took {common.num(first_ms, 1)} ms CPU")
    details = [
        "",
        f"{system_procs} processes on the system while measuring, {PROCESSES} of them the benchmark's; "
        f"CPU time per sweep is the mean of {SWEEPS} sweeps, per scrape of {SCRAPES} scrapes. The kernel counts "
        f"the exporter's CPU time in clock ticks ({1000 // TICKS} ms): a repetition of {SCRAPES} scrapes spans about "
        f"{ticks:.0f} of them.",
    ]
    return {
        "benchmark": "process_sweep",
        "figures": figures,
        "details": details,
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "processes": PROCESSES, "bots": BOTS,
                     "per_bot": PER_BOT, "sweeps": SWEEPS, "scrapes": SCRAPES, "system_processes": system_procs,
                     "exporter_config": EXPORTER_CONFIG, "exporters": {k: v[1] for k, v in EXPORTERS.items()}},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=1, warmup=1)

if __name__ == "__main__":
    sys.exit(main())
