"""Process watching: runs of bots the agent did not start, and shadow bots.

A bot's `watch.process` names its processes by regexes searched in the process name, the
executable path, the command line (arguments joined by spaces) and the user; every regex the
bot gives must match. A *run* is a period during which at least one of the bot's processes
exists: the first one appearing starts it (at that process's creation time), the last one
disappearing ends it. The processes matched are the run's roots; their descendants count for
its CPU time, resident memory and process count.

The agent did not start these processes, so their exit status is unknowable: a run ends with
outcome `unknown`, never a guessed success. A bot that also has `watch.logs` gets its outcome
from its log instead: the watcher then records no run end at all (see docs/processes.md).

Processes of known RPA runtimes and bot launchers (`botwatch.sources.runtimes`), and scripts run from
`agent.bot_folders`, that belong to no registered bot are shadow bots: counted per platform
and listed, with their command lines redacted.

Cost: one `psutil.process_iter` pass per sweep, asking only for the parent, creation time and
name of each process (one cheap read per process on most systems). Everything else a decision
needs (executable, command line, user) is read once per process and the decision is cached
under (pid, creation time, name), so an unchanged process costs nothing more; CPU and memory
are read only for the processes of running bots.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import psutil

from . import runtimes as shadow
from ..config.estate import BotConfig, Estate
from ..core.events import ResourceSample, RunFinished, RunStarted
from ..state.journal import JournalError
from ..core.redact import redact
from .base import Source

log = logging.getLogger("botwatch.sources.processes")

SOURCE = "process"
_ATTRS = ["ppid", "create_time", "name"]
SETTLE = 1.0  # a process younger than this may still exec(): its decision is not cached yet
MAX_DEPTH = 64  # ancestors walked at most (cycles and pid reuse cannot loop us)
MAX_LISTED = 1000  # shadow processes listed (all are counted)
MAX_CMDLINE = 1024  # characters of a listed command line
MAX_PENDING = 10_000  # events kept while the journal is unavailable


@dataclass
class _Matcher:
    bot: str
    name: re.Pattern | None
    exe: re.Pattern | None
    cmdline: re.Pattern | None
    user: re.Pattern | None


@dataclass(slots=True)
class _Decision:
    """What one process is, decided once per (pid, create_time, name)."""

    bots: tuple[str, ...] = ()
    runtime: shadow.Runtime | None = None  # a shadow candidate: known runtime or bot-folder script
    platform: str | None = None
    wrapper: str | None = None  # `botwatch run --bot NAME`: its tree is that (registered) bot's
    user: str | None = None
    cmdline: str | None = None  # redacted, for the listing (shadow candidates only)
    secret: bool = False  # a bot's process whose command line holds a credential (the text is not kept)
    settled: bool = True


class _Probe:
    """Lazily read details of one process; each read at most once, access errors give None."""

    __slots__ = ("proc", "_exe", "_cmdline", "_user", "_cwd")
    _UNSET = object()

    def __init__(self, proc):
        self.proc = proc
        self._exe = self._cmdline = self._user = self._cwd = self._UNSET

    def _get(self, slot: str, fn: str):
        value = getattr(self, slot)
        if value is self._UNSET:
            try:
                value = getattr(self.proc, fn)()
            except (psutil.Error, OSError):
                value = None
            setattr(self, slot, value)
        return value

    @property
    def exe(self) -> str | None:
        return self._get("_exe", "exe") or None

    @property
    def argv(self) -> list[str]:
        return self._get("_cmdline", "cmdline") or []

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)

    @property
    def user(self) -> str | None:
        return self._get("_user", "username")

    @property
    def cwd(self) -> str | None:
        return self._get("_cwd", "cwd")


@dataclass
class _BotRun:
    """The run the watcher is tracking for one bot."""

    run_id: str
    started: float
    own: bool = True  # the watcher started it (else it follows a run the bot's log started)
    cpu_by_proc: dict[tuple[int, float], float] = field(default_factory=dict)  # live processes
    cpu_ended: float = 0.0  # CPU time of the tree's processes that have ended
    peak_rss: int = 0
    target: str | None = None  # the run resource samples go to
    cpu_base: float = 0.0  # CPU time already reported to earlier targets

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_ended + sum(self.cpu_by_proc.values())


class ProcessWatcher(Source):
    """Sweeps the process table every `interval` seconds (a thread), or once per `sweep()`."""

    name = "processes"
    event_labels = (SOURCE,)
    error_labels = (SOURCE,)
    config_keys = ("bots[].watch.process", "agent.process_interval", "agent.bot_folders")

    def __init__(self, estate: Estate, state, *, interval: float,
                 process_iter: Callable[..., Iterable] = psutil.process_iter,
                 clock: Callable[[], float] = time.time, base_dir: str | os.PathLike | None = None,
                 windows: bool | None = None):
        super().__init__(state, None, interval=interval)
        self.estate = estate
        self.process_iter = process_iter
        self.clock = clock
        self.windows = (os.name == "nt") if windows is None else windows
        self.matchers = [_compile(b) for b in estate.bots if b.watch and b.watch.process]
        self.log_bots = {b.name for b in estate.bots if b.watch and b.watch.logs}
        self.platforms_registered = {b.platform for b in estate.bots}
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        folders = []
        for f in estate.agent.bot_folders:
            p = os.path.expandvars(os.path.expanduser(f))
            if not shadow.looks_absolute(p):
                p = str(base / p)
            folders.append(shadow.norm_path(p, self.windows or None))
        self.folders = tuple(folders)
        self._decisions: dict[tuple[int, float, str], _Decision] = {}
        self._runs: dict[str, _BotRun] = {}
        self._pending: list = []
        self._lock = threading.Lock()
        self.sweeps = 0

    @classmethod
    def wanted(cls, loaded) -> bool:
        return True  # always: it also finds the shadow bots nobody registered

    @classmethod
    def from_estate(cls, loaded, state, journal, **deps) -> "ProcessWatcher":
        return cls(loaded.estate, state, interval=loaded.estate.agent.process_interval, base_dir=loaded.base)

    def poll_once(self) -> None:
        self.sweep()

    # -- one sweep -------------------------------------------------------------------------
    def sweep(self) -> None:
        with self._lock:
            self._sweep()

    def _sweep(self) -> None:
        now = self.clock()
        procs: dict[int, object] = {}
        info: dict[int, tuple[int | None, float, str]] = {}
        decisions: dict[int, _Decision] = {}
        fresh: dict[tuple[int, float, str], _Decision] = {}
        for p in self.process_iter(attrs=_ATTRS, ad_value=None):
            i = p.info
            ctime = i.get("create_time")
            if ctime is None:  # cannot tell this process from a reused pid: leave it alone
                continue
            name = i.get("name") or ""
            key = (p.pid, ctime, name)
            d = self._decisions.get(key)
            if d is None or not d.settled:
                d = self._decide(p, name)
                d.settled = now - ctime >= SETTLE
            fresh[key] = d
            procs[p.pid] = p
            info[p.pid] = (i.get("ppid"), ctime, name)
            decisions[p.pid] = d
        self._decisions = fresh  # processes gone since the last sweep are forgotten
        secrets: dict[str, int] = {}
        for pid, d in decisions.items():
            if d.secret:
                for bot in d.bots or (d.wrapper,):
                    secrets.setdefault(bot, pid)
        self.state.note_cmdline_secrets(secrets)
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in info.items():
            if ppid is not None and ppid != pid:
                children.setdefault(ppid, []).append(pid)

        events = list(self._pending)
        self._pending = []
        events += self._runs_sweep(now, procs, info, decisions, children)
        self._shadows(now, info, decisions)
        self.sweeps += 1
        if events:
            try:
                self.state.apply(events)
            except JournalError as exc:
                log.warning("cannot record process runs now (%s); retrying next sweep", exc)
                self._pending = [e for e in events if not isinstance(e, ResourceSample)][-MAX_PENDING:]

    # -- decisions -------------------------------------------------------------------------
    def _decide(self, proc, name: str) -> _Decision:
        probe = _Probe(proc)
        d = _Decision()
        d.bots = tuple(m.bot for m in self.matchers if _matches(m, name, probe))
        if _maybe_wrapper(name):
            d.wrapper = shadow.wrapped_bot(probe.argv)
        if d.bots or d.wrapper:  # a governance finding: credentials belong in a vault, not in argv
            d.secret = redact(probe.cmdline) != probe.cmdline
        if not d.bots and not d.wrapper:
            found = self._runtime_of(name, probe)
            if found is not None:
                d.runtime, d.platform = found
                d.user = probe.user
                d.cmdline = redact(probe.cmdline or name)[:MAX_CMDLINE]
        return d

    def _runtime_of(self, name: str, probe: _Probe) -> tuple[shadow.Runtime, str] | None:
        for c in shadow.compiled_runtimes():
            if c.name is not None and not c.name.search(name):
                continue
            if c.exe is not None and not (probe.exe and c.exe.search(probe.exe)):
                continue
            if c.cmdline is not None and not c.cmdline.search(probe.cmdline):
                continue
            if c.runtime.host and c.runtime.platform in self.platforms_registered:
                continue  # a resident robot of a platform the estate already knows
            return c.runtime, c.runtime.platform
        if not self.folders:
            return None
        for platform, rx in shadow.compiled_interpreters():
            if rx.search(name):
                if self._script_in_folders(probe):
                    return _FOLDER_RUNTIMES[platform], platform
                return None
        exe = probe.exe
        if exe and shadow.under(exe, self.folders, self.windows):
            return _FOLDER_RUNTIMES["other"], "other"
        return None

    def _script_in_folders(self, probe: _Probe) -> bool:
        for arg in probe.argv[1:]:
            if not arg or arg.startswith("-"):
                continue
            if shadow.looks_absolute(arg):
                if shadow.under(arg, self.folders, self.windows):
                    return True
            elif arg.lower().endswith(shadow.SCRIPT_SUFFIXES):
                cwd = probe.cwd
                if cwd and shadow.under(os.path.join(cwd, arg), self.folders, self.windows):
                    return True
        return False

    # -- runs of registered bots ---------------------------------------------------------
    def _runs_sweep(self, now, procs, info, decisions, children) -> list:
        matched: dict[str, list[int]] = {}
        for pid, d in decisions.items():
            for bot in d.bots:
                if not self._wrapped(pid, bot, info, decisions):
                    matched.setdefault(bot, []).append(pid)
        events: list = []
        for bot in sorted(set(matched) | set(self._runs)):
            roots = matched.get(bot, [])
            run = self._runs.get(bot)
            if not roots:
                if run is not None:
                    events += self._end(bot, run, now)
                    del self._runs[bot]
                continue
            if run is None:
                first = min(roots, key=lambda pid: (info[pid][1], pid))
                ctime = info[first][1]
                run = _BotRun(run_id=f"proc-{first}-{int(ctime)}", started=ctime)
                if bot in self.log_bots:
                    others = self._other_active(bot, run.run_id)
                    if others:
                        run.own, run.target = False, others[-1]
                if run.own:
                    run.target = run.run_id
                    events.append(RunStarted(bot=bot, run_id=run.run_id, time=ctime, host=self.state.host,
                                             source=SOURCE))
                self._runs[bot] = run
            elif bot in self.log_bots:
                self._follow_log(bot, run)
            rss = alive = 0
            present = set()
            for pid in _tree(roots, children, info):
                p = procs[pid]
                present.add((pid, info[pid][1]))
                try:
                    with p.oneshot():
                        t = p.cpu_times()
                        m = p.memory_info()
                except (psutil.Error, OSError):
                    continue  # unreadable this time: its last reading stays
                run.cpu_by_proc[(pid, info[pid][1])] = t.user + t.system
                rss += m.rss
                alive += 1
            for key in [k for k in run.cpu_by_proc if k not in present]:
                run.cpu_ended += run.cpu_by_proc.pop(key)  # ended: its last reading is final
            run.peak_rss = max(run.peak_rss, rss)
            if run.target is not None:
                events.append(ResourceSample(bot=bot, run_id=run.target, time=now,
                                             cpu_seconds=max(0.0, run.cpu_seconds - run.cpu_base),
                                             rss_bytes=rss, processes=alive, source=SOURCE))
        return events

    def _end(self, bot: str, run: _BotRun, now: float) -> list:
        if bot in self.log_bots:
            # the log records this run, with its outcome: nothing is guessed here. A run the
            # watcher opened is withdrawn (its CPU time stays counted); a log's run is left to the log.
            if run.own:
                self.state.withdraw_run(bot, run.run_id)
            return []
        return [RunFinished(bot=bot, run_id=run.run_id, ended=max(now, run.started), started=run.started,
                            outcome="unknown", host=self.state.host, cpu_seconds=run.cpu_seconds or None,
                            peak_rss_bytes=run.peak_rss or None, source=SOURCE)]

    def _other_active(self, bot: str, own_id: str) -> list[str]:
        active = self.state.active_runs(bot)
        return [rid for rid, _ in sorted(active.items(), key=lambda kv: kv[1]) if rid != own_id]

    def _follow_log(self, bot: str, run: _BotRun) -> None:
        """A bot with a log: once the log has a run of its own, the watcher's gives way to it
        (its samples move over) and the log's run gets the samples from then on."""
        others = self._other_active(bot, run.run_id)
        if run.own:
            if others:
                self.state.withdraw_run(bot, run.run_id, into=others[-1])
                run.own, run.target = False, others[-1]
        elif run.target not in others:
            if run.target is not None:
                # the log's run ended (its last sample stays counted): the next one starts from there
                run.cpu_base = run.cpu_seconds
            run.target = others[-1] if others else None

    # -- shadow bots -----------------------------------------------------------------------
    def _shadows(self, now, info, decisions) -> None:
        items = []
        counts = dict.fromkeys(shadow.PLATFORMS, 0)
        for pid, d in decisions.items():
            if d.runtime is None:
                continue
            if self._registered_or_nested(pid, info, decisions):
                continue
            counts[d.platform] = counts.get(d.platform, 0) + 1
            if len(items) < MAX_LISTED:
                items.append({"pid": pid, "platform": d.platform, "runtime": d.runtime.key,
                              "name": info[pid][2], "user": d.user, "cmdline": d.cmdline,
                              "started": info[pid][1]})
        items.sort(key=lambda x: (x["started"], x["pid"]))
        self.state.set_unregistered(items, counts, now)

    @staticmethod
    def _registered_or_nested(pid, info, decisions) -> bool:
        """True if an ancestor is a registered bot's process or a wrapper (registered), or
        itself a shadow candidate (then this process is part of that shadow bot's tree)."""
        for a in _ancestors(pid, info):
            d = decisions[a]
            if d.bots or d.wrapper or d.runtime is not None:
                return True
        return False

    @staticmethod
    def _wrapped(pid, bot, info, decisions) -> bool:
        """Started by `botwatch run --bot BOT`: the wrapper reports this run, not the watcher."""
        if decisions[pid].wrapper == bot:
            return True
        return any(decisions[a].wrapper == bot for a in _ancestors(pid, info))


def _ancestors(pid: int, info: dict) -> Iterable[int]:
    seen = {pid}
    ppid = info[pid][0]
    for _ in range(MAX_DEPTH):
        if ppid is None or ppid in seen or ppid not in info:
            return
        if info[ppid][1] > info[pid][1] + 1.0:
            return  # a "parent" younger than its child: the real parent is gone and its pid reused
        yield ppid
        seen.add(ppid)
        pid, ppid = ppid, info[ppid][0]


_FOLDER_RUNTIMES = {p: shadow.Runtime(f"bot-folder-{p}", p, f"{p} program in a bot folder")
                    for p in ("python", "shell", "excel", "other")}

_WRAPPER_NAME = re.compile(r"(?i)^(?:python|pythonw|py|botwatch)")


def _maybe_wrapper(name: str) -> bool:
    return bool(_WRAPPER_NAME.match(name))


def _compile(cfg: BotConfig) -> _Matcher:
    pm = cfg.watch.process

    def c(rx):
        return re.compile(rx) if rx is not None else None

    return _Matcher(cfg.name, c(pm.name), c(pm.exe), c(pm.cmdline), c(pm.user))


def _matches(m: _Matcher, name: str, probe: _Probe) -> bool:
    if m.name is not None and not m.name.search(name):
        return False
    if m.exe is not None and not (probe.exe and m.exe.search(probe.exe)):
        return False
    if m.cmdline is not None and not m.cmdline.search(probe.cmdline):
        return False
    if m.user is not None and not (probe.user and m.user.search(probe.user)):
        return False
    return True


def _tree(roots: list[int], children: dict[int, list[int]], info: dict) -> list[int]:
    """The roots and their descendants (a child older than its parent is not its child: its
    real parent ended and the pid was reused)."""
    out, seen, stack = [], set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        born = info[pid][1]
        stack.extend(c for c in children.get(pid, ()) if info[c][1] + 1.0 >= born)
    return out
