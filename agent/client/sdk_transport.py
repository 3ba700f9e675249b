"""How the SDK's events leave the bot: each committed to the local spool (the one `botwatch run`
uses), then a detached deliverer started for it: at a run's start and end, otherwise at most
every KICK_INTERVAL seconds, and once more when the process exits for what is left."""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from . import runrecord
from .sdk_log import warn, warn_once
from .spool import Spool, default_spool_path

if TYPE_CHECKING:
    import subprocess

KICK_INTERVAL = 5.0  # outside run start and end, start a deliverer at most this often

_monotonic = time.monotonic  # the delivery kick's clock (a test replaces it)

_local = threading.local()  # each thread its own SQLite connection to the spool


def _spool_warning(message: str) -> None:
    warn(("spool", "location"), "botwatch: %s", message)


def _spool(path: str) -> Spool:
    cached = getattr(_local, "spool", None)
    if cached is not None and cached[0] == os.getpid() and cached[1] == path:
        spool: Spool = cached[2]
        return spool
    _drop_spool()
    spool = Spool(path, warn=_spool_warning)
    _local.spool = (os.getpid(), path, spool)
    return spool


def _drop_spool() -> None:
    cached = getattr(_local, "spool", None)
    _local.spool = None
    if cached is not None and cached[0] == os.getpid():
        try:
            cached[2].close()
        except Exception:
            pass


def record(kind: str, bot_name: str, run_id: str, event: dict[str, Any], agent_url: str | None,
           config: str | None, *, kick: bool = False) -> None:
    """Commit one event to the spool, then see that a deliverer is at work (`kick`: start one
    now, as at a run's start and end). Never raises."""
    path = None
    try:
        path = default_spool_path()
        text = json.dumps(event, allow_nan=False, separators=(",", ":"))
        try:
            _spool(path).add_event(kind, bot_name, run_id, text, agent_url=agent_url, config=config)
        except Exception:
            _drop_spool()  # reopen next time: the file may have been moved, the disk freed
            raise
    except Exception as exc:
        warn(("spool", path), "botwatch: cannot record a %s event of bot %r in the spool %s (%s: %s); "
             "the bot goes on", event.get("type"), bot_name, path, type(exc).__name__, exc)
        return
    _kick(path, force=kick)


class _Kicks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.last: dict[str, float] = {}
        self.pending: set[str] = set()  # spools with events no deliverer was started for
        self.children: list[subprocess.Popen[bytes]] = []
        self.exit_hook = False


_kicks = _Kicks()


def _kick(path: str, *, force: bool) -> None:
    """Start a detached deliverer for the spool: at run start and end, otherwise at most every
    KICK_INTERVAL seconds (and once more when the process exits, for what is left)."""
    if not runrecord.delivery_wanted():
        return
    now = _monotonic()
    with _kicks.lock:
        if _kicks.pid != os.getpid():  # a forked child starts afresh
            _kicks.pid, _kicks.last, _kicks.pending, _kicks.children = os.getpid(), {}, set(), []
        if not _kicks.exit_hook:
            _kicks.exit_hook = True
            atexit.register(_kick_leftovers)
        last = _kicks.last.get(path)
        if not force and last is not None and now - last < KICK_INTERVAL:
            _kicks.pending.add(path)
            return
        _kicks.last[path] = now
        _kicks.pending.discard(path)
        _kicks.children = [c for c in _kicks.children if c.poll() is None]  # reap the finished ones
    _start_deliverer(path)


def _kick_leftovers() -> None:
    try:
        with _kicks.lock:
            paths = sorted(_kicks.pending) if _kicks.pid == os.getpid() else []
            _kicks.pending = set()
        for path in paths:
            if runrecord.delivery_wanted():
                _start_deliverer(path)
    except Exception:
        pass


def _start_deliverer(path: str) -> None:
    # a long-lived bot process keeps its deliverers' handles, to reap them instead of collecting zombies
    child = runrecord.start_deliverer(path, warn_once, reap=True)
    if child is not None:
        with _kicks.lock:
            _kicks.children.append(child)
