"""What the fuzz tests share: a guard that fails naming the input instead of hanging."""

from __future__ import annotations

import ctypes
import signal
import threading
from contextlib import contextmanager


class Hung(BaseException):
    """Raised by the guard; a BaseException so that no `except Exception` swallows it."""


def bounded(what: str, seconds: float = 20.0):
    """Fail (naming the input) instead of hanging: the work must finish within `seconds`. A hang
    guard, not a speed assertion: the bound is far above what any input takes."""
    message = f"no answer within {seconds:g}s for {what}"
    if hasattr(signal, "setitimer"):
        return _by_alarm(message, seconds)
    return _by_timer_thread(message, seconds)


@contextmanager
def _by_alarm(message: str, seconds: float):
    """SIGALRM also stops a regular expression mid-match: the regex engine checks for signals."""
    def on_alarm(signum, frame):
        raise Hung(message)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def _by_timer_thread(message: str, seconds: float):
    """Where there is no SIGALRM (Windows): a timer thread has Hung raised in the guarded thread at
    its next Python instruction (a loop in C, such as a regex match, is stopped only once it ends)."""
    guarded = threading.get_ident()
    hung = type("Hung", (Hung,), {"__init__": lambda self: Hung.__init__(self, message)})
    lock = threading.Lock()
    state = {"inside": True, "fired": False}
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc

    def expire() -> None:
        with lock:
            if state["inside"]:
                state["fired"] = True
                set_async_exc(ctypes.c_ulong(guarded), ctypes.py_object(hung))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["inside"] = False
            if state["fired"]:  # fired as the work ended: not delivered yet, it must not hit the caller
                set_async_exc(ctypes.c_ulong(guarded), None)
