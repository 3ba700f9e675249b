"""Automation Anywhere (Automation 360): every bot execution of a Control Room becomes a run,
pulled from its activity list, with nothing installed on the Bot Runners
(docs/automationanywhere.md).

Per connection (`platforms.automationanywhere` in the estate file) each pull logs in with the
user's API key (`POST /v1/authentication`; the token goes in `X-Authorization` and lives 20
minutes), then asks `POST /v3/activity/list` for the executions that ended since its cursor or
have not ended yet, in one filter (`endDateTime ge <cursor>` or a status of a run in progress),
sorted by start and id, page by page (`page.offset`/`page.length` in the body):

- an execution that ended is a finished run (COMPLETED: success; RUN_FAILED and DEPLOY_FAILED:
  failure, its message classified by the estate's failure patterns and the built-in taxonomy;
  RUN_ABORTED: failure, reason killed; RUN_TIMED_OUT: failure, reason timeout);
- one not ended (DEPLOYED, RUNNING, RUN_PAUSED, UPDATE, UNKNOWN, BOTSTORE_PACKAGE_*) is a run
  in progress.

The cursor is the Control Room's clock (the `Date` of the pull's first answer), never this
agent's: the latest `endDateTime` read, not past the start of the pull, with the ids that ended
at or after it (platform.advance). Run ids are `automationanywhere:<id>`; the journal keeps each
run once. The devices (`POST /v2/devices/list`: CONNECTED, DISCONNECTED) are the robot
sessions of the connection, and name the host of a run by its `deviceId`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..config.estate import resolve_secret
from ..core.events import Event, Outcome, RunFinished, RunStarted
from ..state.controlplanes import Robots
from .controlplane import (MAX_BODY, TOKEN_EARLY, USER_AGENT, ApiClient, ApiError, AuthError, Throttled,
                           envelope_message, retry_after)
from .platform import Connection, PlatformSource, api_client, advance
from .platform import odata_time, parse_time

if TYPE_CHECKING:
    from ..config.platforms import AutomationAnywhere
    from ..state.runtime import EstateState

LABEL = "automationanywhere"
TOKEN_LIFETIME = 20 * 60.0  # seconds a Control Room token is valid (documented; the login answer does not say)
MAX_PAGES = 10_000  # pages of one query at most: a server that never stops paging is cut off
# an execution that ended: outcome and reason (None: classified from its message by the estate state)
FINISHED: dict[str, tuple[Outcome, str | None]] = {
    "COMPLETED": ("success", None), "RUN_FAILED": ("failure", None), "DEPLOY_FAILED": ("failure", None),
    "RUN_ABORTED": ("failure", "killed"), "RUN_TIMED_OUT": ("failure", "timeout")}
IN_PROGRESS = ("DEPLOYED", "RUNNING", "RUN_PAUSED", "UPDATE", "UNKNOWN", "BOTSTORE_PACKAGE_DOWNLOADING",
               "BOTSTORE_PACKAGE_EXTRACTING", "BOTSTORE_PACKAGE_COPYING")
DEVICE_STATES = {"CONNECTED": "available", "DISCONNECTED": "disconnected"}
MAX_BOTS = 10_000  # bots whose folder a connection remembers
ROOT = "Automation Anywhere"  # the repository's root folder, the same for every file: left out of folder names


def folder_of(file_path: Any, file_name: Any) -> str:
    """The Control Room folder of a bot from its `filePath` (`Automation Anywhere\\Bots\\Finance\\
    Invoice Recon`, or the folder alone; empty in some answers): `Bots/Finance`."""
    if not isinstance(file_path, str):
        return ""
    parts = [p for p in file_path.replace("\\", "/").split("/") if p]
    if parts and isinstance(file_name, str) and parts[-1] == file_name:
        parts.pop()
    if parts and parts[0] == ROOT:
        parts.pop(0)
    return "/".join(parts)[:256]


class ApiKeyLogin:
    """A Control Room token for `username` and an API key (`POST /v1/authentication`), sent as
    `X-Authorization` and fetched again before its 20 minutes are up or when refused (401)."""

    def __init__(self, url: str, username: str, api_key: Callable[[], str | None], timeout: float):
        self.url, self.username, self.api_key, self.timeout = url, username, api_key, timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._token = None

    def headers(self) -> dict[str, str]:
        return {"X-Authorization": self.token()}

    def token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._expires:
                return self._token
            key = self.api_key()
            if not key:
                raise AuthError("no API key (the env: variable or file: it names is empty or missing)")
            body = json.dumps({"username": self.username, "apiKey": key}).encode("utf-8")
            req = urllib.request.Request(self.url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    data = json.loads(r.read(MAX_BODY))
            except urllib.error.HTTPError as exc:
                answer = exc.read(MAX_BODY)
                if exc.code == 429:
                    raise Throttled(f"login: {envelope_message(answer)}", retry_after(exc.headers.get("Retry-After")))
                if exc.code >= 500:
                    raise ApiError(f"login answered {exc.code}: {envelope_message(answer)}", exc.code) from None
                raise AuthError(f"login refused ({exc.code}): {envelope_message(answer)}", exc.code) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ApiError(f"login unreachable: {getattr(exc, 'reason', exc)}") from None
            if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data["token"]:
                raise ApiError("login answered without a token")
            self._token = data["token"]
            self._expires = time.monotonic() + TOKEN_LIFETIME - TOKEN_EARLY
            return self._token


@dataclass
class Device:
    host: str
    state: str  # a botwatch_robot_sessions state


@dataclass
class ControlRoomConnection(Connection["AutomationAnywhere"]):
    """One Control Room: its devices and the executions in progress at the last pull."""

    devices: dict[str, Device] = field(default_factory=dict)  # by device id, as last read
    running: set[str] = field(default_factory=set)  # the run ids in progress last pull
    # each bot's folder as last read: some answers have an empty filePath, which is not a move
    folders: dict[str, str] = field(default_factory=dict)


class AutomationAnywhereSource(PlatformSource["AutomationAnywhere"]):
    platform = LABEL  # its name, labels and estate key (platforms.<label>) follow
    credentials_hint = "check username and api_key, and that the user is not disabled"
    connections: list[ControlRoomConnection]  # type: ignore[assignment]

    @classmethod
    def connect(cls, cfg: AutomationAnywhere, state: EstateState) -> ControlRoomConnection:
        return ControlRoomConnection(cfg, client_for(cfg, state))

    # -- a pull ---------------------------------------------------------------------------
    def pull_connection(self, conn: Connection[AutomationAnywhere]) -> None:
        """The devices first (they name the hosts of the runs), then the executions."""
        assert isinstance(conn, ControlRoomConnection)
        if conn.cfg.devices:
            self.optional(conn, "devices", lambda: self.read_devices(conn))
        busy = self.pull_activity(conn)
        if conn.cfg.devices and "devices" not in conn.off and not self.stopped.is_set():
            self.note_devices(conn, busy)

    # -- executions -----------------------------------------------------------------------
    def pull_activity(self, conn: ControlRoomConnection) -> set[str]:
        """The executions that ended since the cursor, as finished runs, and those not ended, as
        runs in progress; returns the devices running one. What the previous pull applied is not
        applied again: the runs that ended at or after the cursor (kept with it) and the runs in
        progress (kept in memory: after a restart they are applied once more, which the state
        takes as it is)."""
        cfg = conn.cfg
        key = f"{cfg.name}:activity"
        saved = self.cursor(conn, key)
        cursor = self.since(conn, saved)
        recorded = set(saved.get("recorded") or ())
        query = {
            "sort": [{"field": "startDateTime", "direction": "asc"}, {"field": "id", "direction": "asc"}],
            "filter": {"operator": "or", "operands": [
                {"operator": "ge", "field": "endDateTime", "value": odata_time(cursor)},
                *({"operator": "eq", "field": "status", "value": s} for s in IN_PROGRESS)]},
            "fields": []}
        finished: dict[str, float] = {}  # run id -> ended, of this pull
        now_running: set[str] = set()
        busy: set[str] = set()
        began: float | None = None
        for page, date in self.pages(conn, "v3/activity/list", query):
            if began is None:
                began = date
            events: list[Event] = []
            for item in page:
                ev = self.event_for(conn, item)
                if ev is None:
                    continue
                if isinstance(ev, RunFinished):
                    finished[ev.run_id] = ev.ended
                    if ev.run_id in recorded:
                        continue
                else:
                    now_running.add(ev.run_id)
                    if item.get("status") == "RUNNING" and isinstance(item.get("deviceId"), (str, int)):
                        busy.add(str(item["deviceId"]))
                    if ev.run_id in conn.running:
                        continue
                events.append(ev)
            if events:
                self.state.apply(events)
        if self.stopped.is_set():
            return busy  # an incomplete pull moves no cursor
        conn.running = now_running
        new_cursor, again = advance(cursor, finished, began)
        self.save_cursor(conn, key, {"ended_since": new_cursor, "recorded": again})
        return busy

    def event_for(self, conn: ControlRoomConnection, item: Any) -> RunStarted | RunFinished | None:
        """The run an execution is, None when it is not recorded (an unregistered bot, a bad item:
        counted and warned)."""
        cfg = conn.cfg
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            self.bad(cfg.name, "an execution without id", item)
            return None
        process = item.get("fileName")
        if not isinstance(process, str) or not process:
            self.bad(cfg.name, "an execution without fileName", item)
            return None
        status = item.get("status")
        if status not in FINISHED and status not in IN_PROGRESS:
            self.bad(cfg.name, f"an execution in an unknown status {status!r}", item)
            return None
        started = parse_time(item.get("startDateTime"))
        ended = parse_time(item.get("endDateTime")) if status in FINISHED else None
        if status in FINISHED and ended is None:
            self.bad(cfg.name, f"a {status} execution without endDateTime", item)
            return None
        since = started or parse_time(item.get("createdOn"))
        if status in IN_PROGRESS and since is None:
            self.bad(cfg.name, f"a {status} execution without startDateTime", item)
            return None
        bot = self.bot_for(conn, self.folder(conn, item, process), process, item["id"])
        if bot is None:
            return None
        run_id = f"{LABEL}:{item['id']}"[:128]
        host = self.host_of(conn, item)
        if ended is None:
            assert since is not None
            return RunStarted(bot=bot, run_id=run_id, time=since, host=host, source=LABEL)
        outcome, reason = FINISHED[str(status)]
        return RunFinished(bot=bot, run_id=run_id, ended=ended, outcome=outcome, started=started, reason=reason,
                           host=host, output_tail=failure_text(item, host) if outcome == "failure" else None,
                           source=LABEL)

    @staticmethod
    def folder(conn: ControlRoomConnection, item: dict[str, Any], process: str) -> str:
        folder = folder_of(item.get("filePath"), process)
        if folder:
            if process in conn.folders or len(conn.folders) < MAX_BOTS:
                conn.folders[process] = folder
            return folder
        return conn.folders.get(process, "")

    @staticmethod
    def host_of(conn: ControlRoomConnection, item: dict[str, Any]) -> str | None:
        name = item.get("deviceName")
        if isinstance(name, str) and name:
            return name[:128]
        device = conn.devices.get(str(item.get("deviceId")))
        return device.host if device is not None else None

    # -- devices ----------------------------------------------------------------------------
    def read_devices(self, conn: ControlRoomConnection) -> None:
        devices: dict[str, Device] = {}
        query = {"sort": [{"field": "id", "direction": "asc"}], "filter": {}, "fields": []}
        for page, _date in self.pages(conn, "v2/devices/list", query):
            for item in page:
                if not isinstance(item, dict) or not isinstance(item.get("id"), (str, int)) \
                        or not isinstance(item.get("hostName"), str) or not item["hostName"]:
                    self.bad(conn.cfg.name, "a device without id or hostName", item)
                    continue
                devices[str(item["id"])] = Device(item["hostName"][:128],
                                                  DEVICE_STATES.get(str(item.get("status")), "unknown"))
        conn.devices = devices

    def note_devices(self, conn: ControlRoomConnection, busy: set[str]) -> None:
        """Per host, its devices by state; a connected device running a bot is busy."""
        machines: dict[str, dict[str, int]] = {}
        capacity = in_use = 0
        for device_id, device in conn.devices.items():
            state = device.state
            if state == "available":
                capacity += 1
                if device_id in busy:
                    state, in_use = "busy", in_use + 1
            counts = machines.setdefault(device.host, {})
            counts[state] = counts.get(state, 0) + 1
        self.state.controlplanes.note_robots(conn.cfg.name, Robots(LABEL, machines, capacity, in_use))

    # -- paging ---------------------------------------------------------------------------
    def pages(self, conn: ControlRoomConnection, path: str, query: dict[str, Any]) -> Iterator[tuple[list[Any], float]]:
        """Each page's items and the server's Date: the same query with `page.offset` moved on
        until a short page or `page.totalFilter` is reached."""
        size = conn.cfg.page_size
        url = conn.client.url(path)
        offset = 0
        for _ in range(MAX_PAGES):
            answer = conn.client.request("POST", url, {}, self.stopped, True,
                                         json_body={**query, "page": {"offset": offset, "length": size}})
            if answer is None:  # stopped
                return
            data = answer.data
            items = data.get("list") if isinstance(data, dict) else None
            if not isinstance(items, list):  # counted; the pull fails and is tried again
                self.bad(conn.cfg.name, f"{path}: an answer without a 'list'", data)
                raise ApiError(f"{path}: an answer without a 'list'")
            yield items, answer.date if answer.date is not None else time.time() - 60.0
            page = data.get("page")
            total = page.get("totalFilter") if isinstance(page, dict) else None
            offset += len(items)
            if len(items) < size or (isinstance(total, int) and offset >= total):
                return
        raise ApiError(f"{path}: more than {MAX_PAGES} pages; the rest is read next time")


def failure_text(item: dict[str, Any], host: str | None) -> str | None:
    """What a failed execution says, for the classifier and the stored output: who ran it where,
    the Control Room's message, and the command and line it stopped at."""
    user = item.get("userName") if isinstance(item.get("userName"), str) else None
    who = f"Run as {user}" if user else None
    where = f"{who} on {host}" if who and host else who
    message = item.get("message") if isinstance(item.get("message"), str) else None
    command, line = item.get("command"), item.get("currentLine")
    at = None
    if isinstance(command, str) and command:
        at = f"command {command}" + (f" at line {line}" if isinstance(line, int) and not isinstance(line, bool) else "")
    return "\n".join(t for t in (where, message, at) if t) or None


def client_for(cfg: AutomationAnywhere, state: EstateState) -> ApiClient:
    """The API client of one connection; the API key is read at each login, so a rotated env: or
    file: key is taken up."""
    base = cfg.url.rstrip("/")
    credentials = ApiKeyLogin(f"{base}/v1/authentication", cfg.username, lambda: resolve_secret(cfg.api_key),
                              cfg.timeout)
    return api_client(LABEL, cfg, state, base, credentials)
