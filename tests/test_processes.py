"""Process watching and shadow bots: matching on a fake process table (Windows-like names and
users, a controlled clock), then real processes started, hung and killed under watched names."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter, namedtuple

import psutil
import pytest

from botwatch.config.estate import parse_estate_text
from botwatch.core.events import RunFinished, RunStarted
from botwatch.state.journal import Journal, JournalError
from botwatch.sources.runtimes import PLATFORMS, RUNTIMES, wrapped_bot
from botwatch.sources.processes import ProcessWatcher
from botwatch.state.runtime import EstateState
from conftest import BOTWATCH, LocalHTTPServer, parse_metrics, wait_for

T0 = 1_800_000_000.0
CpuTimes = namedtuple("CpuTimes", "user system")
MemInfo = namedtuple("MemInfo", "rss vms")


# -- a fake process table ---------------------------------------------------------------------

class FakeProc:
    def __init__(self, pid, name, *, ppid=0, started=T0 - 100, exe=None, cmdline=None, user="CORP\\svc_rpa",
                 cpu=(1.0, 0.5), rss=10_000_000, cwd=None, denied=()):
        self.pid, self.name, self.ppid, self.started = pid, name, ppid, started
        self._exe, self._cmdline = exe, list(cmdline) if cmdline is not None else [name]
        self.user, self.cpu, self.rss, self._cwd, self.denied = user, cpu, rss, cwd, set(denied)
        self.calls = Counter()
        self.info = {}

    def _call(self, what, value):
        self.calls[what] += 1
        if what in self.denied:
            raise psutil.AccessDenied(self.pid, self.name)
        return value

    def exe(self):
        return self._call("exe", self._exe or "")

    def cmdline(self):
        return self._call("cmdline", list(self._cmdline))

    def username(self):
        return self._call("username", self.user)

    def cwd(self):
        return self._call("cwd", self._cwd)

    def cpu_times(self):
        return self._call("cpu_times", CpuTimes(*self.cpu))

    def memory_info(self):
        return self._call("memory_info", MemInfo(self.rss, self.rss * 2))

    def oneshot(self):
        return contextlib.nullcontext()


class FakeTable:
    """Stands in for psutil.process_iter: yields the processes with `info` filled in."""

    def __init__(self, *procs):
        self.procs = {p.pid: p for p in procs}
        self.passes = 0

    def add(self, *procs):
        for p in procs:
            self.procs[p.pid] = p

    def kill(self, *pids):
        for pid in pids:
            self.procs.pop(pid, None)

    def __call__(self, attrs=None, ad_value=None):
        self.passes += 1
        for pid in sorted(self.procs):
            p = self.procs[pid]
            p.info = {"ppid": p.ppid, "create_time": p.started, "name": p.name}
            yield p


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


def setup(yaml_text, *procs, clock=None, journal=None, **kw):
    estate = parse_estate_text(textwrap.dedent(yaml_text))
    clock = clock or Clock()
    state = EstateState(estate, journal, clock=clock)
    table = FakeTable(*procs)
    watcher = ProcessWatcher(estate, state, interval=5, process_iter=table, clock=clock, **kw)
    return watcher, state, table, clock


def view(state, bot, now=None):
    return next(v for v in state.views(now) if v.name == bot)


def listed(state):
    return state.unregistered_view()[0]


def counts(state):
    return state.unregistered_view()[1]


UIPATH_BOT = """
bots:
  - name: invoice-recon
    platform: uipath
    max_runtime: 30m
    watch:
      process: {name: 'UiPath\\.Executor\\.exe$', cmdline: 'InvoiceRecon', user: 'svc_rpa$'}
"""


def executor(pid, process="InvoiceRecon", user="CORP\\svc_rpa", **kw):
    return FakeProc(pid, "UiPath.Executor.exe", exe="C:\\Program Files\\UiPath\\Studio\\UiPath.Executor.exe",
                    cmdline=["C:\\Program Files\\UiPath\\Studio\\UiPath.Executor.exe", "/file",
                             f"C:\\Users\\svc_rpa\\.nuget\\packages\\{process}\\1.0.4\\lib\\net45\\Main.xaml"],
                    user=user, **kw)


# -- runs of watched bots ---------------------------------------------------------------------------

def test_a_matching_process_appearing_starts_a_run_at_its_creation_time():
    w, st, table, clock = setup(UIPATH_BOT, executor(4100, started=T0 - 42))
    w.sweep()
    v = view(st, "invoice-recon")
    assert v.runs_in_progress == 1 and v.oldest_active_start == T0 - 42
    assert st.active_runs("invoice-recon") == {f"proc-4100-{int(T0 - 42)}": T0 - 42}
    assert st.self_metrics()["events"]["process"] >= 1


def test_its_disappearance_ends_the_run_with_outcome_unknown_never_a_guessed_success():
    w, st, table, clock = setup(UIPATH_BOT, executor(4100, started=T0 - 42, cpu=(3.0, 1.0)))
    w.sweep()
    table.kill(4100)
    clock.t = T0 + 5
    w.sweep()
    v = view(st, "invoice-recon")
    assert v.runs_in_progress == 0 and v.runs_total == 1
    assert v.last_outcome == "unknown" and v.last_success is None and v.last_failure is None
    assert v.consecutive_failures == 0 and v.state != "failing"
    assert v.last_run_duration == 47.0
    assert v.cpu_seconds_total == 4.0
    w.sweep()
    assert view(st, "invoice-recon").runs_total == 1  # ended once


def test_the_finished_run_reaches_the_journal_with_outcome_unknown(tmp_path):
    journal = Journal(tmp_path / "j.db")
    w, st, table, clock = setup(UIPATH_BOT, executor(4100, started=T0 - 10), journal=journal)
    w.sweep()
    table.kill(4100)
    w.sweep()
    runs = list(journal.iter_runs())
    assert [(r.bot, r.run_id, r.outcome, r.started, r.ended) for r in runs] == [
        ("invoice-recon", f"proc-4100-{int(T0 - 10)}", "unknown", T0 - 10, T0)]
    journal.close()


def test_every_regex_the_bot_gives_must_match_name_executable_command_line_and_user():
    w, st, table, clock = setup(
        UIPATH_BOT,
        executor(1, process="OtherProcess"),  # wrong command line
        executor(2, user="CORP\\ana.diaz"),  # wrong user
        FakeProc(3, "UiRobot.exe", cmdline=["UiRobot.exe", "execute", "--file", "InvoiceRecon.nupkg"]),  # wrong name
    )
    w.sweep()
    assert view(st, "invoice-recon").runs_in_progress == 0
    table.add(executor(4))
    w.sweep()
    assert list(st.active_runs("invoice-recon")) == [f"proc-4-{int(T0 - 100)}"]


def test_an_exe_regex_is_searched_in_the_executable_path():
    w, st, table, clock = setup("""
        bots:
          - name: ledger
            watch: {process: {exe: '(?i)\\\\Bots\\\\Ledger\\\\'}}
        """, FakeProc(10, "Ledger.exe", exe="D:\\bots\\ledger\\Ledger.exe"),
        FakeProc(11, "Ledger.exe", exe="D:\\Apps\\Ledger.exe"))
    w.sweep()
    assert list(st.active_runs("ledger")) == [f"proc-10-{int(T0 - 100)}"]


def test_children_of_a_matched_process_count_for_cpu_memory_and_process_count():
    w, st, table, clock = setup(
        UIPATH_BOT,
        executor(100, cpu=(2.0, 1.0), rss=100),
        FakeProc(101, "chrome.exe", ppid=100, started=T0 - 90, cpu=(4.0, 0.0), rss=1000),
        FakeProc(102, "chrome.exe", ppid=101, started=T0 - 80, cpu=(0.5, 0.5), rss=10_000),
        FakeProc(200, "chrome.exe", ppid=1, cpu=(99.0, 0.0), rss=99_999),  # someone else's
        FakeProc(300, "chrome.exe", ppid=100, started=T0 - 500, rss=99_999),  # older: its parent's pid was reused
    )
    w.sweep()
    v = view(st, "invoice-recon")
    assert (v.processes, v.resident_memory_bytes, v.cpu_seconds_total) == (3, 11_100, 8.0)
    table.kill(102)  # a child ends: its CPU time stays counted
    w.sweep()
    v = view(st, "invoice-recon")
    assert (v.processes, v.resident_memory_bytes, v.cpu_seconds_total) == (2, 1100, 8.0)
    table.kill(100, 101)
    w.sweep()
    v = view(st, "invoice-recon")
    assert (v.processes, v.resident_memory_bytes, v.cpu_seconds_total) == (0, 0, 8.0)


def test_the_run_lasts_while_any_matching_process_exists():
    w, st, table, clock = setup(UIPATH_BOT, executor(1, started=T0 - 50))
    w.sweep()
    table.add(executor(2, started=T0 - 10))
    w.sweep()
    table.kill(1)
    w.sweep()
    assert list(st.active_runs("invoice-recon")) == [f"proc-1-{int(T0 - 50)}"]
    assert view(st, "invoice-recon").runs_total == 0
    table.kill(2)
    w.sweep()
    v = view(st, "invoice-recon")
    assert v.runs_total == 1 and v.last_run_duration == 50.0


def test_decisions_are_cached_per_pid_and_creation_time():
    procs = [executor(pid) for pid in range(10, 20)] + [FakeProc(pid, "svchost.exe") for pid in range(20, 520)]
    w, st, table, clock = setup(UIPATH_BOT, *procs)
    for _ in range(5):
        w.sweep()
    assert table.passes == 5  # one pass of the process table per sweep
    assert max(p.calls["cmdline"] for p in procs) == 1
    assert max(p.calls["username"] for p in procs) == 1
    assert all(p.calls["cpu_times"] == 0 for p in procs[10:])  # only the bots' trees are measured
    table.add(executor(20, started=T0 - 1))  # pid 20 reused by a new process
    w.sweep()
    assert procs[0].calls["cmdline"] == 1 and table.procs[20].calls["cmdline"] == 1
    assert len(st.active_runs("invoice-recon")) == 1


def test_a_young_process_is_decided_again_until_it_settles():
    """fork() and exec() keep the pid and creation time: a decision is cached only once the
    process is old enough to have exec()ed."""
    p = FakeProc(7, "sh", started=T0 - 0.2, cmdline=["/bin/sh"], user="bot")
    w, st, table, clock = setup("""
        bots:
          - name: nightly
            watch: {process: {cmdline: 'nightly\\.py'}}
        """, p)
    w.sweep()
    assert view(st, "nightly").runs_in_progress == 0
    p._cmdline = ["/usr/bin/python3", "/srv/bots/nightly.py"]  # exec() without a name change yet
    clock.t += 5
    w.sweep()
    assert view(st, "nightly").runs_in_progress == 1


def test_a_restarted_watcher_picks_up_running_processes_under_the_same_run_id():
    w, st, table, clock = setup(UIPATH_BOT, executor(4100, started=T0 - 600))
    w.sweep()
    before = st.active_runs("invoice-recon")
    w2 = ProcessWatcher(w.estate, EstateState(w.estate, clock=clock), interval=5, process_iter=table, clock=clock)
    w2.sweep()
    assert w2.state.active_runs("invoice-recon") == before == {f"proc-4100-{int(T0 - 600)}": T0 - 600}


LOG_BOT = """
bots:
  - name: claims
    platform: robotframework
    watch:
      process: {cmdline: 'claims\\.robot'}
      logs: [{path: /srv/bots/claims/output.xml, format: robot}]
"""


def robot_proc(pid, **kw):
    return FakeProc(pid, "robot", exe="/usr/bin/python3.11", cmdline=["/usr/bin/python3", "/usr/local/bin/robot",
                                                                      "claims.robot"], user="bot", **kw)


def test_a_bot_with_a_log_gets_no_run_end_from_the_watcher():
    w, st, table, clock = setup(LOG_BOT, robot_proc(30))
    w.sweep()
    assert view(st, "claims").runs_in_progress == 1  # in progress (and hung detection) while it runs
    table.kill(30)
    w.sweep()
    v = view(st, "claims")
    assert v.runs_in_progress == 0 and v.runs_total == 0 and v.last_outcome is None


def test_a_bot_with_a_log_follows_the_logs_own_run():
    w, st, table, clock = setup(LOG_BOT, robot_proc(30, cpu=(2.0, 0.0)))
    w.sweep()
    st.apply([RunStarted(bot="claims", run_id="log-1", time=T0 - 99, source="log")])
    w.sweep()
    assert list(st.active_runs("claims")) == ["log-1"]  # the watcher's run gave way
    v = view(st, "claims")
    assert v.processes == 1 and v.cpu_seconds_total == 2.0


def test_cpu_time_never_goes_down_as_log_runs_come_and_go():
    p = robot_proc(30, cpu=(2.0, 0.0))
    w, st, table, clock = setup(LOG_BOT, p)
    seen = []

    def sweep():
        w.sweep()
        seen.append(view(st, "claims").cpu_seconds_total)

    sweep()
    st.apply([RunStarted(bot="claims", run_id="log-1", time=T0 - 99, source="log")])
    p.cpu = (5.0, 0.0)
    sweep()
    st.apply([RunFinished(bot="claims", run_id="log-1", ended=T0, started=T0 - 99, outcome="success",
                          source="log")])
    seen.append(view(st, "claims").cpu_seconds_total)
    p.cpu = (7.0, 0.0)
    sweep()
    st.apply([RunStarted(bot="claims", run_id="log-2", time=T0 + 1, source="log")])
    p.cpu = (9.0, 0.0)
    sweep()
    assert seen == [2.0, 5.0, 5.0, 5.0, 9.0]
    table.kill(30)
    sweep()
    assert seen[-1] == 9.0 and list(st.active_runs("claims")) == ["log-2"]


def test_a_run_past_max_runtime_is_hung_while_it_runs():
    w, st, table, clock = setup(UIPATH_BOT, executor(1, started=T0 - 1799))
    w.sweep()
    assert not view(st, "invoice-recon").hung
    clock.t += 2
    assert view(st, "invoice-recon").hung and view(st, "invoice-recon").to_json()["hung"] is True
    table.kill(1)
    w.sweep()
    assert not view(st, "invoice-recon").hung


def test_a_wrapped_run_past_max_runtime_is_hung_too():
    w, st, table, clock = setup(UIPATH_BOT)
    st.apply([RunStarted(bot="invoice-recon", run_id="w1", time=T0 - 3600)])
    assert view(st, "invoice-recon").hung


def test_a_bot_without_max_runtime_is_never_hung():
    w, st, table, clock = setup("bots: [{name: b, watch: {process: {name: '^b$'}}}]", FakeProc(1, "b", started=0))
    w.sweep()
    assert not view(st, "b").hung


def test_a_journal_outage_keeps_the_run_end_for_the_next_sweep(monkeypatch):
    w, st, table, clock = setup(UIPATH_BOT, executor(1))
    w.sweep()
    table.kill(1)
    real_apply = st.apply

    def broken(events, offsets=None):
        raise JournalError("disk full")

    monkeypatch.setattr(st, "apply", broken)
    w.sweep()
    monkeypatch.setattr(st, "apply", real_apply)
    w.sweep()
    assert view(st, "invoice-recon").runs_total == 1


# -- shadow bots ----------------------------------------------------------------------------------

NO_WATCH = "bots: [{name: somebot}]"

SHADOWS = [
    ("uipath", FakeProc(1, "UiPath.Executor.exe", cmdline=["UiPath.Executor.exe", "/file", "Main.xaml"])),
    ("uipath", FakeProc(1, "UiRobot.exe", cmdline=["UiRobot.exe", "execute", "--file", "Dispatcher.nupkg"])),
    ("robotframework", FakeProc(1, "robot.exe", cmdline=["C:\\Py311\\Scripts\\robot.exe", "suite.robot"])),
    ("robotframework", FakeProc(1, "robot", cmdline=["/usr/bin/python3", "/usr/local/bin/robot", "tests/"])),
    ("robotframework", FakeProc(1, "python3.11", cmdline=["python3.11", "-m", "robot", "--outputdir", "o", "t"])),
    ("robotframework", FakeProc(1, "python.exe", cmdline=["python.exe", "-m", "pabot", "--processes", "4", "t"])),
    ("robotframework", FakeProc(1, "pabot", cmdline=["/usr/bin/python3", "/usr/local/bin/pabot", "tests/"])),
    ("robotframework", FakeProc(1, "rcc.exe", cmdline=["rcc.exe", "run", "--task", "Run all tasks"])),
    ("powerautomate", FakeProc(1, "PAD.Robot.exe", cmdline=["PAD.Robot.exe"])),
    ("blueprism", FakeProc(1, "AutomateC.exe", cmdline=["AutomateC.exe", "/run", "Invoices", "/resource", "RPA01"])),
    ("automationanywhere", FakeProc(1, "AAPlayer.exe", cmdline=["AAPlayer.exe", "/fC:\\Tasks\\recon.atmx"])),
    ("automationanywhere", FakeProc(1, "java.exe", exe="C:\\Program Files\\Automation Anywhere\\Bot Agent\\jre\\bin\\java.exe",
                                    cmdline=["java.exe", "-cp", "x.jar", "com.automationanywhere.botlauncher.Main"])),
]


@pytest.mark.parametrize("platform,proc", SHADOWS, ids=[f"{pl}-{p.name}" for pl, p in SHADOWS])
def test_a_known_runtime_matching_no_bot_is_a_shadow_bot(platform, proc):
    w, st, table, clock = setup(NO_WATCH, proc)
    w.sweep()
    assert [(p["pid"], p["platform"]) for p in listed(st)] == [(1, platform)]
    assert counts(st)[platform] == 1 and sum(counts(st).values()) == 1


@pytest.mark.parametrize("name,cmdline", [
    ("python3", ["python3", "-m", "http.server"]),
    ("python3", ["python3", "/home/ana/robotics.py"]),
    ("robotd", ["robotd"]),
    ("Automate.exe", ["Automate.exe"]),  # resident, and the estate has a Blue Prism bot
])
def test_other_processes_are_not_shadow_bots(name, cmdline):
    w, st, table, clock = setup("bots: [{name: a, platform: blueprism}]", FakeProc(1, name, cmdline=cmdline))
    w.sweep()
    assert listed(st) == [] and sum(counts(st).values()) == 0


def test_resident_robot_hosts_are_shadows_only_while_the_estate_knows_no_bot_of_their_platform():
    host = FakeProc(1, "UiPath.Service.UserHost.exe")
    w, st, table, clock = setup(NO_WATCH, host)
    w.sweep()
    assert [p["runtime"] for p in listed(st)] == ["uipath-userhost"]
    w, st, table, clock = setup("bots: [{name: recon, platform: uipath}]", host)
    w.sweep()
    assert listed(st) == []


def test_a_registered_bots_processes_and_their_children_are_not_shadows():
    w, st, table, clock = setup(
        UIPATH_BOT, executor(1),
        FakeProc(2, "UiPath.Executor.exe", ppid=1, started=T0 - 50),  # its child: part of its run
        executor(3, process="Unregistered"))
    w.sweep()
    assert [p["pid"] for p in listed(st)] == [3]
    assert counts(st)["uipath"] == 1


def test_processes_under_botwatch_run_are_neither_shadows_nor_watched_runs():
    wrapper = FakeProc(1, "python3", cmdline=["/opt/bw/bin/python3", "/opt/bw/bin/botwatch", "run", "--bot",
                                              "claims", "--timeout", "1h", "--", "robot", "claims.robot"])
    child = FakeProc(2, "robot", ppid=1, started=T0 - 50, cmdline=["/usr/bin/python3", "/usr/bin/robot", "claims.robot"])
    w, st, table, clock = setup(LOG_BOT.replace("      logs: [{path: /srv/bots/claims/output.xml, format: robot}]\n", ""),
                                wrapper, child)
    w.sweep()
    assert listed(st) == []
    assert view(st, "claims").runs_in_progress == 0  # the wrapper reports this run


def test_the_wrapper_command_line_is_recognised_in_its_forms():
    assert wrapped_bot(["python", "-m", "botwatch", "run", "--bot", "x", "--", "robot", "t"]) == "x"
    assert wrapped_bot(["C:\\Py\\Scripts\\botwatch.exe", "run", "--bot=x", "--", "a"]) == "x"
    assert wrapped_bot(["/venv/bin/botwatch", "run", "--timeout", "5m", "--bot", "y", "--", "a"]) == "y"
    assert wrapped_bot(["botwatch", "status"]) is None
    assert wrapped_bot(["robot", "--", "botwatch", "run"]) is None
    assert wrapped_bot(["python", "-m", "botwatch", "run", "--", "cmd", "--bot", "z"]) is None


def test_a_shadow_bots_own_children_are_not_listed_separately():
    w, st, table, clock = setup(
        NO_WATCH,
        FakeProc(1, "robot.exe", cmdline=["C:\\Py311\\Scripts\\robot.exe", "suite.robot"]),
        FakeProc(2, "python.exe", ppid=1, started=T0 - 99, cmdline=["python.exe", "C:\\Py311\\Scripts\\robot.exe", "s"]))
    w.sweep()
    assert [p["pid"] for p in listed(st)] == [1] and counts(st)["robotframework"] == 1


FOLDERS = """
agent:
  bot_folders: ['C:\\Bots', /srv/bots, relbots]
bots: [{name: somebot}]
"""


@pytest.mark.parametrize("platform,proc", [
    ("python", FakeProc(1, "python.exe", cmdline=["C:\\Py311\\python.exe", "c:\\bots\\Recon\\recon.py", "--day", "1"])),
    ("python", FakeProc(1, "python3", cmdline=["python3", "-u", "/srv/bots/nightly/run.py"])),
    ("python", FakeProc(1, "python3", cmdline=["python3", "run.py"], cwd="/srv/bots/nightly")),
    ("python", FakeProc(1, "python3", cmdline=["python3", "job.py"], cwd="/etc/botwatch/relbots")),
    ("shell", FakeProc(1, "bash", cmdline=["/bin/bash", "/srv/bots/sync.sh"])),
    ("shell", FakeProc(1, "powershell.exe", cmdline=["powershell.exe", "-File", "C:\\Bots\\Mail\\send.ps1"])),
    ("excel", FakeProc(1, "EXCEL.EXE", cmdline=["EXCEL.EXE", "/e", "C:\\Bots\\Report\\month.xlsm"])),
    ("other", FakeProc(1, "fetch.exe", exe="C:\\Bots\\Fetch\\fetch.exe", cmdline=["fetch.exe"])),
])
def test_programs_running_from_bot_folders_are_shadow_bots(platform, proc):
    w, st, table, clock = setup(FOLDERS, proc, base_dir="/etc/botwatch")
    w.sweep()
    assert [(p["pid"], p["platform"]) for p in listed(st)] == [(1, platform)]


@pytest.mark.parametrize("proc", [
    FakeProc(1, "python3", cmdline=["python3", "/srv/botsmith/x.py"]),
    FakeProc(1, "python3", cmdline=["python3", "/home/ana/x.py"]),
    FakeProc(1, "bash", cmdline=["bash", "-c", "python3 /srv/bots/x.py"]),  # its child python is the bot
    FakeProc(1, "notepad.exe", exe="C:\\Windows\\notepad.exe", cmdline=["notepad.exe", "C:\\Bots\\readme.txt"]),
])
def test_programs_outside_bot_folders_are_not(proc):
    w, st, table, clock = setup(FOLDERS, proc, base_dir="/etc/botwatch")
    w.sweep()
    assert listed(st) == []


def test_shadow_command_lines_are_redacted():
    w, st, table, clock = setup(NO_WATCH, FakeProc(
        1, "UiRobot.exe", user="CORP\\ana", cmdline=["UiRobot.exe", "execute", "--file", "Pay.nupkg", "--password",
                                                    "hunter2", "--input", "{'token=abc123'}"]))
    w.sweep()
    (p,) = listed(st)
    assert "hunter2" not in p["cmdline"] and "abc123" not in p["cmdline"]
    assert p["cmdline"].startswith("UiRobot.exe execute --file Pay.nupkg --password [REDACTED]")
    assert p["user"] == "CORP\\ana" and p["started"] == T0 - 100


def test_unreadable_process_details_do_not_break_a_sweep():
    w, st, table, clock = setup(
        UIPATH_BOT,
        FakeProc(4, "System", user=None, denied={"exe", "cmdline", "username", "cpu_times", "memory_info"}),
        FakeProc(5, "UiRobot.exe", denied={"cmdline", "username"}),  # still recognised by name
        executor(6, denied={"memory_info"}))
    w.sweep()
    assert [(p["pid"], p["cmdline"], p["user"]) for p in listed(st)] == [(5, "UiRobot.exe", None)]
    assert view(st, "invoice-recon").runs_in_progress == 1


def test_a_shadow_bot_disappears_from_the_list_when_it_ends():
    w, st, table, clock = setup(NO_WATCH, FakeProc(1, "PAD.Robot.exe"))
    w.sweep()
    assert counts(st)["powerautomate"] == 1
    table.kill(1)
    w.sweep()
    assert listed(st) == [] and counts(st)["powerautomate"] == 0


# -- exporters, API and CLI -------------------------------------------------------------------------

def metrics_of(state):
    from prometheus_client.exposition import generate_latest

    from botwatch.exporters.prometheus import estate_registry

    return generate_latest(estate_registry(state, clock=state.clock)).decode()


def test_metrics_export_hung_process_count_and_shadow_bots_by_platform():
    w, st, table, clock = setup(UIPATH_BOT, executor(1, started=T0 - 3600),
                                FakeProc(2, "chrome.exe", ppid=1, started=T0 - 3000),
                                FakeProc(3, "robot", cmdline=["/usr/bin/python3", "/usr/bin/robot", "x"]))
    w.sweep()
    m = parse_metrics(metrics_of(st))
    assert m['botwatch_bot_hung{bot="invoice-recon"}'] == 1
    assert m['botwatch_bot_processes{bot="invoice-recon"}'] == 2
    for platform in PLATFORMS:
        assert m[f'botwatch_unregistered_bot_processes{{platform="{platform}"}}'] == (platform == "robotframework")


def test_every_shadow_platform_is_an_estate_platform_and_preset_to_zero_before_a_sweep():
    from botwatch.config.estate import PLATFORMS as ESTATE_PLATFORMS

    assert set(PLATFORMS) <= set(ESTATE_PLATFORMS)
    assert {r.platform for r in RUNTIMES} <= set(PLATFORMS)
    st = EstateState(parse_estate_text(NO_WATCH))
    m = parse_metrics(metrics_of(st))
    assert all(m[f'botwatch_unregistered_bot_processes{{platform="{p}"}}'] == 0 for p in PLATFORMS)
    assert m['botwatch_bot_hung{bot="somebot"}'] == 0 and m['botwatch_bot_processes{bot="somebot"}'] == 0


def test_promtool_check_metrics_prints_nothing_for_the_new_metrics():
    assert shutil.which("promtool"), "promtool is installed by `make test` (Debian package prometheus)"
    w, st, table, clock = setup(UIPATH_BOT, executor(1, started=T0 - 3600), FakeProc(3, "rcc.exe"))
    w.sweep()
    r = subprocess.run(["promtool", "check", "metrics"], input=metrics_of(st).encode(), capture_output=True)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stdout + r.stderr


def test_the_unregistered_api_lists_shadow_bots_and_status_shows_hung_and_processes():
    from fastapi.testclient import TestClient

    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import create_app

    w, st, table, clock = setup(UIPATH_BOT, executor(1, started=T0 - 3600),
                                FakeProc(9, "AutomateC.exe", cmdline=["AutomateC.exe", "/run", "X", "/password", "s"]))
    client = TestClient(create_app(st, estate_registry(st)))
    body = client.get("/api/v1/unregistered").json()
    assert body["processes"] == [] and body["swept_at"] is None
    w.sweep()
    body = client.get("/api/v1/unregistered").json()
    assert body["swept_at"] == T0 and body["counts"]["blueprism"] == 1
    assert [(p["pid"], p["platform"], p["runtime"], p["user"]) for p in body["processes"]] == [
        (9, "blueprism", "blueprism-automatec", "CORP\\svc_rpa")]
    bot = client.get("/api/v1/status").json()["bots"][0]
    assert bot["processes"] == 1 and "hung" in bot
    assert "/api/v1/unregistered" in client.get("/api/v1/openapi.json").json()["paths"]


UNREGISTERED_FIXTURE = {
    "time": T0, "swept_at": T0 - 2, "counts": {"robotframework": 1, "uipath": 1, "python": 0},
    "processes": [
        {"pid": 4242, "platform": "uipath", "runtime": "uipath-executor", "name": "UiPath.Executor.exe",
         "user": "CORP\\svc_rpa", "cmdline": "UiPath.Executor.exe /file Main.xaml --password [REDACTED]",
         "started": T0 - 3600},
        {"pid": 77, "platform": "robotframework", "runtime": "robot", "name": "robot", "user": "bot",
         "cmdline": "/usr/bin/python3 /usr/local/bin/robot [brackets] tests/", "started": T0 - 60},
    ],
}


@pytest.fixture
def fake_agent():
    """A tiny HTTP server answering /api/v1/unregistered with the fixture."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(UNREGISTERED_FIXTURE).encode()
            self.send_response(200 if self.path == "/api/v1/unregistered" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with LocalHTTPServer(Handler) as server:
        yield server.url


def test_botwatch_status_unregistered_renders_the_agents_list(fake_agent, run_env, tmp_path):
    r = subprocess.run([*BOTWATCH, "status", "--unregistered", "--agent", fake_agent], capture_output=True,
                       text=True, env={**run_env, "COLUMNS": "200"}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("unregistered bot processes", f"agent {fake_agent}", "4242", "uipath", "CORP\\svc_rpa",
                 "--password [REDACTED]", "[brackets]", "60m ago", "2 unregistered bot process(es): "
                 "robotframework 1, uipath 1"):
        assert text in r.stdout, text
    r = subprocess.run([*BOTWATCH, "status", "--unregistered", "--json", "--agent", fake_agent], capture_output=True,
                       text=True, env=run_env, cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout) == UNREGISTERED_FIXTURE


def test_botwatch_status_unregistered_needs_a_running_agent(run_env, tmp_path):
    from conftest import free_port

    r = subprocess.run([*BOTWATCH, "status", "--unregistered", "--agent", f"http://127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, env=run_env, cwd=tmp_path)
    assert r.returncode == 1 and "not reachable" in r.stderr and "running agent" in r.stderr


def test_the_status_table_marks_a_hung_bot():
    from rich.console import Console

    from botwatch.commands.status import render_status

    console = Console(record=True, width=200)
    render_status({"time": T0, "bots": [{"bot": "recon", "team": "fin", "state": "up", "hung": True}]}, "test",
                  console)
    assert "up (hung)" in console.export_text()


# -- real processes ---------------------------------------------------------------------------------

@pytest.fixture
def spawn():
    """Start real processes; every one (and whatever it started) is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(argv, **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        kill_tree(p)


def kill_tree(p: subprocess.Popen) -> None:
    try:
        procs = psutil.Process(p.pid).children(recursive=True)
    except psutil.Error:
        procs = []
    for q in [*procs]:
        with contextlib.suppress(psutil.Error):
            q.kill()
    with contextlib.suppress(OSError):
        p.kill()
    p.wait(timeout=30)
    psutil.wait_procs(procs, timeout=30)


def sleeper(marker: str, *extra: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(600)", marker, *extra]


def real(yaml_text, tmp_path=None, journal=False, **kw):
    estate = parse_estate_text(textwrap.dedent(yaml_text))
    state = EstateState(estate, Journal(tmp_path / "journal.db") if journal else None)
    return ProcessWatcher(estate, state, interval=0.2, **kw), state


def swept_until(watcher, predicate, what):
    def check():
        watcher.sweep()
        return predicate()

    return wait_for(check, interval=0.1, what=what)


def test_real_processes_started_and_killed_under_a_watched_name_are_runs_with_unknown_outcome(spawn, tmp_path):
    marker = f"botwatch-test-{uuid.uuid4().hex}"
    w, st = real(f"""
        bots:
          - name: sleeper
            watch: {{process: {{cmdline: '{marker}'}}}}
        """, tmp_path, journal=True)
    for n in (1, 2):
        p = spawn(sleeper(marker))
        ctime = psutil.Process(p.pid).create_time()
        swept_until(w, lambda: view(st, "sleeper").runs_in_progress == 1, f"run {n} to start")
        assert st.active_runs("sleeper") == {f"proc-{p.pid}-{int(ctime)}": ctime}
        kill_tree(p)
        swept_until(w, lambda: view(st, "sleeper").runs_total == n, f"run {n} to end")
    v = view(st, "sleeper")
    assert v.last_outcome == "unknown" and v.last_success is None and v.runs_in_progress == 0
    runs = list(st.journal.iter_runs())
    assert len(runs) == 2 and {r.outcome for r in runs} == {"unknown"}
    st.journal.close()


def test_a_real_process_tree_is_measured(spawn):
    marker = f"botwatch-test-{uuid.uuid4().hex}"
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
            "sum(range(3_000_000)); time.sleep(600)")
    w, st = real(f"bots: [{{name: tree, watch: {{process: {{cmdline: '{marker}'}}}}}}]")
    spawn([sys.executable, "-c", code, marker])
    swept_until(w, lambda: view(st, "tree").processes == 2, "the bot and its child")
    v = view(st, "tree")
    assert v.resident_memory_bytes > 1_000_000 and v.cpu_seconds_total > 0


def test_a_real_hung_process_is_flagged_while_it_runs(spawn):
    marker = f"botwatch-test-{uuid.uuid4().hex}"
    w, st = real(f"bots: [{{name: stuck, max_runtime: 1s, watch: {{process: {{cmdline: '{marker}'}}}}}}]")
    p = spawn(sleeper(marker))
    swept_until(w, lambda: view(st, "stuck").hung, "the bot to be flagged hung")
    m = parse_metrics(metrics_of(st))
    assert m['botwatch_bot_hung{bot="stuck"}'] == 1 and m['botwatch_bot_processes{bot="stuck"}'] == 1
    kill_tree(p)
    swept_until(w, lambda: view(st, "stuck").runs_total == 1, "the run to end")
    assert not view(st, "stuck").hung




def only(pids: set[int]):
    """psutil.process_iter limited to some real processes and their descendants (so that a count
    is exact on a machine where other tests run robots too)."""

    def process_iter(attrs=None, ad_value=None):
        for p in psutil.process_iter(attrs=attrs, ad_value=ad_value):
            try:
                if p.pid in pids or pids & {a.pid for a in p.parents()}:
                    yield p
            except psutil.Error:
                continue

    return process_iter


def test_an_unregistered_robot_process_is_found_as_a_shadow_bot(spawn, fake_robot):
    from fastapi.testclient import TestClient

    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import create_app

    p = spawn([str(fake_robot), "--password", "hunter2", "--outputdir", "/tmp/out", "tasks.robot"])
    w, st = real("bots: [{name: registered, watch: {process: {cmdline: never-matches-anything}}}]")
    mine = lambda: [x for x in listed(st) if x["pid"] == p.pid]  # noqa: E731
    (item,) = swept_until(w, mine, "the robot process to be listed")
    assert item["platform"] == "robotframework" and item["runtime"] == "robot"
    assert "hunter2" not in item["cmdline"] and "--password [REDACTED]" in item["cmdline"]
    assert str(fake_robot) in item["cmdline"] and item["user"] == psutil.Process().username()
    assert counts(st)["robotframework"] == len([x for x in listed(st) if x["platform"] == "robotframework"]) >= 1

    scoped, st2 = real("bots: [{name: registered}]", process_iter=only({p.pid}))
    swept_until(scoped, lambda: counts(st2)["robotframework"] == 1, "the exact count")
    client = TestClient(create_app(st2, estate_registry(st2)))
    m = parse_metrics(client.get("/metrics").text)
    assert m['botwatch_unregistered_bot_processes{platform="robotframework"}'] == 1
    assert [x["pid"] for x in client.get("/api/v1/unregistered").json()["processes"]] == [p.pid]

    kill_tree(p)
    swept_until(w, lambda: not mine(), "the robot process to leave the list")
    swept_until(scoped, lambda: counts(st2)["robotframework"] == 0, "the count to drop")
    m = parse_metrics(client.get("/metrics").text)
    assert m['botwatch_unregistered_bot_processes{platform="robotframework"}'] == 0


def test_a_real_python_m_robot_run_is_found_as_a_shadow_bot(spawn, tmp_path):
    pytest.importorskip("robot")
    suite = tmp_path / "waits.robot"
    suite.write_text("*** Test Cases ***\nWait\n    Sleep    600s\n")
    p = spawn([sys.executable, "-m", "robot", "--output", "NONE", "--report", "NONE", "--log", "NONE", str(suite)])
    w, st = real("bots: [{name: registered}]", process_iter=only({p.pid}))
    (item,) = swept_until(w, lambda: listed(st), "python -m robot to be listed")
    assert (item["pid"], item["platform"], item["runtime"]) == (p.pid, "robotframework", "python-m-robot")


def test_a_robot_process_of_a_registered_bot_is_not_a_shadow(spawn, fake_robot):
    marker = f"botwatch-test-{uuid.uuid4().hex}"
    p = spawn([str(fake_robot), marker])
    w, st = real(f"bots: [{{name: claims, platform: robotframework, watch: {{process: {{cmdline: '{marker}'}}}}}}]")
    swept_until(w, lambda: view(st, "claims").runs_in_progress == 1, "the registered bot's run")
    assert p.pid not in [x["pid"] for x in listed(st)]


def test_a_robot_started_by_botwatch_run_is_not_a_shadow(spawn, fake_robot, run_env, tmp_path):
    env = {**run_env, "BOTWATCH_NO_DELIVERY": "1"}
    wrapper = spawn([*BOTWATCH, "run", "--bot", "claims", "--", str(fake_robot), "tasks.robot"], env=env, cwd=tmp_path)
    robot = wait_for(lambda: [c for c in psutil.Process(wrapper.pid).children() if c.name() == "robot"],
                     what="the wrapped robot")[0]
    w, st = real("bots: [{name: claims, watch: {process: {name: '^robot$'}}}]", process_iter=only({wrapper.pid}))
    w.sweep()
    w.sweep()
    assert listed(st) == [] and robot.is_running()
    assert view(st, "claims").runs_in_progress == 0  # the wrapper reports it


def test_the_watcher_thread_sweeps_until_stopped(spawn):
    marker = f"botwatch-test-{uuid.uuid4().hex}"
    w, st = real(f"bots: [{{name: bg, watch: {{process: {{cmdline: '{marker}'}}}}}}]")
    w.start()
    try:
        p = spawn(sleeper(marker))
        wait_for(lambda: view(st, "bg").runs_in_progress == 1, what="the thread to see the run")
        kill_tree(p)
        wait_for(lambda: view(st, "bg").runs_total == 1, what="the thread to see the end")
    finally:
        w.stop()
    assert w._thread is None
    sweeps = w.sweeps
    time.sleep(0.5)
    assert w.sweeps == sweeps


def test_a_real_agent_reports_watched_runs_hung_bots_and_shadow_bots(spawn, fake_robot, agents, run_env, tmp_path):
    """The whole path: real processes, the agent's own watcher thread, /metrics, the API and
    `botwatch status --unregistered`."""
    from conftest import free_port, http_get, write_estate

    marker = f"botwatch-test-{uuid.uuid4().hex}"
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", f"""\
        - name: stuck
          max_runtime: 1s
          watch: {{process: {{cmdline: '{marker}'}}}}
        """, port, extra="  process_interval: 0.2s\n")
    agent = agents(config, port).start()
    bot = spawn(sleeper(marker))
    shadow_bot = spawn([str(fake_robot), "--password", "hunter2", "tasks.robot"])

    def shadow_listed():
        status, body = http_get(agent.url + "/api/v1/unregistered")
        return status == 200 and [p for p in json.loads(body)["processes"] if p["pid"] == shadow_bot.pid]

    (item,) = wait_for(shadow_listed, what="the shadow robot in the agent's list")
    assert item["platform"] == "robotframework" and "hunter2" not in item["cmdline"]
    wait_for(lambda: agent.metrics().get('botwatch_bot_hung{bot="stuck"}') == 1, what="the hung flag")
    m = agent.metrics()
    assert m['botwatch_run_in_progress{bot="stuck"}'] == 1 and m['botwatch_bot_processes{bot="stuck"}'] == 1
    assert m['botwatch_unregistered_bot_processes{platform="robotframework"}'] >= 1
    r = subprocess.run([*BOTWATCH, "status", "--unregistered", "--agent", agent.url], capture_output=True, text=True,
                       env={**run_env, "COLUMNS": "400"})
    assert r.returncode == 0 and str(shadow_bot.pid) in r.stdout and "--password [REDACTED]" in r.stdout, r.stdout
    kill_tree(bot)
    wait_for(lambda: agent.metrics().get('botwatch_runs_total{bot="stuck"}') == 1, what="the run's end")
    status, body = http_get(agent.url + "/api/v1/status")
    (stuck,) = json.loads(body)["bots"]
    assert stuck["last_outcome"] == "unknown" and stuck["hung"] is False and stuck["runs_in_progress"] == 0
    kill_tree(shadow_bot)
    wait_for(lambda: not shadow_listed(), what="the shadow robot to leave the list")


def test_a_watched_bot_run_with_a_password_on_its_command_line_is_a_governance_finding(spawn, tmp_path):
    from botwatch.governance import governance_for_state

    marker = f"botwatch-test-{uuid.uuid4().hex}"
    w, st = real(f"""
        bots:
          - name: leaky
            watch: {{process: {{cmdline: '{marker}'}}}}
          - name: tidy
            watch: {{process: {{cmdline: '{marker}-tidy'}}}}
        """)
    leaky = spawn(sleeper(marker, "--password", "hunter2"))
    spawn(sleeper(f"{marker}-tidy", "--user", "svc"))
    swept_until(w, lambda: "leaky" in st.cmdline_secrets and view(st, "tidy").runs_in_progress == 1,
                "the sweep to see both bots' processes")
    findings = governance_for_state(st).refresh()
    (secret,) = [f for f in findings["leaky"] if f.check == "plaintext_secret"]
    assert not secret.ok and str(leaky.pid) in secret.detail and "hunter2" not in repr(secret)
    assert all(f.ok for f in findings["tidy"] if f.check == "plaintext_secret")
    kill_tree(leaky)
    swept_until(w, lambda: "leaky" not in st.cmdline_secrets, "the process to be gone")
