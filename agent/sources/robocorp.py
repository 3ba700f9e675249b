"""Robocorp (Sema4.ai) Control Room: every process run of a workspace becomes a run, pulled from
the Control Room API with a workspace API key, with nothing installed on the workers
(docs/robocorp.md).

Per connection (`platforms.robocorp` in the estate file), each pull pages through the
workspace's process runs (`GET /workspaces/{ws}/process-runs`, `limit`, then the `next` URL
while `has_more`), newest first, down to the cursor:

- a run `completed` is a finished run, success;
- a run `unresolved` (it ended with failures) is a finished run, failure: the error codes of its
  failed step runs and the exceptions of its failed work items are its output, classified by the
  estate's failure patterns and the built-in taxonomy; one that was `stopping` when last seen was
  stopped by someone (reason killed);
- a run `new`, `in_progress` or `stopping` is a run in progress.

The list has no time filter, so the cursor is the newest `created_at` read (the server's clock),
and a pull reads the runs created since then (less an overlap for runs committed late), plus the
runs that were in progress at the last pull. The ids of those in progress and of those ended near
the cursor are kept with it, so that a run is recorded once and one that ends hours after it
began is read when it ends. The cursor is a checkpoint in the journal; a run's id is
`robocorp:<id>`, which the journal keeps once.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..config.estate import resolve_secret
from ..core.events import Event, RunFinished, RunStarted
from ..state.controlplanes import Robots
from .controlplane import ApiClient, ApiError, AuthError
from .platform import MAX_REMEMBERED, Connection, PlatformSource, api_client

if TYPE_CHECKING:
    from ..config.platforms import RobocorpControlRoom
    from ..state.runtime import EstateState

LABEL = "robocorp"
WORKSPACE_EVERY = 600.0  # seconds between two readings of the workspace's name
MAX_PAGES = 10_000  # pages of one listing at most: a server that never stops paging is cut off
# runs created this long before the newest one read are read again: a run committed a little late
# (its created_at before one already listed) is not missed
OVERLAP = 300.0
# runs in progress created this far back are found by paging; older ones are asked for one by one
OPEN_REACH = 6 * 3600.0
ENDED = {"completed": "success", "unresolved": "failure"}
IN_PROGRESS = {"new", "in_progress", "stopping"}
WORKER_STATES = {"idle": "available", "busy": "busy", "offline": "disconnected"}  # as the other platforms say it
BY_ID = "process run by id"  # a capability (Connection.off): GET /process-runs/{id}
MAX_FAILURES_SHOWN = 5  # failed work items (and step runs) in a run's stored output
MAX_MESSAGE = 500  # characters of one exception message kept


class ApiKey:
    """A Control Room workspace API key: `Authorization: RC-WSKEY <key>`, read at each request
    (a rotated env: or file: key is taken up); nothing to refresh."""

    def __init__(self, secret: Callable[[], str | None]):
        self.secret = secret

    def headers(self) -> dict[str, str]:
        key = self.secret()
        if not key:
            raise AuthError("no API key (the env: variable or file: it names is empty or missing)")
        return {"Authorization": f"RC-WSKEY {key}"}

    def invalidate(self) -> None:
        """A static key: a 401 is answered by the same key once more, then reported."""


def parse_time(value: Any) -> float | None:
    """An ISO 8601 date-time (`2023-10-19T08:15:00.123Z`) as Unix seconds; None if absent or not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


@dataclass
class ControlRoomConnection(Connection["RobocorpControlRoom"]):
    """One workspace: its name and the runs in progress at the last pull."""

    workspace: str = ""
    workspace_read_at: float = float("-inf")
    running: set[str] = field(default_factory=set)  # run ids applied as in progress (memory only)


@dataclass
class Pull:
    """What one pull of the process runs has read so far."""

    cutoff: float  # runs created before this were read by earlier pulls
    floor: float  # paging goes down to here (below the cutoff for runs in progress)
    open_before: dict[str, list[Any]]  # id -> [created, state] in progress at the last pull
    recorded: set[str]  # ids ended at or after the cutoff that are on record
    newest: float
    ended: dict[str, float] = field(default_factory=dict)  # id -> created, of the ended runs read
    open_now: dict[str, list[Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


class RobocorpSource(PlatformSource["RobocorpControlRoom"]):
    platform = LABEL  # its name, labels and estate key (platforms.<label>) follow
    credentials_hint = "check api_key and that it is not revoked or expired"
    connections: list[ControlRoomConnection]  # type: ignore[assignment]

    @classmethod
    def connect(cls, cfg: RobocorpControlRoom, state: EstateState) -> ControlRoomConnection:
        return ControlRoomConnection(cfg, client_for(cfg, state))

    # -- a pull ---------------------------------------------------------------------------
    def pull_connection(self, conn: Connection[RobocorpControlRoom]) -> None:
        assert isinstance(conn, ControlRoomConnection)
        if time.monotonic() - conn.workspace_read_at >= WORKSPACE_EVERY:
            conn.workspace = self.read_workspace(conn)
            conn.workspace_read_at = time.monotonic()
        seen: set[str] = set()
        self.pull_runs(conn, seen)
        if conn.cfg.workers and not self.stopped.is_set():
            self.optional(conn, "workers", lambda: self.pull_workers(conn))
        if not self.stopped.is_set():
            self.state.controlplanes.note_pull(conn.cfg.name, seen, {})

    def read_workspace(self, conn: ControlRoomConnection) -> str:
        """The workspace's name, the first part of its runs' folder (its id if it has none)."""
        answer = conn.client.get(conn.client.url(f"workspaces/{conn.cfg.workspace_id}"), {}, self.stopped)
        data = answer.data if answer is not None else None
        name = data.get("name") if isinstance(data, dict) else None
        return name[:128] if isinstance(name, str) and name else conn.cfg.workspace_id

    # -- process runs ---------------------------------------------------------------------
    def pull_runs(self, conn: ControlRoomConnection, seen: set[str]) -> None:
        """The runs created since the cursor and those in progress at the last pull; the cursor
        saved once every page was read (a pull cut short is read again: the journal keeps each
        run once)."""
        cfg = conn.cfg
        key = f"{cfg.name}:{cfg.workspace_id}"
        saved = self.cursor(conn, key)
        since = saved.get("created_since")
        cutoff = float(since) - OVERLAP if isinstance(since, (int, float)) else self.since(conn, saved)
        open_before = {k: v for k, v in (saved.get("open") or {}).items()
                       if isinstance(v, list) and len(v) == 2 and isinstance(v[0], (int, float))}
        pull = Pull(cutoff, cutoff, open_before, set(saved.get("recorded") or ()),
                    float(since) if isinstance(since, (int, float)) else cutoff)
        params = {"limit": str(cfg.page_size)}
        first = True
        last: float | None = None  # the creation of the last run of the page before
        began = time.time()  # the server's clock at the first page
        for page, date in self.pages(conn, f"workspaces/{cfg.workspace_id}/process-runs", params):
            if first:  # the runs in progress at the last pull are found by paging, unless too old
                oldest_open = min((v[0] for v in open_before.values()), default=cutoff)
                reach = float("inf") if BY_ID in conn.off else OPEN_REACH  # no other way to them
                pull.floor = min(cutoff, max(oldest_open, date - reach))
                began = date
                first = False
            events: list[Event] = []
            created_list: list[float] = []
            for run in page:
                created = parse_time(run.get("created_at")) if isinstance(run, dict) else None
                if created is not None:
                    created_list.append(created)
                ev = self.read_run(conn, pull, run, created)
                if ev is not None:
                    seen.add(ev.bot)
                    events.append(ev)
            if events:
                self.state.apply(events)
            if self.stopped.is_set():
                break
            # the list is newest first: a page that ends below the floor is the last one needed.
            # A page out of that order (with the one before) says nothing of the pages after it.
            order = ([last] if last is not None else []) + created_list
            if any(a < b - OVERLAP for a, b in zip(order, order[1:])):
                self.warn((cfg.name, "order"), "robocorp %s: process runs are not listed newest first; "
                          "every page is read", cfg.name)
            elif created_list and created_list[-1] < pull.floor and all(a >= b for a, b in zip(order, order[1:])):
                break
            last = created_list[-1] if created_list else last
        if self.stopped.is_set():
            return
        self.pull_stale(conn, pull, seen)
        conn.running = {f"{LABEL}:{i}" for i in pull.open_now}
        new_since = min(pull.newest, began)  # a run created "in the future" does not push the cursor past now
        recorded = sorted(i for i, c in pull.ended.items() if c >= new_since - OVERLAP)[:MAX_REMEMBERED]
        still_open = dict(sorted(pull.open_now.items(), key=lambda kv: -kv[1][0])[:MAX_REMEMBERED])
        self.save_cursor(conn, key, {"created_since": new_since, "open": still_open, "recorded": recorded})

    def pull_stale(self, conn: ControlRoomConnection, pull: Pull, seen: set[str]) -> None:
        """The runs in progress at the last pull that paging did not reach, asked for one by one.
        A key that may not read one run (403: no Processes.read_processes) keeps them, to be
        reached by paging back to them from the next pull on."""
        cfg = conn.cfg
        for run_id in sorted(set(pull.open_before) - pull.seen):
            if self.stopped.is_set():
                return
            if BY_ID in conn.off:
                pull.open_now[run_id] = pull.open_before[run_id]
                continue
            url = conn.client.url(f"workspaces/{cfg.workspace_id}/process-runs/{urllib.parse.quote(run_id, safe='')}")
            try:
                answer = conn.client.get(url, {}, self.stopped)
            except AuthError as exc:
                if exc.status != 403:
                    raise
                conn.off.add(BY_ID)
                self.log.warning("robocorp %s: no access to a single process run (%s); runs in progress are "
                                 "followed by paging back to them instead (grant Processes.read_processes)",
                                 cfg.name, exc)
                pull.open_now[run_id] = pull.open_before[run_id]
                continue
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.warn((cfg.name, "run-gone"), "robocorp %s: run %s in progress at the last pull is gone "
                          "(deleted?); its end is not known", cfg.name, run_id)
                continue
            if answer is None:
                return
            run = answer.data
            ev = self.read_run(conn, pull, run, parse_time(run.get("created_at")) if isinstance(run, dict) else None)
            if ev is not None:
                seen.add(ev.bot)
                self.state.apply([ev])

    def read_run(self, conn: ControlRoomConnection, pull: Pull, run: Any,
                 created: float | None) -> RunStarted | RunFinished | None:
        """The event a run listed is, None when there is none to apply (read before, an
        unregistered process, a bad item: counted and warned)."""
        cfg = conn.cfg
        if not isinstance(run, dict) or not isinstance(run.get("id"), str) or not run["id"] or created is None:
            self.bad(cfg.name, "a process run without id or created_at", run)
            return None
        rid = run["id"]
        if rid in pull.seen:  # listed twice (a run inserted while paging shifts the pages)
            return None
        if created < pull.cutoff and rid not in pull.open_before:
            return None  # read by an earlier pull
        pull.seen.add(rid)
        pull.newest = max(pull.newest, created)
        process = run.get("process")
        name = process.get("name") if isinstance(process, dict) else None
        if not isinstance(name, str) or not name:
            self.bad(cfg.name, "a process run without process name", run)
            return None
        state = run.get("state")
        if state not in ENDED and state not in IN_PROGRESS:
            self.bad(cfg.name, f"a process run in an unknown state {state!r}", run)
            return None
        ended = parse_time(run.get("ended_at"))
        if state in ENDED:
            if ended is None:
                self.bad(cfg.name, f"a {state} process run without ended_at", run)
                return None
            pull.ended[rid] = created
            if rid in pull.recorded:
                return None
        else:
            pull.open_now[rid] = [created, state]
        bot = self.bot_for(conn, f"{conn.workspace}/{name}", name, rid)
        if bot is None:
            return None
        run_id = f"{LABEL}:{rid}"[:128]
        started = parse_time(run.get("started_at"))
        if state in IN_PROGRESS or ended is None:
            if run_id in conn.running:
                return None
            return RunStarted(bot=bot, run_id=run_id, time=started or created, source=LABEL)
        duration = run.get("duration")
        if started is None and isinstance(duration, (int, float)) and 0 <= duration < 1e9:
            started = ended - float(duration)
        outcome = ENDED[str(state)]
        reason: str | None = None
        tail: str | None = None
        items: tuple[int | None, int | None] = (None, None)
        if outcome == "failure":
            was = pull.open_before.get(rid)
            reason = "killed" if was is not None and was[1] == "stopping" else None
            tail, items = self.failure_of(conn, rid)
        elif cfg.item_counts:
            items = self.items_of(conn, rid, failed_only=False)[1]
        return RunFinished(bot=bot, run_id=run_id, ended=ended,
                           outcome="success" if outcome == "success" else "failure", started=started,
                           reason=reason, output_tail=tail, source=LABEL, items_processed=items[0],
                           items_failed=items[1])

    # -- why a run failed ------------------------------------------------------------------
    def failure_of(self, conn: ControlRoomConnection, rid: str) -> tuple[str | None, tuple[int | None, int | None]]:
        """The text of an unresolved run's failures (failed work items' exceptions, failed step
        runs' error codes) and its work items processed and failed, when read."""
        lines: list[str] = []
        counts: tuple[int | None, int | None] = (None, None)
        if conn.cfg.work_items:
            def items() -> None:
                nonlocal counts
                text, counts = self.items_of(conn, rid, failed_only=not conn.cfg.item_counts)
                lines.extend(text)
            self.optional(conn, "work_items", items)
        if conn.cfg.step_runs:
            self.optional(conn, "step_runs", lambda: lines.extend(self.steps_of(conn, rid)))
        return ("\n".join(lines) or None), counts

    def items_of(self, conn: ControlRoomConnection, rid: str,
                 failed_only: bool) -> tuple[list[str], tuple[int | None, int | None]]:
        """The run's failed work items as lines (`Error.BUSINESS <code>: <message>`, as the
        Robocorp libraries name the exception types) and, when all its items were read (not only
        the failed ones), its items processed (done or failed) and failed."""
        params = {"process_run_id": rid, "limit": str(conn.cfg.page_size)}
        if failed_only:
            params["state"] = "failed"
        lines: list[str] = []
        done = failed = 0
        for page, _date in self.pages(conn, f"workspaces/{conn.cfg.workspace_id}/work-items", params):
            for item in page:
                state = item.get("state") if isinstance(item, dict) else None
                if state == "done":
                    done += 1
                elif state == "failed":
                    failed += 1
                    exc = item.get("exception")
                    if isinstance(exc, dict) and len(lines) < MAX_FAILURES_SHOWN:
                        kind = str(exc.get("type") or "unspecified")
                        code, message = str(exc.get("code") or "")[:100], str(exc.get("message") or "")[:MAX_MESSAGE]
                        item_id = str(item.get("id"))[:64]
                        lines.append(f"work item {item_id}: Error.{kind.upper()[:20]} {code}: {message}")
        return lines, ((None, None) if failed_only else (done + failed, failed))

    def steps_of(self, conn: ControlRoomConnection, rid: str) -> list[str]:
        """The run's failed step runs as lines: `step 'Process orders' failed: <error code>`."""
        lines: list[str] = []
        params = {"process_run_id": rid, "limit": str(conn.cfg.page_size)}
        for page, _date in self.pages(conn, f"workspaces/{conn.cfg.workspace_id}/step-runs", params):
            for step in page:
                if not isinstance(step, dict) or step.get("state") != "failed" or len(lines) >= MAX_FAILURES_SHOWN:
                    continue
                error = step.get("error")
                code = error.get("code") if isinstance(error, dict) else None
                info = step.get("step")
                name = info.get("name") if isinstance(info, dict) else None
                lines.append(f"step {str(name or '?')[:100]!r} failed: {str(code or 'no error code')[:200]}")
        return lines

    # -- workers --------------------------------------------------------------------------
    def pull_workers(self, conn: ControlRoomConnection) -> None:
        """The workers linked to the workspace: per worker its state (idle: available, busy,
        offline: disconnected); the capacity is the workers online."""
        cfg = conn.cfg
        machines: dict[str, dict[str, int]] = {}
        capacity = busy = 0
        for page, _date in self.pages(conn, f"workspaces/{cfg.workspace_id}/workers", {"limit": str(cfg.page_size)}):
            for worker in page:
                name = worker.get("name") if isinstance(worker, dict) else None
                if not isinstance(name, str) or not name:
                    self.bad(cfg.name, "a worker without name", worker)
                    continue
                state = WORKER_STATES.get(str(worker.get("state")), "unknown")
                counts = machines.setdefault(name[:128], {})
                counts[state] = counts.get(state, 0) + 1
                if state in ("available", "busy"):
                    capacity += 1
                    busy += state == "busy"
        self.state.controlplanes.note_robots(cfg.name, Robots(LABEL, machines, capacity, busy))

    # -- paging ---------------------------------------------------------------------------
    def pages(self, conn: ControlRoomConnection, path: str,
              params: dict[str, str]) -> Iterator[tuple[list[Any], float]]:
        """Each page's `data` and the server's Date: `limit`, then the `next` URL while `has_more`.
        A `next` URL elsewhere than the API's own origin is refused: the key would go with it."""
        url: str | None = conn.client.url(path, params)
        origin = _origin(conn.client.base_url)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = conn.client.get(url, {}, self.stopped)
            if answer is None:  # stopped
                return
            data = answer.data
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ApiError(f"{path}: an answer without a 'data' list")
            yield items, answer.date if answer.date is not None else time.time()
            nxt = data.get("next")
            if data.get("has_more") is not True or not isinstance(nxt, str) or not nxt:
                return
            if _origin(nxt) != origin:
                raise ApiError(f"{path}: a next page at another address ({_origin(nxt)}), not followed")
            url = nxt
        raise ApiError(f"{path}: more than {MAX_PAGES} pages; the rest is read next time")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def client_for(cfg: RobocorpControlRoom, state: EstateState) -> ApiClient:
    """The API client of one connection; every request is within the connection's budget."""
    credentials = ApiKey(lambda: resolve_secret(cfg.api_key))
    return api_client(LABEL, cfg, state, cfg.url, credentials)
