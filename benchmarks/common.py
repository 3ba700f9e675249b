"""Shared pieces of the benchmark suite: statistics, the result format, machine facts, tables.

A benchmark produces a list of *figures*. Each figure compares a measured value with a
reference measured in the same process, interleaved with it, over several runs:

    runs       -- each run interleaves `reps` repetitions of the measured thing and of its
                  reference and keeps the median of each; the run's ratio is measured/reference
    figure     -- median over the runs, with the spread (min-max and IQR) over the runs

Most figures are costs (time, CPU time: lower is better, the goal is a ceiling on the ratio);
a rate (lines per second) has `better="higher"` and its goal is a floor.

A missed goal is reported as MISSED; nothing here hides or drops a figure.
"""

from __future__ import annotations

import bisect
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"


# -- statistics --------------------------------------------------------------------------------

def summary(values: list[float]) -> dict:
    """Median, min, max and interquartile range of `values` (at least one value)."""
    vals = sorted(values)
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "q1": q1, "q3": q3,
            "n": len(vals), "values": list(values)}


def figure(*, key: str, title: str, unit: str, measured_runs: list[float], reference_runs: list[float],
           reference_title: str, goal: float, reps: int, samples: dict | None = None,
           notes: list[str] | None = None, extra: dict | None = None, better: str = "lower") -> dict:
    """One reported figure; ratio and verdict are computed per run, then summarised.
    `better="lower"`: passes when the median ratio is at most `goal`; "higher": at least."""
    if len(measured_runs) != len(reference_runs):
        raise ValueError("measured and reference need the same number of runs")
    if better not in ("lower", "higher"):
        raise ValueError("better is 'lower' or 'higher'")
    ratios = [m / r for m, r in zip(measured_runs, reference_runs)]
    ratio = summary(ratios)
    passed = ratio["median"] <= goal if better == "lower" else ratio["median"] >= goal
    return {
        "key": key, "title": title, "unit": unit,
        "measured": summary(measured_runs), "reference": summary(reference_runs),
        "reference_title": reference_title, "ratio": ratio,
        "goal": goal, "better": better, "passed": passed,
        "runs": len(ratios), "reps_per_run": reps,
        "samples": samples or {}, "notes": notes or [], "extra": extra or {},
    }


def interleaved(order_names: list[str], reps: int, measure: dict, before=None, start: int = 0) -> dict[str, list]:
    """`reps` rounds of every callable in `measure`, in a rotating order (no position bias).
    `start` continues the rotation of an earlier call (a run of few repetitions)."""
    out: dict[str, list] = {name: [] for name in order_names}
    n = len(order_names)
    for i in range(start, start + reps):
        k = i % n
        for name in order_names[k:] + order_names[:k]:
            if before is not None:
                before()
            out[name].append(measure[name]())
    return out


# -- machine -----------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _os_name() -> str:
    pretty = None
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    kernel = f"{platform.system()} {platform.release()} {platform.machine()}"
    return f"{pretty}, {kernel}" if pretty else kernel


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + (", with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# the reference programs of benchmarks 3 and 4 (Debian packages mtail, prometheus-process-exporter)
MTAIL = shutil.which("mtail") or "/usr/bin/mtail"
PROCESS_EXPORTER = shutil.which("prometheus-process-exporter") or "/usr/bin/prometheus-process-exporter"


def tool_version(path: str) -> str:
    """Version of a reference program (mtail, process-exporter), "not installed" if missing."""
    if not os.access(path, os.X_OK):
        return "not installed"
    flag = "--version" if path.endswith("mtail") else "-version"
    try:
        p = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (p.stdout + p.stderr).strip()
    m = re.search(r"version\s+(\S+)", text)
    if m and m.group(1) != "(branch:":
        return m.group(1)
    m = re.search(r"revision:\s*([^)\s]+)", text)  # process-exporter built without a version
    return m.group(1) if m else (text.splitlines()[0] if text else "unknown")


def fs_type(path: str) -> str:
    """File system of `path` (the spool's fsync cost depends on it)."""
    try:
        import psutil

        best = None
        real = os.path.realpath(path)
        for part in psutil.disk_partitions(all=True):
            mp = part.mountpoint
            if real == mp or real.startswith(mp.rstrip(os.sep) + os.sep):
                if best is None or len(mp) > len(best.mountpoint):
                    best = part
        return best.fstype if best else "unknown"
    except Exception:
        return "unknown"


def machine() -> dict:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    import tempfile

    tmp = tempfile.gettempdir()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "os": _os_name(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "packages": {d: _version(d) for d in ("prometheus-client", "psutil", "botwatch")},
        "references": {"mtail": tool_version(MTAIL), "prometheus-process-exporter": tool_version(PROCESS_EXPORTER)},
        "commit": _git_commit(),
        "temp_dir": f"{tmp} ({fs_type(tmp)})",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load": _load(),
    }


def _load() -> str | None:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return None


# -- rendering ---------------------------------------------------------------------------------

def num(value: float, digits: int = 1) -> str:
    """`value` with `digits` decimals, never `-0.0`."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def fmt(value: float, unit: str) -> str:
    if unit == "lines/s":
        return f"{value / 1000:,.0f}k lines/s"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.3g} {unit}"


def spread(s: dict, unit: str) -> str:
    """`median (min–max)`, the unit written once."""
    lo, hi = (fmt(s[k], unit).removesuffix(f" {unit}") for k in ("min", "max"))
    return f"{fmt(s['median'], unit)} ({lo}–{hi})"


def results_table(figures: list[dict]) -> list[str]:
    lines = [
        "| # | Figure | Measured | Reference | Ratio | Goal | Result |",
        "|---|--------|----------|-----------|-------|------|--------|",
    ]
    for f in figures:
        ref = f"{f['reference_title']}: {spread(f['reference'], f['unit'])}"
        verdict = "PASS" if f["passed"] else "**MISSED**"
        goal = f"{'≥' if f.get('better') == 'higher' else '≤'} {f['goal']:g}x"
        lines.append(
            f"| {f['key']} | {f['title']} | {spread(f['measured'], f['unit'])} | {ref} | "
            f"{spread(f['ratio'], 'x')} | {goal} | {verdict} |")
    return lines


def runs_line(figures: list[dict]) -> str:
    """`1a–1d: 7 runs × 10 repetitions; 2: ...` (figures of one benchmark share their settings)."""
    groups: list[tuple[list[str], int, int]] = []
    for f in figures:
        if groups and groups[-1][0][0][0] == f["key"][0] and groups[-1][1:] == (f["runs"], f["reps_per_run"]):
            groups[-1][0].append(f["key"])
        else:
            groups.append(([f["key"]], f["runs"], f["reps_per_run"]))
    return "; ".join(
        f"{keys[0] if len(keys) == 1 else keys[0] + '–' + keys[-1]}: {runs} runs × {reps} "
        f"repetition{'s' if reps != 1 else ''}" for keys, runs, reps in groups)


def machine_lines(m: dict) -> list[str]:
    cores = f"{m['logical_cores']} logical"
    if m.get("physical_cores"):
        cores += f", {m['physical_cores']} physical"
    pk = m["packages"]
    return [
        f"- CPU: {m['cpu']} ({cores} cores)",
        f"- OS: {m['os']}",
        f"- Python: {m['python']}",
        f"- Packages: prometheus-client {pk['prometheus-client']}, psutil {pk['psutil']}, "
        f"botwatch {pk['botwatch']} at commit {m['commit']}",
        *(["- Reference programs: " + ", ".join(f"{k} {v}" for k, v in m["references"].items())]
          if m.get("references") else []),
        f"- Temporary directory (spool of benchmark 1, log file and journal of benchmark 3): {m['temp_dir']}",
        f"- Date: {m['date']}"
        + (f"; load average before the run {m['load']} (1 / 5 / 15 min)" if m.get("load") else ""),
    ]


def standalone_report(result: dict) -> str:
    """What a benchmark prints when run alone: its figures and notes."""
    out = ["", *results_table(result["figures"]), ""]
    for f in result["figures"]:
        for note in f["notes"]:
            out.append(f"- {f['key']}: {note}")
    for line in result.get("details", []):
        out.append(line)
    return "\n".join(out)


def bench_main(doc: str, measure, argv: list[str] | None = None, *, runs: int = 7, reps: int = 1,
               warmup: int = 0, extra=None) -> int:
    """The command line every benchmark shares: --runs (at least 5), --reps, --warmup, --json.
    `extra(parser)` adds a benchmark's own options; they are passed to `measure` by keyword."""
    import argparse
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--runs", type=int, default=runs, help="runs (each gives one median), at least 5")
    p.add_argument("--reps", type=int, default=reps, help="interleaved repetitions per run")
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--json", help="write the result here")
    own = set(vars(p.parse_args([])))
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if args.runs < 5:
        p.error("--runs must be at least 5")
    more = {k: v for k, v in vars(args).items() if k not in own}
    result = measure(args.runs, args.reps, args.warmup, **more)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    else:
        print(standalone_report(result))
    return 0


def stop_process(proc: subprocess.Popen, log=None, timeout: float = 15.0) -> None:
    """SIGTERM, SIGKILL after `timeout`; then close the process's log file."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if log is not None:
        log.close()


def end_processes(procs: list, grace: float) -> None:
    """psutil processes: SIGTERM, then SIGKILL to those still there after `grace` seconds."""
    import psutil

    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without botwatch's and OpenTelemetry's variables, plus `extra`: for the
    agents and runs a benchmark starts, which must not reach an agent of the host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTWATCH_", "OTEL_"))}
    env.update(extra)
    return env


def die_with_parent() -> None:
    """In a child, before exec (preexec_fn, Linux): end with the benchmark, even if it is killed."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# -- a botwatch agent under measurement ----------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, what: str, timeout: float, interval: float = 0.5):
    """`fn()` once it is true; a bound that stops a hang, not a timed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class Agent:
    """A real `python -m botwatch agent` on a free port with an estate file of its own (`settings`
    beside `agent:`) and a journal in `tmp`; `env` replaces the caller's BOTWATCH_ variables."""

    def __init__(self, tmp: Path, name: str, settings: dict, env: dict[str, str]):
        import psutil
        import yaml

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.journal = tmp / f"{name}.db"
        self.log = tmp / f"{name}.log"
        config = tmp / f"{name}.yaml"
        estate = {"agent": {"listen": f"127.0.0.1:{self.port}", "journal": str(self.journal)}, **settings,
                  "bots": []}
        config.write_text(yaml.safe_dump(estate, sort_keys=False), encoding="utf-8")
        self._logf = open(self.log, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "botwatch", "agent", "--config", str(config)], cwd=tmp,
                                     env={**{k: v for k, v in os.environ.items() if not k.startswith("BOTWATCH_")},
                                          **env},
                                     stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        self.ps = psutil.Process(self.proc.pid)

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the agent exited with {self.proc.returncode}:\n{self.tail()}")
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def ready(self) -> bool:
        try:
            self.get("/healthz", timeout=2)
            return True
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.get("/metrics").decode())

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def recorded(self, source: str = "uipath") -> list[str]:
        """The run ids in the agent's journal from `source` (a platform's label)."""
        db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=10)
        try:
            return [r[0] for r in db.execute("SELECT run_id FROM runs WHERE source = ?", (source,))]
        except sqlite3.OperationalError:  # not created yet
            return []
        finally:
            db.close()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc, self._logf, timeout=15)


def busiest_minute(times: list[float]) -> int:
    """The most requests in any 60 s (a window starting at each request)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 60.0) - i for i, t in enumerate(times)), default=0)
