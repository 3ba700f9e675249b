"""Power Automate: every desktop-flow run and every cloud-flow run of an environment becomes a run,
pulled from its Dataverse Web API as an application user, with nothing installed on the machines
(docs/powerautomate.md).

Per connection (`platforms.powerautomate` in the estate file) each pull reads:

- the flows (`workflows`, category 5 cloud and 6 desktop, every 10 minutes and when a run names
  one not read yet): their names (the bots' process names) and owners;
- the desktop-flow runs (`flowsessions`) that completed since the cursor or have not completed,
  in one query (`completedon ge <cursor> or completedon eq null`): a session that ended is a
  finished run, one queued, running, waiting or paused a run in progress (`STATUSCODES`);
- the cloud-flow runs (`flowruns`, an elastic table Dataverse fills for solution flows and keeps 28
  days by default) that ended since their cursor: each a finished run;
- the machines (`flowmachines`): their status and heartbeat, and the sessions they run.

Pages are asked for with `Prefer: odata.maxpagesize` and followed by `@odata.nextLink`; names of
looked-up rows (a machine, a flow's owner) come as the formatted values Dataverse annotates when
asked to. Cursors are Dataverse's own clock (the `Date` of a pull's first answer), kept as journal
checkpoints with the run ids that ended at them (platform.py `advance`). Run ids are
`powerautomate:<flowsessionid>` and `powerautomate:<flowrunid>`. Desktop-flow completion callbacks
(`callbackUrl`) are taken by powerautomate_callbacks.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..config.estate import resolve_secret
from ..core.events import Event, Outcome, RunFinished, RunStarted
from ..state.controlplanes import Robots
from .controlplane import ApiClient, ApiError, ClientCredentials
from .platform import Connection, PlatformSource, api_client, advance, odata_time, parse_time

if TYPE_CHECKING:
    from ..config.platforms import PowerAutomate
    from ..state.runtime import EstateState

LABEL = "powerautomate"
API = "api/data/v9.2"
FLOWS_EVERY = 600.0  # seconds between two readings of the flow list
FLOWS_AGAIN = 30.0  # at least this long between two readings for a run of a flow not read yet
MAX_PAGES = 10_000  # pages of one query at most: a server that never stops paging is cut off
FORMATTED = "@OData.Community.Display.V1.FormattedValue"
MAX_TAIL = 4000  # characters of an error message kept with a run

# flowsession statuscode (Dataverse's flowsession reference) -> what the run is:
# ("ended", outcome, reason: None classified from errormessage), ("running",), ("none",): not a run
STATUSCODES: dict[int, tuple[str, Outcome | None, str | None]] = {
    0: ("running", None, None),  # NotSpecified: queued, not yet given to a machine
    1: ("running", None, None),  # Paused
    2: ("running", None, None),  # Running
    3: ("running", None, None),  # Waiting: for a machine of the group
    4: ("ended", "success", None),  # Succeeded
    5: ("none", None, None),  # Skipped
    6: ("running", None, None),  # Suspended
    7: ("ended", "failure", "killed"),  # Cancelled
    8: ("ended", "failure", None),  # Failed
    9: ("ended", "failure", None),  # Faulted
    10: ("ended", "failure", "timeout"),  # TimedOut
    11: ("ended", "failure", "killed"),  # Aborted
    12: ("none", None, None),  # Ignored
    13: ("none", None, None),  # Deleted (statecode 1)
    14: ("ended", "failure", "killed"),  # Terminated (statecode 1)
}
# flowrun status, a string: Success, Failed, Cancelled in Dataverse's docs; the Flow API's and
# Logic Apps' spellings of the same states are taken too
CLOUD_STATUSES: dict[str, tuple[str, Outcome | None, str | None]] = {
    "success": ("ended", "success", None), "succeeded": ("ended", "success", None),
    "failed": ("ended", "failure", None), "faulted": ("ended", "failure", None),
    "cancelled": ("ended", "failure", "killed"), "canceled": ("ended", "failure", "killed"),
    "aborted": ("ended", "failure", "killed"), "terminated": ("ended", "failure", "killed"),
    "timedout": ("ended", "failure", "timeout"),
    "skipped": ("none", None, None), "ignored": ("none", None, None),
}
# flowmachine statuscode: 1 Active and 13 HostedMachineOvercapacity (statecode 0) run flows;
# 2 Inactive and 3 RequiresReconnection are machines gone; the others are maintenance states
MACHINE_ACTIVE = {1, 13}
MACHINE_GONE = {2, 3}


def loads_lenient(raw: bytes) -> Any:
    """JSON, also with a comma before a closing bracket (as Microsoft's documented flowsession and
    workflow samples print it): the comma is dropped, in one pass, outside strings only."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    text = raw.decode("utf-8")
    out: list[str] = []
    in_string = escaped = False
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                out.append(text[i + 1:j])
                i = j
                continue
        out.append(ch)
        i += 1
    return json.loads("".join(out))


def error_text(code: Any, message: Any) -> str | None:
    """A run's error as stored and classified: `<errorcode>: <errormessage>`."""
    parts = [p.strip() for p in (code, message) if isinstance(p, str) and p.strip()]
    return ": ".join(parts)[:MAX_TAIL] or None


@dataclass(frozen=True)
class Flow:
    name: str
    owner: str | None


@dataclass
class PowerAutomateConnection(Connection["PowerAutomate"]):
    """One environment: its flows, the desktop runs in progress at the last pull and the machines
    they run on."""

    flows: dict[str, Flow] = field(default_factory=dict)  # workflowid (lower case) -> flow
    flows_read_at: float = float("-inf")
    running: set[str] = field(default_factory=set)  # run ids in progress at the last pull
    running_on: dict[str, int] = field(default_factory=dict)  # machine -> desktop runs Running on it


class PowerAutomateSource(PlatformSource["PowerAutomate"]):
    platform = LABEL  # its name, labels and estate key (platforms.<label>) follow
    credentials_hint = "check tenant_id, client_id, client_secret and the application user's security role"
    connections: list[PowerAutomateConnection]  # type: ignore[assignment]

    @classmethod
    def connect(cls, cfg: PowerAutomate, state: EstateState) -> PowerAutomateConnection:
        return PowerAutomateConnection(cfg, client_for(cfg, state))

    # -- a pull ---------------------------------------------------------------------------
    def pull_connection(self, conn: Connection[PowerAutomate]) -> None:
        assert isinstance(conn, PowerAutomateConnection)
        cfg = conn.cfg
        seen: set[str] = set()
        if time.monotonic() - conn.flows_read_at >= FLOWS_EVERY:
            self.read_flows(conn)
        if cfg.desktop_flows:
            self.pull_sessions(conn, seen)
        if cfg.cloud_flows and not self.stopped.is_set():
            self.optional(conn, "cloud_flows", lambda: self.pull_flowruns(conn, seen))
        if cfg.machines and not self.stopped.is_set():
            self.optional(conn, "machines", lambda: self.pull_machines(conn))
        self.state.controlplanes.note_pull(cfg.name, seen, {})

    # -- flows ----------------------------------------------------------------------------
    def read_flows(self, conn: PowerAutomateConnection) -> None:
        """The environment's cloud (category 5) and desktop (category 6) flows: name and owner."""
        flows: dict[str, Flow] = {}
        params = {"$select": "workflowid,name,category,_ownerid_value", "$filter": "category eq 5 or category eq 6"}
        for page, _date in self.page_batches(conn, "workflows", params):
            for item in page:
                wid = item.get("workflowid") if isinstance(item, dict) else None
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(wid, str) or not isinstance(name, str) or not name.strip():
                    self.bad(conn.cfg.name, "a flow without workflowid or name", item)
                    continue
                owner = item.get("_ownerid_value" + FORMATTED)
                flows[wid.lower()] = Flow(name.strip()[:200], owner.strip() if isinstance(owner, str) and owner.strip()
                                          else None)
        conn.flows = flows
        conn.flows_read_at = time.monotonic()

    def flow_of(self, conn: PowerAutomateConnection, flow_id: Any, shown: Any) -> Flow | None:
        """The flow a run belongs to: read with the flows (read again for one not read yet, at
        most every FLOWS_AGAIN seconds); else the name Dataverse shows for the lookup, no owner."""
        if not isinstance(flow_id, str) or not flow_id:
            return None
        flow = conn.flows.get(flow_id.lower())
        if flow is None and time.monotonic() - conn.flows_read_at >= FLOWS_AGAIN:
            self.read_flows(conn)
            flow = conn.flows.get(flow_id.lower())
        if flow is None and isinstance(shown, str) and shown.strip():
            flow = Flow(shown.strip()[:200], None)
        return flow

    # -- desktop flows --------------------------------------------------------------------
    SESSION_COLUMNS = ("flowsessionid,statuscode,statecode,startedon,completedon,createdon,errorcode,errormessage,"
                       "_regardingobjectid_value,_machineid_value,_machinegroupid_value")

    def pull_sessions(self, conn: PowerAutomateConnection, seen: set[str]) -> None:
        """The desktop-flow runs that completed since the cursor, and those not completed. What
        the previous pull applied is not applied again (the runs ended at or after the cursor,
        kept with it; the runs in progress, kept in memory)."""
        cfg = conn.cfg
        key = f"{cfg.name}:flowsessions"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        params = {"$select": self.SESSION_COLUMNS,
                  "$filter": f"completedon ge {odata_time(cursor)} or completedon eq null",
                  "$orderby": "createdon asc"}
        finished: dict[str, float] = {}
        now_running: set[str] = set()
        running_on: dict[str, int] = {}
        began: float | None = None
        for page, date in self.page_batches(conn, "flowsessions", params):
            if began is None:
                began = date
            events: list[Event] = []
            for session in page:
                ev = self.session_event(conn, session)
                if ev is None:
                    continue
                seen.add(ev.bot)
                if isinstance(ev, RunFinished):
                    finished[ev.run_id] = ev.ended
                    if ev.run_id in recorded:
                        continue
                else:
                    now_running.add(ev.run_id)
                    if ev.host and session.get("statuscode") == 2:
                        running_on[ev.host] = running_on.get(ev.host, 0) + 1
                    if ev.run_id in conn.running:
                        continue
                events.append(ev)
            if events:
                self.state.apply(events)
        if self.stopped.is_set():
            return  # a pull cut short: its cursor is not saved
        conn.running, conn.running_on = now_running, running_on
        new_cursor, again = advance(cursor, finished, began)
        self.save_cursor(conn, key, {"ended_since": new_cursor, "recorded": again})

    def session_event(self, conn: PowerAutomateConnection, s: Any) -> RunStarted | RunFinished | None:
        """The run a flowsession is; None when it is none (skipped, ignored, deleted), its flow is
        not a bot (listed as unregistered), or it cannot be read (counted, warned)."""
        cfg = conn.cfg
        if not isinstance(s, dict) or not isinstance(s.get("flowsessionid"), str) or not s["flowsessionid"]:
            self.bad(cfg.name, "a flow session without flowsessionid", s)
            return None
        status = s.get("statuscode")
        kind = STATUSCODES.get(status) if isinstance(status, int) and not isinstance(status, bool) else None
        if kind is None:
            self.bad(cfg.name, f"a flow session with an unknown statuscode {status!r}", s)
            return None
        if kind[0] == "none":
            return None
        flow = self.flow_of(conn, s.get("_regardingobjectid_value"), s.get("_regardingobjectid_value" + FORMATTED))
        if flow is None:
            self.bad(cfg.name, "a flow session without its desktop flow (_regardingobjectid_value)", s)
            return None
        sid = s["flowsessionid"].lower()
        bot = self.bot_for(conn, cfg.folder, flow.name, sid, owner=flow.owner)
        if bot is None:
            return None
        run_id = f"{LABEL}:{sid}"[:128]
        machine = s.get("_machineid_value" + FORMATTED)
        host = machine.strip()[:128] if isinstance(machine, str) and machine.strip() else None
        started = parse_time(s.get("startedon"))
        if kind[0] == "ended":
            ended = parse_time(s.get("completedon"))
            if ended is None:
                self.bad(cfg.name, "an ended flow session without completedon", s)
                return None
            outcome, reason = kind[1], kind[2]
            assert outcome is not None
            tail = None
            if outcome == "failure":  # where it ran leads the error: the machine and its group
                group = s.get("_machinegroupid_value" + FORMATTED)
                where = " ".join(p for p in (f"Machine {host}" if host else None,
                                             f"(group {group.strip()[:128]})" if isinstance(group, str) and
                                             group.strip() else None) if p)
                tail = "\n".join(t for t in (where, error_text(s.get("errorcode"), s.get("errormessage"))) if t) or None
            return RunFinished(bot=bot, run_id=run_id, ended=ended, outcome=outcome, started=started, reason=reason,
                               host=host, output_tail=tail, source=LABEL)
        since = started or parse_time(s.get("createdon"))
        if since is None:
            self.bad(cfg.name, "a flow session in progress without startedon or createdon", s)
            return None
        return RunStarted(bot=bot, run_id=run_id, time=since, host=host, source=LABEL)

    # -- cloud flows ----------------------------------------------------------------------
    def pull_flowruns(self, conn: PowerAutomateConnection, seen: set[str]) -> None:
        """The cloud-flow runs that ended since the cursor (Dataverse writes a run when it ends)."""
        cfg = conn.cfg
        key = f"{cfg.name}:flowruns"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        params = {"$select": "flowrunid,name,status,starttime,endtime,duration,errorcode,errormessage,triggertype,"
                             "_workflow_value,workflowid",
                  "$filter": f"endtime ge {odata_time(cursor)}", "$orderby": "endtime asc"}
        finished: dict[str, float] = {}
        began: float | None = None
        for page, date in self.page_batches(conn, "flowruns", params):
            if began is None:
                began = date
            events: list[Event] = []
            for run in page:
                ev = self.flowrun_event(conn, run)
                if ev is None:
                    continue
                seen.add(ev.bot)
                finished[ev.run_id] = ev.ended
                if ev.run_id not in recorded:
                    events.append(ev)
            if events:
                self.state.apply(events)
        if self.stopped.is_set():
            return
        new_cursor, again = advance(cursor, finished, began)
        self.save_cursor(conn, key, {"ended_since": new_cursor, "recorded": again})

    def flowrun_event(self, conn: PowerAutomateConnection, r: Any) -> RunFinished | None:
        cfg = conn.cfg
        if not isinstance(r, dict) or not isinstance(r.get("flowrunid"), str) or not r["flowrunid"]:
            self.bad(cfg.name, "a flow run without flowrunid", r)
            return None
        status = r.get("status")
        kind = CLOUD_STATUSES.get(status.strip().lower()) if isinstance(status, str) else None
        if kind is None:
            self.bad(cfg.name, f"a flow run with an unknown status {status!r}", r)
            return None
        if kind[0] == "none":
            return None
        flow = self.flow_of(conn, r.get("_workflow_value") or r.get("workflowid"), r.get("_workflow_value" + FORMATTED))
        if flow is None:
            self.bad(cfg.name, "a flow run without its cloud flow (_workflow_value, workflowid)", r)
            return None
        rid = r["flowrunid"].lower()
        bot = self.bot_for(conn, cfg.folder, flow.name, rid, owner=flow.owner)
        if bot is None:
            return None
        ended = parse_time(r.get("endtime"))
        if ended is None:
            self.bad(cfg.name, "a flow run without endtime", r)
            return None
        started = parse_time(r.get("starttime"))
        duration = r.get("duration")  # milliseconds
        if started is None and isinstance(duration, (int, float)) and not isinstance(duration, bool) \
                and 0 <= duration < 1e12:
            started = ended - duration / 1000.0
        outcome, reason = kind[1], kind[2]
        assert outcome is not None
        tail = error_text(r.get("errorcode"), r.get("errormessage")) if outcome == "failure" else None
        return RunFinished(bot=bot, run_id=f"{LABEL}:{rid}"[:128], ended=ended, outcome=outcome, started=started,
                           reason=reason, output_tail=tail, source=LABEL)

    # -- machines -------------------------------------------------------------------------
    def pull_machines(self, conn: PowerAutomateConnection) -> None:
        """Each machine's sessions by state: an active machine heard from within heartbeat_timeout
        has its session capacity available or busy (the desktop runs Running on it); one silent
        longer, inactive or to be reconnected is disconnected; one in maintenance unknown."""
        cfg = conn.cfg
        machines: dict[str, dict[str, int]] = {}
        capacity = busy = 0
        params = {"$select": "flowmachineid,name,statuscode,statecode,lastheartbeatdate,sessioncapacity"}
        for page, date in self.page_batches(conn, "flowmachines", params):
            for m in page:
                name = m.get("name") if isinstance(m, dict) else None
                status = m.get("statuscode") if isinstance(m, dict) else None
                if not isinstance(name, str) or not name.strip() or not isinstance(status, int):
                    self.bad(cfg.name, "a machine without name or statuscode", m)
                    continue
                name = name.strip()[:128]
                cap = m.get("sessioncapacity")
                cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and 0 < cap <= 1000 else 1
                heard = parse_time(m.get("lastheartbeatdate"))
                counts = machines.setdefault(name, {})
                if status in MACHINE_ACTIVE and heard is not None and date - heard <= cfg.heartbeat_timeout:
                    running = min(conn.running_on.get(name, 0), cap)
                    counts["busy"] = counts.get("busy", 0) + running
                    counts["available"] = counts.get("available", 0) + cap - running
                    capacity += cap
                    busy += running
                elif status in MACHINE_ACTIVE or status in MACHINE_GONE:
                    counts["disconnected"] = counts.get("disconnected", 0) + cap
                else:
                    counts["unknown"] = counts.get("unknown", 0) + cap
        self.state.controlplanes.note_robots(cfg.name, Robots(LABEL, machines, capacity, busy))

    # -- paging ---------------------------------------------------------------------------
    def page_batches(self, conn: PowerAutomateConnection, entity_set: str,
                     params: dict[str, str]) -> Iterator[tuple[list[Any], float]]:
        """Each page's rows and Dataverse's Date: pages of at most page_size rows (Prefer:
        odata.maxpagesize), the next one at `@odata.nextLink`. Every request takes a slot of the
        budget (Dataverse's service-protection limits count them all)."""
        url: str | None = conn.client.url(f"{API}/{entity_set}", params)
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = conn.client.get(url, self.prefer(conn.cfg.page_size), self.stopped)
            if answer is None:  # stopped
                return
            data = answer.data
            rows = data.get("value") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ApiError(f"{entity_set}: an answer without a 'value' list")
            yield rows, answer.date if answer.date is not None else time.time() - 60.0
            link = data.get("@odata.nextLink")
            url = link if isinstance(link, str) and link.startswith(conn.client.base_url + "/") else None
        raise ApiError(f"{entity_set}: more than {MAX_PAGES} pages; the rest is read next time")

    @staticmethod
    def prefer(page_size: int | None = None) -> dict[str, str]:
        """The Prefer header: page size, and the formatted values (names of looked-up rows)."""
        wanted = [f"odata.maxpagesize={page_size}"] if page_size else []
        wanted.append('odata.include-annotations="OData.Community.Display.V1.FormattedValue"')
        return {"Prefer": ",".join(wanted), "OData-MaxVersion": "4.0", "OData-Version": "4.0"}

    # -- callbacks (powerautomate_callbacks.py) --------------------------------------------
    def receives(self, connection: str) -> bool:
        """Callbacks are taken for a connection with `callbacks: true`."""
        conn = self.connection(connection)
        return conn is not None and conn.cfg.callbacks and conn.cfg.desktop_flows

    def receive(self, connection: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        from .powerautomate_callbacks import receive

        conn = self.connection(connection)
        if not isinstance(conn, PowerAutomateConnection):
            return 404, {"error": "no receiver", "detail": f"no powerautomate connection {connection!r}"}
        return receive(self, conn, body)


def client_for(cfg: PowerAutomate, state: EstateState) -> ApiClient:
    """The API client of one environment: Entra ID's token endpoint of the tenant, the scope
    `<url>/.default` (the application user's roles decide what it may read)."""
    base = cfg.url.rstrip("/")
    token_url = cfg.token_url or f"https://login.microsoftonline.com/{cfg.tenant_id}/oauth2/v2.0/token"
    # the secret is read at each token request: a rotated env: or file: secret is taken up
    credentials = ClientCredentials(token_url, cfg.client_id, lambda: resolve_secret(cfg.client_secret),
                                    cfg.scope or f"{base}/.default", cfg.timeout)
    return api_client(LABEL, cfg, state, base, credentials, decode=loads_lenient)
