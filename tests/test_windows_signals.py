"""Ctrl-Break ends a bot the way Ctrl-C does: the SDK's run and the Robot Framework listener's run
end with their `finally` blocks, output.xml and `run_finished`; the agent stops on SIGBREAK.

The decisions are tested with a stand-in signal module. The end-to-end tests run on Linux with
SIGUSR1 in SIGBREAK's place: like SIGBREAK on Windows, its default action ends the process at
once, which is what a bot met before the handler existed. The last test sends a real
CTRL_BREAK_EVENT and runs on Windows only."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import types

import pytest

from botwatch._platform import interrupts
from conftest import SDK_ENV, wait_for

PY = sys.executable


def fake_signal_module(*, has_break: bool = True):
    """A signal module as the platform would give it: handlers kept in a table, SIGINT's default
    raising KeyboardInterrupt as Python's does."""
    sig = types.SimpleNamespace(SIGINT=2, SIGTERM=15, SIG_DFL=0, SIG_IGN=1, default_int_handler=None)

    def default_int_handler(signum, frame):
        raise KeyboardInterrupt

    sig.default_int_handler = default_int_handler
    table = {2: default_int_handler, 15: 0}
    if has_break:
        sig.SIGBREAK = 21
        table[21] = 0
    sig.getsignal = table.get
    sig.signal = lambda signum, handler: table.__setitem__(signum, handler)
    sig.table = table
    return sig


def test_ctrl_break_raises_keyboard_interrupt_where_sigint_does():
    sig = fake_signal_module()
    assert interrupts.break_as_interrupt(sig)
    with pytest.raises(KeyboardInterrupt):
        sig.table[21](21, None)


def test_ctrl_break_goes_to_the_sigint_handler_in_place_when_it_comes():
    # Robot Framework installs its graceful stop for SIGINT when the run starts
    sig = fake_signal_module()
    interrupts.break_as_interrupt(sig)
    seen = []
    sig.signal(sig.SIGINT, lambda signum, frame: seen.append(signum))
    sig.table[21](21, None)
    assert seen == [sig.SIGINT]


@pytest.mark.parametrize("sigint", ["SIG_IGN", "SIG_DFL"])
def test_ctrl_break_still_stops_a_bot_whose_sigint_is_ignored_or_at_the_default(sigint):
    # a bot started in the background inherits SIGINT ignored: Ctrl-Break must still stop it
    sig = fake_signal_module()
    interrupts.break_as_interrupt(sig)
    sig.signal(sig.SIGINT, getattr(sig, sigint))
    with pytest.raises(KeyboardInterrupt):
        sig.table[21](21, None)


def test_a_bots_own_ctrl_break_handler_is_left_in_place():
    sig = fake_signal_module()
    own = lambda signum, frame: None  # noqa: E731
    sig.signal(sig.SIGBREAK, own)
    assert not interrupts.break_as_interrupt(sig)
    assert sig.table[21] is own


def test_installing_twice_keeps_the_first_handler():
    sig = fake_signal_module()
    assert interrupts.break_as_interrupt(sig)
    first = sig.table[21]
    assert interrupts.break_as_interrupt(sig)
    assert sig.table[21] is first


def test_nothing_is_installed_where_there_is_no_sigbreak():
    sig = fake_signal_module(has_break=False)
    assert not interrupts.break_as_interrupt(sig)
    assert 21 not in sig.table


def test_the_agent_stops_on_sigbreak_where_it_exists():
    assert interrupts.stop_signals(fake_signal_module()) == (2, 15, 21)
    assert interrupts.stop_signals(fake_signal_module(has_break=False)) == (2, 15)


# -- end to end, SIGUSR1 standing in for SIGBREAK -------------------------------------------------

EMULATE_BREAK = "import signal; signal.SIGBREAK = signal.SIGUSR1  # a signal whose default ends the process\n"


@pytest.fixture
def bot_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SDK_ENV}
    env.update(BOTWATCH_SPOOL=str(tmp_path / "spool.db"), BOTWATCH_NO_DELIVERY="1")
    return env


def spooled(path) -> list[dict]:
    db = sqlite3.connect(path)
    try:
        return [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox ORDER BY seq")]
    finally:
        db.close()


def finished(env) -> dict:
    ends = [e for e in spooled(env["BOTWATCH_SPOOL"]) if e["type"] == "run_finished"]
    assert len(ends) == 1, ends
    return ends[0]


def ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a bot started in the background inherits it


@pytest.mark.posix_only("SIGUSR1 stands in for SIGBREAK")
@pytest.mark.parametrize("sigint", ["python's handler", "ignored"])
def test_an_sdk_run_stopped_by_ctrl_break_runs_its_finally_and_records_its_end(tmp_path, bot_env, sigint):
    marker = tmp_path / "cleaned-up"
    script = EMULATE_BREAK + textwrap.dedent(f"""
        import os, time
        import botwatch
        with botwatch.run("nightly-export"):
            try:
                os.kill(os.getpid(), signal.SIGBREAK)
                time.sleep(60)
            finally:
                open({str(marker)!r}, "w").write("closed the workbook")
        """)
    r = subprocess.run([PY, "-c", script], env=bot_env, capture_output=True, text=True, timeout=120,
                       preexec_fn=ignore_sigint if sigint == "ignored" else None)
    assert "KeyboardInterrupt" in r.stderr, r.stderr
    assert marker.read_text() == "closed the workbook"
    end = finished(bot_env)
    assert (end["bot"], end["outcome"], end["reason"]) == ("nightly-export", "failure", "killed")


SUITE = """\
*** Settings ***
Library    OperatingSystem

*** Tasks ***
Post Invoices
    Evaluate    os.kill(os.getpid(), signal.SIGBREAK)    modules=os,signal
    Sleep    60s

Archive Invoices
    Log    never reached
"""


@pytest.mark.posix_only("SIGUSR1 stands in for SIGBREAK")
def test_a_robot_run_stopped_by_ctrl_break_writes_output_xml_and_its_end(tmp_path, bot_env):
    suite = tmp_path / "invoices.robot"
    suite.write_text(SUITE)
    output = tmp_path / "output.xml"
    runner = EMULATE_BREAK + "import sys, robot\nrobot.run_cli(sys.argv[1:])\n"
    r = subprocess.run([PY, "-c", runner, "--rpa", "--output", str(output), "--log", "NONE", "--report", "NONE",
                        "--listener", "botwatch.integrations.robot:bot=invoice-portal", str(suite)],
                       cwd=tmp_path, env=bot_env, capture_output=True, text=True, timeout=300)
    assert r.returncode not in (0, -10), r.stdout + r.stderr  # -10: ended by the signal itself
    assert output.is_file() and b"Execution terminated by signal" in output.read_bytes()
    end = finished(bot_env)
    assert (end["bot"], end["outcome"]) == ("invoice-portal", "failure")


@pytest.mark.windows_only("a real CTRL_BREAK_EVENT")
def test_a_real_ctrl_break_ends_an_sdk_run_with_its_end_recorded(tmp_path, bot_env):  # pragma: no cover - Windows
    import signal

    ready, marker = tmp_path / "ready", tmp_path / "cleaned-up"
    script = textwrap.dedent(f"""
        import time
        import botwatch
        with botwatch.run("nightly-export"):
            try:
                open({str(ready)!r}, "w").close()
                time.sleep(120)
            finally:
                open({str(marker)!r}, "w").write("closed the workbook")
        """)
    child = subprocess.Popen([PY, "-c", script], env=bot_env, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    try:
        wait_for(ready.exists, what="the bot's run to start")
        child.send_signal(signal.CTRL_BREAK_EVENT)
        child.wait(timeout=60)
    finally:
        child.kill()
    assert marker.read_text() == "closed the workbook"
    assert finished(bot_env)["reason"] == "killed"
