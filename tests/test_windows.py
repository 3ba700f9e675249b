"""Windows decisions, tested as logic on Linux: exit statuses of 32 bits kept, given back
exactly and classified; a command named without its extension found as cmd.exe finds it."""

from __future__ import annotations

import sqlite3
import urllib.request

import pytest

from botwatch.core import exitcodes
from botwatch.core.classify import Classifier
from conftest import free_port, http_post_json, write_estate

ACCESS_VIOLATION, CTRL_C, DOTNET, EXIT_MINUS_1 = 0xC0000005, 0xC000013A, 0xE0434352, 4294967295


@pytest.mark.parametrize("given,kept", [(0, 0), (3, 3), (255, 255), (-1073741819, ACCESS_VIOLATION),
                                        (ACCESS_VIOLATION, ACCESS_VIOLATION), (-1, EXIT_MINUS_1),
                                        (-1073741510, CTRL_C), (EXIT_MINUS_1, EXIT_MINUS_1)])
def test_a_status_signed_or_unsigned_is_kept_unsigned(given, kept):
    assert exitcodes.valid(given) and exitcodes.unsigned(given) == kept


@pytest.mark.parametrize("status", [2 ** 32, -(2 ** 31) - 1, 10 ** 12])
def test_a_status_beyond_32_bits_is_not_one(status):
    assert not exitcodes.valid(status)


@pytest.mark.parametrize("status,reason", [(CTRL_C, "killed"), (ACCESS_VIOLATION, "crash"), (DOTNET, "crash"),
                                           (0xC00000FD, "crash"), (EXIT_MINUS_1, "crash"), (1, None), (255, None),
                                           (0x80000003, None), (-1073741819, "crash")])
def test_windows_statuses_say_killed_or_crash(status, reason):
    assert exitcodes.reason(status) == reason


@pytest.mark.parametrize("status", [ACCESS_VIOLATION, CTRL_C, DOTNET, EXIT_MINUS_1, 0x7FFFFFFF, 0x80000000, 0, 1, 255])
def test_the_wrapper_exits_with_the_bots_status_exactly_on_windows(status):
    # Python 3.11 (before 3.12.8) turns sys.exit(n > 2**31 - 1) into 0xFFFFFFFF on Windows:
    # the signed value gives every status back exactly
    code = exitcodes.for_sys_exit(status, windows=True)
    assert -(2 ** 31) <= code <= 2 ** 31 - 1
    assert code & 0xFFFFFFFF == status
    assert exitcodes.of_sys_exit(code, windows=True) == status


@pytest.mark.parametrize("code,status", [(0, 0), (3, 3), (256, 0), (257, 1), (-1, 255)])
def test_on_posix_the_status_is_the_low_byte_and_passes_through(code, status):
    assert exitcodes.of_sys_exit(code, windows=False) == status
    assert exitcodes.for_sys_exit(status, windows=False) == status


def test_the_classifier_reads_a_windows_status_after_what_the_output_says():
    c = Classifier()
    assert c.classify(exit_status=CTRL_C).reason == "killed"
    assert c.classify(exit_status=ACCESS_VIOLATION).reason == "crash"
    assert c.classify(exit_status=DOTNET, output="UiPath.Core.SelectorNotFoundException: no element").reason == \
        "ui_drift"  # the output says more than the status
    assert c.classify(exit_status=CTRL_C, output="Logon failed for user svc").reason == "killed"
    assert c.classify(exit_status=3).reason == "unknown"
    assert c.classify(exit_status=-1073741819).reason == "crash"


def test_an_agent_records_windows_statuses_from_check_ins_and_the_events_api(tmp_path, agents):
    """Item 1: a 32-bit status is a run (not a refused event), kept unsigned and classified."""
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port, extra="  ping_key: k3y\n")
    agent = agents(config, port).start()
    for rid, status in (("c1", "3221225477"), ("c2", "-1073741510")):
        with urllib.request.urlopen(f"{agent.url}/ping/k3y/alpha/{status}?rid={rid}", timeout=10) as r:
            assert r.status == 200
    status, body = http_post_json(agent.url + "/api/v1/events", {"events": [
        {"type": "run_finished", "bot": "alpha", "run_id": "e1", "ended": 1.0, "outcome": "failure",
         "exit_status": DOTNET},
        {"type": "run_finished", "bot": "alpha", "run_id": "e2", "ended": 2.0, "outcome": "failure",
         "exit_status": -1}]}, headers={"X-Botwatch-Key": "k3y"})
    assert status == 200 and body["accepted"] == 2, body
    m = agent.metrics()
    assert m['botwatch_runs_total{bot="alpha"}'] == 4
    assert m['botwatch_run_failures_total{bot="alpha",reason="crash"}'] == 3  # 0xC0000005, .NET, exit /b -1
    assert m['botwatch_run_failures_total{bot="alpha",reason="killed"}'] == 1  # Ctrl-C
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        kept = dict(db.execute("SELECT run_id, exit_status FROM runs").fetchall())
    finally:
        db.close()
    assert kept == {"c1": ACCESS_VIOLATION, "c2": CTRL_C, "e1": DOTNET, "e2": EXIT_MINUS_1}


# -- item 6: a command named without its extension ----------------------------------------------

def test_a_command_without_its_extension_is_found_through_path_and_pathext():
    from botwatch._platform.commands import resolve

    found = {"backup": r"C:\Bots\backup.CMD", "python": r"C:\Python311\python.exe"}
    assert resolve(["backup", "--full"], found.get) == [r"C:\Bots\backup.CMD", "--full"]
    assert resolve(["python", "bot.py"], found.get) == [r"C:\Python311\python.exe", "bot.py"]
    # named with its extension, or not found: as given (CreateProcess then says why)
    assert resolve(["backup.bat"], found.get) == ["backup.bat"]
    assert resolve([r"C:\Bots\run.ps1"], found.get) == [r"C:\Bots\run.ps1"]
    assert resolve(["missing"], found.get) == ["missing"]
    assert resolve([], found.get) == []


def test_one_host_name_for_the_wrapper_the_sdk_the_agent_and_otlp_on_windows(monkeypatch):
    # Windows has no os.uname: every part takes %COMPUTERNAME% through the one helper (before,
    # the agent and OTLP asked socket.gethostname(), which can differ in case and domain)
    import os

    from botwatch.client import runrecord
    from botwatch.config.estate import parse_estate_text
    from botwatch.core import host
    from botwatch.exporters import otlp_settings
    from botwatch.state.runtime import EstateState

    monkeypatch.delattr(os, "uname", raising=False)
    monkeypatch.setenv("COMPUTERNAME", "RPA-ROBOT-07")
    monkeypatch.setattr(runrecord, "_host", None)
    assert host.hostname() == runrecord.host() == "RPA-ROBOT-07"
    estate = parse_estate_text("bots: []\n")
    assert EstateState(estate).host == "RPA-ROBOT-07"
    assert otlp_settings.resolve(estate, env={}).resource["host.name"] == "RPA-ROBOT-07"
