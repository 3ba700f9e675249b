"""UiPath Orchestrator: every job of a tenant becomes a run, pulled from its OData API, with
nothing installed on the robot machines (docs/uipath-orchestrator.md).

Per connection (`platforms.uipath` in the estate file) and per folder it reads, each pull asks
for the jobs that ended since its cursor or have not ended yet, in one query
(`EndTime ge <cursor> or EndTime eq null`, ordered by Id), page by page (`$top`/`$skip`, or
`@odata.nextLink` when the server sends one):

- a job that ended is a finished run (Successful: success; Faulted: failure, its `Info` classified
  by the estate's failure patterns and the built-in taxonomy; Stopped: failure, reason killed);
- a job not ended (Pending, Running, Suspended, Resumed, Stopping, Terminating) is a run in progress.

The cursor is the server's own clock, never this agent's (clock skew): the latest `EndTime` seen,
but not past the time the pull began (the `Date` of its first answer), so that a job ending while
the pull pages past it is asked for again. A job asked for again is recorded once: its run id is
`uipath:<job key>` and the journal keeps each run once. The cursor is a checkpoint per folder.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..config.estate import resolve_secret
from ..core.events import Event, Outcome, RunFinished, RunStarted
from .base import Source
from .controlplane import ApiClient, ApiError, AuthError, ClientCredentials, RequestBudget, Throttled

if TYPE_CHECKING:
    from ..config.estate import LoadedEstate
    from ..config.platforms import UiPathOrchestrator
    from ..state.journal import Journal
    from ..state.runtime import EstateState

log = logging.getLogger("botwatch.sources.uipath")

LABEL = "uipath"
FOLDERS_EVERY = 600.0  # seconds between two readings of the folder list
MAX_PAGES = 10_000  # pages of one query at most: a server that never stops paging is cut off
MAX_REMEMBERED = 10_000  # run ids kept with a cursor (those that ended at or after it)
# a finished job: outcome and reason (None: classified from its Info by the estate state)
FINISHED: dict[str, tuple[Outcome, str | None]] = {
    "Successful": ("success", None), "Faulted": ("failure", None), "Stopped": ("failure", "killed")}
IN_PROGRESS = {"Pending", "Running", "Suspended", "Resumed", "Resuming", "Stopping", "Terminating"}
_FRACTION = re.compile(r"(\.\d{6})\d+")  # .NET writes 7 digits of a second; Python reads 6
_SLUG = re.compile(r"[^a-z0-9_-]+")


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
    """A bot name for a process no rule names: lower case, [a-z0-9_-], at most 64 characters."""
    return _SLUG.sub("-", process.lower()).strip("-")[:64] or "process"


@dataclass
class Folder:
    id: int
    path: str  # FullyQualifiedName


@dataclass
class Connection:
    """One Orchestrator tenant and what the source keeps of it between pulls."""

    cfg: UiPathOrchestrator
    client: ApiClient
    folders: list[Folder] = field(default_factory=list)
    folders_read_at: float = float("-inf")
    next_pull: float = 0.0
    running: dict[int, set[str]] = field(default_factory=dict)  # per folder, the run ids in progress last pull
    down_since: float | None = None  # monotonic time of the first failed pull of an outage


class UiPathOrchestratorSource(Source):
    name = "uipath"
    event_labels = (LABEL,)
    error_labels = (LABEL,)
    config_keys = ("platforms.uipath",)
    default_interval = 1.0  # how often it looks whether a connection is due (each has its own interval)

    def __init__(self, state: EstateState, journal: Journal | None, connections: list[Connection]):
        super().__init__(state, journal)
        self.connections = connections

    @classmethod
    def wanted(cls, loaded: LoadedEstate) -> bool:
        return bool(loaded.estate.platforms.uipath)

    @classmethod
    def from_estate(cls, loaded: LoadedEstate, state: EstateState, journal: Journal | None,
                    **deps: object) -> UiPathOrchestratorSource:
        connections = [Connection(cfg, client_for(cfg, state)) for cfg in loaded.estate.platforms.uipath]
        return cls(state, journal, connections)

    # -- the loop -------------------------------------------------------------------------
    def poll_once(self) -> None:
        for conn in self.connections:
            if self.stopped.is_set():
                return
            if time.monotonic() >= conn.next_pull:
                self.pull(conn)

    def pull(self, conn: Connection) -> None:
        """One pull of every folder of `conn`. A failure is counted and logged once per outage;
        the connection is tried again after its interval (or a 429's Retry-After)."""
        cfg = conn.cfg
        failed: list[str] = []
        seen: set[str] = set()  # the bots of this pull's jobs
        stuck: dict[str, int] = {}  # per bot, its jobs Pending past stuck_pending_after
        try:
            if time.monotonic() - conn.folders_read_at >= FOLDERS_EVERY:
                conn.folders = self.read_folders(conn)
                conn.folders_read_at = time.monotonic()
            for folder in conn.folders:
                if self.stopped.is_set():
                    return
                try:
                    self.pull_jobs(conn, folder, seen, stuck)
                except (AuthError, Throttled):
                    raise
                except ApiError as exc:  # one folder's failure (its access removed...) spares the others
                    failed.append(f"folder {folder.path!r}: {exc}")
        except Throttled as exc:
            conn.next_pull = time.monotonic() + max(exc.retry_after, 1.0)
            self.warn((cfg.name, "throttled"), "uipath %s: %s", cfg.name, exc)
            return
        except AuthError as exc:
            self._failed(conn, f"credentials refused: {exc} (check client_id, client_secret and scope)")
            return
        except ApiError as exc:
            self._failed(conn, str(exc))
            return
        if failed:
            self._failed(conn, "; ".join(failed[:3]) + (f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""))
            return
        if conn.down_since is not None:
            log.warning("uipath %s: reachable again after %.0f s", cfg.name, time.monotonic() - conn.down_since)
            conn.down_since = None
        self.state.note_connection(LABEL, cfg.name, up=True)
        self.state.controlplanes.note_pull(cfg.name, seen, stuck)
        conn.next_pull = time.monotonic() + cfg.interval

    def _failed(self, conn: Connection, why: str) -> None:
        self.state.count_parse_error(LABEL)
        self.state.note_connection(LABEL, conn.cfg.name, up=False)
        if conn.down_since is None:
            conn.down_since = time.monotonic()
            log.warning("uipath %s: %s; trying again every %.0f s", conn.cfg.name, why, conn.cfg.interval)
        conn.next_pull = time.monotonic() + conn.cfg.interval

    # -- folders --------------------------------------------------------------------------
    def read_folders(self, conn: Connection) -> list[Folder]:
        cfg = conn.cfg
        folders = []
        for item in self.pages(conn, "odata/Folders", {"$orderby": "Id asc"}, {}):
            fid, path = item.get("Id"), item.get("FullyQualifiedName") or item.get("DisplayName")
            if not isinstance(fid, int) or not isinstance(path, str):
                self.state.count_parse_error(LABEL)
                self.warn((cfg.name, "folder"), "uipath %s: a folder without Id or name: %.200r", cfg.name, item)
                continue
            if cfg.folders and not any(fnmatch.fnmatchcase(path, p) for p in cfg.folders):
                continue
            if any(fnmatch.fnmatchcase(path, p) for p in cfg.exclude_folders):
                continue
            folders.append(Folder(fid, path))
        return folders

    # -- jobs -----------------------------------------------------------------------------
    def pull_jobs(self, conn: Connection, folder: Folder, seen: set[str] | None = None,
                  stuck: dict[str, int] | None = None) -> None:
        """The folder's jobs that ended since its cursor, as finished runs, and those not ended,
        as runs in progress. What this folder's previous pull already applied is not applied again:
        the runs that ended at or after the cursor (kept with it) and the runs in progress (kept in
        memory: after a restart they are applied once more, which the state takes as it is)."""
        cfg = conn.cfg
        key = f"{cfg.name}:{folder.id}"
        saved = self.load_checkpoint(key) or {}
        cursor = saved.get("ended_since")
        if not isinstance(cursor, (int, float)):
            cursor = time.time() - cfg.history
        recorded = set(saved.get("recorded") or ())  # run ids that ended at or after the cursor
        running = conn.running.get(folder.id, set())
        params = {"$filter": f"EndTime ge {odata_time(cursor)} or EndTime eq null", "$orderby": "Id asc",
                  "$expand": "Robot"}
        finished: dict[str, float] = {}  # run id -> ended, of this pull
        now_running: set[str] = set()
        began: float | None = None
        for page, date in self.page_batches(conn, "odata/Jobs", params,
                                            {"X-UIPATH-OrganizationUnitId": str(folder.id)}):
            if began is None:
                began = date
            events: list[Event] = []
            for job in page:
                ev = self.event_for(conn, folder, job)
                if ev is None:
                    continue
                if seen is not None:
                    seen.add(ev.bot)
                created = parse_time(job.get("CreationTime"))
                if (stuck is not None and job.get("State") == "Pending" and created is not None
                        and date - created > cfg.stuck_pending_after):  # on the server's clock
                    stuck[ev.bot] = stuck.get(ev.bot, 0) + 1
                if isinstance(ev, RunFinished):
                    finished[ev.run_id] = ev.ended
                    if ev.run_id in recorded:
                        continue
                else:
                    now_running.add(ev.run_id)
                    if ev.run_id in running:
                        continue
                events.append(ev)
            if events:
                self.state.apply(events)
        conn.running[folder.id] = now_running
        # the latest end read, but not past the start of this pull on the server's clock: a job
        # that ended while the pull paged past it has an EndTime after that
        new_cursor = max(finished.values(), default=cursor)
        if began is not None:
            new_cursor = min(new_cursor, began - 1.0)
        new_cursor = max(cursor, new_cursor)
        again = sorted(r for r, ended in finished.items() if ended >= new_cursor)[:MAX_REMEMBERED]
        self.save_checkpoint(key, {"ended_since": new_cursor, "recorded": again})

    def event_for(self, conn: Connection, folder: Folder, job: Any) -> RunStarted | RunFinished | None:
        """The run a job is, None when it is not recorded (an unregistered process, a bad item:
        counted and warned)."""
        cfg = conn.cfg
        if not isinstance(job, dict) or not isinstance(job.get("Key"), str) or not job["Key"]:
            self._bad(cfg.name, "a job without Key", job)
            return None
        process = job.get("ReleaseName") or ""
        if not isinstance(process, str) or not process:
            self._bad(cfg.name, "a job without ReleaseName", job)
            return None
        bot = self.bot_for(conn, folder, process)
        if bot is None:
            return None
        run_id = f"uipath:{job['Key']}"[:128]
        state = job.get("State")
        robot: dict[str, Any] = job["Robot"] if isinstance(job.get("Robot"), dict) else {}
        host = job.get("HostMachineName") or robot.get("MachineName")
        host = host if isinstance(host, str) else None
        started = parse_time(job.get("StartTime"))
        if state in FINISHED:
            ended = parse_time(job.get("EndTime"))
            if ended is None:
                self._bad(cfg.name, f"a {state} job without EndTime", job)
                return None
            outcome, reason = FINISHED[state]
            info = job.get("Info") if isinstance(job.get("Info"), str) else None
            who = f"Robot {robot['Name']}" if isinstance(robot.get("Name"), str) else None
            tail = "\n".join(t for t in (f"{who} on {host}" if who and host else who, info) if t) or None
            return RunFinished(bot=bot, run_id=run_id, ended=ended, outcome=outcome,
                               started=started, reason=reason, host=host,
                               output_tail=tail if outcome == "failure" else None, source=LABEL)
        if state in IN_PROGRESS:
            since = started or parse_time(job.get("CreationTime"))
            if since is None:
                self._bad(cfg.name, f"a {state} job without StartTime or CreationTime", job)
                return None
            return RunStarted(bot=bot, run_id=run_id, time=since, host=host, source=LABEL)
        self._bad(cfg.name, f"a job in an unknown state {state!r}", job)
        return None

    def _bad(self, connection: str, what: str, item: Any) -> None:
        self.state.count_parse_error(LABEL)
        self.warn((connection, what[:40]), "uipath %s: %s: %.200r", connection, what, item)

    # -- bots -----------------------------------------------------------------------------
    def bot_for(self, conn: Connection, folder: Folder, process: str) -> str | None:
        """The bot a process of a folder is: the first rule that matches; else, with
        auto_register, a bot of its own; else None (listed as unregistered)."""
        cfg = conn.cfg
        for rule in cfg.processes:
            if re.fullmatch(rule.process, process) and (rule.folder is None or re.fullmatch(rule.folder, folder.path)):
                self.state.register_platform_bot(rule.bot, "uipath", self.team_for(cfg, folder))
                return rule.bot
        if cfg.auto_register:
            name = bot_slug(process)
            if self.state.register_platform_bot(name, "uipath", self.team_for(cfg, folder)):
                return name
            return None  # the estate's bot limit is reached
        self.state.note_unregistered_process(LABEL, cfg.name, folder.path, process)
        return None

    @staticmethod
    def team_for(cfg: UiPathOrchestrator, folder: Folder) -> str | None:
        for pattern, team in cfg.folder_teams.items():
            if fnmatch.fnmatchcase(folder.path, pattern):
                return team
        return None

    # -- paging ---------------------------------------------------------------------------
    def page_batches(self, conn: Connection, path: str, params: dict[str, str],
                     headers: dict[str, str]) -> Iterator[tuple[list[Any], float]]:
        """Each page's items and the server's Date: `@odata.nextLink` when the server sends one,
        else `$top`/`$skip` until a short page."""
        size = conn.cfg.page_size
        url: str | None = conn.client.url(path, {**params, "$top": str(size), "$skip": "0"})
        skip = 0
        window = 0  # items since the last $top/$skip request: a server may page its $top with nextLinks
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = conn.client.get(url, headers, self.stopped)
            if answer is None:  # stopped
                return
            data = answer.data
            items = data.get("value") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ApiError(f"{path}: an answer without a 'value' list")
            yield items, answer.date if answer.date is not None else time.time() - 60.0
            window += len(items)
            next_link = data.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                url = next_link if next_link.startswith(("http://", "https://")) else conn.client.url(next_link)
            elif window < size:
                url = None
            else:
                skip += window
                window = 0
                url = conn.client.url(path, {**params, "$top": str(size), "$skip": str(skip)})
        raise ApiError(f"{path}: more than {MAX_PAGES} pages; the rest is read next time")

    def pages(self, conn: Connection, path: str, params: dict[str, str], headers: dict[str, str]) -> list[Any]:
        return [item for page, _date in self.page_batches(conn, path, params, headers) for item in page]


def client_for(cfg: UiPathOrchestrator, state: EstateState) -> ApiClient:
    """The API client of one connection: Automation Cloud's or a standalone Orchestrator's URLs."""
    base = cfg.url.rstrip("/")
    if cfg.cloud:
        api = f"{base}/{cfg.organization}/{cfg.tenant}/orchestrator_"
        identity = cfg.identity_url or f"{base}/identity_"
    else:
        api = base
        identity = cfg.identity_url or f"{base}/identity"
    # the secret is read at each token request: a rotated env: or file: secret is taken up
    credentials = ClientCredentials(f"{identity.rstrip('/')}/connect/token", cfg.client_id,
                                    lambda: resolve_secret(cfg.client_secret), cfg.scope, cfg.timeout)
    return ApiClient(api, credentials, RequestBudget(cfg.requests_per_minute), cfg.timeout,
                     on_request=lambda outcome: state.count_request(LABEL, cfg.name, outcome))

