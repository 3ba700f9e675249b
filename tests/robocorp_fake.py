"""A stand-in Robocorp (Sema4.ai) Control Room API for the tests: a real HTTP server on 127.0.0.1
with a workspace's processes, process runs, step runs, work items and workers, faults on demand.

Built from the Control Room API 1.0 OpenAPI in the controlplanes corpus
(`robocorp/robocorp_control-room-api_openapi_2023-10.json`, its README's Robocorp section):
- `Authorization: RC-WSKEY <key>` and the permission each operation names (`Processes.read_runs`
  for the run list, `Processes.read_processes` for one run and the step runs,
  `Processes.read_work_items`, `Workers.read_workers`; none for the workspace itself);
- `GET /workspaces/{ws}/process-runs` (`process_id`, `state`, `limit`), `/process-runs/{id}`,
  `/step-runs?process_run_id=` (required), `/work-items` (`process_id`, `process_run_id`,
  `state`), `/workers`, `/workspaces/{ws}`: their fields, required and nullable as the schema says;
- lists as `{next, has_more, data}`, `next` a full URL (null at the end);
- the enumerations: process-run states new/in_progress/completed/unresolved/stopping, step-run
  states new/awaiting_worker/in_progress/completed/failed with `error.code`, work-item states
  new/pending/in_progress/failed/done with exception types application/business/orchestrator/
  unspecified, worker states offline/idle/busy, `started_by` api/user/schedule/email;
- error bodies `{"error": {"code", "message"}}` (genericErrorResponse).

Decided here where the OpenAPI is silent; none of it is verified against a real Control Room:
- the list order (newest `created_at` first, as Control Room's own run list shows them) and the
  `next` URL's form (the same query plus an opaque `cursor`: keyset paging, so a run added while
  a client pages shifts nothing); `limit` defaults to 20 and above 100 is refused (400);
- a missing, malformed, unknown or revoked key: 401 (the OpenAPI documents only 403, here the
  answer to a key without the operation's permission, and to another workspace);
- the error codes and messages, the step-run error codes (`TASK_FAILED`...), the step names and
  the exception codes of the populated data; 429 with `Retry-After`; 500/503 faults; Date headers.
Not implemented: writes (starting or stopping runs, work item updates), assets, webhooks,
worker groups, outputs, artifacts, assistants.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import threading
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Record = dict[str, Any]

RUN_STATES = ("new", "in_progress", "completed", "unresolved", "stopping")
ENDED_STATES = {"completed", "unresolved"}
STEP_STATES = ("new", "awaiting_worker", "in_progress", "completed", "failed")
ITEM_STATES = ("new", "pending", "in_progress", "failed", "done")
EXCEPTION_TYPES = ("application", "business", "orchestrator", "unspecified")
WORKER_STATES = ("offline", "idle", "busy")
STARTED_BY = ("api", "user", "schedule", "email")
PERMISSIONS = frozenset({"Processes.read_runs", "Processes.read_processes", "Processes.read_work_items",
                         "Workers.read_workers"})
MAX_LIMIT = 100
DEFAULT_LIMIT = 20


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class FakeControlRoom:
    """`with FakeControlRoom() as cr:` serves on `cr.url` (the API base, `.../api/v1`)."""

    def __init__(self, *, workspace_name: str = "Finance Automation", fail_every: int = 0, seed: int = 1):
        self.workspace_id = uuid.UUID(int=random.Random(seed).getrandbits(128)).hex[:24]
        self.workspace_name = workspace_name
        self.api_key = "rc-" + uuid.UUID(int=random.Random(seed + 1).getrandbits(128)).hex
        self.permissions: set[str] = set(PERMISSIONS)
        self.revoked = False
        self.fail_every = fail_every
        self.newest_first = True  # the run list's order (False: oldest first, which the client must survive)
        self.next_origin: str | None = None  # where `next` points (a hostile or misconfigured server: elsewhere)
        self.processes: list[Record] = []
        self.runs: list[Record] = []
        self.steps: dict[str, list[Record]] = collections.defaultdict(list)  # run id -> step runs
        self.items: list[Record] = []
        self._items_of: dict[str, list[Record]] = collections.defaultdict(list)  # run id -> its work items
        self._ordered: tuple[int, bool, list[Record]] = (0, True, [])  # runs in list order, while none is added
        self.workers: list[Record] = []
        self.counts: collections.Counter[str] = collections.Counter()  # requests per operation
        self.faults_served = 0
        self.throttled_total = 0
        self._errors: list[tuple[str, int, float | None, bytes | None]] = []  # path part, status, retry-after, body
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._requests = 0
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------------- server
    def __enter__(self) -> FakeControlRoom:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/api/v1"

    # ------------------------------------------------------------------------------ controls
    def revoke_key(self) -> None:
        with self._lock:
            self.revoked = True

    def error_once(self, path_part: str, status: int, retry_after: float | None = None,
                   body: bytes | None = None) -> None:
        """The next request whose path contains `path_part` gets `status` (429: with Retry-After),
        or a 200 with `body` as it is (a broken answer)."""
        with self._lock:
            self._errors.append((path_part, status, retry_after, body))

    # ---------------------------------------------------------------------------------- data
    def wall_clock(self) -> datetime:
        return datetime.now(timezone.utc)

    def add_process(self, name: str, created: datetime | None = None) -> Record:
        with self._lock:
            p = {"id": self._id(), "name": name, "created_at": iso(created or self.wall_clock() - timedelta(days=90))}
            self.processes.append(p)
            return p

    def add_run(self, process: Record, state: str, *, created: datetime | None = None,
                duration: timedelta | None = None, started_by: str = "schedule", failures: list[Record] | None = None,
                items_done: int = 0, steps: tuple[str, ...] = ("Producer", "Consumer")) -> Record:
        """A process run; an ended one with its end and duration, its step runs and work items
        (`failures`: the exceptions of its failed items, `{code, type, message}`, or
        `{"step_error": code}` for a step that failed without a failed item)."""
        assert state in RUN_STATES
        with self._lock:
            created = created or self.wall_clock()
            run: Record = {"id": self._id(), "state": state, "created_at": iso(created), "started_at": None,
                           "ended_at": None, "started_by": self._started_by(started_by),
                           "process": {"id": process["id"], "name": process["name"]}, "duration": None}
            if state != "new":
                run["started_at"] = iso(created + timedelta(seconds=self._rng.randint(1, 30)))
            self.runs.append(run)
            for i, step in enumerate(steps):
                self.steps[run["id"]].append({
                    "id": self._id(), "state": "in_progress" if state != "new" and i == 0 else "new",
                    "state_updated_at": run["created_at"], "error": None,
                    "started_at": run["started_at"] if i == 0 else None,
                    "ended_at": None, "duration": None, "step": {"id": self._id(), "name": step}})
            if state in ENDED_STATES or state == "stopping":
                if state in ENDED_STATES:
                    self.end_run(run, state, duration=duration or timedelta(seconds=self._rng.randint(20, 2400)),
                                 failures=failures, items_done=items_done)
            return run

    def end_run(self, run: Record, state: str, *, duration: timedelta | None = None,
                failures: list[Record] | None = None, items_done: int = 0, at: datetime | None = None) -> Record:
        """Ends a run (completed or unresolved), with its step runs and work items."""
        assert state in ENDED_STATES
        with self._lock:
            started = datetime.fromisoformat((run["started_at"] or run["created_at"]).replace("Z", "+00:00"))
            ended = at or (started + duration if duration else self.wall_clock())
            run["state"], run["ended_at"] = state, iso(ended)
            if run["started_at"] is None:
                run["started_at"] = iso(started)
            run["duration"] = round((ended - started).total_seconds(), 3)
            failures = failures or []
            step_error = next((f["step_error"] for f in failures if "step_error" in f), None)
            item_failures = [f for f in failures if "step_error" not in f]
            steps = self.steps[run["id"]]
            for i, step in enumerate(steps):
                failed = state == "unresolved" and i == len(steps) - 1
                step.update({"state": "failed" if failed else "completed", "state_updated_at": run["ended_at"],
                             "started_at": step["started_at"] or run["started_at"], "ended_at": run["ended_at"],
                             "duration": run["duration"],
                             "error": {"code": step_error or "TASK_FAILED"} if failed else None})
            consumer = steps[-1] if steps else None
            for k in range(items_done + len(item_failures)):
                exc = item_failures[k - items_done] if k >= items_done else None
                self._add_item({
                    "id": self._id(), "created_at": run["created_at"], "state": "failed" if exc else "done",
                    "state_updated_at": run["ended_at"], "process": {"id": run["process"]["id"]},
                    "process_run": {"id": run["id"]}, "step": {"id": consumer["step"]["id"]} if consumer else None,
                    "step_run": {"id": consumer["id"]} if consumer else None,
                    "exception": dict(exc) if exc else None})
            return run

    def _add_item(self, item: Record) -> None:
        self.items.append(item)
        self._items_of[item["process_run"]["id"]].append(item)

    def add_worker(self, name: str, state: str) -> Record:
        assert state in WORKER_STATES
        with self._lock:
            w = {"id": self._id(), "name": name, "state": state}
            self.workers.append(w)
            return w

    def populate(self, n_processes: int = 4, n_runs: int = 100, seed: int = 1, *,
                 anchor: datetime | None = None) -> None:
        """A workspace, the same for the same arguments: processes, workers and `n_runs` runs over
        the 24 h before `anchor` in every state, unresolved ones with realistic failures."""
        rng = random.Random(seed)
        anchor = anchor or self.wall_clock()
        with self._lock:
            procs = [self.add_process(PROCESS_NAMES[i % len(PROCESS_NAMES)]) for i in range(n_processes)]
            for i in range(4):
                self.add_worker(f"rpa-worker-{i + 1:02d}", rng.choice(("idle", "idle", "busy", "offline")))
            plans = []
            for _ in range(n_runs):
                state = rng.choices(RUN_STATES, (4, 8, 60, 22, 2))[0]
                if state in ENDED_STATES:
                    created = anchor - timedelta(seconds=rng.randint(2700, 86400))
                else:
                    created = anchor - timedelta(seconds=rng.randint(30, 3600))
                plans.append((created, state, rng.choice(procs)))
            for created, state, process in sorted(plans, key=lambda p: p[0]):
                failures: list[Record] = []
                if state == "unresolved":
                    kind = rng.choice(("business", "application", "credentials", "orchestrator", "step"))
                    if kind == "step":
                        failures = [{"step_error": rng.choice(STEP_ERROR_CODES)}]
                    elif kind == "orchestrator":
                        failures = [{"code": "WORKER_LOST", "type": "orchestrator",
                                     "message": "The worker stopped responding while the item was in progress"}]
                    else:
                        code, message = rng.choice(FAILURE_TEXTS[kind])
                        failures = [{"code": code, "type": "business" if kind == "business" else "application",
                                     "message": message.format(n=rng.randint(10000, 99999))}
                                    for _ in range(rng.randint(1, 3))]
                self.add_run(process, state, created=created, duration=timedelta(seconds=rng.randint(20, 2400)),
                             started_by=rng.choice(STARTED_BY), failures=failures,
                             items_done=rng.randint(0, 8) if state in ENDED_STATES else 0)

    def ended_runs(self) -> list[Record]:
        with self._lock:
            return [dict(r) for r in self.runs if r.get("state") in ENDED_STATES]

    def open_runs(self) -> list[Record]:
        with self._lock:
            return [dict(r) for r in self.runs if r.get("state") in ("new", "in_progress", "stopping")]

    def run_items(self, run_id: str) -> list[Record]:
        with self._lock:
            return [dict(i) for i in self.items if (i.get("process_run") or {}).get("id") == run_id]

    # -------------------------------------------------------------------------------- handler
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path
        with self._lock:
            self._requests += 1
            for i, (part, status, retry, body) in enumerate(self._errors):
                if part in path:
                    del self._errors[i]
                    if status == 429:
                        self.throttled_total += 1
                        return self._send(h, 429, {"error": {"code": "too_many_requests",
                                                             "message": "Rate limit exceeded"}},
                                          {"Retry-After": str(int(retry or 1))})
                    if body is not None:
                        return self._send_raw(h, status, body)
                    return self._send(h, status, {"error": {"code": "error", "message": f"status {status}"}})
            if self.fail_every and self._requests % self.fail_every == 0:
                self.faults_served += 1
                if self._requests % (2 * self.fail_every) == 0:
                    return self._send_raw(h, 503, b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                                          "text/html")
                return self._send(h, 500, {"error": {"code": "internal_error", "message": "Internal server error"}})
            auth = h.headers.get("Authorization") or ""
            if not auth.startswith("RC-WSKEY ") or auth[len("RC-WSKEY "):] != self.api_key or self.revoked:
                self.counts["unauthorized"] += 1
                return self._send(h, 401, {"error": {"code": "unauthorized",
                                                     "message": "Invalid or revoked API key"}})
            prefix = f"/api/v1/workspaces/{self.workspace_id}"
            if not path.startswith("/api/v1/workspaces/"):
                return self._send(h, 404, {"error": {"code": "not_found", "message": "Not found"}})
            if not (path == prefix or path.startswith(prefix + "/")):
                return self._send(h, 403, {"error": {"code": "forbidden",
                                                     "message": "API key has no access to this workspace"}})
            rest = path[len(prefix):]
            if rest == "":
                self.counts["workspace"] += 1
                return self._send(h, 200, {"id": self.workspace_id, "name": self.workspace_name,
                                           "organization": {"id": "org-1", "name": "Acme"}})
            routes = {"/process-runs": ("process-runs", "Processes.read_runs", self._list_runs),
                      "/step-runs": ("step-runs", "Processes.read_processes", self._list_steps),
                      "/work-items": ("work-items", "Processes.read_work_items", self._list_items),
                      "/workers": ("workers", "Workers.read_workers", self._list_workers)}
            if rest in routes:
                name, permission, lister = routes[rest]
            elif rest.startswith("/process-runs/") and rest.count("/") == 2:
                name, permission, lister = "process-run", "Processes.read_processes", None
            else:
                return self._send(h, 404, {"error": {"code": "not_found", "message": "Not found"}})
            self.counts[name] += 1
            if permission not in self.permissions:
                return self._send(h, 403, {"error": {"code": "forbidden",
                                                     "message": f"API key is missing the permission {permission}"}})
            if lister is None:
                run_id = urllib.parse.unquote(rest.rsplit("/", 1)[1])
                run = next((r for r in self.runs if r.get("id") == run_id), None)
                if run is None:
                    return self._send(h, 404, {"error": {"code": "not_found", "message": "Process run not found"}})
                return self._send(h, 200, run)
            try:
                rows = lister(query)
                limit = self._limit(query)
            except ValueError as exc:
                return self._send(h, 400, {"error": {"code": "invalid_request", "message": str(exc)}})
            return self._send(h, 200, self._page(path, query, rows, limit))

    def _limit(self, query: dict[str, str]) -> int:
        raw = query.get("limit", str(DEFAULT_LIMIT))
        try:
            limit = int(float(raw))
        except ValueError:
            raise ValueError(f"limit must be a number, got {raw!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        return limit

    def _list_runs(self, q: dict[str, str]) -> list[Record]:
        if "state" in q and q["state"] not in RUN_STATES:
            raise ValueError(f"state must be one of {', '.join(RUN_STATES)}")
        count, newest_first, ordered = self._ordered
        if count != len(self.runs) or newest_first != self.newest_first:  # sorted again only when runs were added
            ordered = sorted(self.runs, key=lambda r: (str(r.get("created_at")), str(r.get("id"))),
                             reverse=self.newest_first)
            self._ordered = (len(self.runs), self.newest_first, ordered)
        return [r for r in ordered
                if (not q.get("process_id") or (r.get("process") or {}).get("id") == q["process_id"])
                and (not q.get("state") or r.get("state") == q["state"])]

    def _list_steps(self, q: dict[str, str]) -> list[Record]:
        if not q.get("process_run_id"):
            raise ValueError("process_run_id is required")
        return list(self.steps.get(q["process_run_id"], []))

    def _list_items(self, q: dict[str, str]) -> list[Record]:
        if "state" in q and q["state"] not in ITEM_STATES:
            raise ValueError(f"state must be one of {', '.join(ITEM_STATES)}")
        items = self._items_of.get(q["process_run_id"], []) if q.get("process_run_id") else self.items
        return [i for i in items
                if (not q.get("process_run_id") or (i.get("process_run") or {}).get("id") == q["process_run_id"])
                and (not q.get("process_id") or i["process"]["id"] == q["process_id"])
                and (not q.get("state") or i["state"] == q["state"])]

    def _list_workers(self, q: dict[str, str]) -> list[Record]:
        return list(self.workers)

    def _page(self, path: str, query: dict[str, str], rows: list[Record], limit: int) -> Record:
        """`limit` rows after the cursor; `next`: the same query with the cursor of the last row."""
        start = 0
        if query.get("cursor"):
            try:
                after = base64.urlsafe_b64decode(query["cursor"].encode()).decode()
            except ValueError:
                after = ""
            keys = [str(r.get("id")) for r in rows]
            start = keys.index(after) + 1 if after in keys else len(rows)
        page = rows[start:start + limit]
        more = start + limit < len(rows)
        nxt = None
        if more and page:
            q = {**query, "cursor": base64.urlsafe_b64encode(str(page[-1].get("id")).encode()).decode()}
            nxt = f"{self.next_origin or self.origin}{path}?{urllib.parse.urlencode(q)}"
        return {"next": nxt, "has_more": more, "data": page}

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(h, status, json.dumps(body).encode(), "application/json", headers)

    def _send_raw(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Date", format_datetime(datetime.now(timezone.utc), usegmt=True))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    # ------------------------------------------------------------------------------- helpers
    def _id(self) -> str:
        return uuid.UUID(int=self._rng.getrandbits(128)).hex

    def _started_by(self, kind: str) -> Record:
        assert kind in STARTED_BY
        details = {"id": self._id(), "first_name": "Ana", "last_name": "Diaz"} if kind == "user" else None
        return {"type": kind, "details": details}


# ---------------------------------------------------------------------------- realistic texts
PROCESS_NAMES = ("Invoice Processing", "Vendor Onboarding", "Payroll Reconciliation", "Bank Statement Import",
                 "PO Matching", "Order Entry")
STEP_ERROR_CODES = ("TASK_FAILED", "ROBOT_CRASHED", "WORKER_TIMEOUT")
FAILURE_TEXTS = {
    "business": (("INVALID_ORDER", "Order {n} has no purchase order number"),
                 ("VENDOR_BLOCKED", "Vendor {n} is blocked for payment")),
    "application": (("ELEMENT_NOT_FOUND", "ElementNotFound: Element not found with locator 'name:Submit' ({n})"),
                    ("SELENIUM", "Element with locator 'id:vendorNo' not found.")),
    "credentials": (("LOGIN_FAILED", "Logon failed for user 'svc_rpa_{n}'"),),
}
