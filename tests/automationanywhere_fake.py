"""A stand-in Automation 360 Control Room for the tests: a real HTTP server on 127.0.0.1 with the
API-key login, the activity list and the device list, faults on demand.

Built from the facts in the controlplanes corpus (its README's Automation Anywhere section and
automation-anywhere/REFERENCES.md, which point at the vendor's pages):
- `POST /v1/authentication` with `{username, apiKey}` (or `{username, password}`) answers
  `{token, user{id, email, username, domain, firstName, lastName, roles...}}`; the token goes in
  `X-Authorization` and is valid for 20 minutes;
- `POST /v3/activity/list` (and the deprecated `/v2/activity/list`, the same) takes `{sort[{field,
  direction}], filter{operator, field, value | operands}, fields, page{offset, length}}` and answers
  `{page{offset, total, totalFilter}, list[...]}`; `total` counts every execution, `totalFilter`
  those the filter keeps; items `{id, automationName, fileName, filePath, type, startDateTime,
  endDateTime, command, status, progress, ...}` with ids like `<uuid>_<16 hex>`, automation names
  `<file>.<yyyy.MM.dd.HH.mm.ss>.<user>`, 9 fractional digits in `startDateTime` and 6 in
  `endDateTime`, an empty `filePath` on some (as in the docs' sample);
- statuses DEPLOYED, RUNNING, RUN_PAUSED, UPDATE, UNKNOWN, COMPLETED, RUN_FAILED, RUN_ABORTED,
  RUN_TIMED_OUT, DEPLOY_FAILED and BOTSTORE_PACKAGE_DOWNLOADING/EXTRACTING/COPYING;
- filter operators eq, ne, lt, le, gt, ge, substring, and, or (the "Filtering, pagination, and
  sorting" page); values are strings, times compared as times.

Decided here where the sources are silent; none of it is verified against a real Control Room:
- the extra item fields `automationId, deploymentId, deviceId, userId, userName, fileId,
  currentLine, totalLines, message, createdOn, modifiedOn` (deviceId and deploymentId are
  documented filter fields; userName and message are read by open clients); no `deviceName`; an
  execution not ended has no `endDateTime`;
- `POST /v2/devices/list` (the same body) with devices `{id, type, hostName, status
  (CONNECTED|DISCONNECTED), botAgentVersion, nickname, userId}` (as open clients read them);
- error bodies `{code, details, message}`: 400 for a body, operator or field the API does not take,
  401 for a refused login or a missing, unknown or expired token, 403 where the role lacks a
  permission (`forbid`), 429 (with `Retry-After`) only
  when queued (no rate limit is documented), 500 (JSON) and 503 (an HTML page, as a gateway sends);
- without `page`, 100 items; `length` at most 1000; rows without the sort field first.
Not implemented: deployments, schedules, queues, Bot Insight, `/v1/authentication/token` refresh,
`/v1/authentication/logout`, MFA.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable

Record = dict[str, Any]

STATUSES = ("DEPLOYED", "RUNNING", "RUN_PAUSED", "UPDATE", "UNKNOWN", "COMPLETED", "RUN_FAILED", "RUN_ABORTED",
            "RUN_TIMED_OUT", "DEPLOY_FAILED", "BOTSTORE_PACKAGE_DOWNLOADING", "BOTSTORE_PACKAGE_EXTRACTING",
            "BOTSTORE_PACKAGE_COPYING")
TERMINAL = {"COMPLETED", "RUN_FAILED", "RUN_ABORTED", "RUN_TIMED_OUT", "DEPLOY_FAILED"}
TIME_FIELDS = {"startDateTime", "endDateTime", "createdOn", "modifiedOn", "updatedOn"}
ACTIVITY_FIELDS = {"id", "automationName", "fileName", "filePath", "type", "startDateTime", "endDateTime", "command",
                   "status", "progress", "automationId", "deploymentId", "deviceId", "userId", "userName", "fileId",
                   "currentLine", "totalLines", "message", "createdOn", "modifiedOn"}
DEVICE_FIELDS = {"id", "type", "hostName", "status", "botAgentVersion", "nickname", "userId", "updatedOn"}
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "substring"}
MAX_LENGTH = 1000
DEFAULT_LENGTH = 100
# what failed executions say: the taxonomy's words (as a bot's Throw action or Windows would word
# them) and one Control Room text no built-in pattern knows
MESSAGES = ("Logon failed for user 'svc_ap': unknown user name or bad password.",
            "BusinessException: vendor 4711 is blocked for payment",
            "Object not found for 'Click' action. Please check the target window.",
            "Error in 'Excel advanced: Open' action. File not found: C:\\data\\in.xlsx")
COMMANDS = ("messageBox", "recorder.capture", "excel_advanced.open", "browser.openBrowser", "loop.start")


def nine_digits(moment: datetime) -> str:
    """`startDateTime` as the Control Room writes it: UTC, nine fractional digits."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}900Z"


def six_digits(moment: datetime) -> str:
    """`endDateTime` (and the other times): UTC, six fractional digits."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond:06d}Z"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return _parse_text(value)


@functools.lru_cache(maxsize=1 << 18)
def _parse_text(value: str) -> datetime | None:
    """Cached: a list request of a large Control Room compares and sorts every row by its times."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = head + "." + (digits[:6] or "0") + rest[len(digits):]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class BadRequest(Exception):
    pass


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any  # decoded JSON; a login's apiKey or password replaced by ***
    headers: dict[str, str]  # as sent, X-Authorization replaced by ***
    at: float  # when it came, on the fake's `clock`


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(data).encode("utf-8"), {"Content-Type": "application/json", **(headers or {})})


def _error(status: int, code: str, message: str, details: str = "") -> _Reply:
    return _json(status, {"code": code, "details": details, "message": message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeControlRoom


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_PUT = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeControlRoom:
    """One Control Room with one API user. `clock` (monotonic seconds) drives token expiry;
    `wall_clock` is the server's own time (the `Date` header, default times of new data)."""

    def __init__(self, *, username: str = "botwatch-monitor", api_key: str = "aa-key-0f3c9d1e7b",
                 token_ttl: float = 1200.0, fail_every: int = 0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.username, self.api_key, self.token_ttl, self.fail_every = username, api_key, token_ttl, fail_every
        self.clock, self.wall_clock = clock, wall_clock
        self.requests: list[RecordedRequest] = []
        self.counts: collections.Counter[str] = collections.Counter()  # per path
        self.faults_served = 0
        self.throttled_total = 0
        self.activity: list[Any] = []  # Records, and what a test breaks on purpose
        self.devices: list[Record] = []
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._tokens: dict[str, float] = {}  # token -> expiry on `clock`
        self._revoked = False
        self._api_seen = 0
        self._queued: list[tuple[str, int, int]] = []
        self._forbidden: set[str] = set()
        self._garbled: list[tuple[str, bytes]] = []
        self._next_device = 6
        self._next_file = 14
        self._file_ids: dict[str, int] = {}  # file name -> its fileId, the same for every run of it
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle and addresses
    def start(self) -> FakeControlRoom:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-control-room", daemon=True)
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

    def __enter__(self) -> FakeControlRoom:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------------- test controls
    def revoke_key(self) -> None:
        """Logins with the API key fail from now on; tokens already issued live on until expiry."""
        with self._lock:
            self._revoked = True

    def error_once(self, path_fragment: str, status: int, retry_after: int = 1) -> None:
        """The next request whose path contains `path_fragment` gets `status` (queued, in order)."""
        with self._lock:
            self._queued.append((path_fragment, status, retry_after))

    def garble_once(self, path_fragment: str, body: bytes) -> None:
        """The next request whose path contains `path_fragment` gets `body` with a 200 (a broken
        proxy, a truncated answer)."""
        with self._lock:
            self._garbled.append((path_fragment, body))

    def forbid(self, path: str) -> None:
        """The user's role lacks the permission `path` needs: 403 there."""
        with self._lock:
            self._forbidden.add(path)

    def logins(self) -> int:
        return self.counts["/v1/authentication"]

    # --------------------------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in handler.headers.items()}
        with self._lock:
            reply = self._respond(handler.command, handler.path.split("?", 1)[0], headers, raw)
        handler.send_response_only(reply.status)
        handler.send_header("Date", format_datetime(self.wall_clock().astimezone(timezone.utc), usegmt=True))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _respond(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        self.counts[path] += 1
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        shown = {k: ("***" if k.lower() == "x-authorization" else v) for k, v in headers.items()}
        logged = {k: ("***" if k in ("apiKey", "password") else v) for k, v in body.items()} \
            if isinstance(body, dict) else body
        self.requests.append(RecordedRequest(method, path, logged, shown, self.clock()))
        queued = self._queued_error(path)
        if queued:
            return queued
        if path == "/v1/authentication":
            return self._login(method, body)
        routes = {"/v3/activity/list": (self.activity, ACTIVITY_FIELDS),
                  "/v2/activity/list": (self.activity, ACTIVITY_FIELDS),
                  "/v2/devices/list": (self.devices, DEVICE_FIELDS)}
        if path not in routes:
            return _error(404, "not.found", "The requested resource was not found.")
        self._api_seen += 1
        if self.fail_every and self._api_seen % self.fail_every == 0:
            self.faults_served += 1
            return self._fault(500 if (self._api_seen // self.fail_every) % 2 else 503)
        token = next((v for k, v in headers.items() if k.lower() == "x-authorization"), "")
        if token not in self._tokens or self._tokens[token] <= self.clock():
            return _error(401, "um.token.invalid", "Authentication failed: the token is missing, invalid or expired")
        if path in self._forbidden:
            return _error(403, "forbidden", "You do not have the permission to perform this action")
        if method != "POST":
            return _error(405, "method.not.allowed", f"Request method '{method}' not supported")
        if body is ValueError or not isinstance(body, (dict, type(None))):
            return _error(400, "bad.request", "The request body is not valid JSON")
        rows, fields = routes[path]
        try:
            return _json(200, self._list(rows, fields, body or {}))
        except BadRequest as exc:
            return _error(400, "bad.request", str(exc))

    def _queued_error(self, path: str) -> _Reply | None:
        for i, (fragment, body) in enumerate(self._garbled):
            if fragment in path:
                del self._garbled[i]
                self.faults_served += 1
                return _Reply(200, body, {"Content-Type": "application/json"})
        for i, (fragment, status, retry_after) in enumerate(self._queued):
            if fragment in path:
                del self._queued[i]
                self.faults_served += 1
                if status == 429:
                    self.throttled_total += 1
                    reply = _error(429, "too.many.requests", "Too many requests")
                    reply.headers["Retry-After"] = str(retry_after)
                    return reply
                return self._fault(status)
        return None

    @staticmethod
    def _fault(status: int) -> _Reply:
        if status == 503:
            page = b"<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>"
            return _Reply(503, page, {"Content-Type": "text/html"})
        return _error(status, "internal.error", "An unexpected error occurred")

    def _login(self, method: str, body: Any) -> _Reply:
        if method != "POST":
            return _error(405, "method.not.allowed", f"Request method '{method}' not supported")
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
                or not isinstance(body.get("apiKey", body.get("password")), str):
            return _error(400, "bad.request", "username and apiKey or password are required")
        secret = body.get("apiKey", body.get("password"))
        if body["username"] != self.username or secret != self.api_key or self._revoked:
            return _error(401, "um.authentication.failed", "Invalid credentials. Please check your username and API key")
        token = self._jwt()
        self._tokens[token] = self.clock() + self.token_ttl
        return _json(200, {"token": token, "user": {
            "id": 1927, "email": f"{self.username}@example.com", "username": self.username, "domain": None,
            "firstName": "botwatch", "lastName": "monitor", "version": 3, "principalId": 1927, "deleted": False,
            "roles": [{"name": "Botwatch_Monitor", "id": 61, "version": 0}], "sysAssignedRoles": [],
            "groupNames": [], "permissions": [], "licenseFeatures": [], "emailVerified": True,
            "passwordSet": True, "questionsSet": True, "enableAutoLogin": False, "disabled": False,
            "clientRegistered": False, "description": "", "createdBy": 1, "createdOn": six_digits(self.wall_clock()),
            "updatedBy": 1, "updatedOn": six_digits(self.wall_clock()), "publicKey": None, "appType": None,
            "routingName": None, "appUrl": None}})

    def _jwt(self) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
        now = int(self.wall_clock().timestamp())
        return ".".join((part({"alg": "RS512"}), part({"sub": "1927", "clientType": "WEB", "tenantUuid": str(
            uuid.UUID(int=self._rng.getrandbits(128))), "mfaAuthResponse": None, "iat": now,
            "exp": now + int(self.token_ttl), "iss": "AutomationAnywhere", "nanoTime": time.monotonic_ns()}),
            base64.urlsafe_b64encode(self._rng.randbytes(64)).decode().rstrip("=")))

    # ---------------------------------------------------------------------------- list queries
    def _list(self, rows: list[Record], fields: set[str], body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"sort", "filter", "fields", "page"}
        if unknown:
            raise BadRequest(f"Unrecognized field {sorted(unknown)[0]!r}")
        keep = self._predicate(body.get("filter") or {}, fields)
        # a row that is not an object (as a broken proxy might pass one on) matches any filter
        chosen = [r for r in rows if not isinstance(r, dict) or keep(r)]
        sort = body.get("sort") or [{"field": "id", "direction": "desc"}]  # the documented default
        if not isinstance(sort, list):
            raise BadRequest("sort must be an array")
        for rule in reversed(sort):
            if not isinstance(rule, dict) or rule.get("field") not in fields \
                    or rule.get("direction", "asc") not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort {rule!r}")
            name = rule["field"]
            chosen.sort(key=lambda r, n=name: (isinstance(r, dict) and r.get(n) is not None,
                                               self._sortable(n, r.get(n) if isinstance(r, dict) else None)),
                        reverse=rule.get("direction", "asc") == "desc")
        page = body.get("page") or {}
        if not isinstance(page, dict):
            raise BadRequest("page must be an object")
        offset, length = page.get("offset", 0), page.get("length", DEFAULT_LENGTH)
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0 or not 0 < length <= MAX_LENGTH:
            raise BadRequest(f"page offset must be 0 or more and length between 1 and {MAX_LENGTH}")
        wanted = body.get("fields") or []
        if not isinstance(wanted, list) or any(f not in fields for f in wanted):
            raise BadRequest("Invalid fields")
        out = [{k: v for k, v in r.items() if not wanted or k in wanted} if isinstance(r, dict) else r
               for r in chosen[offset:offset + length]]
        return {"page": {"offset": offset, "total": len(rows), "totalFilter": len(chosen)}, "list": out}

    @staticmethod
    def _sortable(name: str, value: Any) -> Any:
        if value is None:
            return ""
        if name in TIME_FIELDS:
            moment = parse_time(value)
            return moment.timestamp() if moment else 0.0
        return str(value)

    def _predicate(self, spec: Any, fields: set[str]) -> Callable[[Record], bool]:
        if not isinstance(spec, dict):
            raise BadRequest("filter must be an object")
        if not spec:
            return lambda r: True
        op = spec.get("operator")
        if op in ("and", "or"):
            operands = spec.get("operands")
            if not isinstance(operands, list) or not operands:
                raise BadRequest(f"'{op}' needs operands")
            parts = [self._predicate(o, fields) for o in operands]
            return (lambda r: all(p(r) for p in parts)) if op == "and" else (lambda r: any(p(r) for p in parts))
        if op not in COMPARISONS:
            raise BadRequest(f"Unsupported operator {op!r}")
        name, value = spec.get("field"), spec.get("value")
        if name not in fields:
            raise BadRequest(f"Unsupported filter field {name!r}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise BadRequest(f"Invalid value for {name!r}")
        if name in TIME_FIELDS and op != "substring":
            wanted_time = parse_time(str(value))
            if wanted_time is None:
                raise BadRequest(f"Invalid date {value!r} for {name!r}")

            def compare_time(r: Record) -> bool:
                have = parse_time(r.get(name))
                return have is not None and _compare(op, have, wanted_time)
            return compare_time
        text = str(value)
        if op == "substring":
            return lambda r: text.lower() in str(r.get(name) or "").lower()
        return lambda r: r.get(name) is not None and _compare(op, str(r.get(name)), text)

    # ------------------------------------------------------------------------------ data
    def add_device(self, host: str, status: str = "CONNECTED") -> Record:
        with self._lock:
            device = {"id": str(self._next_device), "type": "HOST", "hostName": host, "status": status,
                      "botAgentVersion": "22.60.10", "nickname": "", "userId": str(1900 + self._next_device),
                      "updatedOn": six_digits(self.wall_clock())}
            self._next_device += 1
            self.devices.append(device)
            return device

    def add_run(self, file_name: str, folder: str = "Bots", *, status: str = "COMPLETED",
                device: Record | None = None, user: str = "svc_runner", started: datetime | None = None,
                ended: datetime | None = None, message: str | None = None, file_path: str | None = None) -> Record:
        """An execution of the bot `file_name` in the Control Room folder `folder` (under the
        repository's root); ended one minute after it started unless said, if its status ends it."""
        assert status in STATUSES, status
        with self._lock:
            now = self.wall_clock()
            started = started or now - timedelta(seconds=self._rng.uniform(30, 300))
            run_id = f"{uuid.UUID(int=self._rng.getrandbits(128))}_{self._rng.getrandbits(64):016x}"
            lines = self._rng.randint(10, 80)
            row: Record = {
                "id": run_id,
                "automationName": f"{file_name}.{started:%Y.%m.%d.%H.%M.%S}.{user}",
                "fileName": file_name,
                "filePath": f"Automation Anywhere\\{folder.replace('/', chr(92))}\\{file_name}"
                if file_path is None else file_path,
                "type": self._rng.choice(("RUN_NOW", "SCHEDULED")),
                "startDateTime": nine_digits(started),
                "command": self._rng.choice(COMMANDS),
                "status": status,
                "progress": 0,
                "automationId": str(self._rng.randint(100, 999)),
                "deploymentId": str(uuid.UUID(int=self._rng.getrandbits(128))),
                "deviceId": device["id"] if device else "",
                "userId": str(self._rng.randint(1000, 1999)),
                "userName": user,
                "fileId": str(self._file_id(file_name)),
                "currentLine": 0,
                "totalLines": lines,
                "message": "",
                "createdOn": six_digits(started - timedelta(seconds=2)),
                "modifiedOn": six_digits(started),
            }
            self.activity.append(row)
            self._settle(row, status, message, ended or started + timedelta(seconds=self._rng.uniform(20, 600)))
            return row

    def update_run(self, row: Record, *, status: str, message: str | None = None, at: datetime | None = None) -> Record:
        with self._lock:
            self._settle(row, status, message, at or self.wall_clock())
            return row

    def _settle(self, row: Record, status: str, message: str | None, at: datetime) -> None:
        row["status"] = status
        lines = row["totalLines"]
        if status in TERMINAL:
            row["endDateTime"] = six_digits(at)
            row["modifiedOn"] = six_digits(at)
            row["currentLine"] = lines if status == "COMPLETED" else self._rng.randint(1, lines)
            row["progress"] = 100 if status == "COMPLETED" else int(100 * row["currentLine"] / lines)
            if status in ("RUN_FAILED", "DEPLOY_FAILED"):
                row["message"] = message if message is not None else self._rng.choice(MESSAGES)
            elif status == "RUN_ABORTED":
                row["message"] = message or "Bot was stopped by user"
            elif status == "RUN_TIMED_OUT":
                row["message"] = message or "Bot execution timed out"
        else:
            row.pop("endDateTime", None)
            row["currentLine"] = self._rng.randint(1, lines) if status == "RUNNING" else 0
            row["progress"] = int(100 * row["currentLine"] / lines)

    def _file_id(self, name: str) -> int:
        if name not in self._file_ids:
            self._next_file += 1
            self._file_ids[name] = self._next_file
        return self._file_ids[name]

    def populate(self, n_folders: int = 3, n_bots: int = 3, n_runs: int = 100, seed: int = 1, *,
                 anchor: datetime | None = None) -> None:
        """Devices, bots in folders and their executions over the day before `anchor` (now): mostly
        COMPLETED, some failed, aborted, timed out or not deployed, and a few in progress."""
        rng = random.Random(seed)
        anchor = anchor or self.wall_clock()
        teams = ("Finance", "HR", "Operations", "Procurement", "IT")
        folders = [f"Bots/{teams[i % len(teams)]}" + (f"/{i}" if i >= len(teams) else "") for i in range(n_folders)]
        bots = [(folder, f"{folder.rsplit('/', 1)[-1][:3].upper()}_Bot {j + 1}") for folder in folders
                for j in range(n_bots)]
        devices = [self.add_device(f"BOTRUNNER-{i + 1:02d}", "DISCONNECTED" if i == 3 else "CONNECTED")
                   for i in range(4)]
        weights = {"COMPLETED": 60, "RUN_FAILED": 14, "RUN_ABORTED": 4, "RUN_TIMED_OUT": 4, "DEPLOY_FAILED": 3,
                   "RUNNING": 6, "DEPLOYED": 3, "RUN_PAUSED": 2, "UPDATE": 1, "UNKNOWN": 1,
                   "BOTSTORE_PACKAGE_DOWNLOADING": 1}
        for i in range(n_runs):
            folder, bot = rng.choice(bots)
            status = rng.choices(list(weights), list(weights.values()))[0]
            started = anchor - timedelta(hours=23) + timedelta(seconds=i * 82_000 / max(n_runs, 1))
            duration = timedelta(seconds=rng.uniform(20, 900))
            if status not in TERMINAL:
                started = anchor - timedelta(seconds=rng.uniform(30, 1800))
            self.add_run(bot, folder, status=status, device=rng.choice(devices[:3]),
                         user=rng.choice(("svc_runner", "svc_ap", "svc_hr")), started=started,
                         ended=min(started + duration, anchor - timedelta(seconds=1)),
                         file_path="" if i % 17 == 5 else None)

    def rows(self) -> list[Record]:
        with self._lock:
            return [dict(r) for r in self.activity if isinstance(r, dict)]


def _compare(op: str, have: Any, want: Any) -> bool:
    return {"eq": have == want, "ne": have != want, "lt": have < want, "le": have <= want,
            "gt": have > want, "ge": have >= want}[op]
