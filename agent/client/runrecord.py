"""The rules every client follows when it records a run: `botwatch run`, the SDK, the Robot
Framework listener and the log parsers write the same record the same way.

A new run's id, the host it ran on, the estate file and agent it is recorded for, the excerpt of
its output kept with it, the reason it failed, and the deliverer started once it is spooled.
Standard library only, and little of it at import: `botwatch run` loads this on its hot path,
thousands of times a day; the classifier and the estate file are loaded when a run failed.
"""

from __future__ import annotations

import os
import sys
import time
from _thread import allocate_lock  # threading.Lock, without loading threading on the wrapper's path

from .. import _platform
from ..core.host import hostname

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the wrapper's path)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Hashable

    from ..core.classify import Classifier

    Warn = Callable[[Hashable, str], None]

__all__ = ["CLASSIFIED_CHARS", "STORED_TAIL_CHARS", "agent_url", "classifier_for", "delivery_wanted",
           "deliverer_folder", "error_tail", "estate_file", "failure_reason", "host", "new_run_id", "output_tail",
           "start_deliverer"]

# Warn, how a client reports a monitoring problem: (a key, so that a problem repeated on every
# run is said once; the message). The bot is never stopped for one.

CLASSIFIED_CHARS = 64 * 1024  # the end of a run's output its failure is classified from
STORED_TAIL_CHARS = 4096  # the redacted excerpt of its output stored with a run


# -- what identifies a run -------------------------------------------------------------------

def new_run_id() -> str:
    """A fresh run id: the start in milliseconds (hex, so that ids sort by start) and 48 random
    bits; it matches vocabulary.RUN_ID."""
    return f"{int(time.time() * 1000):x}-{os.urandom(6).hex()}"


_host: str | None = None


def host() -> str:
    """The host's name as run records carry it (core.host.hostname), looked up once per process."""
    global _host
    if _host is None:
        _host = hostname()
    return _host


def estate_file(explicit: str | None = None) -> str | None:
    """The estate file a run is recorded with (its agent's address and key, its failure
    patterns): `explicit` (--config), else $BOTWATCH_CONFIG, else ./botwatch.yaml if there is
    one; absolute, for a deliverer started elsewhere. None if there is none."""
    try:
        config = (explicit or os.environ.get("BOTWATCH_CONFIG")
                  or ("botwatch.yaml" if os.path.exists("botwatch.yaml") else None))
        return os.path.abspath(config) if config else None
    except OSError:  # the working directory is gone
        return None


def agent_url(explicit: str | None = None) -> str | None:
    """The agent a run's events go to: `explicit`, else $BOTWATCH_AGENT_URL; None leaves it to
    the deliverer (the estate's `agent.listen`, else the default address)."""
    return explicit or os.environ.get("BOTWATCH_AGENT_URL") or None


# -- what is kept of its output --------------------------------------------------------------

def output_tail(output: str | None) -> str | None:
    """The excerpt stored with a run: the redacted end of its output, at most STORED_TAIL_CHARS,
    starting on a whole line (a cut line could hold a secret the redaction rules no longer
    recognise). None when nothing is left."""
    if not output:
        return None
    from ..core.redact import redact

    window = output[-STORED_TAIL_CHARS * 2:]
    if len(output) > len(window):
        window = window.partition("\n")[2]
    return redact(window)[-STORED_TAIL_CHARS:] or None


def error_tail(errors: list[str], more: int = 0) -> str | None:
    """The excerpt stored with a run read from a log, which has no output of its own: its kept
    error messages (each already redacted and bounded), one per line, and how many more there
    were. None when it logged none."""
    if not errors:
        return None
    tail = "\n".join(errors)
    if more:
        tail += f"\n[... {more} more error line(s)]"
    return tail


# -- why it failed ---------------------------------------------------------------------------

_classifiers: dict[tuple[str, int] | None, Classifier] = {}  # (estate file, mtime) -> its patterns; None: built-in
_classifiers_lock = allocate_lock()
MAX_CLASSIFIERS = 16


def classifier_for(config: str | None, warn: Warn) -> Classifier:
    """The estate's failure patterns when its file is readable (read once per change of the
    file, its `failure_patterns` only), else the built-in ones; an unusable file or pattern is
    warned about."""
    from ..core.classify import Classifier

    key = None
    if config:
        try:
            key = (config, os.stat(config).st_mtime_ns)
        except OSError:
            pass
    with _classifiers_lock:
        found = _classifiers.get(key)
    if found is not None:
        return found
    if key is not None:
        try:
            from .estate_patterns import read_failure_patterns

            found = Classifier(read_failure_patterns(key[0]))  # the patterns alone: no full validation
        except Exception as exc:
            warn(("estate", key), f"estate file {config} not usable for classification "
                 f"({(str(exc).splitlines() or [type(exc).__name__])[0]}); using the built-in failure patterns")
    if found is None:
        with _classifiers_lock:
            found = _classifiers.get(None)
        found = found or Classifier()
    with _classifiers_lock:
        if len(_classifiers) > MAX_CLASSIFIERS:
            _classifiers.clear()
        _classifiers[key] = found
    return found


def failure_reason(config: str | None, output: str | None, warn: Warn, *, exit_status: int | None = None,
                   signal: int | None = None, timed_out: bool = False) -> str:
    """The reason a run failed, from the end of its output, its exit status, the signal that
    ended it and whether it ran out of time, with the estate's failure patterns (classifier_for).
    A client guards the call: a failure of its own must not cost the run's record."""
    return classifier_for(config, warn).classify(exit_status=exit_status, signal=signal, timed_out=timed_out,
                                                 output=(output or "")[-CLASSIFIED_CHARS:]).reason


# -- after it is spooled ---------------------------------------------------------------------

def delivery_wanted() -> bool:
    """False when $BOTWATCH_NO_DELIVERY=1: events stay in the spool until a deliverer is started
    by hand (tests, hosts that deliver on a schedule of their own)."""
    return os.environ.get("BOTWATCH_NO_DELIVERY") != "1"


def start_deliverer(spool_path: str, warn: Warn, *, reap: bool = False) -> subprocess.Popen[bytes] | None:
    """Start a detached deliverer (`python -m botwatch.deliver`) for what was just spooled; it
    outlives the caller, and the one already at work (the spool's lock) takes the events in its
    place. Never raises: a problem is warned about and the events wait in the spool.

    `reap`: return the child, so that a long-lived process (a bot using the SDK) can reap it
    once it has ended; `botwatch run` exits soon after and keeps no handle."""
    if not delivery_wanted():
        return None
    exe = sys.executable or ""
    if not os.path.basename(exe).lower().startswith(("python", "pypy")):
        warn("no-python", f"cannot start the deliverer from this interpreter ({exe!r}); events wait in "
             f"{spool_path} until the next `botwatch run` or `python -m botwatch.deliver`")
        return None
    # -P: the caller's folder (a bot's) is not on the deliverer's import path
    argv = [exe, "-P", "-m", "botwatch.deliver", "--spool", os.path.abspath(spool_path)]
    try:
        # started in its spool's folder; on POSIX `botwatch run` keeps no handle and spawns it
        # without subprocess (its hot path): there the deliverer moves to that folder itself
        folder = deliverer_folder(spool_path) if reap or os.name == "nt" else None
        child = _platform.spawn_detached(argv, folder)
    except Exception as exc:
        warn(("deliver", spool_path), f"cannot start the deliverer ({exc}); events wait in {spool_path}")
        return None
    return child if reap else None


def deliverer_folder(spool_path: str) -> str:
    """Where the deliverer runs: its spool's folder, which exists once a run is spooled. Not
    the caller's: the bot's working folder would stay in use (a mount busy, a folder Windows
    cannot delete or rename) for as long as the deliverer waits for an agent."""
    return os.path.dirname(os.path.abspath(spool_path))
