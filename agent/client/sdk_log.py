"""How the SDK reports a problem of its own: a warning on the `botwatch.client.sdk` logger the first
time, debug after, and never an exception into the bot."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable

log = logging.getLogger("botwatch.sdk")

MAX_KEYS = 1024  # problems remembered as said; beyond them a new one is logged as a warning each time

_warned: set[Hashable] = set()
_warned_lock = threading.Lock()


def warn(key: Hashable, msg: str, *args: object) -> None:
    """A warning the first time, debug after: a problem repeated on every event is logged once."""
    with _warned_lock:
        first = key not in _warned
        if first and len(_warned) < MAX_KEYS:
            _warned.add(key)
    try:
        log.log(logging.WARNING if first else logging.DEBUG, msg, *args)
    except Exception:
        pass


def warn_once(key: Hashable, message: str) -> None:
    """`warn` in the shape of runrecord.Warn, for the shared run-record rules' messages."""
    warn(key, "botwatch: %s", message)


def internal_error(where: str, exc: BaseException) -> None:
    """A failure of the SDK itself: logged with its traceback the first time, and the bot goes on."""
    with _warned_lock:
        first = ("internal", where, type(exc).__name__) not in _warned
        _warned.add(("internal", where, type(exc).__name__))
    try:
        log.log(logging.WARNING if first else logging.DEBUG, "botwatch: %s failed (%s: %s); the bot goes on",
                where, type(exc).__name__, exc, exc_info=exc if first else None)
    except Exception:
        pass
