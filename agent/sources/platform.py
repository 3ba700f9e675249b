"""What every RPA control-plane source does the same way, whatever its API: the connections it
pulls in turn, a failed pull spaced out with exponential backoff and said once per outage,
cursors kept as journal checkpoints, and which bot each of the platform's automations is.

A platform's source (uipath_orchestrator.py...) subclasses `PlatformSource` with its `platform`
label and `config_key` (its list under `platforms:` in the estate file), builds a connection per
entry (`connect`) and reads one connection per pull (`pull_connection`), turning what it reads
into events with the helpers here; HTTP, tokens and the request budget are controlplane.py's.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Sequence, TypeVar

from .base import Source
from .controlplane import ApiClient, ApiError, AuthError, BadAnswer, Credentials, RequestBudget, Throttled

if TYPE_CHECKING:
    from ..config.estate import LoadedEstate
    from ..config.platforms import PlatformConnection
    from ..state.journal import Journal
    from ..state.runtime import EstateState

_FRACTION = re.compile(r"(\.\d{6})\d+")  # .NET writes 7 digits of a second (AA 9); Python reads 6
MAX_REMEMBERED = 10_000  # ids kept with a cursor (those that ended at or after it)
_SLUG = re.compile(r"[^a-z0-9_-]+")

C = TypeVar("C", bound="PlatformConnection")


def parse_time(value: Any) -> float | None:
    """An OData DateTimeOffset (`2024-05-01T10:00:00.1234567Z`) as Unix seconds; None if absent
    or not a time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def odata_time(ts: float) -> str:
    """Unix seconds as an OData DateTimeOffset literal (UTC, milliseconds)."""
    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def bot_slug(process: str) -> str:
    """A bot name for an automation no rule names: lower case, [a-z0-9_-], at most 64 characters."""
    return _SLUG.sub("-", process.lower()).strip("-")[:64] or "process"


def advance(cursor: float, ended: dict[str, float], began: float | None) -> tuple[float, list[str]]:
    """The next cursor of an incremental pull and the ids to keep with it. The cursor is the
    latest end read, but not past the start of the pull on the server's clock (`began`: the Date
    of its first answer): what ended while the pull paged past it is asked for again. The ids
    that ended at or after it are kept, so that what is asked for again is not counted again."""
    new = max(ended.values(), default=cursor)
    if began is not None:
        new = min(new, began - 1.0)
    new = max(cursor, new)
    return new, sorted(i for i, end in ended.items() if end >= new)[:MAX_REMEMBERED]


@dataclass
class Connection(Generic[C]):
    """One connection and what its source keeps of it between pulls."""

    cfg: C
    client: ApiClient
    next_pull: float = 0.0
    down_since: float | None = None  # monotonic time of the first failed pull of an outage
    failures: int = 0  # pulls failed in a row: the wait before the next one doubles with each
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)  # the checkpoints, as last saved
    pull_requested: bool = False  # request_pull() since the current pull began
    # capabilities the credentials turned out not to have (403: a scope or role not granted)
    off: set[str] = field(default_factory=set)


class PullFailed(ApiError):
    """Parts of a pull failed (some folders...), the others were read: the connection is down."""


def api_client(platform: str, cfg: PlatformConnection, state: EstateState, base_url: str, credentials: Credentials,
               decode: Callable[[bytes], Any] | None = None) -> ApiClient:
    """A connection's API client: its budget and timeout, each request counted for its
    `botwatch_agent_controlplane_requests_total`."""
    return ApiClient(base_url, credentials, RequestBudget(cfg.requests_per_minute), cfg.timeout,
                     on_request=lambda outcome: state.count_request(platform, cfg.name, outcome),
                     **({"decode": decode} if decode is not None else {}))


class PlatformSource(Source, Generic[C], register=False):
    platform: ClassVar[str]  # the platform label: metrics, bots' platform, the source's events
    config_key: ClassVar[str]  # its list under `platforms:` in the estate file (default: the label)
    credentials_hint: ClassVar[str] = "check the connection's credentials"
    default_interval = 1.0  # how often it looks whether a connection is due (each has its own interval)

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        # a platform's source is named, counted and configured by its label unless it says otherwise
        if "platform" in cls.__dict__:
            for attr, value in (("name", cls.platform), ("event_labels", (cls.platform,)),
                                ("error_labels", (cls.platform,)), ("config_key", cls.platform)):
                if attr not in cls.__dict__:
                    setattr(cls, attr, value)
            if "config_keys" not in cls.__dict__:
                cls.config_keys = (f"platforms.{cls.config_key}",)
        super().__init_subclass__(register=register, **kwargs)

    def __init__(self, state: EstateState, journal: Journal | None, connections: Sequence[Connection[C]]):
        super().__init__(state, journal)
        self.connections = list(connections)
        self.log = logging.getLogger(f"botwatch.sources.{self.platform}")

    @classmethod
    def configured(cls, loaded: LoadedEstate) -> list[C]:
        return list(getattr(loaded.estate.platforms, cls.config_key))

    @classmethod
    def wanted(cls, loaded: LoadedEstate) -> bool:
        return bool(cls.configured(loaded))

    @classmethod
    def from_estate(cls, loaded: LoadedEstate, state: EstateState, journal: Journal | None,
                    **deps: object) -> PlatformSource[C]:
        return cls(state, journal, [cls.connect(cfg, state) for cfg in cls.configured(loaded)])

    @classmethod
    def connect(cls, cfg: C, state: EstateState) -> Connection[C]:
        """The connection of one entry of the estate file (its API client, its state)."""
        raise NotImplementedError

    def pull_connection(self, conn: Connection[C]) -> None:
        """Reads what the connection has new and applies it; raises ApiError (PullFailed when
        only parts failed) for the pull to be tried again later."""
        raise NotImplementedError

    def after_pull(self, conn: Connection[C]) -> None:
        """Called after a pull of `conn` that succeeded."""

    # -- the loop -------------------------------------------------------------------------
    def poll_once(self) -> None:
        for conn in self.connections:
            if self.stopped.is_set():
                return
            if time.monotonic() >= conn.next_pull:
                conn.pull_requested = False
                self.pull(conn)

    def pull(self, conn: Connection[C]) -> None:
        """One pull of `conn`. A failure marks it down, said once per outage, and spaces out
        the next tries; a 429 waits its Retry-After."""
        cfg = conn.cfg
        try:
            self.pull_connection(conn)
        except Throttled as exc:
            conn.next_pull = time.monotonic() + max(exc.retry_after, 1.0)
            self.warn((cfg.name, "throttled"), "%s %s: %s", self.platform, cfg.name, exc)
            return
        except AuthError as exc:
            self.failed(conn, f"credentials refused: {exc} ({self.credentials_hint})")
            return
        except ApiError as exc:
            self.count_bad_answer(exc)
            self.failed(conn, str(exc))
            return
        if self.stopped.is_set():
            return
        if conn.down_since is not None:
            self.log.warning("%s %s: reachable again after %.0f s", self.platform, cfg.name,
                             time.monotonic() - conn.down_since)
            conn.down_since = None
        conn.failures = 0
        self.state.note_connection(self.platform, cfg.name, up=True)
        self.after_pull(conn)
        # a pull asked for while this one ran (a webhook) is not put off by it
        conn.next_pull = time.monotonic() + (0.0 if conn.pull_requested else cfg.interval)

    def failed(self, conn: Connection[C], why: str) -> None:
        """A failed pull: the connection is down (its metric says so, one log line per outage)
        and is tried again after a wait that doubles with each failure, up to max_backoff."""
        cfg = conn.cfg
        self.state.note_connection(self.platform, cfg.name, up=False)
        conn.failures += 1
        ceiling = max(cfg.max_backoff, cfg.interval)
        wait = min(cfg.interval * 2 ** min(conn.failures - 1, 20), ceiling)
        if conn.down_since is None:
            conn.down_since = time.monotonic()
            self.log.warning("%s %s: %s; trying again in %.0f s, then less and less often (at most every %.0f s)",
                             self.platform, cfg.name, why, wait, ceiling)
        conn.next_pull = time.monotonic() + wait

    def count_bad_answer(self, exc: ApiError) -> None:
        """An answer that is not what the API documents is bad input: counted as a parse error
        (an unreachable server or a 5xx is not)."""
        if isinstance(exc, BadAnswer):
            self.state.count_parse_error(self.label)

    @staticmethod
    def partial_failure(failed: list[str]) -> None:
        """Raises PullFailed naming (the first three of) the parts of a pull that failed."""
        if failed:
            raise PullFailed("; ".join(failed[:3]) + (f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""))

    def optional(self, conn: Connection[C], what: str, pull: Callable[[], None]) -> None:
        """Runs the pull of a capability the credentials may lack: a 403 (a scope or role not
        granted) turns it off for this connection, said once, without failing the connection."""
        if what in conn.off:
            return
        try:
            pull()
        except AuthError as exc:
            if exc.status != 403:
                raise
            conn.off.add(what)
            self.log.warning("%s %s: no access to %s (%s); grant it or set %s: false",
                             self.platform, conn.cfg.name, what, exc, what)

    def request_pull(self, conn: Connection[C]) -> None:
        """Pull `conn` at the next look (within `default_interval`) rather than after its interval."""
        conn.pull_requested = True
        conn.next_pull = min(conn.next_pull, time.monotonic())

    def connection(self, name: str) -> Connection[C] | None:
        return next((c for c in self.connections if c.cfg.name == name), None)

    # -- cursors ----------------------------------------------------------------------------
    def cursor(self, conn: Connection[C], key: str) -> dict[str, Any]:
        """Where the pulls of `key` (a folder's jobs...) are: kept in memory, read from the
        journal once (after a restart)."""
        if key not in conn.cursors:
            conn.cursors[key] = self.load_checkpoint(key) or {}
        return conn.cursors[key]

    def save_cursor(self, conn: Connection[C], key: str, state: dict[str, Any]) -> None:
        conn.cursors[key] = state
        self.save_checkpoint(key, state)

    def since(self, conn: Connection[C], saved: dict[str, Any], field_name: str = "ended_since") -> float:
        """The time a cursor stands at; a first pull reaches `history` back."""
        value = saved.get(field_name)
        return float(value) if isinstance(value, (int, float)) else time.time() - conn.cfg.history

    # -- bad input ------------------------------------------------------------------------
    def bad(self, connection: str, what: str, item: Any) -> None:
        """An item that cannot be read: counted, warned (at most every 5 minutes per kind)."""
        self.state.count_parse_error(self.label)
        self.warn((connection, what[:40]), "%s %s: %s: %.200r", self.platform, connection, what, item)

    # -- bots -----------------------------------------------------------------------------
    def bot_for(self, conn: Connection[C], folder: str, process: str, run_key: str | None = None, *,
                owner: str | None = None, scheduled: bool | None = None) -> str | None:
        """The bot an automation (`process`) of a folder is: the first rule that matches; else,
        with auto_register, a bot of its own; else None (listed as unregistered). `owner` and
        `scheduled`: what the platform says of the automation (its owner, whether a schedule
        starts it), kept on a bot the estate file does not describe."""
        cfg = conn.cfg
        team = self.team_for(cfg, folder)
        for rule in cfg.processes:
            if re.fullmatch(rule.process, process) and (rule.folder is None or re.fullmatch(rule.folder, folder)):
                self.state.register_platform_bot(rule.bot, self.platform, team, owner, scheduled)
                return rule.bot
        if cfg.auto_register:
            name = bot_slug(process)
            if self.state.register_platform_bot(name, self.platform, team, owner, scheduled):
                return name
            return None  # the estate's bot limit is reached
        self.state.note_unregistered_process(self.platform, cfg.name, folder, process, run_key)
        return None

    @staticmethod
    def team_for(cfg: PlatformConnection, folder: str) -> str | None:
        for pattern, team in cfg.folder_teams.items():
            if fnmatch.fnmatchcase(folder, pattern):
                return team
        return None
