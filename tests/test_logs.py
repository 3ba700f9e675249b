"""Log watching: real files, real writer processes, rotation both ways, agent restarts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path


from botwatch.config.estate import BotConfig, Estate, LoadedEstate, LogSpec, WatchConfig
from botwatch.core.events import RunFinished, RunStarted
from botwatch.state.journal import Journal, JournalError
from botwatch.parsers.base import PARSERS, FileParser, IncompleteFile, ParseError
from botwatch.sources.logs import LogWatcher
from botwatch.state.runtime import EstateState

from conftest import wait_for

RUNS = 150  # runs the writer process logs


class RecordingState(EstateState):
    """Estate state that remembers every event it accepted (across agent restarts)."""

    def __init__(self, *args, delivered: list, **kwargs):
        self.delivered = delivered
        super().__init__(*args, **kwargs)

    def apply(self, events, offsets=None):
        events = list(events)
        result = super().apply(events, offsets)
        self.delivered.append(events)
        return result


class FlakyJournal(Journal):
    """A journal that refuses writes while `fail` is set (a full disk, a locked file)."""

    fail = False

    @contextmanager
    def transaction(self):
        if self.fail:
            raise JournalError(f"{self.path}: disk I/O error")
        with super().transaction() as j:
            yield j


class Agent:
    """What of an agent log watching needs: a journal, the estate state, the watcher.
    `restart()` throws them away without a word (as a killed agent would) and starts anew."""

    def __init__(self, tmp_path: Path, bots: list[BotConfig], journal_cls=Journal, **watcher_kw):
        self.tmp, self.journal_cls, self.watcher_kw = tmp_path, journal_cls, watcher_kw
        self.loaded = LoadedEstate(Estate(bots=bots), tmp_path / "botwatch.yaml")
        self.delivered: list[list] = []  # accepted batches, all lifetimes
        self.lifetimes: list[list[list]] = []
        self._start()

    def _start(self) -> None:
        self.journal = self.journal_cls(self.tmp / "journal.db")
        self.lifetimes.append([])
        self.state = RecordingState(self.loaded.estate, self.journal, delivered=self.lifetimes[-1])
        self.watcher = LogWatcher(self.loaded, self.state, self.journal, use_watchdog=False, **self.watcher_kw)

    def restart(self) -> None:
        self.journal.close()
        self._start()

    def poll(self) -> int:
        return self.watcher.poll_once()

    def events(self, kind=None) -> list:
        out = [e for life in self.lifetimes for batch in life for e in batch]
        return [e for e in out if kind is None or isinstance(e, kind)]

    def runs(self, bot: str = "b") -> dict[str, RunFinished]:
        return {r.run_id: r for r in self.journal.iter_runs() if r.bot == bot}

    def parse_errors(self) -> dict:
        return self.state.self_metrics()["parse_errors"]


def bot(*specs: dict, name: str = "b") -> BotConfig:
    return BotConfig(name=name, watch=WatchConfig(logs=[LogSpec(**s) for s in specs]))


REGEX = {"format": "regex", "start": r"start (?P<run_id>\d+)", "end": r"end (?P<run_id>\d+) (?P<status>\w+)",
         "error": r"ERROR (?P<message>.*)"}


def append(path: Path, text: str, encoding: str = "utf-8") -> None:
    with open(path, "ab") as fh:
        fh.write(text.encode(encoding))


def assert_each_finished_once(agent: Agent) -> None:
    ids = [e.run_id for e in agent.events(RunFinished)]
    assert len(ids) == len(set(ids)), "a run was read twice"


# -- lines ------------------------------------------------------------------------------------


def test_a_partial_last_line_waits_until_the_writer_completes_it(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:05Z end 1 fai", encoding="utf-8")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})], idle_flush=3600)
    assert agent.poll() == 1
    assert [e.run_id for e in agent.events(RunStarted)] == ["1"] and agent.runs() == {}
    append(log, "led\r\n")
    assert agent.poll() == 1
    assert agent.runs()["1"].outcome == "failure"  # "failed", not the "fai" it was at first
    assert agent.poll() == 0


def test_a_last_line_never_ended_is_read_once_the_file_is_quiet(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:05Z end 1 ok", encoding="utf-8")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})], idle_flush=0)
    agent.poll()  # sees the unended line
    agent.poll()  # and it has not changed since: it is whole
    assert agent.runs()["1"].outcome == "success"
    append(log, "\n2024-05-01T07:01:00Z start 2\n2024-05-01T07:01:05Z end 2 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2"]
    assert_each_finished_once(agent)
    assert agent.parse_errors() == {}


def test_files_that_appear_later_are_read_from_their_start(tmp_path):
    agent = Agent(tmp_path, [bot({"path": "later/bot.log", **REGEX},
                                 {"path": "spool/*/run-*.log", **REGEX})])
    assert agent.poll() == 0
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "bot.log").write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z end 1 ok\n")
    (tmp_path / "spool" / "mon").mkdir(parents=True)
    (tmp_path / "spool" / "mon" / "run-1.log").write_text("2024-05-01T08:00:00Z start 2\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1"]
    (tmp_path / "spool" / "tue").mkdir()
    (tmp_path / "spool" / "tue" / "run-2.log").write_text("2024-05-02T08:00:00Z start 3\n"
                                                          "2024-05-02T08:00:09Z end 3 ok\n")
    append(tmp_path / "spool" / "mon" / "run-1.log", "2024-05-01T08:00:30Z end 2 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2", "3"]
    assert agent.runs()["2"].duration == 30.0
    assert_each_finished_once(agent)


def test_a_restart_neither_rereads_nor_skips_a_line(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z ERROR first\n", encoding="utf-8")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})], idle_flush=3600)
    agent.poll()
    agent.restart()
    append(log, "2024-05-01T07:00:02Z ERROR second\n2024-05-01T07:00:03Z end 1 done\n2024-05-01T07:01:00Z sta")
    agent.poll()
    agent.restart()
    append(log, "rt 2\n2024-05-01T07:01:01Z end 2 ok\n")
    agent.poll()
    runs = agent.runs()
    assert runs["1"].output_tail == "first\nsecond"  # the error read before the restart is kept
    assert (runs["1"].outcome, runs["2"].outcome) == ("failure", "success")
    assert runs["1"].started == runs["2"].started - 60  # times from the log
    assert_each_finished_once(agent)
    # the run in progress at the first restart was announced again by the new agent, once; the
    # start line cut by the second restart was read whole by the third agent
    assert [[e.run_id for b in life for e in b if isinstance(e, RunStarted)] for life in agent.lifetimes] == \
        [["1"], ["1"], ["2"]]


def test_a_journal_that_cannot_be_written_advances_nothing(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z ERROR Logon failed for user 'x'\n")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX, "format": "regex"})], journal_cls=FlakyJournal)
    agent.poll()
    append(log, "2024-05-01T07:00:03Z end 1 failed\nnot a line of interest\n")
    agent.journal.fail = True
    for _ in range(3):
        agent.poll()
    assert agent.runs() == {} and agent.state.bots["b"].runs_total == 0
    key = f"b:{os.path.normcase(os.path.abspath(log))}"
    assert agent.journal.offset(key)[1] == len("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z ERROR Logon "
                                               "failed for user 'x'\n")
    agent.journal.fail = False
    agent.poll()
    (run,) = agent.runs().values()
    assert (run.outcome, run.reason, run.output_tail) == ("failure", "credentials", "Logon failed for user 'x'")
    assert agent.journal.offset(key)[1] == log.stat().st_size


def test_encodings_bom_and_replaced_bytes(tmp_path):
    # Windows PowerShell 5 writes UTF-16 LE with a BOM
    (tmp_path / "ps.log").write_bytes(
        "\ufeffINFO:root:Run started\r\nERROR:root:Échec: Could not find an asset with this name\r\n"
        "INFO:root:Run finished\r\n".encode("utf-16-le"))
    # a cp1252 log read as UTF-8: the bad bytes are replaced, the lines still read
    (tmp_path / "legacy.log").write_bytes("2024-05-01T07:00:00Z start 7 für\n2024-05-01T07:00:02Z end 7 ok\n"
                                          .encode("cp1252"))
    agent = Agent(tmp_path, [
        bot({"path": "ps.log", "format": "python", "encoding": "utf-16", "start": "^Run started",
             "end": "^Run finished"}, name="ps"),
        bot({"path": "legacy.log", **REGEX}, name="legacy")])
    agent.poll()
    (ps,) = agent.runs("ps").values()
    assert (ps.outcome, ps.reason) == ("failure", "credentials")
    assert ps.output_tail == "Échec: Could not find an asset with this name"
    assert agent.runs("legacy")["7"].outcome == "success"
    assert agent.parse_errors() == {}


# -- rotation ---------------------------------------------------------------------------------


def test_rotation_by_rename_while_the_agent_is_down(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    agent.journal.close()
    os.replace(log, tmp_path / "bot.log.1")
    append(tmp_path / "bot.log.1", "2024-05-01T07:00:04Z ERROR late line in the old file\n"
                                   "2024-05-01T07:00:05Z end 1 failed\n")
    log.write_text("2024-05-01T08:00:00Z start 2\n2024-05-01T08:00:01Z end 2 ok\n")
    agent._start()
    agent.poll()
    runs = agent.runs()
    assert runs["1"].output_tail == "late line in the old file" and runs["2"].outcome == "success"
    assert_each_finished_once(agent)


def test_a_rotated_file_is_followed_while_its_writer_still_appends_to_it(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    os.replace(log, tmp_path / "bot.log.1")
    log.write_text("2024-05-01T08:00:00Z start 2\n")
    agent.poll()
    # a writer that kept the old file open ends its run there, after the rotation was seen
    append(tmp_path / "bot.log.1", "2024-05-01T07:00:05Z end 1 ok\n")
    append(log, "2024-05-01T08:00:05Z end 2 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2"]
    # two more rotations between two polls, each file with lines not read yet
    append(log, "2024-05-01T09:00:00Z start 3\n")
    os.replace(tmp_path / "bot.log.1", tmp_path / "bot.log.2")
    os.replace(log, tmp_path / "bot.log.1")
    log.write_text("2024-05-01T09:00:01Z ERROR Could not find an asset with this name\n")
    os.replace(tmp_path / "bot.log.2", tmp_path / "bot.log.3")
    os.replace(tmp_path / "bot.log.1", tmp_path / "bot.log.2")
    os.replace(log, tmp_path / "bot.log.1")
    log.write_text("2024-05-01T09:00:02Z end 3 failed\n")
    agent.poll()
    assert agent.runs()["3"].reason == "credentials"
    assert_each_finished_once(agent)


def test_a_file_written_and_rotated_away_between_two_polls_is_read(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    os.replace(log, tmp_path / "bot.log.1")
    agent.poll()  # the writer has not made the next file yet
    log.write_text("2024-05-01T07:00:01Z ERROR Logon failed for user 'svc'\n")  # born ...
    os.replace(tmp_path / "bot.log.1", tmp_path / "bot.log.2")
    os.replace(log, tmp_path / "bot.log.1")  # ... and rotated before any poll saw it
    log.write_text("2024-05-01T07:00:02Z end 1 failed\n")
    agent.poll()
    assert agent.runs()["1"].reason == "credentials"
    agent.restart()
    agent.poll()
    assert_each_finished_once(agent)


def test_a_file_that_appears_and_is_rotated_before_the_first_poll_sees_it_is_read(tmp_path):
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()  # nothing there yet
    (tmp_path / "bot.log").write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z end 1 ok\n")
    os.replace(tmp_path / "bot.log", tmp_path / "bot.log.1")
    agent.poll()
    assert sorted(agent.runs()) == ["1"]


def test_rotated_files_older_than_the_watch_are_not_read_as_new(tmp_path):
    old = tmp_path / "bot.log.1"
    old.write_text("2024-04-30T07:00:00Z start 0\n2024-04-30T07:00:01Z end 0 ok\n")
    past = time.time() - 3600
    os.utime(old, (past, past))
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    (tmp_path / "bot.log").write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z end 1 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1"]


def test_copytruncate_reads_the_unread_end_from_the_copy(tmp_path):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    append(log, "2024-05-01T07:00:05Z end 1 ok\n")  # written, not yet read, when the copy is taken
    shutil.copyfile(log, tmp_path / "bot.log.1")
    with open(log, "r+b") as fh:
        fh.truncate(0)
    append(log, "2024-05-01T08:00:00Z start 2\n2024-05-01T08:00:01Z end 2 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2"]
    agent.restart()
    append(log, "2024-05-01T09:00:00Z start 3\n2024-05-01T09:00:01Z end 3 ok\n")
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2", "3"]
    assert_each_finished_once(agent)


def test_a_glob_matching_the_rotated_names_reads_each_file_once(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n")
    agent = Agent(tmp_path, [bot({"path": "app*.log", **REGEX})])
    agent.poll()
    os.replace(log, tmp_path / "app.1.log")
    append(tmp_path / "app.1.log", "2024-05-01T07:00:05Z end 1 ok\n")
    log.write_text("2024-05-01T08:00:00Z start 2\n2024-05-01T08:00:01Z end 2 ok\n")
    agent.poll()
    agent.restart()
    agent.poll()
    assert sorted(agent.runs()) == ["1", "2"]
    assert_each_finished_once(agent)
    assert [e.run_id for e in agent.events(RunStarted)] == ["1", "2"]


WRITER = textwrap.dedent(r'''
    import json, os, sys, time
    from datetime import datetime, timedelta, timezone

    path, runs, pause, paused = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    zone = timezone(timedelta(hours=2))
    n = 0

    def wait_while_paused():
        while os.path.exists(pause):
            try:
                token = open(pause).read()
            except OSError:
                continue
            tmp = paused + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(token)
            os.replace(tmp, paused)
            time.sleep(0.001)

    def write(level, message, job, t, **more):
        global n
        wait_while_paused()
        stamp = datetime.fromtimestamp(t, zone)
        entry = {"message": message, "level": {"Info": "Information"}.get(level, level), "logType": "Default",
                 "timeStamp": stamp.isoformat(timespec="microseconds"), "processName": "Überweisungen",
                 "jobId": job, "robotName": "ROBOT-1", "machineName": "VM-7", **more}
        data = (stamp.strftime("%H:%M:%S.%f")[:13] + f" {level} " + json.dumps(entry, ensure_ascii=False)
                + "\r\n").encode("utf-8")
        while True:
            try:
                fh = open(path, "ab")
                break
            except PermissionError:  # Windows: the file is being renamed
                time.sleep(0.001)
        with fh:
            n += 1
            if n % 5 == 0:  # some lines reach the disk in two writes
                fh.write(data[: len(data) // 2])
                fh.flush()
                time.sleep(0.002)
                fh.write(data[len(data) // 2:])
            else:
                fh.write(data)
        time.sleep(0.002)

    for i in range(runs):
        job, t = f"job-{i:04d}", 1_700_000_000 + 60 * i
        write("Info", "Überweisungen execution started", job, t)
        if i % 3 == 1:
            write("Error", f"Click 'Speichern' (run {i}): SelectorNotFoundException", job, t + 1)
        if i % 3 == 2:
            write("Error", f"Get Credential (run {i}): Logon failed for user 'svc'", job, t + 1)
            write("Error", f"Close (run {i}): the window was already closed", job, t + 2)
        write("Info", f"Zahlung {i} verbucht – 支払い", job, t + 3)
        write("Info", "Überweisungen execution ended", job, t + 4, totalExecutionTimeInSeconds=4)
''')


def _expected_errors(i: int) -> list[str]:
    return {0: [], 1: [f"Click 'Speichern' (run {i}): SelectorNotFoundException"],
            2: [f"Get Credential (run {i}): Logon failed for user 'svc'",
                f"Close (run {i}): the window was already closed"]}[i % 3]


def _replace(src: Path, dst: Path) -> None:
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError:  # Windows: the writer has it open for a moment
            time.sleep(0.001)


def test_a_steady_writer_rotated_both_ways_and_an_agent_restart_count_every_run_and_error_once(tmp_path):
    log = tmp_path / "Logs" / "execution.log"
    log.parent.mkdir()
    pause, paused = tmp_path / "pause", tmp_path / "paused"
    agent = Agent(tmp_path, [bot({"path": "Logs/execution.log", "format": "uipath"})])
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(RUNS), str(pause), str(paused)])
    generation = [0]  # rotated files so far (log.1 is the newest)

    def shift() -> None:
        for k in range(generation[0], 0, -1):
            _replace(Path(f"{log}.{k}"), Path(f"{log}.{k + 1}"))
        generation[0] += 1

    def rename_rotate() -> None:
        if log.exists():
            shift()
            _replace(log, Path(f"{log}.1"))  # the writer creates the next file itself

    def copytruncate() -> None:
        # as logrotate's copytruncate, with the writer held between two lines: what it writes
        # between the copy and the truncation would be lost by any reader
        token = str(time.monotonic_ns())
        pause.write_text(token)
        wait_for(lambda: writer.poll() is not None or (paused.exists() and paused.read_text() == token),
                 what="the writer to pause")
        if log.exists():
            shift()
            shutil.copyfile(log, f"{log}.1")
            with open(log, "r+b") as fh:
                fh.truncate(0)
        pause.unlink()

    rotate = {"rename": rename_rotate, "copytruncate": copytruncate}
    # one way, the other, and both one after the other with no poll in between
    plan = [["rename"], ["copytruncate"], ["rename", "copytruncate"], ["copytruncate", "rename"],
            ["rename", "rename"]]
    kinds = {"rename": 0, "copytruncate": 0}
    rounds, last = 0, time.monotonic()
    try:
        while writer.poll() is None:
            agent.poll()
            time.sleep(0.005)
            if time.monotonic() - last > 0.08:
                kinds_now = plan[rounds % len(plan)]
                for i, kind in enumerate(kinds_now):
                    rotate[kind]()
                    kinds[kind] += 1
                    time.sleep(0.01)  # the writer goes on meanwhile
                    if not (rounds == 3 and i == len(kinds_now) - 1):  # before the restart: one it never sees
                        agent.poll()  # a watcher polls every second; logs rotate far less often
                rounds += 1
                last = time.monotonic()
                if rounds == 4:
                    agent.restart()  # right after rotations the old agent did not see
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    assert writer.returncode == 0
    assert len(agent.lifetimes) == 2, "the writer finished before the agent restart"
    assert min(kinds.values()) >= 3

    wait_for(lambda: agent.poll() is not None and len(agent.runs()) >= RUNS, timeout=30,
             what=f"{RUNS} runs in the journal")
    runs = agent.runs()
    assert sorted(runs) == [f"job-{i:04d}" for i in range(RUNS)]
    for i in range(RUNS):
        run = runs[f"job-{i:04d}"]
        errors = _expected_errors(i)
        assert (run.output_tail or "").splitlines() == errors, run.run_id  # every error once, in its run
        assert run.outcome == ("failure" if errors else "success")
        assert run.reason == {0: None, 1: "ui_drift", 2: "credentials"}[i % 3]
        assert run.started == 1_700_000_000 + 60 * i and run.ended == run.started + 4
    assert_each_finished_once(agent)
    for life in agent.lifetimes:  # a run is announced at most once per agent
        started = [e.run_id for b in life for e in b if isinstance(e, RunStarted)]
        assert len(started) == len(set(started))
    assert agent.parse_errors() == {}
    assert agent.state.views()[0].runs_in_progress == 0


# -- the watcher thread ---------------------------------------------------------------------


def test_the_watcher_thread_wakes_on_file_system_events(tmp_path):
    (tmp_path / "logs").mkdir()
    loaded = LoadedEstate(Estate(bots=[bot({"path": "logs/*.log", **REGEX})]), tmp_path / "botwatch.yaml")
    journal = Journal(tmp_path / "journal.db")
    state = EstateState(loaded.estate, journal)
    # the periodic poll is an hour away: only file-system events make it read in time
    watcher = LogWatcher(loaded, state, journal, poll_interval=3600)
    watcher.start()
    try:
        time.sleep(0.2)  # its first poll is done (nothing to read); not needed for correctness
        (tmp_path / "logs" / "a.log").write_text("2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z end 1 ok\n")
        wait_for(lambda: journal.count_runs() == 1, timeout=20, what="the run read after a file-system event")
        append(tmp_path / "logs" / "a.log", "2024-05-01T07:01:00Z start 2\n2024-05-01T07:01:01Z end 2 ok\n")
        wait_for(lambda: journal.count_runs() == 2, timeout=20, what="the appended run")
    finally:
        watcher.stop()
    assert watcher._thread is None
    journal.close()


# -- whole-file formats ---------------------------------------------------------------------


class FakeRobotOutput(FileParser):
    """Stands in for the output.xml parser: a run per complete file."""

    source = "log:robot"
    calls: list[str] = []

    def __init__(self, bot_cfg):
        self.bot = bot_cfg.name

    def parse_file(self, path: Path):
        text = path.read_text(encoding="utf-8")
        FakeRobotOutput.calls.append(path.name)
        if "<robot" not in text:
            raise ParseError("not a Robot Framework output file")
        if "</robot>" not in text:
            raise IncompleteFile(str(path))
        rid = re.search(r'id="(\w+)"', text).group(1)
        return [RunFinished(self.bot, rid, ended=1_700_000_000.0, outcome="success", source=self.source)]


def test_a_whole_file_format_is_parsed_once_complete_and_again_when_rewritten(tmp_path, monkeypatch):
    monkeypatch.setitem(PARSERS, "robot", lambda bot_cfg, spec, classifier: FakeRobotOutput(bot_cfg))
    FakeRobotOutput.calls = []
    out = tmp_path / "out"
    out.mkdir()
    (out / "output.xml").write_text('<robot id="r1"><suite>', encoding="utf-8")
    (out / "notes.xml").write_text("<notes/>", encoding="utf-8")
    agent = Agent(tmp_path, [bot({"path": "out/*.xml", "format": "robot"})])
    for _ in range(3):
        agent.poll()
    assert sorted(FakeRobotOutput.calls) == ["notes.xml", "output.xml"]  # tried once each, unchanged since
    assert agent.runs() == {} and agent.parse_errors() == {"log:robot": 1}
    append(out / "output.xml", "</suite></robot>")
    agent.poll()
    agent.poll()
    assert list(agent.runs()) == ["r1"]
    agent.restart()
    agent.poll()
    agent.poll()
    assert FakeRobotOutput.calls.count("output.xml") == 2  # not again after the restart
    (out / "output.xml").write_text('<robot id="r2"><suite></suite></robot>', encoding="utf-8")
    agent.poll()
    agent.poll()
    assert sorted(agent.runs()) == ["r1", "r2"]
    assert agent.parse_errors() == {"log:robot": 1}  # notes.xml, counted by the new agent once


def test_past_32_log_folders_the_rest_are_polled_and_their_runs_still_recorded(tmp_path, caplog):
    """watchdog runs a thread per watched folder: 40 bots with a log folder each get 32 watched
    folders, and the runs logged in the others are read by the periodic poll."""
    import logging
    import threading

    from botwatch.sources.logs import MAX_WATCHED_DIRS

    bots = []
    for i in range(40):
        folder = tmp_path / f"bot{i}"
        folder.mkdir()
        (folder / "run.log").write_text("")
        bots.append(bot({"path": str(folder / "run.log"), **REGEX}, name=f"b{i}"))
    agent = Agent(tmp_path, bots, poll_interval=0.2)
    agent.watcher.use_watchdog = True
    caplog.set_level(logging.INFO, logger="botwatch.sources.logs")
    agent.watcher.start()
    try:
        wait_for(lambda: len(agent.watcher._watched) == MAX_WATCHED_DIRS, what="the watched folders")
        # the watcher's own threads (not the process's: other tests share it): one emitter per
        # watched folder, not one per bot folder
        emitters = agent.watcher._observer.emitters
        assert len(emitters) == MAX_WATCHED_DIRS < 40
        assert all(isinstance(e, threading.Thread) and e.is_alive() for e in emitters)
        assert caplog.text.count(f"more than {MAX_WATCHED_DIRS} log folders") == 1
        for i in range(40):
            append(tmp_path / f"bot{i}" / "run.log", "start 1\nend 1 ok\n")
        wait_for(lambda: all(len(agent.runs(f"b{i}")) == 1 for i in range(40)), what="a run of every bot")
    finally:
        agent.watcher.stop()
        agent.journal.close()
