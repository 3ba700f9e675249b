"""The host's name, as bots' events record it (os only: the wrapper's path loads this)."""

import os


def hostname() -> str:
    try:
        return os.uname().nodename
    except AttributeError:  # Windows
        return os.environ.get("COMPUTERNAME", "")
