"""`botwatch run`: wrap a bot's command, pass its output and exit status through untouched, and
record the run in the local spool before exiting.

This is started by cron and Task Scheduler thousands of times a day, so it imports only what
the run path needs (no click, no pydantic, no HTTP, no prometheus_client): delivery to the
agent, a Pushgateway (--pushgateway URL) or node_exporter's textfile collector (--textfile-dir
DIR) happens in a detached deliverer. Monitoring problems are warnings on stderr; the bot's
result never changes.
"""

from __future__ import annotations

import os
import time

from .. import _platform
from ..core import exitcodes
from ..core import items as run_items
from . import runrecord
from . import uirobot
from .output_text import decode_output, incomplete_utf8_end, output_fallback, utf8_start
from .runrecord import new_run_id
from .spool import Spool, default_spool_path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (this is the hot path)
if TYPE_CHECKING:
    from typing import Any, TypedDict

    from .._platform import Signallable

    class RunOptions(TypedDict):
        """`botwatch run`'s options, checked (parse_args)."""

        bot: str
        config: str | None
        timeout: float | None  # seconds
        kill_grace: float | None  # seconds
        agent: str | None
        pushgateway: str | None
        textfile_dir: str | None
        command: list[str]

    class _SpoolState(TypedDict):
        spool: Spool | None
        broken: bool  # it could not be opened: not tried again

TAIL_BYTES = runrecord.CLASSIFIED_CHARS  # of the bot's output, kept for classification
START_REPORT_AFTER = 1.0  # runs shorter than this are reported once, when they finish
SAMPLE_EVERY = 1.0
REPORT_SAMPLE_EVERY = 15.0
DEFAULT_KILL_GRACE = 10.0
OUTPUT_LINGER = 1.0  # how long to keep reading after the bot exited (grandchildren may hold the pipe)

USAGE = """usage: botwatch run --bot NAME [--config F] [--timeout DUR] [--kill-grace DUR]
                    [--agent URL | --pushgateway URL | --textfile-dir DIR] -- CMD [ARG...]"""
DESTINATIONS = ("agent", "pushgateway", "textfile_dir")


class UsageError(Exception):
    pass


def warn(msg: str) -> None:
    try:
        os.write(2, f"botwatch: warning: {msg}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _warn_of_record(_key: object, msg: str) -> None:
    """runrecord.Warn: one run per process, so every problem is said once anyway."""
    warn(msg)


def parse_args(argv: list[str]) -> RunOptions:
    # each option as given, then checked and converted: a RunOptions once returned
    opts: dict[str, Any] = {"bot": None, "config": None, "timeout": None, "kill_grace": None, "agent": None,
                            "pushgateway": None, "textfile_dir": None}
    names = {"--bot": "bot", "--config": "config", "--timeout": "timeout", "--kill-grace": "kill_grace",
             "--agent": "agent", "--pushgateway": "pushgateway", "--textfile-dir": "textfile_dir"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break
        key, eq, value = arg.partition("=")
        if key not in names:
            raise UsageError(f"unknown option {key}")
        if not eq:
            i += 1
            if i >= len(argv):
                raise UsageError(f"{key} needs a value")
            value = argv[i]
        opts[names[key]] = value
        i += 1
    opts["command"] = argv[i:]
    if not opts["bot"]:
        raise UsageError("--bot NAME is required")
    if not opts["command"]:
        raise UsageError("no command given (put it after --)")
    given = [f"--{key.replace('_', '-')}" for key in DESTINATIONS if opts[key] is not None]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other: a run is delivered to one place")
    for key in ("pushgateway", "textfile_dir"):
        if opts[key] is not None and not opts[key].strip():
            raise UsageError(f"--{key.replace('_', '-')} needs a value")
    for key in ("timeout", "kill_grace"):
        if opts[key] is not None:
            from ..core.durations import parse_duration

            try:
                opts[key] = parse_duration(opts[key])
            except ValueError as exc:
                raise UsageError(f"--{key.replace('_', '-')}: {exc}") from None
    return opts  # type: ignore[return-value]  # its keys are RunOptions' (typing.cast would load typing)


class Tail:
    """The last TAIL_BYTES of the bot's combined output, as text for classification.

    Whole characters only: a read may end inside a UTF-8 character, and the other stream's
    output added next would split it, so the start of a character cut off at the end of a
    stream's chunk waits for that stream's next one; where the kept window begins inside a
    character, its rest is left out. A split character would read as another encoding."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.cut = False  # the start of the output was let go
        self.held: dict[int, bytes] = {}  # per stream: the start of a character its next chunk ends

    def add(self, data: bytes, stream: int = 1) -> None:
        data = self.held.pop(stream, b"") + data
        incomplete = incomplete_utf8_end(data)
        if incomplete:
            self.held[stream], data = data[-incomplete:], data[:-incomplete]
        self.buf += data
        if len(self.buf) > 2 * TAIL_BYTES:
            del self.buf[:-TAIL_BYTES]
            self.cut = True

    def text(self) -> str:
        for stream in sorted(self.held):  # a stream that ended inside a character (or in a code page)
            self.buf += self.held.pop(stream)
        start = max(0, len(self.buf) - TAIL_BYTES)
        if start or self.cut:
            start = utf8_start(self.buf, start)
        return decode_output(bytes(self.buf[start:]), output_fallback)


def _write_all(fd: int, data: bytes) -> None:
    """Pass output through byte for byte; a closed terminal must not stop the bot."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError:
            return
        view = view[n:]


class Sampler:
    """CPU seconds and resident memory of the bot's whole process tree (psutil, loaded lazily)."""

    def __init__(self, pid: int, *, names: bool = False):
        self.pid = pid
        self.names: set[str] | None = set() if names else None  # process names seen in the tree, when asked
        self.cpu_by_pid: dict[int, float] = {}
        self.peak_rss = 0
        self.last_rss = 0
        self.processes = 0
        self.descendants: list[Signallable] = []  # psutil.Process objects: signalling them checks for pid reuse

    def sample(self) -> None:
        try:
            import psutil  # type: ignore[import-untyped]  # psutil ships no type hints

            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except Exception:
            return
        rss, alive = 0, 0
        for p in procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    self.cpu_by_pid[p.pid] = t.user + t.system
                    rss += p.memory_info().rss
                    alive += 1
                    if self.names is not None:
                        self.names.add(p.name())
            except Exception:
                continue
        self.descendants = procs[1:]
        self.last_rss, self.processes = rss, alive
        self.peak_rss = max(self.peak_rss, rss)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_pid.values())


def target_of(opts: RunOptions) -> str | None:
    """Where the deliverer takes the run: None for the agent, else 'pushgateway:URL' or 'textfile:DIR'."""
    pushgateway, textfile_dir = opts.get("pushgateway"), opts.get("textfile_dir")
    if pushgateway:
        return "pushgateway:" + pushgateway.strip().rstrip("/")
    if textfile_dir:
        return "textfile:" + os.path.abspath(textfile_dir)
    return None


def run(opts: RunOptions) -> int:
    bot, cmd = opts["bot"], opts["command"]
    target = target_of(opts)
    agent_url = None if target else runrecord.agent_url(opts["agent"])
    config = runrecord.estate_file(opts["config"])
    spool_path = default_spool_path()
    run_id = new_run_id()
    host = runrecord.host()
    tail = Tail()
    # The run's start is a wall-clock time; everything after it is measured on the monotonic
    # clock, so that a wall clock stepped during the run (NTP, a VM resumed, DST mistakes) neither
    # fires the timeout early or late nor gives the run a wrong duration.
    started, t0 = time.time(), time.monotonic()

    def wall(mono: float) -> float:
        return started + (mono - t0)
    spool_state: _SpoolState = {"spool": None, "broken": False}

    def spool() -> Spool | None:
        if spool_state["spool"] is None and not spool_state["broken"]:
            try:
                spool_state["spool"] = Spool(spool_path, warn=warn)
            except Exception as exc:
                spool_state["broken"] = True
                warn(f"cannot open the spool {spool_path}: {exc}; the run is not recorded, the bot runs on")
        return spool_state["spool"]

    # botwatch.items() called by the command outside an SDK run appends to this file (core/items.py)
    items_path = os.path.abspath(f"{spool_path}.items-{run_id}")  # the command may change its directory
    os.environ[run_items.ITEMS_FILE_ENV] = items_path
    # a signal from here on is the bot's: one that comes before the bot exists waits for it
    # (without a handler it would end the wrapper and leave the bot it had just started behind)
    early_signals: list[int] = []
    _platform.install_forwarding(early_signals.append)
    try:
        child = _platform.Child(cmd)
    except OSError as exc:
        msg = f"botwatch: cannot run {cmd[0]!r}: {exc.strerror or exc}\n"
        _write_all(2, msg.encode())
        code = 126 if isinstance(exc, PermissionError) else 127
        _record_finished(spool(), bot, run_id, started, wall(time.monotonic()), code, None, False, msg, host,
                         None, None, agent_url, config, target)
        return code

    if child.warning:
        warn(child.warning)
    _platform.install_forwarding(child.forward)
    for signum in early_signals:
        child.forward(signum)
    via_uirobot = uirobot.is_uirobot_execute(cmd)
    sampler = Sampler(child.pid, names=via_uirobot)
    deadline = t0 + opts["timeout"] if opts["timeout"] else None
    kill_grace = opts["kill_grace"] if opts["kill_grace"] is not None else DEFAULT_KILL_GRACE
    timed_out, kill_at = False, None
    next_sample = t0 + 0.2
    start_reported, next_report = False, t0 + REPORT_SAMPLE_EVERY
    linger_until = None

    def sink(stream: int, data: bytes) -> None:
        _write_all(stream, data)
        tail.add(data, stream)

    while True:
        now = time.monotonic()
        wake = [next_sample] if start_reported else [next_sample, t0 + START_REPORT_AFTER]
        if deadline and not timed_out:
            wake.append(deadline)
        if kill_at:
            wake.append(kill_at)
        if child.exited:
            if not child.output_open or linger_until is None:
                linger_until = linger_until or now + OUTPUT_LINGER
            if not child.output_open or now >= linger_until:
                break
            wake.append(linger_until)
        child.pump(sink, max(0.0, min(wake) - now))
        now = time.monotonic()
        if child.exited:
            if kill_at is not None:
                # timed out and the bot itself is gone: whatever it left behind (in its group or
                # escaped with setsid) got TERM already and now gets KILL, so no orphan remains
                child.kill_tree(sampler.descendants)
                kill_at = None
            continue
        if now >= next_sample:
            sampler.sample()
            next_sample = now + SAMPLE_EVERY
        if not start_reported and now - t0 >= START_REPORT_AFTER:
            start_reported = True
            s = spool() if target is None else None  # runs in progress are shown by an agent only
            if s:
                try:
                    s.add_started(bot, run_id, started, host, agent_url=agent_url, config=config)
                    runrecord.start_deliverer(spool_path, _warn_of_record)
                except Exception as exc:
                    warn(f"cannot record the run start: {exc}")
        if now >= next_report:
            next_report = now + REPORT_SAMPLE_EVERY
            s = spool() if target is None else None
            if s:
                try:
                    s.add_sample(bot, run_id, wall(now), sampler.cpu_seconds, sampler.last_rss, sampler.processes,
                                 agent_url=agent_url, config=config)
                    runrecord.start_deliverer(spool_path, _warn_of_record)
                except Exception:
                    pass
        if deadline and not timed_out and now >= deadline:
            timed_out = True
            warn(f"bot {bot!r} ran past its timeout of {opts['timeout']:g}s: ending its process tree")
            sampler.sample()
            child.terminate_tree(sampler.descendants)
            kill_at = now + kill_grace
        elif kill_at and now >= kill_at:
            child.kill_tree(sampler.descendants)
            kill_at = None

    if timed_out:
        child.kill_tree(sampler.descendants)
    child.close_output()
    ended = wall(time.monotonic())
    code, sig = child.exit_code()
    # what the platform accounted (POSIX: the reaped child; Windows: its job, every process the
    # tree had) or what the samples saw, whichever is more: each can miss what the other sees
    cpu = child.rusage_cpu()
    cpu = max(cpu or 0.0, sampler.cpu_seconds) if (cpu is not None or sampler.cpu_by_pid) else None
    peak = max(child.peak_memory() or 0, sampler.peak_rss) or None
    _record_finished(spool(), bot, run_id, started, ended, code, sig, timed_out, tail.text(), host, cpu, peak,
                     agent_url, config, target, _reported_items(items_path))
    if via_uirobot and sampler.names:
        notice = uirobot.executor_outside(cmd, sampler.names)
        if notice:
            warn(notice)
    if timed_out:
        return 124  # as timeout(1) does: the bot did not end by itself
    # the bot's status exactly, a Windows one of 32 bits too (for sys.exit: see core/exitcodes.py)
    return exitcodes.for_sys_exit(code, os.name == "nt")


def _record_finished(spool: Spool | None, bot: str, run_id: str, started: float, ended: float, code: int,
                     sig: int | None, timed_out: bool, output: str, host: str, cpu: float | None, peak: int | None,
                     agent_url: str | None, config: str | None, target: str | None = None,
                     items: tuple[int, int] | None = None) -> None:
    outcome = "success" if code == 0 and not timed_out else "failure"
    reason = None
    stored = runrecord.output_tail(output)
    if outcome == "failure":
        reason = _classify(config, code, sig, timed_out, output)
    if spool is None:
        return
    try:
        spool.add_finished(bot, run_id, agent_url=agent_url, config=config, target=target, started=started,
                           ended=ended, outcome=outcome, exit_status=code, reason=reason, signal=sig,
                           timed_out=timed_out, host=host, output_tail=stored, cpu_seconds=cpu, peak_rss_bytes=peak,
                           items=items)
    except Exception as exc:
        warn(f"cannot record the run in the spool {spool.path}: {exc}; the bot's exit status is unchanged")
        return
    if target is not None and target.startswith("textfile:"):
        _write_textfile(spool, target)
    runrecord.start_deliverer(spool.path, _warn_of_record)


def _reported_items(path: str) -> tuple[int, int] | None:
    """(processed, failed) the command reported through botwatch.items() (core/items.py), None
    when it reported none; the file is removed once read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # nothing reported: the usual case, one failed open
        return None
    try:
        data = os.read(fd, run_items.MAX_FILE_BYTES)
    except OSError as exc:
        warn(f"cannot read the items the bot reported ({exc}); the run is recorded without them")
        return None
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
    processed, failed, bad = run_items.total(data)
    if bad:
        warn(f"{bad} unreadable line(s) of reported items ignored")
    return processed, failed


def _write_textfile(spool: Spool, target: str) -> None:
    """--textfile-dir: the bot's file is written before `botwatch run` returns (a local write has
    no reason to queue); if it cannot be, the deliverer tries again."""
    try:
        from .delivery import apply_finished, publish_local

        spool.fold(apply_finished)
        publish_local(spool, target=target)
    except Exception as exc:
        warn(f"cannot write the textfile for {target.removeprefix('textfile:')}: {exc}; the run waits in "
             f"{spool.path}")


def _classify(config: str | None, code: int, sig: int | None, timed_out: bool, output: str) -> str:
    """Failure reason with the estate's own patterns when its file is readable, else the defaults."""
    try:
        return runrecord.failure_reason(config, output, _warn_of_record, exit_status=code, signal=sig,
                                        timed_out=timed_out)
    except Exception as exc:  # never let classification cost the run record
        warn(f"could not classify the failure: {exc}")
        return "unknown"


def main(argv: list[str]) -> int:
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        os.write(2, f"{USAGE}\nbotwatch run: error: {exc}\n".encode())
        return 2
    return run(opts)
