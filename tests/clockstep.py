"""Runs `python -m botwatch ...` with a wall clock the test can step while it runs.

`python tests/clockstep.py OFFSET_FILE ARGS...`: time.time() is the real time plus the seconds
written in OFFSET_FILE (0 when it is empty or missing), read at every call; the monotonic clock
and everything else are left alone. It is how an NTP step, a resumed VM or a hand-set clock
looks to a process, without changing the clock of the machine the other tests run on.
"""

import runpy
import sys
import time

_real = time.time
_offset_file = sys.argv[1]


def _stepped() -> float:
    try:
        with open(_offset_file) as fh:
            return _real() + float(fh.read().strip() or 0)
    except (OSError, ValueError):
        return _real()


time.time = _stepped
sys.argv = ["botwatch", *sys.argv[2:]]
runpy.run_module("botwatch", run_name="__main__", alter_sys=True)
