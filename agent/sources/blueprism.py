"""Blue Prism: every session of an environment becomes a run, pulled from its API (v7.1 and
later), with nothing installed on the runtime resources (docs/blueprism.md).

Per connection (`platforms.blueprism` in the estate file) each pull asks `GET /sessions` twice,
token-paged (`itemsPerPage`, `pagingToken`), filtered in the API's deepObject style:

- the sessions that ended since the cursor (`endTime[gte]=<cursor>`): Completed is a success;
  Terminated a failure, its exception type and message classified by the estate's failure
  patterns and the built-in taxonomy; Stopped a failure, reason killed;
- the sessions not ended (`status=Pending,Running,Stopping,Warning`): runs in progress. One
  that has sat on its latest stage (`stageStarted`) for longer than `stuck_stage_after`, one
  Pending that long, and one Blue Prism marks Warning are stuck runs of their bot.

The cursor is the server's clock (its `Date`), never this agent's, and a session asked for again
is recorded once (`advance` in platform.py; run id `blueprism:<sessionId>`). Then, when the
credentials allow them: the process groups (`/processes`, which bot and team a process is), the
work queues and their items (`/workqueues`), and the runtime resources (`/resources`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..config.estate import resolve_secret
from ..core.events import Event, Outcome, RunFinished, RunStarted
from ..state.controlplanes import Robots
from ..state.journal import JournalError
from ..state.workqueues import Backlog, ItemTotals
from .controlplane import ApiClient, ApiError, ClientCredentials
from .platform import Connection, PlatformSource, api_client, advance
from .platform import odata_time as iso_time, parse_time  # ISO 8601 both ways, 7 digits of a second

if TYPE_CHECKING:
    from ..config.platforms import BluePrism
    from ..state.runtime import EstateState

LABEL = "blueprism"
GROUPS_EVERY = 600.0  # seconds between two readings of the process catalogue
MAX_PAGES = 10_000  # pages of one query at most: a server that never stops paging is cut off
# a session that ended: outcome and reason (None: classified from its exception by the estate state)
FINISHED: dict[str, tuple[Outcome, str | None]] = {
    "Completed": ("success", None), "Terminated": ("failure", None), "Stopped": ("failure", "killed")}
IN_PROGRESS = ("Pending", "Running", "Stopping", "Warning")
ITEM_OPEN = "Pending,Locked,Deferred"
ITEM_ENDED = {"Completed": "successful", "Exceptioned": "failed"}
# a runtime resource's displayStatus as botwatch_robot_sessions labels it; Warning: a session on it
# passed its stage warning threshold. A retired resource or a pool (a grouping, not a machine) is left out.
RESOURCE_STATES = {"Idle": "available", "Working": "busy", "Warning": "unresponsive", "Offline": "disconnected",
                   "Missing": "disconnected", "LoggedOut": "available", "Logged Out": "available",
                   "Private": "unknown", "Pending": "unknown"}
NOT_MACHINES = {"Retired", "Pool"}


@dataclass
class BluePrismConnection(Connection["BluePrism"]):
    """One Blue Prism environment: its process groups and the sessions in progress at the last pull."""

    groups: dict[str, str] = field(default_factory=dict)  # process name -> its process group
    groups_read_at: float = float("-inf")
    running: set[str] = field(default_factory=set)  # run ids in progress at the last pull


class BluePrismSource(PlatformSource["BluePrism"]):
    platform = LABEL  # its name, labels and estate key (platforms.<label>) follow
    credentials_hint = "check client_id, client_secret, scope and auth_url"
    connections: list[BluePrismConnection]  # type: ignore[assignment]

    @classmethod
    def connect(cls, cfg: BluePrism, state: EstateState) -> BluePrismConnection:
        return BluePrismConnection(cfg, client_for(cfg, state))

    # -- a pull ---------------------------------------------------------------------------
    def pull_connection(self, conn: Connection[BluePrism]) -> None:
        assert isinstance(conn, BluePrismConnection)
        cfg = conn.cfg
        if cfg.process_groups and time.monotonic() - conn.groups_read_at >= GROUPS_EVERY:
            self.optional(conn, "process_groups", lambda: self.read_groups(conn))
            conn.groups_read_at = time.monotonic()  # also when refused: asked again in 10 minutes at most
        seen: set[str] = set()
        stuck: dict[str, int] = {}
        self.pull_sessions(conn, seen, stuck)
        if self.stopped.is_set():
            return
        if cfg.queues:
            self.optional(conn, "queues", lambda: self.pull_queues(conn))
        if cfg.resources and not self.stopped.is_set():
            self.optional(conn, "resources", lambda: self.pull_resources(conn))
        self.state.controlplanes.note_pull(cfg.name, seen, stuck)

    def read_groups(self, conn: BluePrismConnection) -> None:
        groups: dict[str, str] = {}
        for page, _date in self.page_batches(conn, "processes", {}):
            for p in page:
                name = p.get("processName") if isinstance(p, dict) else None
                if not isinstance(name, str) or not name:
                    self.bad(conn.cfg.name, "a process without processName", p)
                    continue
                group = p.get("groupName")
                groups[name] = group[:256] if isinstance(group, str) else ""
        conn.groups = groups

    # -- sessions -------------------------------------------------------------------------
    def pull_sessions(self, conn: BluePrismConnection, seen: set[str], stuck: dict[str, int]) -> None:
        """The sessions that ended since the cursor, as finished runs, and those not ended, as
        runs in progress. What the previous pull applied is not applied again: the runs that
        ended at or after the cursor (kept with it) and the runs in progress (kept in memory)."""
        key = f"{conn.cfg.name}:sessions"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        finished: dict[str, float] = {}  # run id -> ended, of this pull
        now_running: set[str] = set()
        began: float | None = None
        queries = ({"endTime[gte]": iso_time(cursor), "sortBy": "EndTimeAsc"},
                   {"status": ",".join(IN_PROGRESS), "sortBy": "SessionNumberAsc"})
        for params in queries:
            for page, date in self.page_batches(conn, "sessions", params):
                if began is None:
                    began = date
                events: list[Event] = []
                for session in page:
                    ev = self.event_for(conn, session, date, stuck)
                    if ev is None:
                        continue
                    seen.add(ev.bot)
                    if isinstance(ev, RunFinished):
                        finished[ev.run_id] = ev.ended
                        if ev.run_id in recorded:
                            continue
                        recorded.add(ev.run_id)  # not twice in one pull (both queries, a page read again)
                    else:
                        if ev.run_id in now_running:
                            continue
                        now_running.add(ev.run_id)
                        if ev.run_id in conn.running:
                            continue
                    events.append(ev)
                if events:
                    self.state.apply(events)
            if self.stopped.is_set():
                return  # the cursor stays: the next pull reads this again
        conn.running = now_running
        new_cursor, again = advance(cursor, finished, began)
        self.save_cursor(conn, key, {"ended_since": new_cursor, "recorded": again})

    def event_for(self, conn: BluePrismConnection, session: Any, server_now: float,
                  stuck: dict[str, int]) -> RunStarted | RunFinished | None:
        """The run a session is, None when it is not recorded (an unregistered process, a bad
        item: counted and warned). A session in progress stuck past the limit is counted in `stuck`."""
        cfg = conn.cfg
        sid = session.get("sessionId") if isinstance(session, dict) else None
        if not isinstance(sid, str) or not sid:
            self.bad(cfg.name, "a session without sessionId", session)
            return None
        process = session.get("processName")
        if not isinstance(process, str) or not process:
            self.bad(cfg.name, "a session without processName", session)
            return None
        status = session.get("status")
        if status not in FINISHED and status not in IN_PROGRESS:
            self.bad(cfg.name, f"a session in an unknown status {status!r}", session)
            return None
        bot = self.bot_for(conn, conn.groups.get(process, ""), process, sid)
        if bot is None:
            return None
        run_id = f"blueprism:{sid}"[:128]
        host = session.get("resourceName") if isinstance(session.get("resourceName"), str) else None
        started = parse_time(session.get("startTime"))
        if status in FINISHED:
            ended = parse_time(session.get("endTime"))
            if ended is None:
                self.bad(cfg.name, f"a {status} session without endTime", session)
                return None
            outcome, reason = FINISHED[status]
            return RunFinished(bot=bot, run_id=run_id, ended=ended, outcome=outcome, started=started, reason=reason,
                               host=host, output_tail=failure_text(session) if outcome == "failure" else None,
                               source=LABEL)
        since = started or parse_time(session.get("lastUpdated"))  # a Pending session has not started
        if since is None:
            self.bad(cfg.name, f"a {status} session without startTime or lastUpdated", session)
            return None
        on_stage = since if status == "Pending" else parse_time(session.get("stageStarted"))
        if status == "Warning" or (on_stage is not None and server_now - on_stage > cfg.stuck_stage_after):
            stuck[bot] = stuck.get(bot, 0) + 1
        return RunStarted(bot=bot, run_id=run_id, time=since, host=host, source=LABEL)

    # -- work queues ----------------------------------------------------------------------
    def pull_queues(self, conn: BluePrismConnection) -> None:
        """Each queue: its backlog (from its items open now, read only when its summary counts
        some) and its items that ended since its cursor, added to the totals with the new cursor
        in one journal transaction."""
        cfg = conn.cfg
        by_group: dict[str, dict[str, Backlog]] = {}
        for page, _date in self.page_batches(conn, "workqueues", {}):
            for q in page:
                if self.stopped.is_set():
                    return
                if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("name"), str) \
                        or not q["name"]:
                    self.bad(cfg.name, "a work queue without id or name", q)
                    continue
                group = q["groupName"][:256] if isinstance(q.get("groupName"), str) else ""
                backlog = Backlog(team=self.team_for(cfg, group))
                by_group.setdefault(group, {})[q["name"][:128]] = backlog
                if _count(q, "pendingItemCount") + _count(q, "lockedItemCount") > 0:
                    self.read_backlog(conn, q, backlog)
                self.pull_ended_items(conn, q, group)
        for group, backlogs in by_group.items():
            self.state.workqueues.note_backlogs(LABEL, cfg.name, group, backlogs)

    def read_backlog(self, conn: BluePrismConnection, queue: dict[str, Any], backlog: Backlog) -> None:
        """Pending items (and Deferred ones whose date has passed, which wait like them) are new,
        Locked ones in progress; an open item past its SLA date is breached (Blue Prism has no
        risk SLA)."""
        for page, server_now in self.page_batches(conn, f"workqueues/{queue['id']}/items",
                                                  {"state": ITEM_OPEN, "sortBy": "LoadedDateAsc"}):
            skew = time.time() - server_now  # the agent's clock minus the server's
            for item in page:
                if not isinstance(item, dict):
                    self.bad(conn.cfg.name, "a work queue item that is not an object", item)
                    continue
                state = item.get("state")
                loaded = parse_time(item.get("loadedDate"))
                if state == "Deferred":
                    until = parse_time(item.get("deferredDate"))
                    if until is None or until > server_now:
                        continue
                    state = "Pending"
                if state == "Pending":
                    backlog.new += 1
                    if loaded is not None:
                        backlog.oldest_new = min(backlog.oldest_new or float("inf"), loaded + skew)
                elif state == "Locked":
                    backlog.in_progress += 1
                else:
                    self.bad(conn.cfg.name, f"an open work queue item in state {state!r}", item)
                    continue
                if (due := sla_date(item)) is not None and due < server_now:
                    backlog.breached += 1

    def pull_ended_items(self, conn: BluePrismConnection, queue: dict[str, Any], group: str) -> None:
        """The queue's items that ended (Completed, Exceptioned) since its cursor. The API filters
        on lastUpdated, which an ended item's later edits move on: the cursor is the items' end
        (completedDate, exceptionedDate), an item that ended before it is not counted again, and
        each try is counted once (its id with its attemptNumber)."""
        cfg = conn.cfg
        key = f"{cfg.name}:{queue['id']}:queue-items"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        name = queue["name"][:128]
        ended: dict[str, float] = {}
        totals: dict[tuple[str, str, str], list[float]] = {}  # (day, status, exception) -> n, retries, seconds
        began: float | None = None
        for page, date in self.page_batches(conn, f"workqueues/{queue['id']}/items",
                                            {"state": ",".join(ITEM_ENDED), "lastUpdated[gte]": iso_time(cursor)}):
            if began is None:
                began = date
            for item in page:
                state = item.get("state") if isinstance(item, dict) else None
                if state not in ITEM_ENDED or not isinstance(item.get("id"), str):
                    self.bad(cfg.name, "an ended work queue item without id or a known state", item)
                    continue
                end = parse_time(item.get("completedDate" if state == "Completed" else "exceptionedDate")) \
                    or parse_time(item.get("lastUpdated"))
                if end is None:
                    self.bad(cfg.name, f"a {state} work queue item without its date", item)
                    continue
                attempt = item.get("attemptNumber") if isinstance(item.get("attemptNumber"), int) else 1
                item_key = f"{item['id']}:{attempt}"
                ended[item_key] = end
                if item_key in recorded or end < cursor:
                    continue
                recorded.add(item_key)
                status = ITEM_ENDED[state]
                exception = self.exception_kind(item) if status == "failed" else ""
                row = totals.setdefault((time.strftime("%Y-%m-%d", time.gmtime(end)), status, exception), [0, 0, 0.0])
                row[0] += 1
                row[1] += 1 if attempt > 1 else 0
                work = item.get("attemptWorkTimeInSeconds", item.get("workTimeInSeconds"))
                row[2] += float(work) if isinstance(work, (int, float)) and 0 <= work < 1e9 else 0.0
        if self.stopped.is_set():
            return
        new_cursor, again = advance(cursor, ended, began)
        rows = [ItemTotals((LABEL, cfg.name, group, name), day, status, exception, int(n), int(r), sec)
                for (day, status, exception), (n, r, sec) in sorted(totals.items())]
        state = {"ended_since": new_cursor, "recorded": again}
        try:
            self.state.record_queue_items(rows, (self.name, key, state))
            conn.cursors[key] = state
        except JournalError as exc:  # not counted now: read again next time
            self.warn(("queue-items-write",), "blueprism %s: cannot record queue items: %s", cfg.name, exc)

    def exception_kind(self, item: dict[str, Any]) -> str:
        """business when the estate's classifier reads the exceptionReason as one (the API has no
        item-level exception type), else unknown."""
        reason = item.get("exceptionReason")
        if isinstance(reason, str) and reason:
            if self.state.classifier.classify(output=reason).reason == "business":
                return "business"
        return "unknown"

    # -- runtime resources ----------------------------------------------------------------
    def pull_resources(self, conn: BluePrismConnection) -> None:
        """Each runtime resource as one session of its machine (its name) by state; the
        resources Idle or Working are the unattended capacity, those Working the busy part."""
        machines: dict[str, dict[str, int]] = {}
        capacity = busy = 0
        for page, _date in self.page_batches(conn, "resources", {}):
            for r in page:
                if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"]:
                    self.bad(conn.cfg.name, "a resource without name", r)
                    continue
                attributes = r.get("attributes")
                if isinstance(attributes, list) and NOT_MACHINES & {a for a in attributes if isinstance(a, str)}:
                    continue
                state = RESOURCE_STATES.get(str(r.get("displayStatus")), "unknown")
                counts = machines.setdefault(r["name"][:128], {})
                counts[state] = counts.get(state, 0) + 1
                if state in ("available", "busy"):
                    capacity += 1
                    busy += state == "busy"
        self.state.controlplanes.note_robots(conn.cfg.name, Robots(LABEL, machines, capacity, busy))

    # -- paging ---------------------------------------------------------------------------
    def page_batches(self, conn: BluePrismConnection, path: str,
                     params: dict[str, str]) -> Iterator[tuple[list[Any], float]]:
        """Each page's items and the server's Date, following `pagingToken` until none comes."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            query = {**params, "itemsPerPage": str(conn.cfg.page_size)}
            if token:
                query["pagingToken"] = token
            answer = conn.client.get(conn.client.url(path, query), {}, self.stopped)
            if answer is None:  # stopped
                return
            data = answer.data
            items = data.get("items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ApiError(f"{path}: an answer without an 'items' list")
            yield items, answer.date if answer.date is not None else time.time() - 60.0
            token = data.get("pagingToken")
            if not isinstance(token, str) or not token:
                return
        raise ApiError(f"{path}: more than {MAX_PAGES} pages; the rest is read next time")


def failure_text(session: dict[str, Any]) -> str | None:
    """What a failed session's run keeps: where it ran, its exception, the stage it ended on."""
    def text(name: str) -> str | None:
        value = session.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    kind, message = text("exceptionType"), text("exceptionMessage")
    lines = [f"Resource {text('resourceName')}" if text("resourceName") else None,
             ": ".join(t for t in (kind, message) if t) or None,
             f"Stage: {text('latestStage')}" if text("latestStage") else None,
             f"Termination reason: {text('terminationReason')}"
             if text("terminationReason") not in (None, "None") else None]
    return "\n".join(line for line in lines if line) or None


def sla_date(item: dict[str, Any]) -> float | None:
    """An item's SLA deadline: lists spell it slaDatetime, the single-item read slaDateTime."""
    return parse_time(item.get("slaDatetime")) or parse_time(item.get("slaDateTime"))


def _count(queue: dict[str, Any], name: str) -> int:
    value = queue.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def client_for(cfg: BluePrism, state: EstateState) -> ApiClient:
    """The API client of one connection: the Authentication Server's token, a budget for every endpoint."""
    # the secret is read at each token request: a rotated env: or file: secret is taken up
    credentials = ClientCredentials(f"{cfg.auth_url.rstrip('/')}/connect/token", cfg.client_id,
                                    lambda: resolve_secret(cfg.client_secret), cfg.scope, cfg.timeout)
    return api_client(LABEL, cfg, state, cfg.url, credentials)

