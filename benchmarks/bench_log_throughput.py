"""Benchmark 3: log throughput, lines per second through the UiPath log pipeline, against
`mtail --one_shot` counting the errors per process of the same file.

A 1,000,000-line UiPath Robot execution log (`<date>_Execution.log`, NLog layout
`HH:mm:ss.ffff <Level> {json}`, CRLF) is generated once, deterministically, in a temporary
directory. Its lines are modelled on the real ones in tests/corpus/uipath: several processes
(some with non-ASCII names) written by three generations of the Robot, each with its own key
order and key set; jobs bounded by `<process> execution started` / `... execution ended`, a
few running at once; about 2 % Error lines with the corpus's error messages.

    3a  `LogWatcher.poll_once()` reading the whole file for one bot (`format: uipath`) into an
        `EstateState` with its journal: decoding, the parser, the runs committed with the offsets
    3b  the parser alone: `UiPathParser.feed_lines()` over the lines, already decoded and split

The reference is `mtail --one_shot` with a program counting Error lines per `processName`,
run on the same file in the same run, interleaved. Both must report the same error count per
process, and botwatch's runs and errors must equal what the generator wrote.

Run alone:  .venv/bin/python benchmarks/bench_log_throughput.py [--runs N] [--reps N] [--lines N] [--json FILE]
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL = 2.0  # botwatch's lines per second over mtail's, at least
LINES = 1_000_000
SEED = 20240501
BOT = "uipath-robot"
MTAIL = common.MTAIL
CONCURRENT_JOBS = 3  # jobs running at once on the robot (their lines interleave)

# -- the generated log ---------------------------------------------------------------------------

# Key order and key set of the three Robot generations in the corpus:
#   2018 (runefar1_Execution2.log): ... processName, processVersion, fileName, jobId, robotName
#   <= 2019.10 (hinokisu spec lines): ... jobId, robotName, machineId 0, [total...], fileName last
#   2022 (hinokisu_test-logs.log): ... fileName, [initiatedBy], processName, ..., machineId, organizationUnitId

# processName, processVersion, machineName, windowsIdentity (JSON-escaped), robotName, layout
PROCESSES = [
    ("Test", "1.0.6803.39189", "LAPTOP-1FRT6EN1", "LAPTOP-1FRT6EN1\\\\rune", "RUNE", "2018"),
    ("订单发货推进_RPA", "1.0.0", "DESKTOP-OMS4RCP", "DESKTOP-OMS4RCP\\\\Hinoki", "yukihinoki@qq.com-attended",
     "2022"),
    ("InvoiceNumberReturn", "1.0.0", "HAH17-3301L", "CN\\\\example", "CN\\\\EXAMPLE", "2019"),
    ("retailInvoicAutomation", "1.0.0", "HAH17-3301L", "CN\\\\example", "CN\\\\EXAMPLE", "2019"),
    ("Überweisungsprüfung_Prod", "2.3.1", "RPA-VM-07", "CORP\\\\svc-rpa07", "rpa07-unattended", "2022"),
    ("Réconciliation_Bancaire", "1.4.0", "RPA-VM-07", "CORP\\\\svc-rpa07", "rpa07-unattended", "2022"),
    ("請求書処理_本番", "3.0.2", "RPA-VM-08", "CORP\\\\svc-rpa08", "rpa08-unattended", "2022"),
    ("Downloads", "1.0.0", "DESKTOP-example", "DESKTOP-example\\\\Hinoki", "hinoki@example.com-attended", "2022"),
]
FILE_NAMES = ["Main", "invoke_list", "PrintFlowProgressLogForTest", "登录OMS", "TIS-修改客户名称", "Process"]

# Error messages as the Robot logs them (tests/corpus/uipath), and workflow Log Message errors
ROBOT_ERRORS = [
    "Navigate to : The browser was not specified for this activity. You should use this activity inside of a "
    "Browser scope (Attach Browser or Open Browser activities) or set its Browser property.",
    "Add Data Column: A column named '是否延期' already belongs to this DataTable.",
]
USER_ERRORS = [
    "!!!! ---- ---- -- 订单 {n} 处理失败 -- ---- ---- ---- !!!!",
    "Invoice {n}: no purchase order found, transaction marked as business exception",
]
USER_INFO = [
    "业务处理:读取订单汇总表 -- (Start)",
    "业务处理:读取订单汇总表 -- (End)",
    "Processing transaction {n}",
    "{n}",
    "Downloads run...",
]
USER_WARN = ["!!!! ---- ---- -- 进入 [开发测试] 模式 -- ---- ---- ---- !!!!", "Retrying transaction {n} (attempt 2 of 3)"]

FAILING_JOBS = 0.3  # share of jobs with errors
ERROR_IN_FAILING = 0.067  # an Error line's share of the body of such a job: about 2 % of all lines
WARN_SHARE = 0.03


def _q(text: str) -> str:
    """A JSON string literal with non-ASCII kept as it is (as the Robot writes it)."""
    return json.dumps(text, ensure_ascii=False)


def _templates(messages: list[str]) -> list[str]:
    for m in messages:  # written into the JSON as they are: nothing to escape
        if _q(m.replace("{n}", "1")) != f'"{m.replace("{n}", "1")}"':
            raise ValueError(f"message needs escaping: {m!r}")
    return messages


class Job:
    __slots__ = ("id", "name", "middle", "tail", "layout", "body", "errors", "failing", "started", "file")

    def __init__(self, rnd: random.Random, proc: tuple, started: int):
        name, version, machine, identity, robot, layout = proc
        self.id = _uuid4(rnd)
        self.name = name
        self.layout = layout
        self.body = rnd.randint(8, 160)  # lines between start and end
        self.failing = rnd.random() < FAILING_JOBS
        self.errors = 0
        self.started = started
        fname = _q(rnd.choice(FILE_NAMES))
        self.middle = f'"windowsIdentity":"{identity}","machineName":"{machine}",'
        # everything after the keys an `execution started` (2022) or `ended` line adds
        if layout == "2018":
            self.tail = (f'"processName":{_q(name)},"processVersion":"{version}","fileName":{fname},'
                         f'"jobId":"{self.id}","robotName":"{robot}"')
        elif layout == "2019":
            self.tail = (f'"processName":{_q(name)},"processVersion":"{version}","jobId":"{self.id}",'
                         f'"robotName":"{robot}","machineId":0', f',"fileName":{fname}}}')
        else:
            self.tail = (f'"fileName":{fname}', f',"processName":{_q(name)},"processVersion":"{version}",'
                         f'"jobId":"{self.id}","robotName":"{robot}","machineId":2152810,'
                         f'"organizationUnitId":3103367}}')

    def entry(self, head: str, extra: str = "", started: bool = False) -> str:
        """`head` (message, level, logType, timeStamp, fingerprint) and this job's keys, in the
        order and with the keys of its Robot generation."""
        if self.layout == "2018":
            return f"{head}{self.middle}{self.tail}{extra}}}"
        if self.layout == "2019":
            return f"{head}{self.middle}{self.tail[0]}{extra}{self.tail[1]}"
        initiated = ',"initiatedBy":"Orchestrator"' if started else ""
        return f"{head}{self.middle}{self.tail[0]}{initiated}{extra}{self.tail[1]}"


def _uuid4(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def generate(path: str, lines: int = LINES, seed: int = SEED, keep: list[str] | None = None) -> dict:
    """Write the log (CRLF) and return what it holds: runs, failed runs, errors per process,
    the process of every job. The lines written (without their CRLF) are appended to `keep`."""
    rnd = random.Random(seed)
    start = datetime(2024, 5, 1)
    offset = "+01:00"  # the Robot writes local time with its UTC offset
    robot_errors = [_q(m)[1:-1] for m in ROBOT_ERRORS]
    user_errors, user_info, user_warn = _templates(USER_ERRORS), _templates(USER_INFO), _templates(USER_WARN)
    clock = 6 * 3600 * 1_000_000  # microseconds since `start`: the first job starts at 06:00
    day_prefix: tuple[int, str] = (-1, "")
    active: list[Job] = []
    written = 0
    runs = failed = 0
    errors: Counter = Counter()
    job_process: dict[str, str] = {}
    levels = Counter()
    buf: list[str] = []
    out = open(path, "w", encoding="utf-8", newline="")
    randrange, random_ = rnd.randrange, rnd.random

    def flush() -> None:
        if buf:
            out.write("\r\n".join(buf) + "\r\n")
            if keep is not None:
                keep.extend(buf)
            buf.clear()

    def emit(job: Job, message: str, nlog: str, level: str, log_type: str, extra: str = "",
             started: bool = False) -> None:
        nonlocal written, clock, day_prefix
        clock += randrange(2_000, 400_000)
        secs, us = divmod(clock, 1_000_000)
        day, sod = divmod(secs, 86400)
        if day != day_prefix[0]:
            day_prefix = (day, (start + timedelta(days=day)).strftime("%Y-%m-%d"))
        hms = f"{sod // 3600:02d}:{sod // 60 % 60:02d}:{sod % 60:02d}"
        frac = f"{us:06d}"
        head = (f'{{"message":"{message}","level":"{level}","logType":"{log_type}","timeStamp":"{day_prefix[1]}T'
                f'{hms}.{frac}{randrange(10)}{offset}","fingerprint":"{_uuid4(rnd)}",')
        buf.append(f"{hms}.{frac[:4]} {nlog} {job.entry(head, extra, started)}")
        levels[nlog] += 1
        written += 1
        if len(buf) >= 10_000:
            flush()

    def end(job: Job) -> None:
        nonlocal runs, failed
        whole = (clock - job.started) // 1_000_000
        span = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        emit(job, f"{job.name} execution ended", "Info", "Information", "Default",
             f',"totalExecutionTimeInSeconds":{whole},"totalExecutionTime":"{span}"')
        runs += 1
        failed += job.errors > 0

    try:
        while written < lines:
            left = lines - written
            if len(active) < CONCURRENT_JOBS and left > len(active) + 2:
                busy = {j.name for j in active}
                proc = rnd.choice([p for p in PROCESSES if p[0] not in busy])
                job = Job(rnd, proc, clock)
                job_process[job.id] = job.name
                active.append(job)
                emit(job, f"{job.name} execution started", "Info", "Information", "Default", started=True)
                continue
            if left <= len(active):  # the file ends: the jobs still running end now
                end(active.pop(0))
                continue
            job = active[randrange(len(active))]
            if job.body <= 0:
                active.remove(job)
                end(job)
                continue
            job.body -= 1
            r = random_()
            if job.failing and r < ERROR_IN_FAILING:
                if random_() < 0.5:
                    emit(job, robot_errors[randrange(len(robot_errors))], "Error", "Error", "Default")
                else:
                    msg = user_errors[randrange(len(user_errors))].replace("{n}", str(randrange(10_000, 99_999)))
                    emit(job, msg, "Error", "Error", "User")
                job.errors += 1
                errors[job.name] += 1
            elif r > 1.0 - WARN_SHARE:
                msg = user_warn[randrange(len(user_warn))].replace("{n}", str(randrange(10_000, 99_999)))
                emit(job, msg, "Warn", "Warning", "User")
            else:
                msg = user_info[randrange(len(user_info))].replace("{n}", str(randrange(10_000, 99_999)))
                emit(job, msg, "Info", "Information", "User")
        flush()
    finally:
        out.close()
    return {"lines": written, "runs": runs, "failed_runs": failed, "errors": dict(errors),
            "levels": dict(levels), "job_process": job_process, "bytes": os.path.getsize(path)}


# -- mtail -----------------------------------------------------------------------------------------

MTAIL_PROGRAM = r"""# Error lines of a UiPath Robot execution log, counted per process.
counter uipath_errors_total by process

/^\d{1,2}:\d{2}:\d{2}\.\d+ Error .*"processName":"(?P<process>[^"]*)"/ {
  uipath_errors_total[$process]++
}
"""

_MTAIL_SAMPLE = re.compile(r'^uipath_errors_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')


def mtail_counts(text: str) -> dict[str, int]:
    """Errors per process from `mtail --one_shot --one_shot_format prometheus` output."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _MTAIL_SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group("labels")))
        out[labels["process"]] = out.get(labels["process"], 0) + int(float(m.group("value")))
    return out


def run_mtail(progs: str, log: str, workdir: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of mtail, its metrics) for one `--one_shot` pass over `log`."""
    cmd = [MTAIL, "--one_shot", "--one_shot_format", "prometheus", "--progs", progs, "--logs", log,
           "--logtostderr", "--emit_prog_label=false"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, capture_output=True, encoding="utf-8",
                       errors="replace")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"mtail exited with {p.returncode}: {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


# -- botwatch --------------------------------------------------------------------------------------

def _estate(log: str):
    from botwatch.config.estate import BotConfig, Estate, LoadedEstate, LogSpec, WatchConfig

    bot = BotConfig(name=BOT, platform="uipath", watch=WatchConfig(logs=[LogSpec(path=log, format="uipath")]))
    return LoadedEstate(Estate(bots=[bot]), Path(log).parent / "botwatch.yaml")


class Pipeline:
    """A fresh journal, estate state and log watcher for each pass (a new agent on the file)."""

    def __init__(self, log: str, workdir: str):
        self.loaded = _estate(log)
        self.workdir = workdir
        self.n = 0
        self.journal = self.state = self.watcher = None

    def prepare(self, count_commits: bool = False) -> None:
        from botwatch.state.journal import Journal
        from botwatch.sources.logs import LogWatcher
        from botwatch.state.runtime import EstateState

        class CountingJournal(Journal):
            commits = 0

            def transaction(self):
                self.commits += 1
                return super().transaction()

        self.close()
        self.n += 1
        path = os.path.join(self.workdir, f"journal-{self.n}.db")
        self.journal = (CountingJournal if count_commits else Journal)(path)
        self.state = EstateState(self.loaded.estate, self.journal)
        self.watcher = LogWatcher(self.loaded, self.state, self.journal, use_watchdog=False)

    def run(self, count_commits: bool = False) -> tuple[float, float, int]:
        """(wall seconds, CPU seconds, lines) of one `poll_once()` over the whole file."""
        self.prepare(count_commits)
        if count_commits:
            self.journal.commits = 0  # those of the poll only
        c0, t0 = time.process_time(), time.perf_counter()
        n = self.watcher.poll_once()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return wall, cpu, n

    def close(self) -> None:
        if self.journal is not None:
            path = self.journal.path
            self.journal.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            self.journal = self.state = self.watcher = None

    def counts(self, job_process: dict[str, str]) -> dict:
        """Runs, failed runs and errors per process as the journal holds them."""
        runs = failed = 0
        errors: Counter = Counter()
        unknown = 0
        for run in self.journal.iter_runs():
            runs += 1
            if run.outcome == "failure":
                failed += 1
            proc = job_process.get(run.run_id)
            n = tail_errors(run.output_tail)
            if proc is None:
                unknown += n
            else:
                errors[proc] += n
        return {"runs": runs, "failed_runs": failed, "errors": dict(errors), "unattributed_errors": unknown,
                "parse_errors": dict(self.state.parse_errors_total)}


_MORE = re.compile(r"^\[\.\.\. (\d+) more error line\(s\)\]$")


def tail_errors(tail: str | None) -> int:
    """Error lines of a run: the messages kept in its output tail and the `[... N more]` note."""
    if not tail:
        return 0
    n = 0
    for line in tail.split("\n"):
        m = _MORE.match(line)
        n += int(m.group(1)) if m else 1
    return n


def parser_pass(lines: list[str]):
    """A fresh parser fed every line; (wall seconds, CPU seconds, events, parse errors)."""
    from botwatch.core.classify import Classifier
    from botwatch.config.estate import BotConfig, LogSpec
    from botwatch.parsers.uipath import UiPathParser

    bot = BotConfig(name=BOT, platform="uipath")
    parser = UiPathParser(bot, LogSpec(path="x", format="uipath"), Classifier([]))
    c0, t0 = time.process_time(), time.perf_counter()
    fed = parser.feed_lines(lines)
    return time.perf_counter() - t0, time.process_time() - c0, fed.events, fed.errors


def parser_counts(events: list, job_process: dict[str, str]) -> dict:
    from botwatch.core.events import RunFinished

    runs = [e for e in events if isinstance(e, RunFinished)]
    errors: Counter = Counter()
    for r in runs:
        errors[job_process.get(r.run_id, "?")] += tail_errors(r.output_tail)
    return {"runs": len(runs), "failed_runs": sum(r.outcome == "failure" for r in runs), "errors": dict(errors)}


# -- the benchmark ---------------------------------------------------------------------------------

def measure(runs: int, reps: int, warmup: int, lines: int = LINES) -> dict:
    if not os.access(MTAIL, os.X_OK):
        raise RuntimeError("mtail not found: install the Debian package mtail (make bench does)")
    tmp = tempfile.mkdtemp(prefix="botwatch-bench-logs-")
    try:
        return _measure(tmp, runs, reps, warmup, lines)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(tmp: str, runs: int, reps: int, warmup: int, n_lines: int) -> dict:
    from botwatch.sources.logs import CHUNK

    log = os.path.join(tmp, "2024-05-01_Execution.log")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lines: list[str] = []  # as the watcher hands them to the parser: decoded, without CRLF
    truth = generate(log, n_lines, keep=lines)
    gen_s = timings["generate"] = time.perf_counter() - t0
    progs = os.path.join(tmp, "progs")
    os.mkdir(progs)
    Path(progs, "uipath_errors.mtail").write_text(MTAIL_PROGRAM, encoding="utf-8")
    if len(lines) != truth["lines"]:
        raise RuntimeError(f"the file has {len(lines)} lines, the generator wrote {truth['lines']}")
    pipeline = Pipeline(log, tmp)
    pipeline.prepare()  # imports the watcher, the parser and the journal before anything is timed
    pipeline.close()

    # Every pass is checked (untimed, after it): its counts must equal what the generator wrote.
    checked = {"pipeline": 0, "parser": 0, "mtail": 0}
    found: dict = {}
    commits = 0

    def fail_unless(who: str, got: dict, keys=("runs", "failed_runs", "errors")) -> None:
        wrong = [f"{k} {got[k]!r}, the generator wrote {truth[k]!r}" for k in keys if got[k] != truth[k]]
        if wrong:
            raise RuntimeError(f"{who} disagrees with the generated log: " + "; ".join(wrong))

    def pipeline_pass() -> tuple[float, float]:
        nonlocal commits
        first = not checked["pipeline"]
        wall, cpu, n_read = pipeline.run(count_commits=first)
        if first:
            commits = pipeline.journal.commits
        got = pipeline.counts(truth["job_process"])
        pipeline.close()
        if n_read != truth["lines"] or got["parse_errors"] or got["unattributed_errors"]:
            raise RuntimeError(f"poll_once read {n_read} of {truth['lines']} lines; parse errors "
                               f"{got['parse_errors']}, errors outside a known job {got['unattributed_errors']}")
        fail_unless("the log watcher (runs in the journal)", got)
        found["pipeline"] = got
        checked["pipeline"] += 1
        return wall, cpu

    def parser_only() -> tuple[float, float]:
        wall, cpu, events, bad = parser_pass(lines)
        got = parser_counts(events, truth["job_process"])
        del events
        if bad:
            raise RuntimeError(f"the parser raised ParseError on {bad} lines")
        fail_unless("the parser alone", got)
        found["parser"] = got
        checked["parser"] += 1
        return wall, cpu

    def mtail_pass() -> tuple[float, float]:
        wall, cpu, out = run_mtail(progs, log, tmp)
        got = mtail_counts(out)
        fail_unless("mtail", {"errors": got}, ("errors",))
        found["mtail"] = got
        checked["mtail"] += 1
        return wall, cpu

    measure_fns = {"pipeline": pipeline_pass, "parser": parser_only, "mtail": mtail_pass}
    for _ in range(warmup):
        for fn in measure_fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in measure_fns}
    cpu: dict[str, list[float]] = {k: [] for k in measure_fns}
    raw: dict[str, list[list[float]]] = {k: [] for k in measure_fns}
    for i in range(runs):
        got = common.interleaved(list(measure_fns), reps, measure_fns, start=i * reps)
        for k, v in got.items():
            wall[k].append(statistics.median(x[0] for x in v))
            cpu[k].append(statistics.median(x[1] for x in v))
            raw[k].append([x[0] for x in v])
    ours, mtail = found["pipeline"], found["mtail"]

    n = truth["lines"]
    rate = {k: [n / x for x in v] for k, v in wall.items()}
    figures = []
    for key, name, title in (
            ("3a", "pipeline", f"log throughput, {n:,}-line UiPath log: `LogWatcher.poll_once()` into the "
                               "estate state and its journal"),
            ("3b", "parser", "the parser alone: `UiPathParser.feed_lines()` over the same lines, decoded and split")):
        f = common.figure(
            key=key, title=title, unit="lines/s", measured_runs=rate[name], reference_runs=rate["mtail"],
            reference_title="`mtail --one_shot`, errors per process", goal=GOAL, reps=reps, better="higher",
            samples={"raw_s": raw[name], "reference_raw_s": raw["mtail"]},
            extra={"seconds": common.summary(wall[name]), "reference_seconds": common.summary(wall["mtail"]),
                   "cpu_s": common.summary(cpu[name]), "reference_cpu_s": common.summary(cpu["mtail"])})
        f["notes"].append(
            f"wall time for the file {common.spread(common.summary(wall[name]), 's')}, mtail's "
            f"{common.spread(common.summary(wall['mtail']), 's')}; CPU time "
            f"{common.num(statistics.median(cpu[name]), 1)} s, mtail's {common.num(statistics.median(cpu['mtail']), 1)} s "
            "(all its threads)")
        figures.append(f)
    io_wait = statistics.median(w - c for w, c in zip(wall["pipeline"], cpu["pipeline"]))
    figures[0]["notes"].append(
        f"of the wall time, {common.num(io_wait, 1)} s is not CPU time of the agent: waiting for the journal's "
        f"commits, {commits:,} for this file (one per {CHUNK / (1 << 20):g} MB chunk read, each synced to disk)")

    errors_line = ", ".join(f"{p} {ours['errors'][p]:,} / {mtail[p]:,}" for p in sorted(truth["errors"]))
    lv = truth["levels"]
    details = [
        "",
        f"The log: {n:,} lines, {truth['bytes'] / 1e6:.0f} MB ({truth['bytes'] / n:.0f} bytes a line), CRLF; "
        f"{len(PROCESSES)} processes, {truth['runs']:,} jobs ({truth['failed_runs']:,} with errors, up to "
        f"{CONCURRENT_JOBS} running at once), {lv.get('Error', 0):,} Error lines "
        f"({100 * lv.get('Error', 0) / n:.1f} %), {lv.get('Warn', 0):,} Warn; generated in {gen_s:.1f} s.",
        "",
        f"Correctness, checked after every pass ({sum(checked.values())} passes): botwatch recorded "
        f"{ours['runs']:,} runs in the journal, {ours['failed_runs']:,} of them failed, as the generator wrote, "
        "without a parse error; the parser alone gives the same. Errors per process, botwatch (counted in the "
        f"output tails of the runs in the journal) / mtail, both equal to the generator's: {errors_line}.",
        "",
        "Lines per second: the file's lines over the wall time of one pass. mtail's pass includes starting "
        "it, compiling its program and printing its metrics (milliseconds); botwatch's is in-process, "
        "after a fresh journal, estate state and watcher were made (untimed).",
    ]
    return {
        "benchmark": "log_throughput",
        "figures": figures,
        "details": details,
        "counts": {"truth": {k: v for k, v in truth.items() if k != "job_process"}, "botwatch": ours,
                   "parser": found["parser"], "mtail": mtail},
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "lines": n, "seed": SEED, "timings_s": timings,
                     "mtail_program": MTAIL_PROGRAM},
    }


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--lines", type=int, default=LINES,
                       help="lines of the generated log (the figure is for 1,000,000)")

    # no warm-up by default: the file is in the page cache from its writing
    return common.bench_main(__doc__, measure, argv, runs=5, reps=1, warmup=0, extra=extra)

if __name__ == "__main__":
    sys.exit(main())
