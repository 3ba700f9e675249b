"""Ctrl-Break treated as Ctrl-C.

On Windows, Ctrl-Break (what `botwatch run`, Task Scheduler's "end task" on a console and most
orchestrators send to stop a console program) arrives as SIGBREAK, whose default action ends the
process at once: no `finally`, no Robot Framework output.xml, no `run_finished` from the SDK. A
handler installed here does what SIGINT's handler does at the moment the signal comes (Robot
Framework's graceful stop, Python's KeyboardInterrupt), so a bot stopped either way ends the
same; where SIGINT is ignored, Ctrl-Break still stops the bot, with a KeyboardInterrupt. POSIX has no SIGBREAK: nothing is installed there.

The signal module is a parameter so that the decisions are tested on any platform.
"""

from __future__ import annotations

import signal as _signal
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:
    from types import FrameType, ModuleType


def stop_signals(sig: ModuleType = _signal) -> tuple[int, ...]:
    """The signals that ask a long-lived process (the agent) to stop: SIGINT, SIGTERM and, on
    Windows, SIGBREAK."""
    found = (getattr(sig, name, None) for name in ("SIGINT", "SIGTERM", "SIGBREAK"))
    return tuple(s for s in found if s is not None)


def break_as_interrupt(sig: ModuleType = _signal) -> bool:
    """Make SIGBREAK do what SIGINT does. Installed only where SIGBREAK exists, from the main
    thread (the only one that may set handlers), and when the program has set no handler of its
    own for SIGBREAK. True when the handler is (now) in place."""
    brk = getattr(sig, "SIGBREAK", None)
    if brk is None or threading.current_thread() is not threading.main_thread():
        return False
    current = sig.getsignal(brk)
    if getattr(current, "botwatch_break_as_interrupt", False):
        return True
    if current not in (sig.SIG_DFL, None):
        return False  # the bot decided what Ctrl-Break does

    def on_break(signum: int, frame: FrameType | None) -> None:
        handler = sig.getsignal(sig.SIGINT)
        if callable(handler):
            handler(sig.SIGINT, frame)
            return
        # SIGINT ignored (a process started in the background inherits that) or at the system's
        # default: Ctrl-Break is still a request to stop, which would otherwise end the bot at once
        raise KeyboardInterrupt

    on_break.botwatch_break_as_interrupt = True  # type: ignore[attr-defined]  # recognised when installed twice
    try:
        sig.signal(brk, on_break)
    except (ValueError, OSError):  # not the main interpreter, or the platform refuses
        return False
    return True
