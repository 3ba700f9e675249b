"""Known bot runtimes, as data: how to recognise a process of an RPA runtime or a bot launcher.

A process of one of these that matches no registered bot is a *shadow bot* (see
`botwatch.sources.processes`). Each entry is a platform (the estate file's `platform`
vocabulary, so that a shadow bot can be registered under the label it is counted with) and
regexes searched in the process name, the executable path and the command line (arguments
joined by spaces); every regex given must match.

`host` entries are resident robot programs (a robot service's per-user host, a console, an
interactive client): they run whenever the robot is installed and signed in, not only during
a run, so they are reported only while the estate registers no bot of their platform at all.

Process names are as the operating system reports them: `UiPath.Executor.exe` on Windows,
`robot` for a console script on Linux. Matching is case-insensitive: Windows names are.

Sources for the names: the vendors' documentation of their robots' programs. The Automation
Anywhere entries are the least certain: `AAPlayer.exe` and `Automation Anywhere.exe` are the
Enterprise 11 client's player and client; Automation 360's Bot agent (installed under
`Program Files\\Automation Anywhere\\Bot Agent`) runs bots through its bot launcher, recognised
here by that folder and "launcher" in the command line. An estate that sees other names adds
a bot with `watch.process` for them, which also registers them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Runtime:
    key: str  # stable id of the entry, shown in listings
    platform: str  # the `platform` label (estate vocabulary)
    product: str  # what it is, for people
    name: str | None = None
    exe: str | None = None
    cmdline: str | None = None
    host: bool = False


_PY = r"(?i)^(?:python|pythonw|py)(?:\d+(?:\.\d+)*)?(?:\.exe)?$"

RUNTIMES: tuple[Runtime, ...] = (
    # UiPath: the executor runs one job; UiRobot.exe is the robot's command line
    # (`UiRobot execute ...`); the service's user host runs whenever a robot is connected.
    Runtime("uipath-executor", "uipath", "UiPath Robot executor", name=r"(?i)^UiPath\.Executor(?:\.exe)?$"),
    Runtime("uipath-uirobot", "uipath", "UiPath Robot (UiRobot)", name=r"(?i)^UiRobot(?:\.exe)?$"),
    Runtime("uipath-userhost", "uipath", "UiPath Robot service user host",
            name=r"(?i)^UiPath\.Service\.UserHost(?:\.exe)?$", host=True),
    # Robot Framework: the `robot` and `pabot` launchers, and Python running them as modules
    # or as scripts (Windows' pip launchers start python.exe with the .exe's own path).
    Runtime("robot", "robotframework", "Robot Framework (robot)", name=r"(?i)^(?:robot|pabot)(?:\.exe)?$"),
    Runtime("python-m-robot", "robotframework", "Robot Framework (python -m robot)", name=_PY,
            cmdline=r"(?i)(?:^|\s)-m\s*(?:robot|pabot)(?:\.run)?(?:\s|$)"),
    Runtime("python-robot-script", "robotframework", "Robot Framework (python robot)", name=_PY,
            cmdline=r"(?i)[\\/](?:robot|pabot)(?:\.exe|-script\.py)?(?:\s|$)"),
    # Robocorp: rcc runs robots (Robot Framework or Python) in their own environments.
    Runtime("robocorp-rcc", "robotframework", "Robocorp rcc", name=r"(?i)^rcc(?:\.exe)?$"),
    # Power Automate Desktop: the robot runs a flow; the console is where users start them.
    Runtime("pad-robot", "powerautomate", "Power Automate Desktop robot", name=r"(?i)^PAD\.Robot(?:\.exe)?$"),
    Runtime("pad-console", "powerautomate", "Power Automate Desktop console",
            name=r"(?i)^PAD\.Console\.Host(?:\.exe)?$", host=True),
    # Blue Prism: AutomateC.exe runs processes from the command line; Automate.exe is the
    # interactive client and the runtime resource (/resourcepc).
    Runtime("blueprism-automatec", "blueprism", "Blue Prism AutomateC", name=r"(?i)^AutomateC(?:\.exe)?$"),
    Runtime("blueprism-automate", "blueprism", "Blue Prism Automate", name=r"(?i)^Automate(?:\.exe)?$", host=True),
    # Automation Anywhere (see the module docstring for how certain these are).
    Runtime("aa-botlauncher", "automationanywhere", "Automation Anywhere Bot agent launcher",
            exe=r"(?i)Automation Anywhere[\\/]Bot Agent[\\/]", cmdline=r"(?i)bot_?launcher"),
    Runtime("aa-player", "automationanywhere", "Automation Anywhere player", name=r"(?i)^AAPlayer(?:\.exe)?$"),
    Runtime("aa-client", "automationanywhere", "Automation Anywhere Enterprise client",
            name=r"(?i)^Automation Anywhere(?:\.exe)?$", host=True),
)

# Programs that run a script found in one of `agent.bot_folders`: (platform, process name).
# A program that itself lives in a bot folder is a bot of platform "other".
INTERPRETERS: tuple[tuple[str, str], ...] = (
    ("python", _PY),
    ("shell", r"(?i)^(?:sh|bash|dash|zsh|ksh|fish|powershell|pwsh|cmd)(?:\.exe)?$"),
    ("excel", r"(?i)^excel(?:\.exe)?$"),
    ("other", r"(?i)^(?:node|cscript|wscript|perl|ruby|rscript|java|javaw)(?:\.exe)?$"),
)
SCRIPT_SUFFIXES = (".py", ".pyw", ".sh", ".bash", ".ps1", ".bat", ".cmd", ".vbs", ".js", ".pl", ".rb", ".r",
                   ".xlsm", ".xlsb", ".xlsx", ".xls", ".jar")

# Every platform a shadow bot can be counted under (the gauge pre-sets each to 0).
PLATFORMS: tuple[str, ...] = tuple(dict.fromkeys(
    [r.platform for r in RUNTIMES] + [p for p, _ in INTERPRETERS]))


@dataclass(frozen=True)
class CompiledRuntime:
    runtime: Runtime
    name: re.Pattern | None
    exe: re.Pattern | None
    cmdline: re.Pattern | None


@lru_cache(maxsize=1)
def compiled_runtimes() -> tuple[CompiledRuntime, ...]:
    def c(p):
        return re.compile(p) if p else None

    return tuple(CompiledRuntime(r, c(r.name), c(r.exe), c(r.cmdline)) for r in RUNTIMES)


@lru_cache(maxsize=1)
def compiled_interpreters() -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((platform, re.compile(rx)) for platform, rx in INTERPRETERS)


def wrapped_bot(cmdline: list[str]) -> str | None:
    """The bot of a `botwatch run --bot NAME ...` command line (console script, `python -m
    botwatch` or botwatch.exe), else None: its processes are that bot's, measured by the wrapper."""
    seen_botwatch = seen_run = False
    for i, arg in enumerate(cmdline):
        if not seen_botwatch:
            base = arg.replace("\\", "/").rsplit("/", 1)[-1].lower()
            if base in ("botwatch", "botwatch.exe", "botwatch-script.py"):
                seen_botwatch = True
        elif not seen_run:
            if arg == "run":
                seen_run = True
            elif not arg.startswith("-"):
                return None
        elif arg == "--":
            return None
        elif arg == "--bot":
            return cmdline[i + 1] if i + 1 < len(cmdline) else None
        elif arg.startswith("--bot="):
            return arg[len("--bot="):]
    return None


# -- paths, compared the same way whatever OS the agent runs on --------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


def norm_path(path: str, windows: bool | None = None) -> str:
    """A comparable form: forward slashes, `..` resolved, case-folded for Windows paths."""
    win = windows if windows is not None else bool(_DRIVE.match(path))
    p = path.replace("\\", "/") if win or "\\" in path else path
    p = posixpath.normpath(p)
    return p.casefold() if win else p


def under(path: str, folders: tuple[str, ...], windows: bool = False) -> bool:
    """Is `path` (absolute) inside one of the normalised `folders`?"""
    p = norm_path(path, windows or None)
    for f in folders:
        if p == f or p.startswith(f.rstrip("/") + "/"):
            return True
    return False


def looks_absolute(arg: str) -> bool:
    return arg.startswith("/") or bool(_DRIVE.match(arg))
