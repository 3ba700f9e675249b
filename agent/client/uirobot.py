"""`botwatch run -- UiRobot.exe execute ...`: is the UiPath executor in the bot's process tree?

UiRobot.exe `execute` asks the UiPath Robot service to run the job. Depending on the Robot's
version and mode, the executor (UiPath.Executor.exe) is either UiRobot.exe's descendant or a
child of the service's user host, outside the tree `botwatch run` measures. In the second case
the run's result and duration are still right (UiRobot.exe waits for the job and exits with its
result) but CPU and memory are UiRobot.exe's own, and a `--timeout` ends UiRobot.exe and not the
job. The wrapper says so once, after the run, rather than report numbers that mean less than
they seem to.
"""

from __future__ import annotations

import os

EXECUTORS = frozenset({"uipath.executor.exe", "uipath.executor"})


def is_uirobot_execute(argv: list[str]) -> bool:
    """The command runs a job through UiRobot.exe (`execute`, or the older `-file`/`--file` form)."""
    if not argv:
        return False
    exe = os.path.basename(argv[0].replace("\\", "/")).lower()
    if exe not in ("uirobot.exe", "uirobot"):
        return False
    args = [a.lower() for a in argv[1:]]
    return "execute" in args or any(a in ("-file", "--file", "/file") for a in args)


def executor_outside(argv: list[str], names_seen: set[str]) -> str | None:
    """The notice to give when a UiRobot.exe run never had the executor in its process tree."""
    if not is_uirobot_execute(argv) or any(n.lower() in EXECUTORS for n in names_seen):
        return None
    return ("UiRobot.exe ran the job outside its own process tree (no UiPath.Executor.exe beneath it): "
            "the run's result and duration are the job's, its CPU and memory are UiRobot.exe's only, and "
            "--timeout ends UiRobot.exe, not the job (see docs/windows.md)")
