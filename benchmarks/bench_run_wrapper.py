"""Benchmark 1: wall time of `botwatch run --bot b -- true` against `python -c pass`.

`botwatch run` is started by cron and Task Scheduler for every bot run, so its cost over a
bare interpreter start is what every scheduled job pays. Both commands use the venv's own
interpreter and are measured in the same process, interleaved, after a few warm-up runs.

    1a  the wrapper as deployed: it records the run in the spool and spawns the deliverer
    1b  the same with BOTWATCH_NO_DELIVERY=1 (no deliverer spawned)
    1c  1a with botwatch as a regular install (a throwaway venv), without the editable
        install's import hook that every interpreter start in .venv pays
    1d  1c with BOTWATCH_NO_DELIVERY=1

Below the figures it splits the wrapper's time (interpreter start, run-path imports from
`-X importtime`, the spool record, the rest) and times other paths for information: a bot
with output, a failed run, a failed run with an estate file.

Run alone:  .venv/bin/python benchmarks/bench_run_wrapper.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL = 3.0
BOT = "b"
PATH_REPS = 3  # repetitions per run of the other paths (informational, no goal)
# Variables that change what an interpreter start costs; the benchmark controls them itself.
CLEARED_ENV = ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONDEVMODE", "PYTHONTRACEMALLOC",
               "PYTHONMALLOCSTATS", "PYTHONVERBOSE", "PYTHONINSPECT", "BOTWATCH_CONFIG", "BOTWATCH_SPOOL",
               "BOTWATCH_NO_DELIVERY", "BOTWATCH_AGENT_URL", "BOTWATCH_DELIVERY_PATIENCE")


def venv_bin() -> Path:
    venv = common.ROOT / ".venv"
    if (venv / "bin" / "python").exists():
        return venv / "bin"
    return Path(sys.executable).parent


BIN = venv_bin()
PYTHON = str(BIN / "python")
BOTWATCH = str(BIN / "botwatch")


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in CLEARED_ENV:
        env.pop(key, None)
    return env


def compile_package() -> None:
    """Byte-compile the package so that what is measured is import cost, not compile cost."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", "agent", "exporters"], cwd=common.ROOT, env=clean_env(),
                   check=True, stdout=subprocess.DEVNULL)


# -- background deliverers -----------------------------------------------------------------------

def deliverers(spools: set[str]) -> list:
    """Deliverer processes (`python -m botwatch.deliver --spool S`) working on our spools only."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "botwatch.deliver" in cmd and "--spool" in cmd:
            i = cmd.index("--spool")
            if i + 1 < len(cmd) and cmd[i + 1] in spools:
                found.append(p)
    return found


def _cpu_and_status(p) -> tuple[float, str] | None:
    import psutil

    try:
        with p.oneshot():
            t = p.cpu_times()
            return t.user + t.system, p.status()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def wait_quiet(spools: set[str], timeout: float = 5.0) -> bool:
    """Wait until our deliverers have exited or sleep (in their retry backoff) using no CPU, so
    that a deliverer starting up does not compete with the next measured command. False if they
    were still busy at `timeout`."""
    import psutil

    idle_states = {psutil.STATUS_SLEEPING, psutil.STATUS_ZOMBIE, getattr(psutil, "STATUS_IDLE", "idle")}
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        procs = deliverers(spools)
        if not procs:
            return True
        before = {p.pid: _cpu_and_status(p) for p in procs}
        time.sleep(0.03)
        busy = False
        for p in procs:
            now = _cpu_and_status(p)
            if now is None:
                continue
            was = before.get(p.pid)
            if was is None or now[0] != was[0] or now[1] not in idle_states:
                busy = True
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return True
    return False


def reap_deliverers(spools: set[str], timeout: float) -> dict:
    """Let our deliverers give up by themselves (patience is 1 s); end stragglers by pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and deliverers(spools):
        time.sleep(0.1)
    left = deliverers(spools)
    common.end_processes(left, grace=3)
    return {"terminated": len(left)}


# -- measuring -----------------------------------------------------------------------------------

def run_once(cmd: list[str], env: dict, cwd: str, expect: int = 0) -> float:
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - t0
    if rc != expect:
        raise RuntimeError(f"{' '.join(cmd)} exited with {rc}, expected {expect}")
    return elapsed * 1000.0


def check_clean(cmd: list[str], env: dict, cwd: str, expect: int = 0, stdout: bytes = b"") -> None:
    """A warm-up run that must end as expected without a word on stderr (a spool or
    classification warning would void the benchmark)."""
    p = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != expect or p.stdout != stdout or p.stderr:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}, output {(p.stdout + p.stderr)[:500]!r}")


def finished_runs(spool: str) -> int:
    db = sqlite3.connect(f"file:{spool}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'finish'").fetchone()[0]
    finally:
        db.close()


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")


def import_times(cmd: list[str], env: dict, cwd: str) -> list[tuple[int, str, int]]:
    """(depth, module, cumulative µs) in the order `-X importtime` prints them."""
    p = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    out = []
    for line in p.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if m:
            out.append(((len(m.group(3)) - 1) // 2, m.group(4), int(m.group(2))))
    return out


class ImportBreakdown:
    """Cumulative import times of the run path, i.e. what `-X importtime` shows for `botwatch run`
    and not for `python -c pass`, sampled once per run (under the same conditions as the run)."""

    def __init__(self, layout: "Layout", env: dict, cwd: str):
        self.layout, self.env, self.cwd = layout, env, cwd
        self.ref_top: set[str] = set()
        self.run_top: dict[str, list[int]] = {}
        self.nested: dict[str, list[int]] = {}
        self.site: dict[str, list[int]] = {}
        self.n = 0

    def sample(self) -> None:
        lay = self.layout
        for depth, name, _cum in import_times([lay.python, "-X", "importtime", "-c", "pass"], self.env, self.cwd):
            if depth == 0:
                self.ref_top.add(name)
        run = import_times([lay.python, "-X", "importtime", lay.botwatch, "run", "--bot", BOT, "--", "true"],
                           self.env, self.cwd)
        # -X importtime prints a module after everything it imported
        pending: list[tuple[int, str, int]] = []
        for depth, name, cum in run:
            if depth > 0:
                pending.append((depth, name, cum))
                continue
            self.run_top.setdefault(name, []).append(cum)
            for d, child, ccum in pending:
                if name == "site" and d == 1:
                    self.site.setdefault(child, []).append(ccum)
                self.nested.setdefault(f"{name}/{child}", []).append(ccum)
            pending = []
        self.n += 1

    def result(self) -> dict:
        med = {k: statistics.median(v) / 1000.0 for k, v in self.run_top.items()}
        run_path = {k: v for k, v in med.items() if k not in self.ref_top}
        inner = {k.split("/", 1)[1]: statistics.median(v) / 1000.0 for k, v in self.nested.items()
                 if k.split("/", 1)[0] in run_path}
        return {
            "run_path_ms": sum(run_path.values()),
            "run_path_modules": run_path,
            "largest": dict(sorted({**run_path, **inner}.items(), key=lambda kv: -kv[1])[:10]),
            "site_ms": med.get("site", 0.0),
            "site_children": {k: statistics.median(v) / 1000.0 for k, v in self.site.items()},
            "runs": self.n,
        }


class SpoolRecord:
    """In-process cost of what the wrapper does with the spool: open, record the finish, close
    (the last close of a WAL database checkpoints it)."""

    def __init__(self, directory: str):
        from botwatch.client.spool import Spool

        self.spool_class = Spool
        self.path = os.path.join(directory, "spool-in-process.db")
        Spool(self.path).close()  # the schema exists in steady state
        self.times: list[float] = []

    def sample(self, n: int = 3) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            s = self.spool_class(self.path)
            now = time.time()
            s.add_finished(BOT, f"bench-{len(self.times)}", started=now - 0.01, ended=now, outcome="success",
                           exit_status=0, timed_out=False, host="bench", cpu_seconds=0.001)
            s.close()
            self.times.append((time.perf_counter() - t0) * 1000.0)


class Layout:
    """An interpreter plus the `botwatch` console script installed for it."""

    def __init__(self, key: str, label: str, python: str, botwatch: str):
        self.key, self.label, self.python, self.botwatch = key, label, python, botwatch


def regular_install(directory: str) -> Layout:
    """A venv holding botwatch as a wheel install lays it out: the package copied into
    site-packages, no editable-install import hook. The run path needs no third-party package."""
    venv = Path(directory) / "regular-venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], env=clean_env(), check=True,
                   stdout=subprocess.DEVNULL)
    vpython = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(vpython), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  env=clean_env(), check=True, capture_output=True, text=True).stdout.strip())
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(common.ROOT / "agent", purelib / "botwatch", ignore=skip)
    shutil.copytree(common.ROOT / "exporters", purelib / "botwatch" / "exporters", ignore=skip)
    subprocess.run([str(vpython), "-m", "compileall", "-q", str(purelib / "botwatch")], env=clean_env(), check=True,
                   stdout=subprocess.DEVNULL)
    # the same console script the installer wrote for .venv, pointed at this venv's interpreter
    shebang, _, body = Path(BOTWATCH).read_text(encoding="utf-8").partition("\n")
    script = venv / "bin" / "botwatch"
    script.write_text(f"#!{venv / 'bin' / Path(shebang[2:].strip()).name}\n{body}", encoding="utf-8")
    script.chmod(0o755)
    return Layout("regular", "regular install", str(vpython), str(script))


def measure(runs: int, reps: int, warmup: int) -> dict:
    compile_package()
    tmp = tempfile.mkdtemp(prefix="botwatch-bench-")
    # A bound socket that never listens: the deliverers' connections are refused at once, and no
    # agent that may run on this host receives benchmark events.
    sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sink.bind(("127.0.0.1", 0))
    base = clean_env()
    base["BOTWATCH_DELIVERY_PATIENCE"] = "1"
    base["BOTWATCH_AGENT_URL"] = f"http://127.0.0.1:{sink.getsockname()[1]}"
    spools: set[str] = set()
    busy_waits = 0

    def settle() -> None:
        nonlocal busy_waits
        if not wait_quiet(spools):
            busy_waits += 1

    try:
        layouts = [Layout("editable", "project venv", PYTHON, BOTWATCH), regular_install(tmp)]
        commands: dict[str, tuple[list[str], dict]] = {}
        for lay in layouts:
            spool_d = os.path.join(tmp, f"spool-{lay.key}-delivery.db")
            spool_n = os.path.join(tmp, f"spool-{lay.key}-no-delivery.db")
            spools.update((spool_d, spool_n))
            wrapper = [lay.botwatch, "run", "--bot", BOT, "--", "true"]
            commands[f"{lay.key}:reference"] = ([lay.python, "-c", "pass"], base)
            commands[f"{lay.key}:delivery"] = (wrapper, {**base, "BOTWATCH_SPOOL": spool_d})
            commands[f"{lay.key}:no_delivery"] = (wrapper, {**base, "BOTWATCH_SPOOL": spool_n,
                                                            "BOTWATCH_NO_DELIVERY": "1"})
        # Other paths of `botwatch run`, in the project venv (they need its third-party packages)
        estate = os.path.join(tmp, "estate.yaml")
        Path(estate).write_text(f"bots:\n  - name: {BOT}\n", encoding="utf-8")
        env_paths = {**base, "BOTWATCH_SPOOL": os.path.join(tmp, "spool-paths.db"), "BOTWATCH_NO_DELIVERY": "1"}
        run_b = [BOTWATCH, "run", "--bot", BOT]
        paths = {  # key: (what, command, exit status, stdout)
            "output": ("a bot that prints a line (`-- echo hi`): its output tail is redacted and stored",
                       [*run_b, "--", "echo", "hi"], 0, b"hi\n"),
            "failure": ("a failed run (`-- false`), no estate file: classified with the built-in patterns",
                        [*run_b, "--", "false"], 1, b""),
            "failure_estate": ("a failed run with `--config ESTATE`: classified with the estate's patterns",
                               [*run_b, "--config", estate, "--", "false"], 1, b""),
        }
        for _ in range(warmup):
            for cmd, env in commands.values():
                check_clean(cmd, env, tmp)
                settle()
        for _what, cmd, rc, out in paths.values():
            check_clean(cmd, env_paths, tmp, rc, out)
        per_run: dict[str, list[float]] = {k: [] for k in commands}
        raw: dict[str, list[list[float]]] = {k: [] for k in commands}
        breakdowns = {lay.key: ImportBreakdown(lay, {**commands[f"{lay.key}:no_delivery"][1], "BOTWATCH_SPOOL":
                                                     os.path.join(tmp, f"spool-{lay.key}-imports.db")}, tmp)
                      for lay in layouts}
        spool_record = SpoolRecord(tmp)
        path_ms: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(runs):
            got = common.interleaved(
                list(commands), reps,
                {k: (lambda c=c, e=e: run_once(c, e, tmp)) for k, (c, e) in commands.items()},
                before=settle)
            for k, v in got.items():
                per_run[k].append(statistics.median(v))
                raw[k].append(v)
            for b in breakdowns.values():  # untimed: where the time goes, under this run's conditions
                settle()
                b.sample()
            spool_record.sample()
            other = common.interleaved(
                list(paths), PATH_REPS,
                {k: (lambda c=c, rc=rc: run_once(c, env_paths, tmp, rc)) for k, (_w, c, rc, _o) in paths.items()},
                before=settle)
            for k, v in other.items():
                path_ms[k].append(statistics.median(v))
        expected = warmup + runs * reps
        recorded = {k: finished_runs(env["BOTWATCH_SPOOL"]) for k, (_c, env) in commands.items()
                    if "BOTWATCH_SPOOL" in env}
        paths_recorded = finished_runs(env_paths["BOTWATCH_SPOOL"])
        imports = {k: b.result() for k, b in breakdowns.items()}
        spool_cost = common.summary(spool_record.times)
    finally:
        cleanup = reap_deliverers(spools, timeout=20.0)
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)

    wrong = {k: n for k, n in recorded.items() if n != expected}
    if wrong:
        raise RuntimeError(f"runs recorded in the spools {wrong}, expected {expected} each")
    paths_expected = len(paths) * (1 + runs * PATH_REPS)
    if paths_recorded != paths_expected:
        raise RuntimeError(f"other paths: {paths_recorded} runs recorded in the spool, expected {paths_expected}")

    figures = []
    spawn: dict[str, list[float]] = {}
    titles = {
        ("editable", "delivery"): ("1a", "`botwatch run --bot b -- true` as deployed: records the run, spawns the "
                                         "deliverer"),
        ("editable", "no_delivery"): ("1b", "the same with `BOTWATCH_NO_DELIVERY=1` (no deliverer spawned)"),
        ("regular", "delivery"): ("1c", "1a with botwatch as a regular (non-editable) install, no editable-install "
                                        "import hook"),
        ("regular", "no_delivery"): ("1d", "1c with `BOTWATCH_NO_DELIVERY=1`"),
    }
    for lay in layouts:
        ref = per_run[f"{lay.key}:reference"]
        for variant in ("delivery", "no_delivery"):
            key, title = titles[(lay.key, variant)]
            f = common.figure(
                key=key, title=title, unit="ms", measured_runs=per_run[f"{lay.key}:{variant}"], reference_runs=ref,
                reference_title="`python -c pass`" if lay.key == "editable" else "`python -c pass`, same venv",
                goal=GOAL, reps=reps,
                samples={"raw_ms": raw[f"{lay.key}:{variant}"], "reference_raw_ms": raw[f"{lay.key}:reference"]})
            figures.append(f)
        spawn[lay.key] = [d - n for d, n in zip(per_run[f"{lay.key}:delivery"], per_run[f"{lay.key}:no_delivery"])]
        figures[-2]["notes"].append(
            f"spawning the deliverer adds {common.num(statistics.median(spawn[lay.key]))} ms "
            f"(per run {common.num(min(spawn[lay.key]))} to {common.num(max(spawn[lay.key]))} ms)")
    figures[0]["notes"].append(f"every run was recorded in its spool ({expected} of {expected} in each variant)")
    if busy_waits:
        figures[0]["notes"].append(f"{busy_waits} time(s) a deliverer was still busy when the next command started")
    if cleanup["terminated"]:
        figures[0]["notes"].append(f"{cleanup['terminated']} deliverer(s) had to be ended after the benchmark")

    def col(lay_key: str) -> dict:
        ref, run = per_run[f"{lay_key}:reference"], per_run[f"{lay_key}:no_delivery"]
        over = statistics.median(r - f for r, f in zip(run, ref))  # paired per run: steadier
        imp = imports[lay_key]
        return {"ref": statistics.median(ref), "site": imp["site_ms"], "imports": imp["run_path_ms"],
                "spool": spool_cost["median"], "rest": over - imp["run_path_ms"] - spool_cost["median"],
                "over": over, "total": statistics.median(run), "spawn": statistics.median(spawn[lay_key])}

    e, r = col("editable"), col("regular")
    paths_out: dict[str, dict] = {}
    modules = ", ".join(f"`{m}`" for m in imports["editable"]["run_path_modules"])
    def row(part: str, key: str, bold: bool = False) -> str:
        b = "**" if bold else ""
        return f"| {b}{part}{b} | {b}{common.num(e[key])} ms{b} | {b}{common.num(r[key])} ms{b} |"

    details = [
        "",
        "Where the time of the wrapper goes (medians over the runs above; import times from "
        "`python -X importtime`, which adds a little itself, sampled once per run):",
        "",
        "| Part | project venv (1b) | regular install (1d) |",
        "|------|-------------------|----------------------|",
        row("interpreter start = the reference `python -c pass`", "ref"),
        row("… of which `site` (path setup, `.pth` hooks)", "site"),
        row(f"run-path imports ({modules})", "imports"),
        row("spool: open, record the finished run, close (timed in-process, fsync included)", "spool"),
        row("the rest: spawning, pumping and reaping `true`, interpreter teardown", "rest"),
        row("wrapper over the reference (median of the per-run differences)", "over", bold=True),
        row("total, no deliverer", "total"),
        row("spawning the deliverer (1a − 1b, 1c − 1d)", "spawn"),
        "",
    ]
    ref_e = per_run["editable:reference"]
    details += [
        f"Other paths of `botwatch run` (project venv, no deliverer; {PATH_REPS} repetitions in each run, "
        "interleaved with the rest). The goal is set for `-- true`; these are listed so that what the "
        "other paths cost stays visible:",
        "",
        "| Path | Wall time | Ratio to `python -c pass` | Within 3x |",
        "|------|-----------|---------------------------|-----------|",
    ]
    for k, (what, _c, _rc, _o) in paths.items():
        ratio = common.summary([m / r for m, r in zip(path_ms[k], ref_e)])
        details.append(f"| {what} | {common.spread(common.summary(path_ms[k]), 'ms')} | "
                       f"{common.spread(ratio, 'x')} | {'yes' if ratio['median'] <= GOAL else '**no**'} |")
        paths_out[k] = {"ms": common.summary(path_ms[k]), "ratio": ratio}
    details.append("")
    for lay in layouts:
        imp = imports[lay.key]
        details.append(f"Largest run-path imports, {lay.label} (cumulative, median of {imp['runs']}): " + ", ".join(
            f"`{k}` {common.num(v)} ms" for k, v in imp["largest"].items() if v >= 0.2) + ".")
        details.append("")
    heavy_site = sorted(((k, v) for k, v in imports["editable"]["site_children"].items()
                         if v >= 1.0 and k not in imports["regular"]["site_children"]), key=lambda kv: -kv[1])
    if heavy_site:
        details.append("In the project venv `site` also imports "
                       + ", ".join(f"`{k}` ({common.num(v)} ms)" for k, v in heavy_site)
                       + " at every interpreter start, the reference's included: that is the editable install's "
                       "import hook. A regular install has none, so 1c/1d are the figures a deployed host sees.")
    return {
        "benchmark": "run_wrapper",
        "figures": figures,
        "details": details,
        "other_paths": paths_out,
        "breakdown": {"imports": imports, "spool_record_ms": spool_cost, "editable": e, "regular": r,
                      "deliverer_spawn_ms": {k: common.summary(v) for k, v in spawn.items()}},
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "python": PYTHON, "botwatch": BOTWATCH},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=10, warmup=3)

if __name__ == "__main__":
    sys.exit(main())
