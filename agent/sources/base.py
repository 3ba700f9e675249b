"""What every source of the agent shares: its thread, its interval, stopping, the rule that it
never raises into the agent, rate-limited warnings and checkpoints in the journal.

A source subclasses `Source`, declares its `name` (the registry's key, the thread's name
`botwatch-source-<name>`, where its checkpoints are kept), the label values it counts events
(`event_labels`) and errors (`error_labels`) under, its `config_keys`, says with `wanted(loaded)`
whether an estate asks for it and implements `poll_once()`, called every `interval` seconds.
Defining the class registers it (see registry.py); the agent builds it with
`from_estate(loaded, state, journal, **deps)`.

An exception out of `poll_once()` is counted in `botwatch_agent_parse_errors_total{source=
<label>}` (the source's first error label, else its name) and logged (at most once per
`WARN_EVERY` seconds), and the loop goes on: after each further crash in a row it waits twice
as long before polling again, at most `MAX_BACKOFF` seconds (or the interval, when longer);
the first poll that succeeds goes back to the interval.

A source may also take pushes (a control plane's webhooks): `receives(connection)` says, before
the body is read, whether it takes them for that connection, and `receive(connection, headers,
body)` gets the raw body (bounded, not parsed) and answers an HTTP status and a JSON object. The
agent routes `POST /api/v1/webhooks/<source name>/<connection>` to it.

`PeriodicTask` is the same loop without the estate: the agent's sweeper and governance checks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ..state.journal import JournalError
from . import registry

if TYPE_CHECKING:
    from ..config.estate import LoadedEstate
    from ..state.journal import Journal
    from ..state.runtime import EstateState

log = logging.getLogger("botwatch.sources")

WARN_EVERY = 300.0  # seconds between two warnings of the same key
MAX_BACKOFF = 60.0  # seconds a crashing loop waits at most between two polls (unless its interval is longer)


class PeriodicTask:
    """Calls `poll_once()` every `interval` seconds in a thread named `thread_name`, until stopped."""

    thread_name: str = "botwatch-task"
    poll_first = True  # poll as soon as started (else after one interval)

    def __init__(self, interval: float):
        self.interval = float(interval)
        self.stopped = threading.Event()
        self.crashes = 0  # polls that raised, since the start
        self._thread: threading.Thread | None = None
        self._warned: dict[object, float] = {}

    # -- to implement ----------------------------------------------------------------------
    def poll_once(self) -> object:  # what it returns (e.g. events read) is the source's business
        raise NotImplementedError

    def poll(self) -> None:
        """What the loop calls each time: poll_once(), unless a source needs more around it."""
        self.poll_once()

    def on_start(self) -> None:
        """Called in start(), before the thread (e.g. to start a file-system observer)."""

    def on_stop(self, timeout: float) -> None:
        """Called in stop(), before the thread is joined."""

    def on_crash(self, exc: BaseException) -> None:
        """Called after a poll raised (counting it is the source's business)."""

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self.stopped.clear()
        self.on_start()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopped.set()
        self.on_stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, seconds: float) -> bool:
        """Sleeps `seconds` or until stopped; True when stopped (subclasses may wake it sooner)."""
        return self.stopped.wait(seconds)

    def _run(self) -> None:
        in_a_row = 0
        if not self.poll_first and self.wait(self.interval):
            return
        while not self.stopped.is_set():
            try:
                self.poll()
                in_a_row = 0
            except Exception as exc:  # never into the agent: counted, logged, polled again later
                in_a_row += 1
                self.crashes += 1
                try:
                    self.on_crash(exc)
                except Exception:
                    log.exception("%s: counting a failed poll failed", self.thread_name)
                self.warn(("crash", type(exc).__name__), "%s: polling failed (%d in a row); trying again",
                          self.thread_name, in_a_row, exc_info=True)
            delay = self.interval
            if in_a_row:
                delay = min(self.interval * 2 ** (in_a_row - 1), max(MAX_BACKOFF, self.interval))
            if self.wait(delay):
                return

    # -- warnings --------------------------------------------------------------------------
    def warn(self, key: object, msg: str, *args: object, every: float = WARN_EVERY, exc_info: bool = False) -> bool:
        """Logs a warning unless one of the same `key` was logged less than `every` seconds ago;
        True when it was logged."""
        now = time.monotonic()
        last = self._warned.get(key)
        if last is not None and now - last <= every:
            return False
        if len(self._warned) >= 10_000:  # keys made of file names must not grow without end
            self._warned.clear()
        self._warned[key] = now
        log.warning(msg, *args, exc_info=exc_info)
        return True


class Source(PeriodicTask):
    """A source of events: see the module docstring."""

    name: ClassVar[str]
    event_labels: ClassVar[tuple[str, ...]] = ()  # values of botwatch_agent_events_total{source}
    error_labels: ClassVar[tuple[str, ...]] = ()  # values of botwatch_agent_parse_errors_total{source}
    config_keys: ClassVar[tuple[str, ...]] = ()  # the estate settings it reads (for the docs)
    default_interval: ClassVar[float] = 1.0

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register and "name" in cls.__dict__:
            registry.register(cls)

    def __init__(self, state: EstateState, journal: Journal | None = None, *, interval: float | None = None):
        super().__init__(self.default_interval if interval is None else interval)
        self.state, self.journal = state, journal
        self.thread_name = f"botwatch-source-{self.name}"

    @classmethod
    def wanted(cls, loaded: LoadedEstate) -> bool:
        """Whether this estate (a LoadedEstate) asks for this source."""
        return False

    @classmethod
    def from_estate(cls, loaded: LoadedEstate, state: EstateState, journal: Journal | None,
                    **deps: object) -> Source:
        """The source for this estate; `deps` are shared objects the agent passes to every
        source (e.g. `probe`, the UI drift probe): take the ones you need."""
        return cls(state, journal)

    @property
    def label(self) -> str:
        """What a failed poll is counted under."""
        return self.error_labels[0] if self.error_labels else self.name

    def on_crash(self, exc: BaseException) -> None:
        self.state.count_parse_error(self.label)

    # -- pushes (webhooks) -----------------------------------------------------------------
    def receives(self, connection: str) -> bool:
        """Whether pushes for `connection` are taken, decided before their body is read."""
        return False

    def receive(self, connection: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One push: its headers (names in lower case) and raw body, which the source authenticates
        before it parses it. The HTTP status and JSON object to answer. Runs in the server's
        threads, beside `poll_once()` in the source's own."""
        return 404, {"error": "this source takes no pushes"}

    # -- checkpoints -----------------------------------------------------------------------
    def load_checkpoint(self, identity: str) -> dict[str, Any] | None:
        """What `save_checkpoint(identity, ...)` last saved, even before a restart; None if nothing."""
        if self.journal is None:
            return None
        try:
            return self.journal.get_checkpoint(self.name, identity)
        except Exception as exc:  # sqlite3.Error of a closing journal: start afresh
            self.warn(("checkpoint-read",), "%s: cannot read where it was: %s", self.thread_name, exc)
            return None

    def save_checkpoint(self, identity: str, state: dict[str, Any]) -> bool:
        """Remembers `state` (a JSON object) for `identity`; False (and warned) when the journal
        cannot be written."""
        if self.journal is None:
            return True
        try:
            with self.journal.transaction() as j:
                j.put_checkpoint(self.name, identity, state)
            return True
        except JournalError as exc:
            self.warn(("checkpoint-write",), "%s: cannot remember where it is: %s", self.thread_name, exc)
            return False
