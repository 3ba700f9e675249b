"""The Windows service set-up users copy from docs/windows.md: a venv bot accounts cannot change,
data folders closed to them, a stop that leaves the agent time to close its journal, log files.
The commands are read from the page itself, so the page cannot drift back to the unsafe layout."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "windows.md").read_text(encoding="utf-8")


def commands(tool: str) -> list[list[str]]:
    """Every command line of `tool` in the page's code blocks, split as cmd.exe would."""
    found = []
    for block in re.findall(r"```(?:bat)?\n(.*?)```", PAGE, re.S):
        for line in block.splitlines():
            if line.startswith(tool + " "):
                found.append(shlex.split(line, posix=False))
    return found


def nssm_settings() -> dict[str, str]:
    return {c[3]: " ".join(c[4:]) for c in commands("nssm") if c[1] == "set"}


def test_the_venv_the_service_runs_is_in_program_files():
    venvs = [c for c in commands("py") if "venv" in c]
    assert venvs and all('"%ProgramFiles%\\botwatch"' in c for c in venvs)
    (install,) = [c for c in commands("nssm") if c[1] == "install"]
    assert install[3].strip('"').startswith("C:\\Program Files\\botwatch\\")


def test_config_and_journal_are_in_programdata_with_inheritance_removed():
    grants = [c for c in commands("icacls") if c[1] == '"%ProgramData%\\botwatch"']
    assert grants, "no icacls for the data folder"
    acl = grants[0]
    assert "/inheritance:r" in acl
    granted = [a.strip('"').split(":")[0] for a in acl[acl.index("/grant:r") + 1:]]
    assert granted == ["SYSTEM", "BUILTIN\\Administrators"]  # no Users, no Everyone
    assert nssm_settings()["AppDirectory"].startswith("C:\\ProgramData\\botwatch")
    install = [c for c in commands("nssm") if c[1] == "install"][0]
    assert install[install.index("--config") + 1].startswith("C:\\ProgramData\\botwatch\\")


def test_the_stop_timeout_leaves_the_agent_time_for_a_clean_stop():
    # the agent's own clean stop: up to 5 s for requests in flight, 5 s for the sweeper, then its
    # sources, the last OTLP push and the journal; NSSM's default console wait is 1.5 s
    daemon = (ROOT / "agent" / "server" / "daemon.py").read_text(encoding="utf-8")
    graceful = int(re.search(r"timeout_graceful_shutdown=(\d+)", daemon).group(1))
    sweeper = int(re.search(r"sweeper\.stop\(timeout=(\d+)\)", daemon).group(1))
    settings = nssm_settings()
    assert int(settings["AppStopMethodConsole"]) >= 2 * (graceful + sweeper) * 1000
    assert "AppStopMethodSkip" not in settings  # the console stop (Ctrl-C) is not skipped


def test_the_service_writes_its_output_to_rotated_log_files():
    settings = nssm_settings()
    assert settings["AppStdout"] == settings["AppStderr"]
    assert settings["AppStdout"].startswith("C:\\ProgramData\\botwatch\\logs\\")
    assert settings["AppRotateFiles"] == "1" and int(settings["AppRotateBytes"]) > 0


def test_the_readme_quickstart_shows_the_same_windows_layout():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### On Windows robots"):readme.index("## Using it")]
    assert '"%ProgramFiles%\\botwatch"' in section
    assert "Task Scheduler" in section and "botwatch.exe" in section and "`run --bot " in section
    assert "nssm install botwatch-agent" in section and "AppStopMethodConsole" in section
    assert "docs/windows.md" in section
