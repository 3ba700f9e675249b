"""`botwatch run -- UiRobot.exe execute ...`: the wrapper says when the UiPath executor ran
outside the process tree it measures (the job ran under the Robot service), and stays silent
when the executor was beneath UiRobot.exe. The end-to-end tests use a stand-in UiRobot.exe (a
script) and a stand-in executor (a link to `sleep` named UiPath.Executor.exe, the name a
process listing shows)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from botwatch.client import uirobot

PY = sys.executable


@pytest.mark.parametrize("argv,expected", [
    ([r"C:\Program Files\UiPath\Studio\UiRobot.exe", "execute", "--file", r"C:\bots\Invoice.nupkg"], True),
    (["UiRobot.exe", "-file", "Main.xaml"], True),
    (["uirobot", "execute", "--process", "InvoiceRecon"], True),
    (["UiRobot.exe", "--version"], False),
    (["python", "UiRobot.exe", "execute"], False),
    ([], False),
])
def test_a_uirobot_job_is_recognised_from_the_command(argv, expected):
    assert uirobot.is_uirobot_execute(argv) is expected


def test_the_notice_is_given_only_when_no_executor_was_seen():
    argv = ["UiRobot.exe", "execute", "--file", "x.nupkg"]
    assert uirobot.executor_outside(argv, {"UiRobot.exe"})
    assert uirobot.executor_outside(argv, {"UiRobot.exe", "UiPath.Executor.exe"}) is None
    assert uirobot.executor_outside(["robot", "suite.robot"], set()) is None


FAKE_UIROBOT = """#!{py}
import os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("EXECUTOR_BENEATH") == "1":
    sys.exit(subprocess.call([os.path.join(here, "UiPath.Executor.exe"), "2.5"]))
time.sleep(2.5)  # the job runs under the Robot service, elsewhere
sys.exit(0)
"""


@pytest.fixture
def uirobot_dir(tmp_path):
    sleep = shutil.which("sleep")
    assert sleep, "coreutils' sleep stands in for the executor"
    d = tmp_path / "UiPath"
    d.mkdir()
    robot = d / "UiRobot.exe"
    robot.write_text(FAKE_UIROBOT.format(py=PY))
    robot.chmod(0o755)
    os.symlink(sleep, d / "UiPath.Executor.exe")
    return d


def wrap(uirobot_dir, run_env, beneath: bool) -> subprocess.CompletedProcess:
    env = {**run_env, "EXECUTOR_BENEATH": "1" if beneath else "0", "BOTWATCH_NO_DELIVERY": "1"}
    return subprocess.run([PY, "-m", "botwatch", "run", "--bot", "invoice-recon", "--",
                           str(uirobot_dir / "UiRobot.exe"), "execute", "--file", "Invoice.nupkg"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.posix_only("a script named UiRobot.exe needs a #! line")
def test_a_job_run_outside_the_tree_is_named_after_the_run(uirobot_dir, run_env):
    r = wrap(uirobot_dir, run_env, beneath=False)
    assert r.returncode == 0, r.stderr
    assert "outside its own process tree" in r.stderr and "docs/windows.md" in r.stderr


@pytest.mark.posix_only("a script named UiRobot.exe needs a #! line")
def test_an_executor_beneath_uirobot_is_measured_without_a_notice(uirobot_dir, run_env):
    r = wrap(uirobot_dir, run_env, beneath=True)
    assert r.returncode == 0, r.stderr
    assert "outside its own process tree" not in r.stderr
