"""What the fuzz tests share: a guard that fails naming the input instead of hanging."""

from __future__ import annotations

import signal
from contextlib import contextmanager


class Hung(BaseException):
    """Raised by the guard's alarm; a BaseException so that no `except Exception` swallows it."""


@contextmanager
def bounded(what: str, seconds: float = 20.0):
    """Fail (naming the input) instead of hanging: the work must finish within `seconds`. A hang
    guard, not a speed assertion: the bound is far above what any input takes."""
    def on_alarm(signum, frame):
        raise Hung(f"no answer within {seconds:g}s for {what}")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
