"""A stand-in Power Platform environment for the tests: a real HTTP server on 127.0.0.1 speaking
Dataverse's Web API (`/api/data/v9.2/`) for the tables the Power Automate source reads, with the
Entra ID token endpoint of its tenant, service-protection limits, faults on demand and desktop-flow
completion callbacks.

Built from the controlplanes corpus (its README's Power Automate section and SOURCES.md) and the
Dataverse table references it names:
- tables and columns: flowsession (statuscode 0-14 with their statecode, startedon, completedon,
  errorcode, errormessage, regardingobjectid, machineid, machinegroupid), flowrun (status a string,
  starttime, endtime, duration in ms, triggertype, workflow, workflowid), workflow (name, category
  5 cloud / 6 desktop, ownerid), flowmachine (statuscode 1-15, lastheartbeatdate, sessioncapacity);
- the samples: the two desktop flows of `workflows-desktopflows-list` (names and ids), the Failed
  session of `flowsession-get-status` (statuscode 8, statecode 0), the callback body of
  `rundesktopflow-callback-body`, the 403 envelope `{"error":{"code":"0x80040220","message":
  " Principal user (Id=..., type=8) is missing prv<Read><table> privilege (Id=...)"}}`;
- `trailing_commas=True` writes every answer the way Microsoft's documented flowsession and
  workflow samples print it: a comma after the last property of each object (invalid JSON);
- paging: `Prefer: odata.maxpagesize=N` (answered with `Preference-Applied`), `@odata.nextLink`
  carrying a `$skiptoken` paging cookie; service protection: 429 with `Retry-After` and the
  0x80072322 envelope past `requests_per_window` in `window` seconds.

Decided here, not verified against a real environment:
- the paging cookie is opaque and names the last row sent: the next page starts after it in the
  query's order (rows changed meanwhile move as they would in a keyset page);
- Entra ID answers `invalid_client` (AADSTS7000215) with 401 for a wrong or revoked secret and
  `invalid_scope` (AADSTS1002012) with 400 for a scope without `/.default`; Dataverse answers an
  expired or unknown token 401 with `WWW-Authenticate: Bearer authorization_uri=...` and no body;
- an unknown column in `$select`, `$filter` or `$orderby` and a query option it does not take get
  400 with code 0x80060888; a row that does not exist 404 with 0x80040217;
- formatted values (with `Prefer: odata.include-annotations=...FormattedValue` or `"*"`) for
  lookups (the target's primary name, plus `lookuplogicalname`) and for statuscode/statecode;
- error codes and messages of failed runs: realistic texts (those of the design's taxonomy).
Not implemented: writes and actions (RunDesktopFlow, CancelDesktopFlowRun), `$expand`, `$apply`,
FetchXML, `$metadata`, change tracking, the 20-minute execution-time limit, callback retries.
Filter syntax: `odata_filter`.
"""

from __future__ import annotations

import collections
import json
import math
import random
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable

from odata_filter import (DATETIME, DOUBLE, GUID, INT, STRING, FieldType, ODataQueryError, compile_filter,
                          compile_orderby, sort_records)

Record = dict[str, Any]
API = "/api/data/v9.2/"
FORMATTED = "@OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "@Microsoft.Dynamics.CRM.lookuplogicalname"
QUERY_OPTIONS = {"$select", "$filter", "$orderby", "$top", "$count", "$skiptoken"}

# flowsession statuscode -> (label, statecode), Dataverse's flowsession reference
SESSION_STATUS = {0: ("NotSpecified", 0), 1: ("Paused", 0), 2: ("Running", 0), 3: ("Waiting", 0),
                  4: ("Succeeded", 0), 5: ("Skipped", 0), 6: ("Suspended", 0), 7: ("Cancelled", 0),
                  8: ("Failed", 0), 9: ("Faulted", 0), 10: ("TimedOut", 0), 11: ("Aborted", 0),
                  12: ("Ignored", 0), 13: ("Deleted", 1), 14: ("Terminated", 1)}
SESSION_ENDED = {4, 7, 8, 9, 10, 11, 14}  # runs with a completedon and an outcome
SESSION_NOT_RUNS = {5, 12, 13}
SESSION_OPEN = {0, 1, 2, 3, 6}
MACHINE_STATUS = {1: ("Active", 0), 2: ("Inactive", 1), 3: ("RequiresReconnection", 2), 4: ("ManualMaintenance", 2),
                  5: ("DrainMode", 2), 8: ("Error", 2), 13: ("HostedMachineOvercapacity", 0)}
CATEGORY = {5: "Modern Flow", 6: "Desktop flow"}
CLOUD_STATUSES = ("Success", "Failed", "Cancelled")

CORPUS = Path(__file__).resolve().parent / "corpus" / "powerautomate"


def corpus_sample(name: str) -> Any:
    """A docs sample of the corpus, read as the agent reads Dataverse (trailing commas and all)."""
    from botwatch.sources.powerautomate import loads_lenient

    return loads_lenient((CORPUS / name).read_bytes())


# the corpus' desktop flows (the workflows-desktopflows-list docs sample): names and ids
SAMPLE_FLOWS = tuple((row["name"], row["workflowid"])
                     for row in corpus_sample("pa-docs_workflows-desktopflows-list_docs-sample.txt")["value"])
DESKTOP_ERRORS = (
    ("ActionFailed", "Failed to click UI element 'Button \\'Post invoice\\'' in window 'SAP Easy Access'."),
    ("ActionFailed", "Element with specified CSS selector not found."),
    ("ActionFailed", "Window wasn't found."),
    ("ActionFailed", "Logon failed for user 'svc_rpa_01': the user name or password is incorrect."),
    ("InvalidInputFile", "The file C:\\\\rpa\\\\in\\\\orders.xlsx could not be parsed: row 12 has no order number."),
    ("SubflowFailed", "Object reference not set to an instance of an object."),
)
CLOUD_ERRORS = (
    ("ActionFailed", "An action failed. No dependent actions succeeded."),
    ("Unauthorized", "Invalid credentials: the connection's password expired."),
    ("InvalidTemplate", "Unable to process template language expressions in action 'Compose'."),
)


@dataclass(frozen=True)
class Table:
    entity_set: str
    logical: str
    key: str
    primary_name: str
    columns: dict[str, FieldType]
    lookups: dict[str, str]  # _x_value -> target logical name
    privilege: str


def _cols(spec: str) -> dict[str, FieldType]:
    kinds = {"s": STRING, "i": INT, "d": DATETIME, "g": GUID, "f": DOUBLE}
    out = {}
    for item in spec.split():
        name, _, kind = item.partition(":")
        out[name] = FieldType(kinds[kind or "s"])
    return out


TABLES = {t.entity_set: t for t in (
    Table("workflows", "workflow", "workflowid", "name",
          _cols("workflowid:g name category:i statecode:i statuscode:i _ownerid_value:g createdon:d modifiedon:d "
                "description versionnumber:i"), {"_ownerid_value": "systemuser"}, "prvReadWorkflow"),
    Table("flowsessions", "flowsession", "flowsessionid", "name",
          _cols("flowsessionid:g name statuscode:i statecode:i startedon:d completedon:d createdon:d modifiedon:d "
                "errorcode errormessage errordetails _regardingobjectid_value:g regardingobjecttypecode "
                "_machineid_value:g _machinegroupid_value:g _ownerid_value:g runmode:i triggertype:i "
                "callbackurl versionnumber:i"),
          {"_regardingobjectid_value": "workflow", "_machineid_value": "flowmachine",
           "_machinegroupid_value": "flowmachinegroup", "_ownerid_value": "systemuser"}, "prvReadflowsession"),
    Table("flowruns", "flowrun", "flowrunid", "name",
          _cols("flowrunid:g name status starttime:d endtime:d duration:i errorcode errormessage triggertype "
                "_workflow_value:g workflowid parentrunid ttlinseconds:i modernflowtype:i _ownerid_value:g "
                "createdon:d versionnumber:i"),
          {"_workflow_value": "workflow", "_ownerid_value": "systemuser"}, "prvReadflowrun"),
    Table("flowmachines", "flowmachine", "flowmachineid", "name",
          _cols("flowmachineid:g name statuscode:i statecode:i lastheartbeatdate:d sessioncapacity:i agentversion "
                "_flowmachinegroupid_value:g hostingtype:i versionnumber:i"),
          {"_flowmachinegroupid_value": "flowmachinegroup"}, "prvReadflowmachine"),
    Table("flowmachinegroups", "flowmachinegroup", "flowmachinegroupid", "name",
          _cols("flowmachinegroupid:g name description versionnumber:i"), {}, "prvReadflowmachinegroup"),
    Table("systemusers", "systemuser", "systemuserid", "fullname",
          _cols("systemuserid:g fullname internalemailaddress versionnumber:i"), {}, "prvReadUser"),
)}
BY_LOGICAL = {t.logical: t for t in TABLES.values()}


def iso_z(moment: datetime) -> str:
    """Dataverse writes whole seconds in UTC: `2022-06-16T12:54:40Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def dumps(data: Any, trailing_commas: bool = False) -> bytes:
    """JSON, or JSON as the docs samples print it (a comma after each object's last property)."""
    if not trailing_commas:
        return json.dumps(data).encode()

    def render(v: Any, indent: str) -> str:
        if isinstance(v, dict) and v:
            inner = indent + "    "
            items = "".join(f"{inner}{json.dumps(k)}: {render(x, inner)},\n" for k, x in v.items())
            return "{\n" + items + indent + "}"
        if isinstance(v, list) and v:
            inner = indent + "    "
            return "[\n" + ",\n".join(inner + render(x, inner) for x in v) + "\n" + indent + "]"
        return json.dumps(v)
    return render(data, "").encode()


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeDataverse"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_POST = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeDataverse:
    """One environment and its tenant's token endpoint (`{url}/{tenant_id}/oauth2/v2.0/token`).
    `clock` (monotonic) drives token expiry and the service-protection window; `wall_clock` is the
    server's own time (the `Date` header, default times of new rows)."""

    def __init__(self, *, tenant_id: str = "7f2c1a9e-3b4d-4c5e-8f60-718293a4b5c6", client_id: str =
                 "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", client_secret: str = "Qx8~pa-s3cret.value_1",
                 token_ttl: float = 3599.0, requests_per_window: int | None = 6000, window: float = 300.0,
                 fail_every: int = 0, trailing_commas: bool = False, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.token_ttl, self.requests_per_window, self.window = token_ttl, requests_per_window, window
        self.fail_every, self.trailing_commas = fail_every, trailing_commas
        self.clock, self.wall_clock = clock, wall_clock
        self.app_user_id = str(uuid.UUID(int=random.Random(seed + 7).getrandbits(128)))
        self.denied: set[str] = set()  # entity sets the application user's role cannot read
        self.counts: collections.Counter[str] = collections.Counter()  # per entity set, and "token"
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path?query, headers) with no secrets
        self.throttled = 0
        self.faults_served = 0
        self.callbacks_sent: list[tuple[str, int]] = []
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._revoked = False
        self._seen = 0
        self._queued: list[tuple[str, int, int]] = []
        self._sent: collections.deque[float] = collections.deque()
        self._rows: dict[str, dict[str, Record]] = {name: {} for name in TABLES}
        self._version = 1276000
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle and addresses
    def start(self) -> FakeDataverse:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-dataverse", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeDataverse:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The organization URL (`https://<org>.crm.dynamics.com` in the cloud)."""
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    # ------------------------------------------------------------------------- test controls
    def revoke_secret(self) -> None:
        """Further token requests fail (invalid_client); tokens issued live on until they expire."""
        with self._lock:
            self._revoked = True

    def deny(self, entity_set: str) -> None:
        """The application user's security role loses read access to the table."""
        with self._lock:
            self.denied.add(entity_set)

    def error_once(self, fragment: str, status: int, retry_after: int = 1) -> None:
        with self._lock:
            self._queued.append((fragment, status, retry_after))

    # --------------------------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            reply = self._respond(handler.command, urllib.parse.unquote(split.path), split.query, headers, body)
        handler.send_response_only(reply.status)
        handler.send_header("Date", format_datetime(self.wall_clock().astimezone(timezone.utc), usegmt=True))
        sent = dict(reply.headers or {})
        if reply.body:
            sent.setdefault("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        for name, value in sent.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, dumps(data, self.trailing_commas), {"OData-Version": "4.0", **(headers or {})})

    def _respond(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        shown = {k: ("Bearer ***" if k == "authorization" else v) for k, v in headers.items()}
        if path == urllib.parse.urlsplit(self.token_url).path:
            self.counts["token"] += 1
            self.requests.append((method, path, shown))
            return self._queued_error(path) or self._token(method, headers, body)
        self.requests.append((method, path + ("?" + query if query else ""), shown))
        if not path.startswith(API):
            return Reply(404, b"")
        name, _, key = path[len(API):].partition("(")
        table = TABLES.get(name)
        if table is None:
            return self._json(404, _error("0x80060888", f"Resource not found for the segment '{name}'."))
        self.counts[name] += 1
        denied = self._authorize(headers)
        if denied:
            return denied
        queued = self._queued_error(path)
        if queued:
            return queued
        limited = self._service_protection()
        if limited:
            return limited
        self._seen += 1
        if self.fail_every and self._seen % self.fail_every == 0:
            self.faults_served += 1
            if (self._seen // self.fail_every) % 2:
                return self._json(500, _error("0x80040216", "An unexpected error occurred."))
            return Reply(503, b"<html><body><h1>Service Unavailable</h1></body></html>",
                         {"Content-Type": "text/html"})
        if method != "GET":
            return self._json(405, _error("0x80060888", f"The HTTP method '{method}' is not supported here."))
        if name in self.denied:
            return self._json(403, _error("0x80040220", f" Principal user (Id={self.app_user_id}, type=8) is missing "
                                          f"{table.privilege} privilege (Id={uuid.uuid4()})"))
        if key:
            if not key.endswith(")"):
                return self._json(400, _error("0x80060888", "Bad Request - Error in query syntax."))
            return self._get_one(table, key[:-1], urllib.parse.parse_qsl(query, keep_blank_values=True), headers)
        return self._query(table, urllib.parse.parse_qsl(query, keep_blank_values=True), headers)

    def _queued_error(self, path: str) -> Reply | None:
        for i, (fragment, status, retry_after) in enumerate(self._queued):
            if fragment in path:
                del self._queued[i]
                self.faults_served += 1
                if status == 429:
                    self.throttled += 1
                    return self._json(429, _error("0x80072322", "Number of requests exceeded the limit of 6000 over "
                                                  "time window of 300 seconds."), {"Retry-After": str(retry_after)})
                return self._json(status, _error("0x80040216", "An unexpected error occurred."))
        return None

    def _service_protection(self) -> Reply | None:
        if self.requests_per_window is None:
            return None
        now = self.clock()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        if len(self._sent) >= self.requests_per_window:
            self.throttled += 1
            wait = max(1, math.ceil(self._sent[0] + self.window - now))
            return self._json(429, _error("0x80072322", f"Number of requests exceeded the limit of "
                                          f"{self.requests_per_window} over time window of {self.window:.0f} seconds."),
                              {"Retry-After": str(wait)})
        self._sent.append(now)
        return None

    # ------------------------------------------------------------------------------- Entra ID
    def _token(self, method: str, headers: dict[str, str], body: bytes) -> Reply:
        trace = f"Trace ID: {uuid.uuid4()}\r\nCorrelation ID: {uuid.uuid4()}\r\nTimestamp: {iso_z(self.wall_clock())}"

        def refuse(status: int, error: str, code: int, text: str) -> Reply:
            return Reply(status, json.dumps({"error": error, "error_description": f"AADSTS{code}: {text}\r\n{trace}",
                                             "error_codes": [code], "timestamp": iso_z(self.wall_clock()),
                                             "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}
                                            ).encode(), {"Content-Type": "application/json; charset=utf-8"})
        if method != "POST":
            return Reply(405, b"")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return refuse(400, "invalid_request", 900144, "The request body must contain the following parameter: "
                          "'grant_type'.")
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if form.get("client_id") != self.client_id:
            return refuse(400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' "
                          f"was not found in the directory '{self.tenant_id}'.")
        if self._revoked or form.get("client_secret") != self.client_secret:
            return refuse(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                          "sent in the request is the client secret value, not the client secret ID, for a secret "
                          f"added to app '{self.client_id}'.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return refuse(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. Client "
                          "credential flows must have a scope value with /.default suffixed to the resource identifier "
                          "(application ID URI).")
        if scope.rstrip("/").rsplit("/.default", 1)[0].rstrip("/") != self.url:
            return refuse(400, "invalid_resource", 500011, f"The resource principal named {scope} was not found in "
                          f"the tenant named {self.tenant_id}.")
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + uuid.uuid4().hex + uuid.uuid4().hex
        self._tokens[token] = self.clock() + self.token_ttl
        ttl = max(1, math.ceil(self.token_ttl))
        return Reply(200, json.dumps({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                                      "access_token": token}).encode(),
                     {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store, no-cache"})

    def _authorize(self, headers: dict[str, str]) -> Reply | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or self.clock() >= expiry:
            return Reply(401, b"", {"WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline.com/"
                                    f"{self.tenant_id}/oauth2/authorize, resource_id={self.url}/"})
        return None

    # ---------------------------------------------------------------------------------- OData
    def _preferences(self, headers: dict[str, str]) -> tuple[int, bool]:
        size, formatted = 5000, False
        for part in headers.get("prefer", "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "odata.maxpagesize" and value.strip().isdigit():
                size = max(1, min(int(value), 5000))
            if name == "odata.include-annotations":
                wanted = value.strip().strip('"')
                formatted = wanted in ("*", FORMATTED[1:]) or "FormattedValue" in wanted
        return size, formatted

    def _shape(self, table: Table, row: Record, select: list[str] | None, formatted: bool) -> Record:
        out: Record = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
        for col in select or list(table.columns):
            value = row.get(col)
            if formatted and value is not None:
                if col in table.lookups:
                    target = BY_LOGICAL[table.lookups[col]]
                    found = self._rows[target.entity_set].get(value)
                    if found is not None:
                        out[col + FORMATTED] = found[target.primary_name]
                    out[col + LOOKUP_NAME] = target.logical
                elif col == "statuscode" and table.logical == "flowsession":
                    out[col + FORMATTED] = SESSION_STATUS.get(value, (str(value), 0))[0]
                elif col == "statuscode" and table.logical == "flowmachine":
                    out[col + FORMATTED] = MACHINE_STATUS.get(value, ("Unknown", 0))[0]
            out[col] = value
        return out

    def _options(self, table: Table, params: list[tuple[str, str]]) -> dict[str, str]:
        options: dict[str, str] = {}
        for name, value in params:
            if name not in QUERY_OPTIONS:
                raise ODataQueryError(f"The query parameter {name} is not supported")
            options[name] = value
        for col in (options.get("$select") or "").split(","):
            if col and col.strip() not in table.columns:
                raise ODataQueryError(f"Could not find a property named '{col.strip()}' on type "
                                      f"'Microsoft.Dynamics.CRM.{table.logical}'.")
        return options

    def _resolver(self, table: Table) -> Callable[[str], FieldType]:
        def resolve(path: str) -> FieldType:
            if path not in table.columns:
                raise ODataQueryError(f"Could not find a property named '{path}' on type "
                                      f"'Microsoft.Dynamics.CRM.{table.logical}'.")
            return table.columns[path]
        return resolve

    def _get_one(self, table: Table, key: str, params: list[tuple[str, str]], headers: dict[str, str]) -> Reply:
        try:
            options = self._options(table, params)
        except ODataQueryError as exc:
            return self._json(400, _error("0x80060888", str(exc)))
        row = self._rows[table.entity_set].get(key.lower())
        if row is None:
            return self._json(404, _error("0x80040217", f"Entity '{table.logical}' With Id = {key} Does Not Exist"))
        select = [c.strip() for c in options["$select"].split(",")] if options.get("$select") else None
        _size, formatted = self._preferences(headers)
        context = f"{self.url}{API}$metadata#{table.entity_set}" + (f"({','.join(select)})" if select else "")
        return self._json(200, {"@odata.context": context + "/$entity", **self._shape(table, row, select, formatted)})

    def _query(self, table: Table, params: list[tuple[str, str]], headers: dict[str, str]) -> Reply:
        try:
            options = self._options(table, params)
            resolve = self._resolver(table)
            get: Callable[[Any, str], Any] = lambda r, p: r.get(p)
            keep = compile_filter(options["$filter"], resolve, get) if "$filter" in options else None
            order = compile_orderby(options["$orderby"], resolve, get) if "$orderby" in options else []
            top = int(options["$top"]) if "$top" in options else None
        except (ODataQueryError, ValueError) as exc:
            return self._json(400, _error("0x80060888", str(exc)))
        size, formatted = self._preferences(headers)
        rows = [r for r in self._rows[table.entity_set].values() if keep is None or keep(r)]
        order = order + compile_orderby(table.key, resolve, get)  # the key breaks ties, as the paging cookie does
        sort_records(rows, order)
        if top is not None:
            rows = rows[:top]
        start = 0
        cookie = options.get("$skiptoken")
        if cookie:
            last = cookie.split('pagingcookie="', 1)[-1].split('"', 1)[0]
            ids = [r[table.key] for r in rows]
            # a row sent on an earlier page and changed since: the page goes on after its place in the order
            start = ids.index(last) + 1 if last in ids else int(cookie.split('pagenumber="', 1)[-1].split('"')[0] or 0)
        page = rows[start:start + size]
        select = [c.strip() for c in options["$select"].split(",")] if options.get("$select") else None
        context = f"{self.url}{API}$metadata#{table.entity_set}" + (f"({','.join(select)})" if select else "")
        answer: dict[str, Any] = {"@odata.context": context}
        if options.get("$count") == "true":
            answer["@odata.count"] = len(rows)
        answer["value"] = [self._shape(table, r, select, formatted) for r in page]
        if top is None and start + size < len(rows):
            following = [(k, v) for k, v in params if k != "$skiptoken"]
            number = start // size + 2
            token = f'<cookie pagenumber="{number}" pagingcookie="{page[-1][table.key]}" istracking="False" />'
            following.append(("$skiptoken", token))
            answer["@odata.nextLink"] = (f"{self.url}{API}{table.entity_set}?"
                                         + urllib.parse.urlencode(following, quote_via=urllib.parse.quote,
                                                                  safe="$,'/:"))
        prefs = [f"odata.maxpagesize={size}"] + (['odata.include-annotations="*"'] if formatted else [])
        return self._json(200, answer, {"Preference-Applied": ",".join(prefs)})

    # ------------------------------------------------------------------------------- the data
    def _guid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _store(self, table: str, row: Record) -> Record:
        self._version += 1
        row["versionnumber"] = self._version
        self._rows[table][row[TABLES[table].key]] = row
        return row

    def rows(self, table: str) -> list[Record]:
        with self._lock:
            return list(self._rows[table].values())

    def add_user(self, fullname: str, email: str | None = None) -> Record:
        with self._lock:
            return self._store("systemusers", {"systemuserid": self._guid(), "fullname": fullname,
                                               "internalemailaddress": email})

    def add_flow(self, name: str, *, category: int = 6, owner: Record | None = None, workflowid: str | None = None
                 ) -> Record:
        with self._lock:
            now = iso_z(self.wall_clock())
            return self._store("workflows", {
                "workflowid": (workflowid or self._guid()).lower(), "name": name, "category": category,
                "statecode": 1, "statuscode": 2, "_ownerid_value": owner["systemuserid"] if owner else None,
                "createdon": now, "modifiedon": now, "description": None})

    def add_group(self, name: str) -> Record:
        with self._lock:
            return self._store("flowmachinegroups", {"flowmachinegroupid": self._guid(), "name": name,
                                                     "description": None})

    def add_machine(self, name: str, *, group: Record | None = None, statuscode: int = 1,
                    heartbeat: datetime | None = None, capacity: int = 1) -> Record:
        with self._lock:
            heard = heartbeat if heartbeat is not None else self.wall_clock()
            return self._store("flowmachines", {
                "flowmachineid": self._guid(), "name": name, "statuscode": statuscode,
                "statecode": MACHINE_STATUS.get(statuscode, ("", 2))[1], "lastheartbeatdate": iso_z(heard),
                "sessioncapacity": capacity, "agentversion": "2.52.62.24044",
                "_flowmachinegroupid_value": group["flowmachinegroupid"] if group else None, "hostingtype": 0})

    def update_machine(self, machine: Record, **changes: Any) -> None:
        with self._lock:
            machine.update(changes)
            self._store("flowmachines", machine)

    def add_session(self, flow: Record, *, statuscode: int = 4, machine: Record | None = None,
                    started: datetime | None = None, completed: datetime | None = None,
                    created: datetime | None = None, error: tuple[str, str] | None = None,
                    sessionid: str | None = None) -> Record:
        """A desktop-flow run; an ended one gets a completedon (default: now) and, failed, an error."""
        with self._lock:
            now = self.wall_clock()
            if statuscode in SESSION_ENDED:
                completed = completed or now
                started = started or completed - timedelta(seconds=self._rng.randint(20, 1800))
            elif statuscode in (1, 2, 6):
                started = started or now - timedelta(seconds=self._rng.randint(5, 600))
            created = created or (started - timedelta(seconds=self._rng.randint(1, 30)) if started else now)
            if statuscode in (8, 9) and error is None:
                error = self._rng.choice(DESKTOP_ERRORS)
            row = {"flowsessionid": (sessionid or self._guid()).lower(), "name": flow["name"],
                   "statuscode": statuscode, "statecode": SESSION_STATUS[statuscode][1],
                   "startedon": iso_z(started) if started else None,
                   "completedon": iso_z(completed) if completed and statuscode in SESSION_ENDED | {13} else None,
                   "createdon": iso_z(created), "modifiedon": iso_z(now),
                   "errorcode": error[0] if error else None, "errormessage": error[1] if error else None,
                   "errordetails": None, "_regardingobjectid_value": flow["workflowid"],
                   "regardingobjecttypecode": "workflow",
                   "_machineid_value": machine["flowmachineid"] if machine else None,
                   "_machinegroupid_value": machine["_flowmachinegroupid_value"] if machine else None,
                   "_ownerid_value": flow["_ownerid_value"], "runmode": 2, "triggertype": 0, "callbackurl": None}
            return self._store("flowsessions", row)

    def update_session(self, session: Record, *, statuscode: int, completed: datetime | None = None,
                       error: tuple[str, str] | None = None) -> None:
        with self._lock:
            now = self.wall_clock()
            session["statuscode"], session["statecode"] = statuscode, SESSION_STATUS[statuscode][1]
            if statuscode in SESSION_ENDED:
                session["completedon"] = iso_z(completed or now)
                session["startedon"] = session["startedon"] or iso_z((completed or now) - timedelta(seconds=30))
            if statuscode in (8, 9):
                error = error or self._rng.choice(DESKTOP_ERRORS)
            if error:
                session["errorcode"], session["errormessage"] = error
            session["modifiedon"] = iso_z(now)
            self._store("flowsessions", session)

    def add_flowrun(self, flow: Record, *, status: str = "Success", ended: datetime | None = None,
                    seconds: float | None = None, error: tuple[str, str] | None = None,
                    trigger: str = "Scheduled") -> Record:
        """A cloud-flow run, written when it ended (as Dataverse ingests them)."""
        with self._lock:
            ended = ended or self.wall_clock()
            seconds = seconds if seconds is not None else self._rng.randint(1, 900)
            if status == "Failed" and error is None:
                error = self._rng.choice(CLOUD_ERRORS)
            name = f"08584{self._rng.randrange(10**16):016d}CU{self._rng.randrange(100):02d}"
            return self._store("flowruns", {
                "flowrunid": self._guid(), "name": name, "status": status,
                "starttime": iso_z(ended - timedelta(seconds=seconds)), "endtime": iso_z(ended),
                "duration": int(seconds * 1000), "errorcode": error[0] if error else None,
                "errormessage": error[1] if error else None, "triggertype": trigger,
                "_workflow_value": flow["workflowid"], "workflowid": flow["workflowid"], "parentrunid": None,
                "ttlinseconds": 28 * 86400, "modernflowtype": 0, "_ownerid_value": flow["_ownerid_value"],
                "createdon": iso_z(ended)})

    def populate(self, n_sessions: int = 120, n_cloud: int = 60, seed: int = 1, anchor: datetime | None = None
                 ) -> None:
        """An environment: the corpus' two desktop flows plus a few more, three owners, a machine
        group of three machines, desktop runs in every status and cloud runs in every status, all
        within the last few hours of `anchor`."""
        rng = random.Random(seed)
        anchor = anchor or self.wall_clock()
        owners = [self.add_user(n, e) for n, e in (("Ana Diaz", "ana.diaz@example.com"),
                                                   ("Bram de Vries", "bram@example.com"),
                                                   ("Chen Wei", "chen.wei@example.com"))]
        desktop = [self.add_flow(name, owner=owners[i], workflowid=wid) for i, (name, wid) in enumerate(SAMPLE_FLOWS)]
        desktop.append(self.add_flow("Invoice Posting SAP", owner=owners[2]))
        cloud = [self.add_flow(name, category=5, owner=owners[i % 3])
                 for i, name in enumerate(("Approve expense report", "Sync leads to SharePoint"))]
        group = self.add_group("Finance machines")
        machines = [self.add_machine(f"RPA-VM-{i:02d}", group=group, capacity=1 + i % 2) for i in range(1, 4)]
        statuses = [4] * 6 + [8, 9, 10, 7, 11, 14, 5, 12, 13] + [2, 3, 0]
        for _ in range(n_sessions):
            status = rng.choice(statuses)
            end = anchor - timedelta(seconds=rng.randint(60, 6 * 3600))
            self.add_session(rng.choice(desktop), statuscode=status, machine=rng.choice(machines),
                             completed=end if status in SESSION_ENDED | {13} else None)
        for _ in range(n_cloud):
            self.add_flowrun(rng.choice(cloud), status=rng.choice(CLOUD_STATUSES * 2 + ("Success",)),
                             ended=anchor - timedelta(seconds=rng.randint(60, 6 * 3600)))

    # ------------------------------------------------------------------------------ callbacks
    def callback_body(self, session: Record, **override: Any) -> dict[str, Any]:
        """What Power Automate POSTs to a run's callbackUrl when it ends (the docs' callback sample)."""
        with self._lock:
            body = {"statuscode": session["statuscode"], "statecode": session["statecode"],
                    "startedon": session["startedon"], "completedon": session["completedon"],
                    "flowsessionid": session["flowsessionid"]}
            body.update(override)
            return body

    def send_callback(self, url: str, body: dict[str, Any] | bytes, timeout: float = 10.0) -> tuple[int, Any]:
        """POSTs a callback (no signature: Power Automate sends none); the receiver's status and answer."""
        import http.client

        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        target = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(target.netloc, timeout=timeout)
        try:
            conn.request("POST", target.path, raw, {"Content-Type": "application/json"})
            r = conn.getresponse()
            answer = json.loads(r.read() or b"{}")
            status = r.status
        finally:
            conn.close()
        self.callbacks_sent.append((url, status))
        return status, answer
