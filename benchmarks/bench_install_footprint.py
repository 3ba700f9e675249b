"""Benchmark 13: install footprint: `pip install botwatch` without extras, and what its commands
weigh in memory beside the interpreter alone and beside prometheus-process-exporter.

The wheel is built from this checkout and installed, with its core dependencies from the package
index, into a fresh venv: what a bot host gets from `pip install botwatch`. Then, in each run:

    13a  installed size (site-packages, pip/setuptools/wheel left out) against the budget of 40 MB
    13b  distributions installed (the same left out) against the budget of 15
    13c  peak RSS of `botwatch run --bot b -- python -c pass` against `python -c pass` itself
    13d  peak RSS of a Python bot using the SDK (`with botwatch.run("b"): pass`) against the bare bot
    13e  RSS of an idle `botwatch agent` (no bots) against prometheus-process-exporter's idle RSS
         (the Debian package, which `make bench` installs), both started in the same run

Import times of the same three entry points are printed beside them (from `-X importtime`).

Run alone:  .venv/bin/python benchmarks/bench_install_footprint.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIZE_BUDGET_MB = 40.0
DISTRIBUTIONS_BUDGET = 15
RUN_GOAL = 2.0  # peak RSS of the wrapper over the interpreter's
SDK_GOAL = 2.0
AGENT_GOAL = 3.0  # the agent's idle RSS over prometheus-process-exporter's
VENV_TOOLS = {"pip", "setuptools", "wheel"}  # come with any venv, not with botwatch

# peak RSS of a command, from the parent's RUSAGE_CHILDREN (Linux reports KiB)
PEAK_RSS = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
SDK_BOT = "import botwatch\nwith botwatch.run('b'):\n    pass\n"
BARE_BOT = "import time\ntime.time()\n"


def install(tmp: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel of this checkout and its core dependencies: (python, site-packages)."""
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(common.ROOT)], check=True, env=common.clean_env())
    (wheel,) = wheels.glob("botwatch-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--only-binary=:all:", str(wheel)], check=True,
                   env=common.clean_env())
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return python, Path(purelib)


def footprint(python: Path, site: Path) -> tuple[float, list[str]]:
    """(installed MB, distributions) of what botwatch brought, venv tools left out."""
    listing = subprocess.run([str(python), "-c", "import importlib.metadata as m\n"
                              "for d in m.distributions(): print(d.metadata['Name'], *(d.files or []), sep='\\t')"],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    names, size = [], 0
    for line in listing:
        name, *files = line.split("\t")
        if name.lower() in VENV_TOOLS:
            continue
        names.append(name)
        for f in files:
            p = site / f
            if p.is_file():
                size += p.stat().st_size
    return size / 1e6, sorted(names, key=str.lower)


def peak_rss_mb(python: Path, *cmd: str, env: dict) -> float:
    out = subprocess.run([str(python), "-c", PEAK_RSS, *cmd], check=True, capture_output=True, text=True, env=env)
    return int(out.stdout.strip()) / 1024.0


def import_ms(python: Path, *cmd: str, env: dict) -> float:
    err = subprocess.run([str(python), "-X", "importtime", *cmd], capture_output=True, text=True, env=env).stderr
    top = [int(m.group(1)) for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (?! )", err, re.M)]
    return sum(top) / 1000.0


def idle_rss_mb(start, url: str) -> float:
    """Start a server, wait for it to answer, let it settle, read its RSS, stop it."""
    import psutil

    proc = start()
    try:
        common.wait_until(lambda: _answers(url), f"{url} to answer", timeout=60)
        time.sleep(2.0)
        return psutil.Process(proc.pid).memory_info().rss / 1e6
    finally:
        common.stop_process(proc)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def measure(runs: int, reps: int, warmup: int) -> dict:
    if not os.access(common.PROCESS_EXPORTER, os.X_OK):
        raise RuntimeError("prometheus-process-exporter not found: install the Debian package (make bench does)")
    tmp = Path(tempfile.mkdtemp(prefix="botwatch-bench-install-"))
    try:
        python, site = install(tmp)
        size_mb, dists = footprint(python, site)
        botwatch = python.parent / "botwatch"
        env = common.clean_env(BOTWATCH_SPOOL=str(tmp / "spool.db"), BOTWATCH_NO_DELIVERY="1")
        estate = tmp / "botwatch.yaml"
        rows: dict[str, list[float]] = {k: [] for k in ("run", "interp", "sdk", "bare", "agent", "exporter")}
        imports: dict[str, list[float]] = {k: [] for k in ("run", "sdk", "agent")}
        (tmp / "pe.yml").write_text("process_names:\n  - name: '{{.Comm}}'\n    cmdline: ['.+']\n")
        for i in range(warmup + runs):
            port, pe_port = common.free_port(), common.free_port()
            estate.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp / 'journal.db'}\nbots: []\n")
            got = {
                "run": peak_rss_mb(python, str(botwatch), "run", "--bot", "b", "--", str(python), "-c", "pass", env=env),
                "interp": peak_rss_mb(python, str(python), "-c", "pass", env=env),
                "sdk": peak_rss_mb(python, str(python), "-c", SDK_BOT, env=env),
                "bare": peak_rss_mb(python, str(python), "-c", BARE_BOT, env=env),
                "agent": idle_rss_mb(lambda: subprocess.Popen(
                    [str(botwatch), "agent", "--config", str(estate)], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, preexec_fn=common.die_with_parent), f"http://127.0.0.1:{port}/healthz"),
                "exporter": idle_rss_mb(lambda: subprocess.Popen(
                    [common.PROCESS_EXPORTER, "-config.path", str(tmp / "pe.yml"), "-web.listen-address",
                     f"127.0.0.1:{pe_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    preexec_fn=common.die_with_parent), f"http://127.0.0.1:{pe_port}/metrics"),
            }
            if i >= warmup:
                for k, v in got.items():
                    rows[k].append(v)
                imports["run"].append(import_ms(python, "-m", "botwatch", "run", "--bot", "b", "--", "true", env=env))
                imports["sdk"].append(import_ms(python, "-c", SDK_BOT, env=env))
                imports["agent"].append(import_ms(python, "-c", "import botwatch.server.daemon", env=env))
        n = len(rows["run"])
        figures = [
            common.figure(key="13a", title="installed size without extras", unit="MB", measured_runs=[size_mb] * n,
                          reference_runs=[SIZE_BUDGET_MB] * n, reference_title="the budget of 40 MB", goal=1.0,
                          reps=1, notes=["site-packages of a fresh venv after `pip install botwatch`, "
                                         "pip/setuptools/wheel left out"]),
            common.figure(key="13b", title="distributions installed without extras", unit="",
                          measured_runs=[float(len(dists))] * n, reference_runs=[float(DISTRIBUTIONS_BUDGET)] * n,
                          reference_title="the budget of 15", goal=1.0, reps=1,
                          notes=["installed: " + ", ".join(dists)]),
            common.figure(key="13c", title="peak RSS of `botwatch run -- python -c pass`", unit="MB",
                          measured_runs=rows["run"], reference_runs=rows["interp"],
                          reference_title="`python -c pass`", goal=RUN_GOAL, reps=1),
            common.figure(key="13d", title="peak RSS of a bot using the SDK", unit="MB", measured_runs=rows["sdk"],
                          reference_runs=rows["bare"], reference_title="the same bot without botwatch", goal=SDK_GOAL,
                          reps=1),
            common.figure(key="13e", title="RSS of an idle `botwatch agent`", unit="MB", measured_runs=rows["agent"],
                          reference_runs=rows["exporter"], reference_title="prometheus-process-exporter, idle",
                          goal=AGENT_GOAL, reps=1),
        ]
        details = ["", "Import time (sum of the top-level imports in `-X importtime`, median): "
                   + ", ".join(f"{what} {common.num(common.summary(v)['median'])} ms" for what, v in
                               (("`botwatch run`", imports["run"]), ("the SDK", imports["sdk"]),
                                ("the agent", imports["agent"]))) + "."]
        return {"benchmark": "install_footprint", "figures": figures, "details": details,
                "distributions": dists, "size_mb": size_mb,
                "settings": {"runs": runs, "warmup": warmup}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=5, reps=1, warmup=1)


if __name__ == "__main__":
    sys.exit(main())
