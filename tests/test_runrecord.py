"""The run-record rules every client shares (botwatch.client.runrecord): run ids, the host, the estate
file and agent a run is recorded for, the excerpt kept of its output, its failure reason and the
deliverer started once it is spooled; and that the bot-side modules load the standard library
only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time

from pathlib import Path

import pytest

from botwatch.client import runrecord
from botwatch.exporters.textfile import path_for
from botwatch.client.spool import Spool
from botwatch.core.host import hostname
from botwatch.core.vocabulary import RUN_ID

PY = sys.executable


class Warnings:
    """A runrecord.Warn that keeps what it is told."""

    def __init__(self) -> None:
        self.said: list[tuple[object, str]] = []

    def __call__(self, key: object, message: str) -> None:
        self.said.append((key, message))


@pytest.fixture
def warnings() -> Warnings:
    return Warnings()


@pytest.fixture(autouse=True)
def no_cached_classifiers(monkeypatch):
    monkeypatch.setattr(runrecord, "_classifiers", {})


# -- the bot side loads the standard library only ---------------------------------------------

def test_the_bot_side_modules_import_nothing_beyond_the_standard_library():
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import botwatch.client.runrecord, botwatch.client.wrapper, botwatch.client.delivery\n"
            "loaded = {name.partition('.')[0] for name in set(sys.modules) - before}\n"
            "print(sorted(loaded - set(sys.stdlib_module_names) - {'botwatch'}))\n"
            "print(sorted(name for name in sys.modules if name.startswith('botwatch')))\n")
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    foreign, ours = proc.stdout.splitlines()
    assert foreign == "[]"
    assert "'botwatch.client.runrecord'" in ours and "'botwatch.config.estate'" not in ours  # the estate file loads lazily


def test_the_wrappers_path_loads_no_typing_threading_json_or_logging():
    """`botwatch run` starts thousands of times a day: what it imports is its start-up time
    (benchmark 1c). Modules the interpreter or the editable install loaded before do not count."""
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import botwatch.commands.cli, botwatch.client.wrapper\n"
            "print(sorted(set(sys.modules) - before))\n")
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(ast.literal_eval(proc.stdout))
    assert "botwatch.client.wrapper" in loaded
    assert not loaded & {"typing", "threading", "json", "logging", "urllib.request", "botwatch.core.vocabulary"}, loaded


# -- what identifies a run ----------------------------------------------------------------------

def test_run_ids_are_unique_valid_run_ids_led_by_their_start_in_milliseconds():
    before = int(time.time() * 1000)
    ids = [runrecord.new_run_id() for _ in range(2000)]
    after = int(time.time() * 1000)
    assert len(set(ids)) == len(ids)
    assert all(RUN_ID.match(run_id) for run_id in ids)
    assert all(before <= int(run_id.partition("-")[0], 16) <= after for run_id in ids)


def test_the_host_is_the_vocabularys_host_name_looked_up_once(monkeypatch):
    monkeypatch.setattr(runrecord, "_host", None)
    assert runrecord.host() == hostname()
    monkeypatch.setattr(runrecord, "hostname", lambda: "renamed")
    assert runrecord.host() == hostname()  # the process keeps the name it started with


def test_the_estate_file_is_the_one_given_else_the_environments_else_botwatch_yaml_here(tmp_path, monkeypatch):
    monkeypatch.delenv("BOTWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runrecord.estate_file() is None
    (tmp_path / "botwatch.yaml").write_text("bots: []\n")
    assert runrecord.estate_file() == str(tmp_path / "botwatch.yaml")
    monkeypatch.setenv("BOTWATCH_CONFIG", "estates/prod.yaml")
    assert runrecord.estate_file() == str(tmp_path / "estates" / "prod.yaml")  # absolute: for the deliverer
    assert runrecord.estate_file("given.yaml") == str(tmp_path / "given.yaml")


@pytest.mark.posix_only("a working directory in use cannot be removed on Windows")
def test_no_estate_file_when_the_working_directory_is_gone(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setenv("BOTWATCH_CONFIG", "botwatch.yaml")
    assert runrecord.estate_file() is None


def test_the_agent_url_is_the_one_given_else_the_environments_else_left_to_the_deliverer(monkeypatch):
    monkeypatch.delenv("BOTWATCH_AGENT_URL", raising=False)
    assert runrecord.agent_url() is None
    monkeypatch.setenv("BOTWATCH_AGENT_URL", "http://agent.example:9464")
    assert runrecord.agent_url() == "http://agent.example:9464"
    assert runrecord.agent_url("http://other:1") == "http://other:1"
    monkeypatch.setenv("BOTWATCH_AGENT_URL", "")
    assert runrecord.agent_url("") is None


# -- what is kept of its output -----------------------------------------------------------------

def test_an_output_tail_keeps_the_end_of_the_output_within_its_limit_from_a_whole_line():
    lines = [f"line {i:05d} of the bot's output" for i in range(2000)]
    output = "\n".join(lines)
    tail = runrecord.output_tail(output)
    assert tail is not None and len(tail) <= runrecord.STORED_TAIL_CHARS
    assert tail.endswith(lines[-1]) and output.endswith(tail)
    short = "Traceback (most recent call last):\nValueError: bad invoice"
    assert runrecord.output_tail(short) == short  # a short output is kept whole


def test_an_output_tail_never_starts_on_a_cut_line_and_is_redacted():
    secret_line = "password=" + "s3cr3t" * 2000  # longer than the tail: only its end would be left
    tail = runrecord.output_tail("start\n" + secret_line + "\nthe end")
    assert tail is not None and "s3cr3t" not in tail and tail.endswith("the end")
    assert runrecord.output_tail(secret_line) is None  # no whole line within reach: nothing kept
    tail = runrecord.output_tail("connecting with password=hunter2\nfailed")
    assert tail is not None and "hunter2" not in tail and "[REDACTED]" in tail


def test_no_output_tail_without_output():
    assert runrecord.output_tail(None) is None
    assert runrecord.output_tail("") is None


def test_an_error_tail_is_the_kept_errors_one_per_line_and_how_many_more_there_were():
    assert runrecord.error_tail([]) is None
    assert runrecord.error_tail(["first", "second"]) == "first\nsecond"
    assert runrecord.error_tail(["first"], more=3) == "first\n[... 3 more error line(s)]"


# -- why it failed ------------------------------------------------------------------------------

ESTATE = """\
failure_patterns:
  - {reason: business, contains: "Invoice already booked"}
bots:
  - name: invoice-recon
"""


def test_a_failure_is_classified_with_the_built_in_patterns_without_an_estate_file(warnings):
    assert runrecord.failure_reason(None, "", warnings, timed_out=True) == "timeout"
    crash = "Traceback (most recent call last):\n  File \"bot.py\", line 1\nZeroDivisionError: division by zero"
    assert runrecord.failure_reason(None, crash, warnings, exit_status=1) == "crash"
    assert runrecord.failure_reason(None, None, warnings, exit_status=3) == "unknown"
    assert warnings.said == []


def test_a_failure_is_classified_with_the_estates_patterns_from_the_end_of_the_output(tmp_path, warnings):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(ESTATE)
    assert runrecord.failure_reason(str(estate), "Invoice already booked: INV-1", warnings) == "business"
    early = "Invoice already booked: INV-1\n" + "x" * runrecord.CLASSIFIED_CHARS  # out of the classified end
    assert runrecord.failure_reason(str(estate), early, warnings) == "unknown"
    assert warnings.said == []


def test_an_unusable_estate_file_is_warned_about_once_per_change_and_the_built_in_patterns_used(tmp_path, warnings):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text("bots: [\n")
    for _ in range(3):
        assert runrecord.failure_reason(str(estate), "Invoice already booked", warnings) == "unknown"
    assert len(warnings.said) == 1
    key, message = warnings.said[0]
    assert str(estate) in message and "built-in failure patterns" in message
    estate.write_text(ESTATE)
    os.utime(estate, ns=(time.time_ns(), time.time_ns() + 10_000_000))  # a change the mtime shows
    assert runrecord.failure_reason(str(estate), "Invoice already booked", warnings) == "business"


def test_the_estates_classifier_is_read_once_until_its_file_changes(tmp_path, warnings):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(ESTATE)
    first = runrecord.classifier_for(str(estate), warnings)
    assert runrecord.classifier_for(str(estate), warnings) is first
    estate.write_text(ESTATE.replace("Invoice already booked", "Duplicate invoice"))
    os.utime(estate, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    changed = runrecord.classifier_for(str(estate), warnings)
    assert changed is not first and changed.match("Duplicate invoice 4711").reason == "business"
    assert runrecord.classifier_for(None, warnings) is runrecord.classifier_for(str(tmp_path / "none.yaml"), warnings)


# -- after it is spooled ------------------------------------------------------------------------

@pytest.fixture
def spawned(monkeypatch) -> list[list[str]]:
    """The deliverers started detached (replaced: they would outlive the test)."""
    calls: list[list[str]] = []
    monkeypatch.delenv("BOTWATCH_NO_DELIVERY", raising=False)
    monkeypatch.setattr(runrecord._platform, "spawn_detached", lambda argv, cwd=None: calls.append(argv))
    return calls


def test_a_deliverer_is_started_for_the_spool_with_this_interpreter(spawned, warnings):
    assert runrecord.start_deliverer("/spools/spool.db", warnings) is None
    assert spawned == [[PY, "-P", "-m", "botwatch.deliver", "--spool", "/spools/spool.db"]]
    assert warnings.said == []


def test_no_deliverer_is_started_when_delivery_is_switched_off(spawned, warnings, monkeypatch):
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")
    assert not runrecord.delivery_wanted()
    assert runrecord.start_deliverer("/spools/spool.db", warnings) is None
    assert runrecord.start_deliverer("/spools/spool.db", warnings, reap=True) is None
    assert spawned == [] and warnings.said == []


def test_no_deliverer_is_started_from_an_interpreter_that_is_not_python(spawned, warnings, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/opt/rpa/host.exe")  # Python embedded in another program
    assert runrecord.start_deliverer("/spools/spool.db", warnings) is None
    assert spawned == []
    assert [key for key, _ in warnings.said] == ["no-python"] and "/spools/spool.db" in warnings.said[0][1]


def test_a_deliverer_that_cannot_be_started_is_warned_about_and_nothing_raises(warnings, monkeypatch):
    def refused(argv, cwd=None):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.delenv("BOTWATCH_NO_DELIVERY", raising=False)
    monkeypatch.setattr(runrecord._platform, "spawn_detached", refused)
    assert runrecord.start_deliverer("/spools/spool.db", warnings) is None
    assert warnings.said == [(("deliver", "/spools/spool.db"),
                              "cannot start the deliverer ([Errno 11] Resource temporarily unavailable); "
                              "events wait in /spools/spool.db")]


def test_a_reaped_deliverer_is_a_real_child_that_delivers_the_spool(tmp_path, warnings, monkeypatch):
    monkeypatch.delenv("BOTWATCH_NO_DELIVERY", raising=False)
    spool_path, metrics = str(tmp_path / "spool.db"), tmp_path / "metrics"
    metrics.mkdir()
    spool = Spool(spool_path)
    try:
        spool.add_finished("invoice-recon", runrecord.new_run_id(), target=f"textfile:{metrics}", started=1.0,
                           ended=2.0, outcome="success", host=runrecord.host())
    finally:
        spool.close()
    child = runrecord.start_deliverer(spool_path, warnings, reap=True)
    assert child is not None and child.wait(timeout=60) == 0
    assert warnings.said == []
    assert "botwatch_runs_total" in Path(path_for(str(metrics), "invoice-recon")).read_text()
    db = Spool(spool_path)
    try:
        assert db.pending() == 0
    finally:
        db.close()
