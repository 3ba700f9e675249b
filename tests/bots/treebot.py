"""A bot with a child and a grandchild that ignores SIGTERM; all three run until killed.

    treebot.py DIR [--setsid]

Each process writes its pid to DIR/<role>.pid (bot, child, grandchild). With --setsid the
child leaves the bot's session and process group (as daemonising helpers do) and ignores
SIGTERM too, so the bot is the only process left in its group; the grandchild follows the
child into its new session.
"""

import os
import signal
import subprocess
import sys
import time


def write_pid(directory: str, role: str) -> None:
    tmp = os.path.join(directory, f".{role}.tmp")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(directory, f"{role}.pid"))


def main() -> None:
    directory, role = sys.argv[1], "bot"
    for arg in sys.argv[2:]:
        if arg.startswith("--role="):
            role = arg.partition("=")[2]
    setsid = "--setsid" in sys.argv
    if role == "child" and setsid:
        os.setsid()
    if role == "grandchild" or (role == "child" and setsid):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if role != "grandchild":
        below = "child" if role == "bot" else "grandchild"
        subprocess.Popen([sys.executable, __file__, directory, f"--role={below}", *(["--setsid"] if setsid else [])])
    write_pid(directory, role)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
