"""A bot that traps SIGINT, SIGTERM and SIGHUP in itself and in a child process it started.

    sigbot.py DIR            the bot
    sigbot.py DIR --child    its child (started by the bot, in the same process group)

Each process writes DIR/<role>-<SIGNAME> when a signal reaches it. The bot writes DIR/ready
once its child's traps are in place; on a signal it waits for its child to finish and exits
with status 64 + the signal number.
"""

import os
import signal
import subprocess
import sys
import time

# SIGHUP is POSIX-only: where it is missing the bot traps the others (its tests are POSIX-only)
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def mark(directory: str, name: str) -> None:
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(directory, name))


def main() -> None:
    directory = sys.argv[1]
    if "--child" in sys.argv:
        def child_trap(signum, _frame):
            mark(directory, f"child-{signal.Signals(signum).name}")
            os._exit(0)

        for sig in SIGNALS:
            signal.signal(sig, child_trap)
        mark(directory, "child-ready")
        while True:
            signal.pause()

    child = None

    def bot_trap(signum, _frame):
        mark(directory, f"bot-{signal.Signals(signum).name}")
        if child is not None:
            child.wait(timeout=30)
        os._exit(64 + signum)

    for sig in SIGNALS:
        signal.signal(sig, bot_trap)
    child = subprocess.Popen([sys.executable, __file__, directory, "--child"])
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(directory, "child-ready")):
        if time.monotonic() > deadline or child.poll() is not None:
            sys.exit("sigbot: the child did not get ready")
        time.sleep(0.01)
    mark(directory, "ready")
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
