"""Windows processes: the bot's tree held in a job object (ended with it on a timeout, its CPU
time and peak memory read from the job's accounting), GUI bots asked to close, and the deliverer
started out of the caller's job and folder.

The decisions and the reading of the job's structures are tested as logic on Linux, with fake
Popen and kernel32 stand-ins; the tests marked "Windows only" run real bots on a Windows host."""

from __future__ import annotations

import ctypes
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from botwatch._platform import posix, winclose, windows, winjob
from botwatch.client import runrecord

PY = sys.executable
WAIT = 60.0  # bounds a hang; never an assertion of speed
GIB = 2 ** 30
windows_only = pytest.mark.windows_only("job objects and windows")
posix_only = pytest.mark.posix_only("the POSIX child and spawn")
x64 = pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="the 64-bit layout")


# -- the job's structures, read from raw bytes ----------------------------------------------------

@x64
def test_the_structures_have_the_windows_x64_layout():
    # sizes and offsets of the Windows SDK's x64 headers: a shifted field would read garbage
    assert ctypes.sizeof(winjob.BasicAccounting) == 48
    assert ctypes.sizeof(winjob.BasicLimits) == 64
    assert ctypes.sizeof(winjob.IoCounters) == 48
    assert ctypes.sizeof(winjob.ExtendedLimits) == 144
    assert winjob.BasicLimits.LimitFlags.offset == 16
    assert winjob.ExtendedLimits.PeakJobMemoryUsed.offset == 136
    assert winjob.BasicAccounting.TotalProcesses.offset == 36


def test_cpu_seconds_are_user_and_kernel_time_in_100_ns_ticks():
    raw = bytes(winjob.BasicAccounting(TotalUserTime=12_500_000, TotalKernelTime=2_500_001,
                                       ThisPeriodTotalUserTime=99 * 10 ** 7, TotalProcesses=4,
                                       ActiveProcesses=0, TotalTerminatedProcesses=4))
    # every process has ended: the job still counts their time (the POSIX rusage of the reaped tree)
    assert winjob.cpu_seconds_of(raw) == pytest.approx(1.5000001)
    assert winjob.cpu_seconds_of(bytes(winjob.BasicAccounting())) == 0.0


def test_peak_memory_is_the_peak_of_the_whole_job_not_of_one_process():
    limits = winjob.ExtendedLimits(PeakProcessMemoryUsed=1 * GIB, PeakJobMemoryUsed=3 * GIB)
    limits.BasicLimitInformation.LimitFlags = 0x800
    assert winjob.peak_memory_of(bytes(limits)) == 3 * GIB


def test_the_process_id_list_is_read_as_far_as_it_was_filled():
    def id_list(assigned: int, ids: list[int], room: int) -> bytes:
        head = winjob.ProcessIdsHead(NumberOfAssignedProcesses=assigned, NumberOfProcessIdsInList=len(ids))
        return bytes(head) + bytes((ctypes.c_size_t * room)(*ids))

    assert winjob.process_ids_of(id_list(3, [4120, 5532, 880], 4)) == ([4120, 5532, 880], 3)
    assert winjob.process_ids_of(id_list(9, [4120, 5532], 2)) == ([4120, 5532], 9)  # more than fit
    claims_more = bytes(winjob.ProcessIdsHead(5, 5)) + bytes((ctypes.c_size_t * 2)(7, 8))
    assert winjob.process_ids_of(claims_more) == ([7, 8], 5)  # never read past the buffer


def test_the_job_allows_breakaway_and_does_not_kill_its_processes_when_closed():
    flags = winjob.ExtendedLimits.from_buffer_copy(winjob.breakaway_limits()).BasicLimitInformation.LimitFlags
    assert flags & winjob.JOB_OBJECT_LIMIT_BREAKAWAY_OK
    assert not flags & 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: a killed wrapper must not kill the bot


# -- a job, over a kernel32 stand-in ----------------------------------------------------------------

def winerror(code: int) -> OSError:
    exc = OSError(13, "refused")
    exc.winerror = code  # what ctypes.WinError sets on Windows
    return exc


class FakeKernel32:
    """Answers the job calls from structures built here, and records what was asked."""

    def __init__(self, pids=(), refuse: dict[str, OSError] | None = None):
        self.calls: list[tuple] = []
        self.pids, self.refuse = list(pids), refuse or {}
        self.accounting = winjob.BasicAccounting(TotalUserTime=30_000_000, TotalKernelTime=5_000_000)
        self.limits = winjob.ExtendedLimits(PeakJobMemoryUsed=200 * 2 ** 20)

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name in self.refuse:
            raise self.refuse[name]

    def create_job(self):
        self._call("create_job")
        return 77

    def assign(self, job, pid):
        self._call("assign", job, pid)

    def set_information(self, job, info_class, data):
        self._call("set_information", job, info_class, data)

    def query(self, job, info_class, size):
        self._call("query", job, info_class, size)
        if info_class == winjob.BASIC_ACCOUNTING:
            return bytes(self.accounting)[:size]
        if info_class == winjob.EXTENDED_LIMITS:
            return bytes(self.limits)[:size]
        room = (size - ctypes.sizeof(winjob.ProcessIdsHead)) // ctypes.sizeof(ctypes.c_size_t)
        if room < len(self.pids):
            raise winerror(winjob.ERROR_MORE_DATA)
        head = winjob.ProcessIdsHead(len(self.pids), len(self.pids))
        return bytes(head) + bytes((ctypes.c_size_t * room)(*self.pids))

    def terminate(self, job, exit_code):
        self._call("terminate", job, exit_code)

    def close(self, handle):
        self._call("close", handle)


def test_a_job_reads_its_accounting_and_ends_its_processes():
    api = FakeKernel32(pids=range(1000, 1300))  # more than the first buffer holds
    job, why = winjob.contain(4242, api)
    assert why is None and job is not None
    assert ("assign", 77, 4242) in api.calls
    assert ("set_information", 77, winjob.EXTENDED_LIMITS, winjob.breakaway_limits()) in api.calls
    assert job.cpu_seconds() == pytest.approx(3.5)
    assert job.peak_memory() == 200 * 2 ** 20
    assert job.pids() == list(range(1000, 1300))
    job.terminate()
    assert api.calls[-1] == ("terminate", 77, winjob.KILLED_EXIT_CODE)


def test_a_bot_that_cannot_join_a_job_runs_without_one_and_says_why():
    api = FakeKernel32(refuse={"assign": winerror(5)})
    job, why = winjob.contain(4242, api)
    assert job is None and why.startswith("cannot put the bot in a job object") and "refused" in why
    assert api.calls[-1] == ("close", 77)  # the unused job is not left open
    job, why = winjob.contain(4242, FakeKernel32(refuse={"create_job": winerror(1450)}))
    assert job is None and why.startswith("cannot create a job object")
    job, _ = winjob.contain(4242, FakeKernel32(refuse={"set_information": winerror(87)}))
    assert job is not None  # no breakaway for its processes: the job still holds the tree


def test_a_job_is_never_made_where_there_is_no_kernel32():
    if sys.platform == "win32":
        pytest.skip("kernel32 is there")
    job, why = winjob.contain(os.getpid())
    assert job is None and "Windows only" in why


def test_only_the_windows_of_the_trees_processes_are_closed_and_never_a_console():
    windows_seen = [(0x10, 4120, "WindowsForms10.Window.8.app.0.1"), (0x20, 880, "TkTopLevel"),
                    (0x30, 4120, "Chrome_WidgetWin_1"), (0x40, 9999, "Notepad"),
                    (0x50, 880, "ConsoleWindowClass"), (0x60, 4120, "PseudoConsoleWindow")]
    # closing a console would end every process attached to it, the wrapper's own too
    assert winclose.windows_to_close(windows_seen, {4120, 880}) == [0x10, 0x20, 0x30]
    assert winclose.windows_to_close(windows_seen, set()) == []


# -- the Windows child: its job, its ending, its accounting (fake Popen) ----------------------------

class FakeProc:
    """What windows.Child uses of a subprocess.Popen."""

    def __init__(self, pid: int, status: int | None = None):
        self.pid, self.status = pid, status
        self.stdout, self.stderr = io.BytesIO(b""), io.BytesIO(b"")
        self.signals: list[int] = []

    def poll(self):
        return self.status

    def send_signal(self, sig):
        self.signals.append(sig)


class FakeJob:
    def __init__(self, pids=(), refuse: OSError | None = None):
        self.job_pids, self.refuse, self.terminated = list(pids), refuse, 0

    def _check(self):
        if self.refuse:
            raise self.refuse

    def cpu_seconds(self):
        self._check()
        return 12.25

    def peak_memory(self):
        self._check()
        return 3 * GIB

    def pids(self):
        self._check()
        return self.job_pids

    def terminate(self):
        self._check()
        self.terminated += 1


class Seen:
    """A descendant the wrapper's sampler saw (a psutil.Process)."""

    def __init__(self, pid: int):
        self.pid, self.killed = pid, 0

    def kill(self):
        self.killed += 1


@pytest.fixture
def closed(monkeypatch) -> list[set[int]]:
    asked: list[set[int]] = []
    monkeypatch.setattr(winclose, "close_windows", lambda pids: asked.append(set(pids)) or len(pids))
    return asked


def windows_child(monkeypatch, proc: FakeProc, job: FakeJob | None, why: str | None = None):
    started: list[dict] = []

    def popen(argv, **kw):
        started.append({"argv": argv, **kw})
        return proc

    monkeypatch.setattr(winjob, "contain", lambda pid: (job, why) if pid == proc.pid else (None, "wrong pid"))
    child = windows.Child(["bot.exe", "--nightly"], popen=popen)
    assert started[0]["argv"] == ["bot.exe", "--nightly"]
    assert started[0]["creationflags"] == windows.CREATE_NEW_PROCESS_GROUP
    return child


@pytest.fixture
def sleeper():
    """A real process of ours: what a kill without a job must end (and one with a job must not)."""
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def test_cpu_and_peak_memory_come_from_the_job(monkeypatch):
    child = windows_child(monkeypatch, FakeProc(4120), FakeJob())
    assert child.warning is None
    assert child.rusage_cpu() == 12.25  # was None on Windows: only the samples told
    assert child.peak_memory() == 3 * GIB


def test_without_a_job_cpu_and_peak_memory_are_left_to_the_samples(monkeypatch):
    child = windows_child(monkeypatch, FakeProc(4120), None, "cannot put the bot in a job object (Access is denied)")
    assert child.rusage_cpu() is None and child.peak_memory() is None
    assert child.warning.startswith("cannot put the bot in a job object (Access is denied): ")
    assert "the bot runs on" in child.warning
    gone = windows_child(monkeypatch, FakeProc(4120), FakeJob(refuse=winerror(6)))
    assert gone.rusage_cpu() is None and gone.peak_memory() is None  # a job that no longer answers


def test_a_bot_that_ended_before_joining_its_job_is_not_warned_about(monkeypatch):
    child = windows_child(monkeypatch, FakeProc(4120, status=0), None, "cannot put the bot in a job object (x)")
    assert child.warning is None


def test_terminate_breaks_the_console_group_and_closes_the_windows_of_the_whole_job(monkeypatch, closed):
    # 5532's parent exited: only the job still knows it
    child = windows_child(monkeypatch, proc := FakeProc(4120), FakeJob(pids=[4120, 880, 5532]))
    child.terminate_tree([Seen(880)])
    assert proc.signals == [windows.CTRL_BREAK_EVENT]
    assert closed == [{4120, 880, 5532}]


def test_terminate_without_a_job_closes_the_windows_of_the_processes_last_seen(monkeypatch, closed):
    child = windows_child(monkeypatch, proc := FakeProc(4120), None, "cannot put the bot in a job object (x)")
    child.terminate_tree([Seen(880), Seen(5532)])
    assert proc.signals == [windows.CTRL_BREAK_EVENT]
    assert closed == [{4120, 880, 5532}]
    refusing = windows_child(monkeypatch, FakeProc(4120), FakeJob(refuse=winerror(6)))
    refusing.terminate_tree([Seen(880)])
    assert closed[-1] == {4120, 880}


def test_kill_ends_the_job_and_not_the_processes_one_by_one(monkeypatch, sleeper):
    job = FakeJob(pids=[sleeper.pid])
    child = windows_child(monkeypatch, FakeProc(sleeper.pid), job)
    seen = [Seen(880)]
    child.kill_tree(seen)
    assert job.terminated == 1
    assert seen[0].killed == 0 and sleeper.poll() is None  # the job ends them all, those unseen too


@pytest.mark.parametrize("job", [None, FakeJob(refuse=winerror(5))], ids=["no job", "job refuses"])
def test_kill_without_a_working_job_kills_the_bot_and_the_processes_last_seen(monkeypatch, sleeper, job):
    child = windows_child(monkeypatch, FakeProc(sleeper.pid), job, None if job else "cannot create a job object (x)")
    seen = [Seen(880), Seen(5532)]
    child.kill_tree(seen)
    assert [s.killed for s in seen] == [1, 1]
    assert sleeper.wait(timeout=WAIT) is not None  # the bot itself, through psutil


# -- the deliverer: out of the caller's job and folder ----------------------------------------------

class FakePopen:
    """Records each start; refuses the first ones with the errors given."""

    def __init__(self, *errors: OSError):
        self.errors, self.starts = list(errors), []

    def __call__(self, argv, **kw):
        self.starts.append({"argv": argv, **kw})
        if self.errors:
            raise self.errors.pop(0)
        return f"process {len(self.starts)}"


DELIVER = [r"C:\Python311\python.exe", "-m", "botwatch.deliver", "--spool", r"C:\Users\svc\AppData\Local\botwatch\x.db"]
STATE = r"C:\Users\svc\AppData\Local\botwatch"


def test_the_deliverer_breaks_away_from_the_job_of_the_task_that_started_it():
    popen = FakePopen()
    assert windows.spawn_detached(DELIVER, STATE, popen=popen) == "process 1"
    [start] = popen.starts
    assert start["argv"] == DELIVER and start["cwd"] == STATE
    assert start["creationflags"] == (windows.CREATE_BREAKAWAY_FROM_JOB | windows.DETACHED_PROCESS
                                      | windows.CREATE_NEW_PROCESS_GROUP | windows.CREATE_NO_WINDOW)
    assert start["creationflags"] & 0x01000000
    assert start["stdin"] == start["stdout"] == start["stderr"] == subprocess.DEVNULL and start["close_fds"]


def test_a_job_that_forbids_breakaway_gets_the_deliverer_started_inside_it():
    popen = FakePopen(winerror(5))  # ERROR_ACCESS_DENIED: the job does not allow breakaway
    assert windows.spawn_detached(DELIVER, STATE, popen=popen) == "process 2"
    assert [s["creationflags"] & windows.CREATE_BREAKAWAY_FROM_JOB for s in popen.starts] == [
        windows.CREATE_BREAKAWAY_FROM_JOB, 0]
    assert popen.starts[1]["creationflags"] == windows.DETACHED_FLAGS
    assert [s["cwd"] for s in popen.starts] == [STATE, STATE]


@pytest.mark.parametrize("error", [winerror(2), OSError(12, "Cannot allocate memory"), winerror(1455)],
                         ids=["not found", "no winerror", "paging file too small"])
def test_only_a_refused_breakaway_is_retried(error):
    popen = FakePopen(error)
    with pytest.raises(OSError) as raised:
        windows.spawn_detached(DELIVER, STATE, popen=popen)
    assert raised.value is error and len(popen.starts) == 1


def test_a_deliverer_refused_twice_is_an_error_for_the_caller_to_warn_about():
    popen = FakePopen(winerror(5), winerror(5))
    with pytest.raises(OSError):
        windows.spawn_detached(DELIVER, STATE, popen=popen)
    assert len(popen.starts) == 2


def test_on_posix_the_deliverer_gets_its_own_session_and_folder():
    popen = FakePopen()
    posix.spawn_detached(["/usr/bin/python3", "-m", "botwatch.deliver"], "/var/lib/bots/state", popen=popen)
    [start] = popen.starts
    assert start["cwd"] == "/var/lib/bots/state" and start["start_new_session"] and start["close_fds"]


@posix_only
def test_on_posix_a_detached_helper_really_runs_in_the_folder_given(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    child = posix.spawn_detached([PY, "-c", "import os; open('where', 'w').write(os.getcwd())"], str(folder))
    assert child.wait(timeout=WAIT) == 0
    assert (folder / "where").read_text() == str(folder)


@pytest.fixture
def spawned(monkeypatch) -> list[tuple[list[str], str | None]]:
    calls: list[tuple[list[str], str | None]] = []
    monkeypatch.delenv("BOTWATCH_NO_DELIVERY", raising=False)
    monkeypatch.setattr(runrecord._platform, "spawn_detached",
                        lambda argv, cwd=None: calls.append((argv, cwd)) or f"deliverer {len(calls)}")
    return calls


def test_the_deliverer_runs_in_the_spools_folder_not_the_bots(tmp_path, monkeypatch, spawned):
    bot_folder = tmp_path / "bot"
    bot_folder.mkdir()
    monkeypatch.chdir(bot_folder)
    said: list = []
    assert runrecord.start_deliverer(os.path.join("..", "spools", "spool.db"), lambda *a: said.append(a)) is None
    assert runrecord.start_deliverer(str(tmp_path / "spools" / "spool.db"), lambda *a: said.append(a),
                                     reap=True) == "deliverer 2"
    spools = str(tmp_path / "spools")
    # a relative spool is made absolute, and the caller's folder is not on its import path (-P)
    argv = [PY, "-P", "-m", "botwatch.deliver", "--spool", os.path.join(spools, "spool.db")]
    # `botwatch run` on POSIX: spawned without a handle where it is (the deliverer moves itself);
    # a caller that keeps the handle, and Windows, start it in the spool's folder
    first_folder = spools if os.name == "nt" else None
    assert spawned == [(argv, first_folder), (argv, spools)]
    assert said == []
    assert runrecord.deliverer_folder(os.path.join("..", "spools", "spool.db")) == spools


def test_the_deliverer_moves_to_its_spools_folder_before_anything_else(tmp_path):
    spools, bot_folder = tmp_path / "spools", tmp_path / "bot"
    spools.mkdir()
    bot_folder.mkdir()
    probe = ("import os, sys\nfrom botwatch.client import deliver\n"
             f"sys.argv = ['deliver', '--spool', {str(spools / 'spool.db')!r}, '--patience', '0']\n"
             "deliver.main()\nprint(os.getcwd())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWATCH_")}
    done = subprocess.run([PY, "-c", probe], cwd=bot_folder, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert os.path.realpath(done.stdout.strip()) == os.path.realpath(spools)


@posix_only
def test_botwatch_run_spawns_its_deliverer_without_loading_subprocess(tmp_path):
    # the wrapper's hot path: posix_spawn, no subprocess module (threading, selectors, locale)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWATCH_")}
    env["BOTWATCH_SPOOL"] = str(tmp_path / "spool.db")
    env["BOTWATCH_AGENT_URL"] = "http://127.0.0.1:9"  # nothing listens: the deliverer gives up later
    env["BOTWATCH_DELIVERY_PATIENCE"] = "0"
    done = subprocess.run([PY, "-X", "importtime", "-m", "botwatch", "run", "--bot", "b", "--", PY, "-c", "pass"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "botwatch.client.spool" in imported and "subprocess" not in imported


# -- the wrapper: what the platform accounted reaches the run record --------------------------------

def wrapper_env(spool: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL", "BOTWATCH_DELIVERY_PATIENCE")}
    env.update(BOTWATCH_SPOOL=str(spool), BOTWATCH_NO_DELIVERY="1")
    return env


def finished_run(spool: Path) -> dict:
    db = sqlite3.connect(spool)
    try:
        rows = db.execute("SELECT event FROM outbox WHERE kind = 'finish'").fetchall()
    finally:
        db.close()
    assert len(rows) == 1, rows
    return json.loads(rows[0][0])


@posix_only
def test_the_platforms_cpu_and_peak_memory_and_its_warning_reach_the_run(tmp_path):
    # as a Windows child with a job reports them: more than the wrapper's samples of `true` saw
    code = textwrap.dedent("""
        import sys
        from botwatch import _platform
        from botwatch._platform import posix

        class Accounted(posix.Child):
            def __init__(self, argv):
                super().__init__(argv)
                self.warning = "cannot put the bot in a job object (refused)"

            def rusage_cpu(self):
                return 42.5

            def peak_memory(self):
                return 5 * 2 ** 30

        _platform.Child = Accounted
        from botwatch.client.wrapper import main
        sys.exit(main(["--bot", "b", "--", "true"]))
        """)
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, timeout=WAIT,
                          env=wrapper_env(tmp_path / "spool.db"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().count("botwatch: warning: cannot put the bot in a job object (refused)") == 1
    event = finished_run(tmp_path / "spool.db")
    assert event["cpu_seconds"] == 42.5 and event["peak_rss_bytes"] == 5 * GIB


# -- on a Windows host: real bots -------------------------------------------------------------------

def botwatch_run(tmp_path: Path, options: list[str], cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "botwatch", "run", "--bot", "b", *options, "--", *cmd], cwd=tmp_path,
                          capture_output=True, timeout=600, env=wrapper_env(tmp_path / "spool.db"))


def write_script(path: Path, code: str) -> str:
    path.write_text(textwrap.dedent(code))
    return str(path)


def grandchild_of_an_ended_parent(tmp_path: Path, grandchild_code: str) -> str:
    """bot.py: starts middle.py, which starts the grandchild in a process group of its own and
    exits; Windows does not re-parent, so no walk down from the bot finds the grandchild."""
    write_script(tmp_path / "grandchild.py", grandchild_code)
    write_script(tmp_path / "middle.py", """
        import subprocess, sys
        subprocess.Popen([sys.executable, "grandchild.py"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
        """)
    return write_script(tmp_path / "bot.py", """
        import os, subprocess, sys, time
        subprocess.run([sys.executable, "middle.py"], check=True)
        while not os.path.exists("grandchild.done"):
            time.sleep(0.05)
        print("grandchild ready", flush=True)
        if "--stay" in sys.argv:
            time.sleep(600)
        """)


@windows_only
def test_a_timeout_ends_the_grandchild_of_an_ended_parent_through_the_job(tmp_path):
    bot = grandchild_of_an_ended_parent(tmp_path, """
        import os, signal, time
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)  # Ctrl-Break does not end it: only a kill does
        open("grandchild.pid", "w").write(str(os.getpid()))
        os.replace("grandchild.pid", "grandchild.done")
        time.sleep(600)
        """)
    result = botwatch_run(tmp_path, ["--timeout", "15s", "--kill-grace", "5s"], [PY, bot, "--stay"])
    pid = int((tmp_path / "grandchild.done").read_text())
    try:
        assert result.returncode == 124, result.stderr
        assert b"grandchild ready" in result.stdout
        assert b"job object" not in result.stderr  # the bot was in its job
        try:
            psutil.Process(pid).wait(timeout=WAIT)  # TimeoutExpired: the grandchild outlived the run
        except psutil.NoSuchProcess:
            pass
        assert not psutil.pid_exists(pid)
        assert finished_run(tmp_path / "spool.db")["timed_out"] is True
    finally:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


@windows_only
def test_cpu_seconds_and_peak_memory_of_a_grandchild_no_sample_sees_are_recorded(tmp_path):
    bot = grandchild_of_an_ended_parent(tmp_path, """
        import os, time
        block = bytearray(80 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        end = time.process_time() + 1.5
        while time.process_time() < end:
            pass
        open("grandchild.pid", "w").write(str(os.getpid()))
        os.replace("grandchild.pid", "grandchild.done")
        """)
    result = botwatch_run(tmp_path, [], [PY, bot])
    assert result.returncode == 0, result.stderr
    event = finished_run(tmp_path / "spool.db")
    assert event["cpu_seconds"] >= 1.5  # the job's accounting, ended processes included
    assert event["peak_rss_bytes"] >= 80 * 1024 * 1024


@windows_only
def test_a_gui_bot_is_asked_to_close_its_window_on_a_timeout(tmp_path):
    pytest.importorskip("tkinter")
    bot = write_script(tmp_path / "gui_bot.py", """
        import signal, tkinter
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)  # as a GUI program without a console: deaf to it
        root = tkinter.Tk()
        root.title("invoice entry")

        def closed():
            open("closed", "w").write("asked to close")
            root.destroy()

        root.protocol("WM_DELETE_WINDOW", closed)
        root.after(0, lambda: open("up", "w").write("up"))
        root.mainloop()
        """)
    # a long grace: were the window not asked to close, the bot would be killed without a word
    result = botwatch_run(tmp_path, ["--timeout", "15s", "--kill-grace", "300s"], [PY, bot])
    assert (tmp_path / "up").exists(), result.stderr
    assert result.returncode == 124, result.stderr
    assert (tmp_path / "closed").read_text() == "asked to close"
    event = finished_run(tmp_path / "spool.db")
    assert event["timed_out"] is True and event["exit_status"] == 0


@windows_only
def test_a_windows_deliverer_really_starts_in_the_folder_given(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    child = windows.spawn_detached([PY, "-c", "import os; open('where', 'w').write(os.getcwd())"], str(folder))
    assert child.wait(timeout=WAIT) == 0
    assert os.path.samefile((folder / "where").read_text(), folder)
