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

import fnmatch
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..config.estate import resolve_secret
from ..core.events import Event, Outcome, RunFinished, RunStarted
from ..state.controlplanes import Robots
from ..state.journal import JournalError
from ..state.workqueues import Backlog, ItemTotals
from .controlplane import ApiClient, ApiError, AuthError, BadAnswer, ClientCredentials, Throttled
from .platform import Connection, PlatformSource, api_client, advance, odata_time, parse_time

if TYPE_CHECKING:
    from ..config.platforms import UiPathOrchestrator
    from ..state.runtime import EstateState


LABEL = "uipath"
FOLDERS_EVERY = 600.0  # seconds between two readings of the folder list
MAX_PAGES = 10_000  # pages of one query at most: a server that never stops paging is cut off
# a finished job: outcome and reason (None: classified from its Info by the estate state)
FINISHED: dict[str, tuple[Outcome, str | None]] = {
    "Successful": ("success", None), "Faulted": ("failure", None), "Stopped": ("failure", "killed")}
RATE_LIMITED = {"odata/Jobs", "odata/QueueItems"}  # 100 GET/min per tenant in Automation Cloud
PAGE_LIMITS = {"odata/QueueItems": 100}  # a larger $top is refused (error 1009)
# a queue item that ended: its status on the metrics (Retried: a failed try that got a retry copy)
ITEM_ENDED = {"Successful": "successful", "Failed": "failed", "Retried": "failed"}
ITEM_OPEN = {"New", "InProgress"}
ITEM_OTHER = {"Abandoned", "Deleted"}  # neither open nor counted as processed
EXCEPTION_KINDS = {"BusinessException": "business", "ApplicationException": "application"}
UNATTENDED = {"Unattended", "NonProduction", "TestAutomation"}  # robot types that run jobs unattended
SESSION_STATES = {"Available": "available", "Busy": "busy", "Disconnected": "disconnected", "Unknown": "unknown"}
IN_PROGRESS = {"Pending", "Running", "Suspended", "Resumed", "Resuming", "Stopping", "Terminating"}


@dataclass
class Folder:
    id: int
    path: str  # FullyQualifiedName


@dataclass
class OrchestratorConnection(Connection["UiPathOrchestrator"]):
    """One Orchestrator tenant: its folders and the jobs in progress at the last pull."""

    folders: list[Folder] = field(default_factory=list)
    folders_read_at: float = float("-inf")
    running: dict[int, set[str]] = field(default_factory=dict)  # per folder, the run ids in progress last pull


class UiPathOrchestratorSource(PlatformSource["UiPathOrchestrator"]):
    platform = LABEL  # its name, labels and estate key (platforms.<label>) follow
    credentials_hint = "check client_id, client_secret and scope"
    connections: list[OrchestratorConnection]  # type: ignore[assignment]

    @classmethod
    def connect(cls, cfg: UiPathOrchestrator, state: EstateState) -> OrchestratorConnection:
        return OrchestratorConnection(cfg, client_for(cfg, state))

    # -- a pull ---------------------------------------------------------------------------
    def pull_connection(self, conn: Connection[UiPathOrchestrator]) -> None:
        """Every folder of `conn`: its jobs, its queues; then the robots. One folder's failure
        (its access removed...) spares the others, and fails the pull."""
        assert isinstance(conn, OrchestratorConnection)
        cfg = conn.cfg
        failed: list[str] = []
        seen: set[str] = set()  # the bots of this pull's jobs
        stuck: dict[str, int] = {}  # per bot, its jobs Pending past stuck_pending_after
        if time.monotonic() - conn.folders_read_at >= FOLDERS_EVERY:
            conn.folders = self.read_folders(conn)
            conn.folders_read_at = time.monotonic()
        for folder in conn.folders:
            if self.stopped.is_set():
                return
            try:
                self.pull_jobs(conn, folder, seen, stuck)
                if cfg.queues:
                    self.optional(conn, "queues", lambda: self.pull_queues(conn, folder))
            except (AuthError, Throttled):
                raise
            except ApiError as exc:
                self.count_bad_answer(exc)
                failed.append(f"folder {folder.path!r}: {exc}")
        if cfg.robots and not self.stopped.is_set():
            self.optional(conn, "robots", lambda: self.pull_robots(conn))
        self.partial_failure(failed)
        self.state.controlplanes.note_pull(cfg.name, seen, stuck)

    # -- folders --------------------------------------------------------------------------
    def read_folders(self, conn: OrchestratorConnection) -> list[Folder]:
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
    def pull_jobs(self, conn: OrchestratorConnection, folder: Folder, seen: set[str] | None = None,
                  stuck: dict[str, int] | None = None) -> None:
        """The folder's jobs that ended since its cursor, as finished runs, and those not ended,
        as runs in progress. What this folder's previous pull already applied is not applied again:
        the runs that ended at or after the cursor (kept with it) and the runs in progress (kept in
        memory: after a restart they are applied once more, which the state takes as it is)."""
        cfg = conn.cfg
        key = f"{cfg.name}:{folder.id}"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
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
        new_cursor, again = advance(cursor, finished, began)
        self.save_cursor(conn, key, {"ended_since": new_cursor, "recorded": again})

    def event_for(self, conn: OrchestratorConnection, folder: Folder, job: Any) -> RunStarted | RunFinished | None:
        """The run a job is, None when it is not recorded (an unregistered process, a bad item:
        counted and warned)."""
        cfg = conn.cfg
        if not isinstance(job, dict) or not isinstance(job.get("Key"), str) or not job["Key"]:
            self.bad(cfg.name, "a job without Key", job)
            return None
        process = job.get("ReleaseName") or ""
        if not isinstance(process, str) or not process:
            self.bad(cfg.name, "a job without ReleaseName", job)
            return None
        bot = self.bot_for(conn, folder.path, process, job["Key"],
                           scheduled=job.get("SourceType") == "Schedule" or None)
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
                self.bad(cfg.name, f"a {state} job without EndTime", job)
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
                self.bad(cfg.name, f"a {state} job without StartTime or CreationTime", job)
                return None
            return RunStarted(bot=bot, run_id=run_id, time=since, host=host, source=LABEL)
        self.bad(cfg.name, f"a job in an unknown state {state!r}", job)
        return None

    # -- work queues ----------------------------------------------------------------------
    def pull_queues(self, conn: OrchestratorConnection, folder: Folder) -> None:
        """The folder's queues: their backlog (the items New or InProgress now) and the items
        that ended since the folder's queue cursor, added to the totals with the new cursor in
        one journal transaction. Like the jobs' cursor, it is the server's clock and not past the
        start of the pull; the items that ended at or after it are kept with it, not counted twice."""
        cfg = conn.cfg
        headers = {"X-UIPATH-OrganizationUnitId": str(folder.id)}
        queues: dict[int, dict[str, Any]] = {}
        for q in self.pages(conn, "odata/QueueDefinitions", {"$orderby": "Id asc"}, headers):
            if isinstance(q, dict) and isinstance(q.get("Id"), int) and isinstance(q.get("Name"), str) and q["Name"]:
                queues[q["Id"]] = q
            else:
                self.bad(cfg.name, "a queue without Id or Name", q)
        team = self.team_for(cfg, folder.path)
        backlogs = {q["Name"][:128]: Backlog(team=team) for q in queues.values()}
        if not queues:  # no request to the rate-limited QueueItems for a folder without queues
            self.state.workqueues.note_backlogs(LABEL, cfg.name, folder.path, backlogs)
            return
        key = f"{cfg.name}:{folder.id}:queue-items"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        params = {"$filter": f"Status eq 'New' or Status eq 'InProgress' or EndProcessing ge {odata_time(cursor)}",
                  "$orderby": "Id asc"}
        ended: dict[str, float] = {}  # item id -> its end, of this pull
        totals: dict[tuple[str, str, str, str], list[float]] = {}  # (queue, day, status, exception) -> n, retries, s
        began: float | None = None
        for page, date in self.page_batches(conn, "odata/QueueItems", params, headers):
            if began is None:
                began = date
            skew = time.time() - date  # the agent's clock minus the server's
            for item in page:
                qid = item.get("QueueDefinitionId") if isinstance(item, dict) else None
                q = queues.get(qid) if isinstance(qid, int) else None
                if q is None or not isinstance(item.get("Id"), int):
                    self.bad(cfg.name, "a queue item without Id or a queue of this folder", item)
                    continue
                name, status = q["Name"][:128], item.get("Status")
                if status in ITEM_OPEN:
                    self._open_item(backlogs[name], q, item, status, date, skew)
                elif status in ITEM_ENDED:
                    end = parse_time(item.get("EndProcessing"))
                    if end is None:
                        self.bad(cfg.name, f"a {status} queue item without EndProcessing", item)
                        continue
                    item_id = str(item["Id"])
                    ended[item_id] = end
                    if item_id in recorded or end < cursor:
                        continue
                    outcome = ITEM_ENDED[status]
                    exception = EXCEPTION_KINDS.get(item.get("ProcessingExceptionType"), "unknown") \
                        if outcome == "failed" else ""
                    start = parse_time(item.get("StartProcessing"))
                    row = totals.setdefault((name, time.strftime("%Y-%m-%d", time.gmtime(end)), outcome, exception),
                                            [0, 0, 0.0])
                    row[0] += 1
                    row[1] += 1 if (item.get("RetryNumber") or 0) > 0 or (item.get("ManualRetryNumber") or 0) > 0 else 0
                    row[2] += max(0.0, end - start) if start is not None else 0.0
                elif status not in ITEM_OTHER:
                    self.bad(cfg.name, f"a queue item in an unknown status {status!r}", item)
        new_cursor, again = advance(cursor, ended, began)
        rows = [ItemTotals((LABEL, cfg.name, folder.path, queue), day, status, exception, int(n), int(r), sec)
                for (queue, day, status, exception), (n, r, sec) in sorted(totals.items())]
        try:
            self.state.record_queue_items(rows, (self.name, key, {"ended_since": new_cursor, "recorded": again}))
            conn.cursors[key] = {"ended_since": new_cursor, "recorded": again}
        except JournalError as exc:  # not counted now: read again next time
            self.warn(("queue-items-write",), "uipath %s: cannot record queue items: %s", cfg.name, exc)
        self.state.workqueues.note_backlogs(LABEL, cfg.name, folder.path, backlogs)

    @staticmethod
    def _open_item(backlog: Backlog, queue: dict[str, Any], item: dict[str, Any], status: str, server_now: float,
                   skew: float) -> None:
        """Counts an open item in its queue's backlog: waiting or in progress, its age, its SLA."""
        created = parse_time(item.get("CreationTime"))
        if status == "New":
            backlog.new += 1
            if created is not None:  # on the agent's clock
                backlog.oldest_new = min(backlog.oldest_new or float("inf"), created + skew)
        else:
            backlog.in_progress += 1

        def deadline(date_field: str, minutes_field: str) -> float | None:
            at = parse_time(item.get(date_field))
            minutes = queue.get(minutes_field)
            if at is None and created is not None and isinstance(minutes, int) and minutes > 0:
                at = created + 60.0 * minutes
            return at

        due, risk = deadline("DueDate", "SlaInMinutes"), deadline("RiskSlaDate", "RiskSlaInMinutes")
        if due is not None and due < server_now:
            backlog.breached += 1
        elif risk is not None and risk < server_now:
            backlog.at_risk += 1

    # -- robots ---------------------------------------------------------------------------
    def pull_robots(self, conn: OrchestratorConnection) -> None:
        """The robot sessions of the folders read, each once: per machine by state, and the
        unattended capacity connected and in use."""
        cfg = conn.cfg
        machines: dict[str, dict[str, int]] = {}
        seen: set[int] = set()
        capacity = busy = 0
        for folder in conn.folders:
            if self.stopped.is_set():
                return
            for session in self.pages(conn, "odata/Sessions", {"$expand": "Robot", "$orderby": "Id asc"},
                                      {"X-UIPATH-OrganizationUnitId": str(folder.id)}):
                if not isinstance(session, dict) or not isinstance(session.get("Id"), int):
                    self.bad(cfg.name, "a session without Id", session)
                    continue
                if session["Id"] in seen:
                    continue
                seen.add(session["Id"])
                machine = session.get("HostMachineName") or session.get("MachineName")
                machine = machine[:128] if isinstance(machine, str) and machine else "unknown"
                state = "unresponsive" if session.get("IsUnresponsive") is True else \
                    SESSION_STATES.get(str(session.get("State")), "unknown")
                counts = machines.setdefault(machine, {})
                counts[state] = counts.get(state, 0) + 1
                robot = session.get("Robot")
                if isinstance(robot, dict) and robot.get("Type") in UNATTENDED and state in ("available", "busy"):
                    capacity += 1
                    busy += state == "busy"
        self.state.controlplanes.note_robots(cfg.name, Robots(LABEL, machines, capacity, busy))

    # -- paging ---------------------------------------------------------------------------
    def page_batches(self, conn: OrchestratorConnection, path: str, params: dict[str, str],
                     headers: dict[str, str]) -> Iterator[tuple[list[Any], float]]:
        """Each page's items and the server's Date: `@odata.nextLink` when the server sends one,
        else `$top`/`$skip` until a short page. Jobs and QueueItems take slots of the budget."""
        size = min(conn.cfg.page_size, PAGE_LIMITS.get(path, conn.cfg.page_size))
        budgeted = path in RATE_LIMITED
        url: str | None = conn.client.url(path, {**params, "$top": str(size), "$skip": "0"})
        skip = 0
        window = 0  # items since the last $top/$skip request: a server may page its $top with nextLinks
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = conn.client.get(url, headers, self.stopped, budgeted)
            if answer is None:  # stopped
                return
            data = answer.data
            items = data.get("value") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise BadAnswer(f"{path}: an answer without a 'value' list")
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

    def pages(self, conn: OrchestratorConnection, path: str, params: dict[str, str], headers: dict[str, str]) -> list[Any]:
        return [item for page, _date in self.page_batches(conn, path, params, headers) for item in page]

    # -- webhooks (uipath_webhooks.py) -----------------------------------------------------
    def receives(self, connection: str) -> bool:
        """Webhooks are taken for a connection whose webhook_secret resolves to a secret."""
        conn = self.connection(connection)
        if conn is None or conn.cfg.webhook_secret is None:
            return False
        if resolve_secret(conn.cfg.webhook_secret) is None:
            self.warn((connection, "webhook-secret"), "uipath %s: a webhook refused: webhook_secret is set but "
                      "resolves to nothing (an unset variable, an unreadable file)", connection)
            return False
        return True

    def receive(self, connection: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        from .uipath_webhooks import receive

        conn = self.connection(connection)
        if not isinstance(conn, OrchestratorConnection):
            return 404, {"error": "no receiver", "detail": f"no uipath connection {connection!r}"}
        return receive(self, conn, headers, body)


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
    return api_client(LABEL, cfg, state, api, credentials)

