"""A stand-in Blue Prism environment for the tests: a real HTTP server on 127.0.0.1 with the
Authentication Server's token endpoint (`/auth/connect/token`) and the v7 API (`/api/v7/...`).

Built from the controlplanes corpus (its README's Blue Prism section, SOURCES.md, and the facts
it takes from the v7.0-7.5 OpenAPI specs): OAuth2 client credentials with the scope pair
`bp-api bpserver`; token paging only (`itemsPerPage`, `pagingToken`, answers
`{"items": [...], "pagingToken": ...}`); deepObject filters (`startTime[gte]=`,
`lastUpdated[gte]=`); the session statuses Pending, Running, Terminated, Stopped, Completed,
Stopping, Warning with `terminationReason` None/ProcessError/InternalError, `exceptionType`,
`exceptionMessage`, `latestStage`, `stageStarted`; queue item states Pending, Locked, Deferred,
Completed, Exceptioned, lists without `data` and spelling `slaDatetime` where the single-item
read spells `slaDateTime`; WorkQueueSummary's per-state counts; resources' `displayStatus`.

Decided here where the sources are silent (none of it verified against a real Blue Prism):
- the paging token is opaque (Base64 JSON of the last row's sort key and the query it belongs
  to): keyset paging, so rows added meanwhile are neither skipped nor repeated within their
  order; a token of another query is refused with 400. `itemsPerPage` is 1 to 1000, 10 if absent.
- errors are ASP.NET ProblemDetails (`{type, title, status, detail, traceId}`); an unknown
  filter field or operator is a 400 (ASP.NET would ignore it: refusing it keeps the client honest).
- a refused client at the token endpoint: 400 `invalid_client` (IdentityServer, on which the
  Authentication Server is built); an unknown or expired bearer token: 401 with
  `WWW-Authenticate: Bearer error="invalid_token"`; an endpoint the account's role may not read: 403.
- multi-valued filters (`status`, `state`) take comma-separated values (form style, as `stageType`).
Not implemented: writes, session logs, schedules, dashboards, environment variables.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import random
import threading
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Record = dict[str, Any]

SESSION_STATUSES = ("Pending", "Running", "Terminated", "Stopped", "Completed", "Stopping", "Warning")
ENDED_STATUSES = {"Terminated", "Stopped", "Completed"}
ITEM_STATES = ("Pending", "Locked", "Deferred", "Completed", "Exceptioned")
DISPLAY_STATUSES = ("Idle", "Working", "Warning", "Offline", "Missing", "Private", "Pending", "LoggedOut")
SCOPES = frozenset({"bp-api", "bpserver"})
# sortBy values, as the spec names them, and the row field each orders by
SESSION_SORTS = {"SessionNumberAsc": "sessionNumber", "StartTimeAsc": "startTime", "EndTimeAsc": "endTime"}
ITEM_SORTS = {"LoadedDateAsc": "loadedDate", "LastUpdatedAsc": "lastUpdated"}
# filterable fields per collection: deepObject range fields, and comma-list fields
RANGES = {"sessions": {"startTime", "endTime", "stageStarted", "lastUpdated"},
          "items": {"lastUpdated", "loadedDate", "completedDate", "exceptionedDate"}}
LISTS = {"sessions": {"status", "processName", "resourceName"}, "items": {"state"}}
# what a Terminated session's exception says (the exact strings the taxonomy knows) and its reason
FAILURES = [
    ("System Exception", "Could not find the user-interface (UI) element: Submit button", "ui_drift"),
    ("Business Exception", "Invoice total does not match the purchase order", "business"),
    ("System Exception", "Logon failed for user svc_sap", "credentials"),
    ("System Exception", "Internal : Unexpected error Object reference not set to an instance of an object.", None),
]


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Refused(Exception):
    def __init__(self, status: int, title: str, detail: str = ""):
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeBluePrism


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeBluePrism:
    """One environment. `wall_clock` is the server's time (the `Date` header, new rows' times);
    `token_ttl` a token's life in seconds; `fail_every` answers every n-th API request with a 5xx;
    `deny` names collections the account's role may not read (403)."""

    def __init__(self, *, client_id: str = "botwatch-monitor", client_secret: str = "bp-s3cret",
                 granted: frozenset[str] = SCOPES, token_ttl: float = 3600.0, fail_every: int = 0,
                 deny: frozenset[str] = frozenset(), seed: int = 0,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.client_id, self.client_secret, self.granted = client_id, client_secret, granted
        self.token_ttl, self.fail_every, self.deny, self.wall_clock = token_ttl, fail_every, deny, wall_clock
        self.sessions: list[Record] = []
        self.processes: list[Record] = []
        self.queues: list[Record] = []
        self.items: list[Record] = []  # with "queue" (the queue's id): not an API field, dropped on output
        self.resources: list[Record] = []
        self.counts: collections.Counter[str] = collections.Counter()  # per collection, and "token"
        self.queries: list[tuple[str, dict[str, str]]] = []  # (path, query) of every API request
        self.faults_served = 0
        self.throttled = 0
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._tokens: dict[str, tuple[datetime, frozenset[str]]] = {}  # token -> expiry, scopes
        self._revoked = False
        self._api_seen = 0
        self._queued: list[tuple[str, int, int]] = []  # (path fragment, status, retry-after)
        self._corrupt: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeBluePrism:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-blueprism", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeBluePrism:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v7"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth"

    # --------------------------------------------------------------------------- test controls
    def revoke_secret(self) -> None:
        """Token requests are refused from now on; issued tokens live until they expire."""
        with self._lock:
            self._revoked = True

    def error_once(self, path_fragment: str, status: int, retry_after: int = 1) -> None:
        with self._lock:
            self._queued.append((path_fragment, status, retry_after))

    def corrupt_once(self, path_fragment: str) -> None:
        """The next answer on that path is cut short: not JSON."""
        with self._lock:
            self._corrupt.append(path_fragment)

    # ------------------------------------------------------------------------------- the data
    def add_process(self, name: str, group: str | None) -> Record:
        row = {"processId": str(uuid.uuid4()), "processName": name, "processDescription": f"{name} (stand-in)",
               "groupName": group, "attributes": ["Published"]}
        self.processes.append(row)
        return row

    def add_resource(self, name: str, status: str = "Idle", attributes: list[str] | None = None) -> Record:
        row = {"id": str(uuid.uuid4()), "name": name, "poolName": None, "groupName": "Default",
               "attributes": attributes or [], "activeSessionCount": int(status == "Working"),
               "warningSessionCount": int(status == "Warning"), "pendingSessionCount": 0,
               "databaseStatus": "Offline" if status in ("Offline", "Missing") else "Ready",
               "displayStatus": status, "resourceType": "Enterprise"}
        self.resources.append(row)
        return row

    def add_session(self, process: Record, resource: str, status: str, *, started: datetime | None = None,
                    ended: datetime | None = None, stage: str = "Main Page", stage_started: datetime | None = None,
                    failure: int | None = None) -> Record:
        """A session; an ended one ends now (or at `ended`), a running one started 5 min ago."""
        with self._lock:
            now = self.wall_clock()
            started = started or (now - timedelta(minutes=5))
            row: Record = {
                "sessionId": str(uuid.uuid4()), "sessionNumber": len(self.sessions) + 1,
                "processId": process["processId"], "processName": process["processName"],
                "resourceId": str(uuid.uuid5(uuid.NAMESPACE_DNS, resource)), "resourceName": resource,
                "userName": "svc_botwatch" if status != "Pending" else None,
                "status": status, "startTime": None if status == "Pending" else iso(started), "endTime": None,
                "latestStage": None if status == "Pending" else stage,
                "stageStarted": None if status == "Pending" else iso(stage_started or started),
                "lastUpdated": iso(started), "exceptionType": None, "exceptionMessage": None,
                "terminationReason": "None"}
            self.sessions.append(row)
            if status in ENDED_STATUSES:
                self.end_session(row, status, ended or now, failure)
            return row

    def end_session(self, row: Record, status: str, at: datetime | None = None, failure: int | None = None) -> None:
        with self._lock:
            at = at or self.wall_clock()
            row.update(status=status, endTime=iso(at), lastUpdated=iso(at))
            if row["startTime"] is None:
                row["startTime"] = iso(at - timedelta(seconds=30))
            if status == "Terminated":
                kind, message, _ = FAILURES[(failure if failure is not None else row["sessionNumber"]) % len(FAILURES)]
                row.update(exceptionType=kind, exceptionMessage=message,
                           terminationReason="InternalError" if message.startswith("Internal") else "ProcessError")

    def add_queue(self, name: str, group: str | None = None) -> Record:
        row = {"id": str(uuid.uuid4()), "name": name, "keyField": "Reference", "status": "Running",
               "isEncrypted": False, "maxAttempts": 3, "groupName": group}
        self.queues.append(row)
        return row

    def add_item(self, queue: Record, state: str, *, loaded: datetime | None = None, ended: datetime | None = None,
                 attempt: int = 1, sla_minutes: int | None = None, reason: str | None = None,
                 deferred: datetime | None = None, work: int = 40, item_id: str | None = None) -> Record:
        with self._lock:
            now = self.wall_clock()
            loaded = loaded or now - timedelta(minutes=10)
            at = ended or now
            row: Record = {
                "queue": queue["id"], "id": item_id or str(uuid.uuid4()), "priority": 0,
                "ident": len(self.items) + 1, "state": state, "keyValue": f"REF-{len(self.items) + 1:05d}",
                "status": "", "tags": [], "attemptNumber": attempt, "loadedDate": iso(loaded),
                "deferredDate": iso(deferred) if deferred else None,
                "lockedDate": iso(at - timedelta(seconds=work)) if state != "Pending" else None,
                "lastUpdated": iso(at if state in ("Completed", "Exceptioned") else loaded),
                "completedDate": iso(at) if state == "Completed" else None,
                "exceptionedDate": iso(at) if state == "Exceptioned" else None,
                "workTimeInSeconds": work if state in ("Completed", "Exceptioned") else 0,
                "attemptWorkTimeInSeconds": work if state in ("Completed", "Exceptioned") else 0,
                "exceptionReason": reason if state == "Exceptioned" else None,
                "resource": "ROBOT01" if state != "Pending" else None, "sessionId": None,
                "sla": sla_minutes, "slaDatetime": iso(loaded + timedelta(minutes=sla_minutes)) if sla_minutes else None,
                "processName": "Invoice Processing", "isSuggested": False}
            self.items.append(row)
            return row

    def populate(self, n_sessions: int, seed: int = 0) -> None:
        """Processes in two groups (and one in none), resources, and sessions of every status,
        ended over the last hours."""
        rng = random.Random(seed)
        now = self.wall_clock()
        procs = [self.add_process("Invoice Processing", "Finance"), self.add_process("Vendor Onboarding", "Finance"),
                 self.add_process("Payroll Check", "HR"), self.add_process("Ad Hoc Report", None)]
        for name, status in (("ROBOT01", "Working"), ("ROBOT02", "Idle"), ("ROBOT03:8182", "Offline")):
            self.add_resource(name, status)
        for _ in range(n_sessions):
            status = rng.choice(("Completed", "Completed", "Completed", "Terminated", "Stopped", "Running", "Pending"))
            end = now - timedelta(minutes=rng.randint(1, 600))
            self.add_session(rng.choice(procs), rng.choice(("ROBOT01", "ROBOT02", "ROBOT03:8182")), status,
                             started=end - timedelta(seconds=rng.randint(10, 3600)) if status in ENDED_STATUSES
                             else None, ended=end if status in ENDED_STATUSES else None)

    # ------------------------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            if split.path == "/auth/connect/token" and handler.command == "POST":
                status, data, headers = 200, self._token(body), {}
            elif split.path.startswith("/api/v7/") and handler.command == "GET":
                status, data, headers = self._api(split.path[len("/api/v7/"):], split.query,
                                                  handler.headers.get("Authorization") or "")
            else:
                raise Refused(404, "Not Found")
        except Refused as exc:
            status, headers = exc.status, {}
            if exc.status == 401:
                data, headers = None, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            elif exc.title in ("invalid_client", "invalid_scope", "unsupported_grant_type"):
                data = {"error": exc.title}
            else:
                data = {"type": "https://tools.ietf.org/html/rfc7231", "title": exc.title, "status": exc.status,
                        "detail": exc.detail, "traceId": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"}
        except _Fault as fault:
            status, data, headers = fault.status, fault.data, fault.headers
        raw = b"" if data is None else (data if isinstance(data, bytes) else json.dumps(data).encode())
        handler.send_response(status)
        handler.send_header("Date", format_datetime(self.wall_clock(), usegmt=True))
        handler.send_header("Content-Type", "text/html" if isinstance(data, bytes) else "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(raw)

    def _token(self, body: bytes) -> Record:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        with self._lock:
            self.counts["token"] += 1
            if form.get("grant_type") != "client_credentials":
                raise Refused(400, "unsupported_grant_type")
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret \
                    or self._revoked:
                raise Refused(400, "invalid_client")
            asked = frozenset(form.get("scope", "").split()) or self.granted
            if not asked <= self.granted:
                raise Refused(400, "invalid_scope")
            token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self._tokens[token] = (self.wall_clock() + timedelta(seconds=self.token_ttl), asked)
            return {"access_token": token, "expires_in": int(self.token_ttl), "token_type": "Bearer",
                    "scope": " ".join(sorted(asked))}

    def _api(self, path: str, raw_query: str, authorization: str) -> tuple[int, Any, dict[str, str]]:
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(raw_query, keep_blank_values=True).items()}
        with self._lock:
            token = authorization.removeprefix("Bearer ").strip()
            issued = self._tokens.get(token)
            if not authorization.startswith("Bearer ") or issued is None or issued[0] <= self.wall_clock():
                raise Refused(401, "Unauthorized")
            if not SCOPES <= issued[1]:
                raise Refused(403, "Forbidden", "the token lacks the scopes bp-api bpserver")
            self.queries.append((path, dict(query)))
            parts = path.strip("/").split("/")
            collection = parts[0]
            self.counts[collection if len(parts) == 1 else f"{collection}/items"] += 1
            for i, (fragment, status, wait) in enumerate(self._queued):
                if fragment in "/" + path:
                    del self._queued[i]
                    self.throttled += status == 429
                    raise _Fault(status, {"title": "Too Many Requests" if status == 429 else "Error",
                                          "status": status}, {"Retry-After": str(wait)} if status == 429 else {})
            self._api_seen += 1
            if self.fail_every and self._api_seen % self.fail_every == 0:
                self.faults_served += 1
                if self._rng.random() < 0.5:
                    raise _Fault(503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", {})
                raise _Fault(500, {"title": "An error occurred while processing your request.", "status": 500}, {})
            if collection in self.deny:
                raise Refused(403, "Forbidden", f"the account's role has no permission to view {collection}")
            corrupt = next((f for f in self._corrupt if f in "/" + path), None)
            if corrupt is not None:
                self._corrupt.remove(corrupt)
                raise _Fault(200, b'{"items": [{"sessionId": "e8a9', {})
            if parts == ["sessions"]:
                return 200, self._page("sessions", self.sessions, query, SESSION_SORTS, "SessionNumberAsc"), {}
            if parts == ["processes"]:
                return 200, self._page("processes", self.processes, query, {"NameAsc": "processName"}, "NameAsc"), {}
            if parts == ["resources"]:
                return 200, self._page("resources", self.resources, query, {"NameAsc": "name"}, "NameAsc"), {}
            if parts == ["workqueues"]:
                return 200, self._page("workqueues", [self._summary(q) for q in self.queues], query,
                                       {"NameAsc": "name"}, "NameAsc"), {}
            if len(parts) == 3 and parts[0] == "workqueues" and parts[2] == "items":
                if not any(q["id"] == parts[1] for q in self.queues):
                    raise Refused(404, "Not Found", f"no work queue {parts[1]}")
                rows = [self._no_data(i) for i in self.items if i["queue"] == parts[1]]
                return 200, self._page("items", rows, query, ITEM_SORTS, "IdentAsc"), {}
            if len(parts) == 3 and parts[:2] == ["workqueues", "items"]:
                item = next((i for i in self.items if i["id"] == parts[2]), None)
                if item is None:
                    raise Refused(404, "Not Found")
                full = self._no_data(item)
                full["slaDateTime"] = full.pop("slaDatetime")  # the single-item read's spelling
                full["data"] = {"rows": [{"Reference": {"valueType": "Text", "value": item["keyValue"]}}]}
                return 200, full, {}
            raise Refused(404, "Not Found")

    @staticmethod
    def _no_data(item: Record) -> Record:
        return {k: v for k, v in item.items() if k != "queue"}

    def _summary(self, queue: Record) -> Record:
        states = collections.Counter(i["state"] for i in self.items if i["queue"] == queue["id"])
        work = [i["workTimeInSeconds"] for i in self.items if i["queue"] == queue["id"] and i["workTimeInSeconds"]]
        mean = int(sum(work) / len(work)) if work else 0
        return {**queue, "pendingItemCount": states["Pending"], "lockedItemCount": states["Locked"],
                "completedItemCount": states["Completed"], "exceptionedItemCount": states["Exceptioned"],
                "totalItemCount": sum(states.values()),
                "averageWorkTime": f"{mean // 3600:02d}:{mean // 60 % 60:02d}:{mean % 60:02d}"}

    def _page(self, kind: str, rows: list[Record], query: dict[str, str], sorts: dict[str, str],
              default_sort: str) -> Record:
        """One page of `rows` filtered and sorted by `query`, keyset-paged by an opaque token."""
        per_page = query.pop("itemsPerPage", "10")
        token = query.pop("pagingToken", None)
        sort = query.pop("sortBy", default_sort)
        if not per_page.isdigit() or not 1 <= int(per_page) <= 1000:
            raise Refused(400, "One or more validation errors occurred.", "itemsPerPage must be between 1 and 1000")
        if sort not in sorts and sort != default_sort:
            raise Refused(400, "One or more validation errors occurred.", f"sortBy {sort!r} is not valid")
        keep = self._filters(kind, query)
        field_name = sorts.get(sort, "ident")
        fingerprint = hashlib.sha256(json.dumps([kind, sorted(query.items()), sort]).encode()).hexdigest()[:16]

        def key(r: Record) -> tuple[Any, str]:  # the sort field, then the row's own number or name
            return r.get(field_name) or "", str(r.get("ident") or r.get("sessionNumber") or r.get("name") or "")

        chosen = sorted((r for r in rows if keep(r)), key=key)
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token + "==="))
                after = tuple(state["after"])
                assert state["q"] == fingerprint
            except (ValueError, KeyError, TypeError, AssertionError):
                raise Refused(400, "Invalid paging token", "the paging token does not belong to this query") from None
            chosen = [r for r in chosen if key(r) > after]
        page = chosen[:int(per_page)]
        out: Record = {"items": [dict(r) for r in page], "pagingToken": None}
        if len(chosen) > len(page):
            out["pagingToken"] = base64.urlsafe_b64encode(
                json.dumps({"after": list(key(page[-1])), "q": fingerprint}).encode()).decode().rstrip("=")
        return out

    @staticmethod
    def _filters(kind: str, query: dict[str, str]) -> Callable[[Record], bool]:
        tests: list[Callable[[Record], bool]] = []
        for param, value in query.items():
            name, _, op = param.partition("[")
            op = op.rstrip("]")
            if kind in RANGES and name in RANGES[kind] and op in ("eq", "gte", "lte", "gt", "lt"):
                try:
                    bound = parse(value)
                except ValueError:
                    raise Refused(400, "One or more validation errors occurred.", f"{param}: not a date") from None
                compare = {"eq": lambda a, b: a == b, "gte": lambda a, b: a >= b, "lte": lambda a, b: a <= b,
                           "gt": lambda a, b: a > b, "lt": lambda a, b: a < b}[op]
                tests.append(lambda r, n=name, c=compare, b=bound: r.get(n) is not None and c(parse(r[n]), b))
            elif kind in LISTS and name in LISTS[kind] and op in ("", "eq"):
                wanted = set(value.split(","))
                tests.append(lambda r, n=name, w=wanted: r.get(n) in w)
            else:
                raise Refused(400, "One or more validation errors occurred.", f"unknown filter {param!r}")
        return lambda r: all(t(r) for t in tests)


class _Fault(Exception):
    def __init__(self, status: int, data: Any, headers: dict[str, str]):
        super().__init__(status)
        self.status, self.data, self.headers = status, data, headers
