"""The agent's HTTP surface (FastAPI on uvicorn).

  /metrics, /healthz, /                   scrape, liveness, the status page (botwatch.server.status_page)
  /sd                                     Prometheus HTTP service discovery: this agent and agent.sd_targets
  /ping/<key>/<bot>[/start|/fail|/log|/<exit status>][?rid=]   check-ins, Healthchecks.io protocol (GET, POST,
                                          HEAD; every answer carries Ping-Body-Limit and
                                          Access-Control-Allow-Origin: *, as Healthchecks.io's do); a
                                          run's end may carry its work items: &items=N&items_failed=N
  POST /api/v1/events                     JSON event batches from the deliverer, SDKs, listeners. Only an
                                          unreadable body, a wrong key, an oversized batch (413) or the
                                          rate (429) refuse the whole batch; each event is judged alone:
                                          the invalid ones are answered in `rejected`, those of a type
                                          this agent does not know (a newer client's) in `ignored`
  GET  /api/v1/status                     every bot's state, for `botwatch status`, and the capabilities
                                          off (extras not installed)
  GET  /api/v1/unregistered               shadow bots: processes of bot runtimes no bot claims
  GET  /api/v1/dependencies               what each bot depends on, read from its source (`botwatch deps --json`
                                          per bot), as the agent last read it (botwatch.deps.index)
  GET  /api/v1/impact?q=TEXT[&kind=K]     which bots a change to TEXT would hit, most critical first
                                          (`botwatch impact --json`)
  POST /api/v1/snapshots/<bot>/<screen>   a UI snapshot (HTML, accessibility tree, PNG): its drift report
                                          (501 without the drift extra)
  POST /api/v1/webhooks/<platform>/<connection>  a control plane's webhook, for the source of that
                                          platform (botwatch.server.webhooks); signed, not keyed
  /api/v1/openapi.json                    the API description (Swagger UI at /api/v1/docs with agent.api_docs)

Handlers that write the journal run in FastAPI's thread pool, off the event loop. What a client
sends is checked cheapest first (docs/security.md): the Host header, the key, the bot name and the
rate before a body is read; the size of a batch before its events are validated; every number
bounded and finite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal, Union

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from botwatch.exporters.exposition import CachedExposition

from .. import __version__
from ..core import exitcodes, extras
from ..core.items import MAX_ITEMS
from ..core.events import EVENT_TYPES, LogNoted, RunFinished, RunStarted, from_wire
from ..config.estate import parse_listen
from ..state.journal import JournalError
from .limits import BodyLimit, RateLimiter, discard_body
from ..state.runtime import EstateState
from ..core.vocabulary import BOT_NAME as _BOT_NAME
from ..core.vocabulary import BOT_NAME_PATTERN as _NAME
from ..core.vocabulary import LookupKind as _LOOKUP_KIND
from ..core.vocabulary import Reason as _REASON
from ..core.vocabulary import SnapshotKind as _SNAPSHOT_KIND
from ..core.vocabulary import RUN_ID_PATTERN as _RUN_ID
from ..deps.model import KINDS as _DEPENDENCY_KINDS
from ..config.web import BasicAuth, BasicAuthGate, HostCheck, SecurityHeaders, default_host_names, keys_match
from ..client.runrecord import new_run_id

if TYPE_CHECKING:  # loaded when first used: the API starts without them
    from ..deps.index import DependencyIndex
    from ..governance import Governance
    from ..ui.probe import DriftProbe
    from .webhooks import Receivers

_DEPENDENCY_KIND = Literal[_DEPENDENCY_KINDS]  # type: ignore[valid-type]  # the kinds botwatch.deps reads
HARD_MAX_BATCH = 100_000
MAX_TIME = 32_503_680_000.0  # 3000-01-01 UTC: a later time is a client's bug (and beyond Windows' gmtime)
# Every number a client sends is bounded (docs/security.md): far beyond what a bot host measures,
# small enough that no sum of them overflows a float or an SQLite integer.
MAX_BYTES = 2**53 - 1  # memory sizes: exact as a float (8 PiB)
MAX_CPU_SECONDS = 1e9  # one run's CPU time (about 32 CPU-years)
MAX_PROCESSES = 4_194_304  # a run's process tree (Linux's highest pid_max)
MAX_WAIT = 86_400.0  # one UI look-up's wait, seconds
MAX_COUNT = 1_000_000_000  # events a spool dropped at once, runs a spool holds


# -- wire models (validated; the OpenAPI description is generated from them) ---------------------

class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # 1e400 reads as inf: not a time
    bot: str = Field(pattern=_NAME)
    source: str = Field(default="api", max_length=32)


class RunStartedIn(_Wire):
    type: Literal["run_started"]
    run_id: str = Field(pattern=_RUN_ID)
    time: float = Field(ge=0, le=MAX_TIME)
    host: str | None = Field(default=None, max_length=255)


class ItemsIn(BaseModel):
    """The work items of a run (queue items, invoices, rows): what it processed and what failed."""

    model_config = ConfigDict(extra="ignore")
    # strict: a count is a JSON integer, not "12" or 12.5
    processed: int = Field(default=0, ge=0, le=MAX_ITEMS, strict=True, description="Items processed")
    failed: int = Field(default=0, ge=0, le=MAX_ITEMS, strict=True, description="Items that failed")


class RunFinishedIn(_Wire):
    type: Literal["run_finished"]
    run_id: str = Field(pattern=_RUN_ID)
    ended: float = Field(ge=0, le=MAX_TIME)
    outcome: Literal["success", "failure", "unknown"]
    started: float | None = Field(default=None, ge=0, le=MAX_TIME)
    # 0-255 (POSIX) or a 32-bit Windows status, signed or unsigned: kept unsigned
    exit_status: int | None = Field(default=None, ge=exitcodes.MIN_STATUS, le=exitcodes.MAX_STATUS)
    reason: _REASON | None = None
    signal: int | None = Field(default=None, ge=1, le=128)
    timed_out: bool = False
    host: str | None = Field(default=None, max_length=255)
    output_tail: str | None = Field(default=None, max_length=16384)
    cpu_seconds: float | None = Field(default=None, ge=0, le=MAX_CPU_SECONDS)
    peak_rss_bytes: int | None = Field(default=None, ge=0, le=MAX_BYTES)
    screen: str | None = Field(default=None, min_length=1, max_length=64, description="ui_drift: the screen")
    selector: str | None = Field(default=None, max_length=1024, description="ui_drift: the selector that failed")
    items: ItemsIn | None = Field(default=None, description=(
        "Work items the run reported; a success of a bot with min_items that processed fewer is an empty run"))

    @field_validator("exit_status")
    @classmethod
    def _unsigned(cls, v: int | None) -> int | None:
        return None if v is None else exitcodes.unsigned(v)


class ResourceSampleIn(_Wire):
    type: Literal["resource_sample"]
    run_id: str = Field(pattern=_RUN_ID)
    time: float = Field(ge=0, le=MAX_TIME)
    cpu_seconds: float = Field(ge=0, le=MAX_CPU_SECONDS)
    rss_bytes: int = Field(ge=0, le=MAX_BYTES)
    processes: int = Field(default=1, ge=0, le=MAX_PROCESSES)


class StepIn(_Wire):
    type: Literal["step"]
    run_id: str = Field(pattern=_RUN_ID)
    name: str = Field(min_length=1, max_length=200)
    ended: float = Field(ge=0, le=MAX_TIME)
    status: Literal["pass", "fail", "skip"] = "pass"
    started: float | None = Field(default=None, ge=0, le=MAX_TIME)
    message: str | None = Field(default=None, max_length=4096)
    parent: str | None = Field(default=None, min_length=1, max_length=200,
                               description="the step this one is part of (a task's keyword); for run traces")


class FailureIn(_Wire):
    type: Literal["failure"]
    run_id: str = Field(pattern=_RUN_ID)
    time: float = Field(ge=0, le=MAX_TIME)
    reason: _REASON
    message: str | None = Field(default=None, max_length=4096)


class UiLookupIn(_Wire):
    type: Literal["ui_lookup"]
    time: float = Field(ge=0, le=MAX_TIME)
    screen: str = Field(min_length=1, max_length=64)
    found: bool
    run_id: str | None = Field(default=None, pattern=_RUN_ID)
    selector: str | None = Field(default=None, max_length=1024)
    kind: _LOOKUP_KIND | None = None
    wait: float | None = Field(default=None, ge=0, le=MAX_WAIT)
    healed: bool = False


class SpoolDroppedIn(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Literal["spool_dropped"]
    count: int = Field(ge=0, le=MAX_COUNT)
    time: float = Field(ge=0, le=MAX_TIME)
    host: str | None = Field(default=None, max_length=255)
    source: str = Field(default="spool", max_length=32)


EventIn = Annotated[Union[RunStartedIn, RunFinishedIn, ResourceSampleIn, StepIn, FailureIn, UiLookupIn,
                          SpoolDroppedIn], Field(discriminator="type")]
EVENT_IN = TypeAdapter(EventIn)  # one event of a batch, validated alone
MAX_PROBLEM = 300  # characters of the error answered for one event


class EventBatch(BaseModel):
    """The body of POST /api/v1/events. The handler reads it itself and validates each event alone."""

    events: list[EventIn] = Field(max_length=HARD_MAX_BATCH)


class EventProblem(BaseModel):
    index: int = Field(description="The event's index in the posted batch")
    error: str


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[EventProblem] = Field(description=(
        "Events not taken: invalid, or of a bot the agent does not know. Sending them again does not help."))
    ignored: list[EventProblem] = Field(description=(
        "Events of a type this agent does not know (from a newer client): taken, not applied."))


class ErrorOut(BaseModel):
    error: str
    detail: str | None = None


Key = Annotated[str, Path(description="The estate's or this bot's ping key", min_length=1, max_length=256)]
# the name rule is checked by the handlers (400, as for any bad check-in), after the key
Bot = Annotated[str, Path(description="Bot name", max_length=64, json_schema_extra={"pattern": _NAME})]
Rid = Annotated[str | None, Query(description="Run id, pairs a start with its end", pattern=_RUN_ID)]
ItemsQ = Annotated[int | None, Query(ge=0, le=MAX_ITEMS, description="Work items the run processed (its end only)")]
ItemsFailedQ = Annotated[int | None, Query(ge=0, le=MAX_ITEMS, description="Work items that failed (its end only)")]
Action = Annotated[str, Path(description="start, fail, log, or an exit status (0-255, or a 32-bit Windows status, signed or unsigned)", max_length=16)]
XKey = Annotated[str | None, Header(description="The estate's (or the bots') ping key, required when one is configured")]


# -- security -----------------------------------------------------------------------------------

@dataclass
class Security:
    """Who may talk to the agent. Keys are resolved secrets; they are never logged or echoed."""

    estate_key: str | None = None
    bot_keys: dict[str, str] = field(default_factory=dict)
    basic_auth: BasicAuth | None = None

    def __post_init__(self):
        self._bot_key_digests = {_digest(k) for k in self.bot_keys.values()}

    def key_allows(self, key: str | None, bots: set[str]) -> bool:
        if key is None:
            return False
        if self.is_estate_key(key):
            return True
        return self.bot_keys_allow(key, bots)

    def is_estate_key(self, key: str | None) -> bool:
        return key is not None and self.estate_key is not None and keys_match(key, self.estate_key)

    def may_be_bot_key(self, key: str | None) -> bool:
        """Whether `key` is some bot's key: known before the body names the bots (compared by
        digest, so that nothing is learnt from the time it takes)."""
        return key is not None and _digest(key) in self._bot_key_digests

    def bot_keys_allow(self, key: str, bots: set[str]) -> bool:
        return bool(bots) and all(b in self.bot_keys and keys_match(key, self.bot_keys[b]) for b in bots)

    @property
    def any_key(self) -> bool:
        return self.estate_key is not None or bool(self.bot_keys)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


log = logging.getLogger("botwatch.agent")
JOURNAL_WARNING_EVERY = 60.0  # seconds between two warnings of the same journal outage
_journal_warned = [0.0]


def _journal_unavailable(exc: JournalError) -> JSONResponse:
    """503: the sender keeps what it sent and retries. Warned in the agent's log, at most once a
    minute while it lasts (a full disk, a read-only file system)."""
    now = time.monotonic()
    if now - _journal_warned[0] >= JOURNAL_WARNING_EVERY:
        _journal_warned[0] = now
        log.warning("cannot write the journal (%s): check-ins and events are refused with 503 and kept by "
                    "their senders, who retry; nothing is lost while this lasts", exc)
    return _error(503, "journal unavailable, retry later", str(exc))


def _error(status: int, error: str, detail: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": error} | ({"detail": detail} if detail else {})
    return JSONResponse(body, status_code=status, headers=headers)


def _bounded(text: str) -> str:
    """`text` cut to MAX_PROBLEM characters, lone surrogates escaped (an answer must encode)."""
    if len(text) > MAX_PROBLEM:
        text = text[:MAX_PROBLEM - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _problem(exc: ValidationError, tag) -> str:
    """One event's validation error, naming the field: `outcome: Input should be ...`."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    loc = list(first["loc"])
    if loc and loc[0] == tag:  # the union's member, named by the event's type
        loc = loc[1:]
    where = ".".join(str(p) for p in loc) or ("type" if first["type"].startswith("union_tag") else "event")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _bounded(f"{where}: {first['msg']}{more}")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class PingHeaders:
    """Adds Healthchecks.io's headers to every answer under /ping/ (success or error, whatever
    answered it): Ping-Body-Limit, the bytes of a check-in body the agent keeps (runitor trims
    what it sends to it), and Access-Control-Allow-Origin: * (check-ins from a browser)."""

    def __init__(self, app, body_limit: int):
        self.app = app
        self.headers = [(b"ping-body-limit", str(body_limit).encode()), (b"access-control-allow-origin", b"*")]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/ping/"):
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *self.headers]}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


_BASIC_AUTH_PREFIXES = ("/metrics", "/api/", "/sd")
_KEYED_PREFIXES = ("/api/v1/events", "/api/v1/snapshots/")  # their key protects them (when one is set)
DOCS_URL = "/api/v1/docs"
# Swagger UI's page loads its script and style from jsDelivr: its own policy allows that, and only that
_DOCS_POLICY = ("default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
                "style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: https:; "
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class SnapshotReportOut(BaseModel):
    bot: str
    screen: str
    kind: _SNAPSHOT_KIND
    score: float = Field(ge=0, le=1, description="Drift from the screen's baseline: 0 same, 1 all changed")
    warning: bool = Field(description="score >= drift_warning: the screen is drifting")
    drift_warning: float
    baseline: bool = Field(description="This snapshot became the screen's baseline (its first)")
    selectors: dict[str, int] = Field(description="Elements each declared selector matched (by declared name)")
    changes: list[str] = Field(description="What changed, most important first")
    baseline_time: float | None = None
    time: float
    run_id: str | None = None


ScreenName = Annotated[str, Path(description="Screen name", min_length=1, max_length=64, pattern=r"^[^/]+$")]


def create_app(state: EstateState, registry: CollectorRegistry, security: Security | None = None,
               probe: DriftProbe | None = None, governance: Governance | None = None,
               receivers: Receivers | None = None, dependencies: DependencyIndex | None = None) -> FastAPI:
    """`probe`: the botwatch.ui.probe.DriftProbe shared with the snapshot folder (one over the
    state's journal by default). `governance`: the agent's botwatch.governance.Governance, whose
    latest findings the status page counts (none shown without it). `receivers`: where the
    daemon hands over the sources that take webhooks, once it has built them. `dependencies`:
    the agent's botwatch.deps.index.DependencyIndex, refreshed in the background (without it,
    one over the state's estate reads the sources when first asked; the status page shows none)."""
    from .webhooks import PREFIX as WEBHOOKS, Receivers, add_routes as add_webhook_routes

    security = security or Security()
    if probe is None:
        from ..ui.probe import DriftProbe

        probe = DriftProbe(state.estate, state.journal, dependencies=dependencies)
    agent = state.estate.agent
    limits = agent.limits
    drift_off_warned: list[bool] = []  # the first snapshot refused for want of the drift extra is logged
    # a bucket for each bot the agent may hear of, and as many again for the names it refuses
    rate = RateLimiter(limits.events_per_second, limits.burst, max_keys=2 * max(limits.max_bots, len(state.bots)))

    def _refuse_bot(bot: str, source: str, too_many: str) -> JSONResponse | None:
        """The answer for one bot's input that is not taken (unknown bot, over its rate), counted
        under `source`; None when it is taken."""
        if bot not in state.bots and not state.estate.agent.auto_register:
            state.count_parse_error(source)
            return _error(404, "unknown bot", "not in the estate file (or switch on agent.auto_register)")
        if rate.take({bot: 1}) is not None:
            state.count_dropped(source)
            return _error(429, too_many, headers={"Retry-After": "1"})
        return None
    app = FastAPI(title="botwatch agent", version=__version__, openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  description="Check-ins (Healthchecks.io ping protocol) and event batches for the botwatch agent.")

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):
        state.count_parse_error("ping" if request.url.path.startswith("/ping/") else "api")
        problems = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()][:20]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException):
        ping = request.url.path.startswith("/ping/")
        if exc.status_code == 400 or ping:  # a body FastAPI could not read (JSON nested too deeply), a
            state.count_parse_error("ping" if ping else "api")  # check-in URL of no known shape
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    def keyed(path: str) -> bool:
        """Paths a key protects: check-ins always (they are refused without one), events and
        snapshots when a key is configured. Deliverers and SDKs send that key, not a password,
        and may know the agent by any name."""
        return path.startswith("/ping/") or (security.any_key and path.startswith(_KEYED_PREFIXES))

    if security.basic_auth is not None:
        if not security.any_key:
            log.warning("basic auth is on and no ping key is set: the events and snapshot APIs ask for the "
                        "password, which wrapped runs and SDKs do not send; set agent.ping_key")

        def protected(path: str) -> bool:  # webhooks are signed: a control plane sends no password
            return (path == "/" or path.startswith(_BASIC_AUTH_PREFIXES)) and not keyed(path) \
                and not path.startswith(WEBHOOKS)

        app.add_middleware(BasicAuthGate, auth=security.basic_auth, protects=protected)
    listen_host = parse_listen(agent.listen)[0]
    app.add_middleware(HostCheck, names=[*default_host_names(listen_host), *agent.allowed_hosts], exempt=keyed)
    # outside the refusals above: what they read and drop is bounded too
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, on_reject=lambda: state.count_dropped("http"))
    app.add_middleware(PingHeaders, body_limit=limits.log_excerpt_bytes)  # on the 413 above too
    app.add_middleware(SecurityHeaders)  # outermost: on every answer

    # -- scrape and health ----------------------------------------------------------------------
    exposition = CachedExposition(registry)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        body, content_type = exposition.render(request.headers.get("accept", ""))
        return Response(body, media_type=content_type)

    @app.get("/sd", summary="Prometheus HTTP service discovery: this agent and the estate's other agents")
    def service_discovery(request: Request) -> JSONResponse:
        host, port = parse_listen(state.estate.agent.listen)
        if host in ("0.0.0.0", "::", ""):  # listening everywhere: the address the scraper used
            local = request.url.netloc
        else:
            local = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        groups = [{"targets": [local], "labels": {"__meta_botwatch_agent": "local"}}]
        others = [t for t in state.estate.agent.sd_targets if t != local]
        if others:
            groups.append({"targets": others, "labels": {"__meta_botwatch_agent": "estate"}})
        return JSONResponse(groups)

    @app.get("/healthz", summary="Liveness and journal health")
    def healthz() -> JSONResponse:
        ok, detail = True, "ok"
        if state.journal is not None:
            try:
                state.journal.count_runs()
            except Exception as exc:  # journal unreadable: the agent is not healthy
                ok, detail = False, str(exc)
        return JSONResponse({"status": "ok" if ok else "unhealthy", "journal": detail, "bots": len(state.bots),
                             "version": __version__}, status_code=200 if ok else 503)

    # -- events API ------------------------------------------------------------------------------
    @app.post("/api/v1/events", response_model=IngestOut, summary="Ingest a batch of events",
              description=(
                  "Only an unreadable body, a missing or wrong key (401), a batch of more than "
                  "agent.limits.max_batch events (413) or a bot over its rate (429, retry) refuse the whole "
                  "batch. Each event is validated alone: an invalid one, or one of a bot the agent does not "
                  "know, is answered in `rejected` (by its index in the batch) and the others are taken; one "
                  "of a type this agent does not know (a newer client's) is answered in `ignored`."),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}}}}},
              responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 413: {"model": ErrorOut},
                         422: {"model": ErrorOut, "description": "Unreadable batch"},
                         429: {"model": ErrorOut}, 503: {"model": ErrorOut}})
    async def ingest(request: Request,
                     x_botwatch_key: XKey = None,
                     x_botwatch_spool: Annotated[str | None, Header(max_length=128, description=(
                         "Deliverers: an opaque id of the spool the batch comes from"))] = None,
                     x_botwatch_spool_pending: Annotated[int | None, Header(ge=0, le=MAX_COUNT, description=(
                         "Deliverers: runs left in that spool once this batch is delivered"))] = None):
        if not _is_json(request.headers.get("content-type")):
            await discard_body(request.receive)
            return await run_in_threadpool(_refuse, "api", 422, "invalid request", "send the batch as application/json")
        # the key before the body: the estate's key allows any batch; a bot's key, the batches
        # of its own bots, known once the body is read; any other key nothing. A refused body is
        # read and dropped, never held nor parsed.
        whole = not security.any_key or security.is_estate_key(x_botwatch_key)
        if not whole and not security.may_be_bot_key(x_botwatch_key):
            await discard_body(request.receive)
            return await run_in_threadpool(_refuse, "api", 401, "missing or wrong X-Botwatch-Key")
        body = await request.body()
        return await run_in_threadpool(_ingest, body, None if whole else x_botwatch_key,
                                       x_botwatch_spool, x_botwatch_spool_pending)

    def _refuse(source: str, status: int, error: str, detail: str | None = None) -> JSONResponse:
        state.count_parse_error(source)
        return _error(status, error, detail)

    def _ingest(body: bytes, bot_key: str | None, spool: str | None, pending: int | None) -> Response | IngestOut:
        """`bot_key`: a bot's key, which must be the key of every bot of the batch (None: the
        key allows the whole batch)."""
        try:
            doc = json.loads(body)
        except RecursionError:
            state.count_parse_error("api")
            return _error(400, "invalid request", "JSON nested too deeply")
        except ValueError as exc:  # not JSON, not UTF-8, an integer of too many digits
            state.count_parse_error("api")
            return _error(422, "invalid request", _bounded(f"not a JSON document: {exc}"))
        raw = doc.get("events") if isinstance(doc, dict) else None
        if not isinstance(raw, list):
            state.count_parse_error("api")
            return _error(422, "invalid request", 'the body must be a JSON object with an "events" list')
        if bot_key is not None:
            bots = {e["bot"] for e in raw if isinstance(e, dict) and isinstance(e.get("bot"), str)}
            if not security.bot_keys_allow(bot_key, bots):
                state.count_parse_error("api")
                return _error(401, "missing or wrong X-Botwatch-Key")
        if len(raw) > limits.max_batch:  # counted before any event is validated
            state.count_dropped("api", len(raw))
            return _error(413, "batch too large", f"at most {limits.max_batch} events per request")
        taken: list[int] = []  # index in the batch of each event given to the state
        events, rejected, ignored = [], [], []
        for i, item in enumerate(raw):
            tag = item.get("type") if isinstance(item, dict) else None
            if isinstance(tag, str) and tag not in EVENT_TYPES:  # a newer client's: never a reason to refuse
                ignored.append({"index": i, "error": _bounded(
                    f"unknown event type {tag[:64]!r}: ignored by this agent (botwatch {__version__})")})
                continue
            try:
                event = EVENT_IN.validate_python(item)
            except ValidationError as exc:
                rejected.append({"index": i, "error": _problem(exc, tag)})
                continue
            taken.append(i)
            events.append(from_wire(event.model_dump()))
        counts: dict[str, int] = {}
        for e in events:
            if hasattr(e, "bot"):
                counts[e.bot] = counts.get(e.bot, 0) + 1
        over = rate.take(counts)
        if over is not None:
            state.count_dropped("api", len(raw))
            return _error(429, "too many events", f"bot {over!r} is over {limits.events_per_second:g} events/s; "
                          "retry later", headers={"Retry-After": "1"})
        try:
            result = state.apply(events)
        except JournalError as exc:
            return _journal_unavailable(exc)
        if result.rejected:  # not taken by the state (unknown bot): answered by their index in the batch
            rejected.extend({"index": taken[r["index"]], "error": r["error"]} for r in result.rejected)
            rejected.sort(key=lambda r: r["index"])
        if rejected:  # counted, as other bad input
            state.count_parse_error("api", len(rejected))
        if ignored:
            state.count_ignored("api", len(ignored))
        if spool and pending is not None:
            state.note_spool(spool, pending)
        return IngestOut(accepted=result.accepted, duplicates=result.duplicates, rejected=rejected, ignored=ignored)

    @app.get("/api/v1/status", summary="Every bot's current state")
    def status() -> JSONResponse:
        now = time.time()
        off = [{"extra": e.name, "capability": e.capability, "install": extras.install_hint(e.name)}
               for e in extras.missing()]
        return JSONResponse({"time": now, "bots": [v.to_json() for v in state.views(now)], "capabilities_off": off})

    @app.get("/api/v1/unregistered", summary="Shadow bots: processes of known bot runtimes that no registered "
             "bot claims (command lines redacted)")
    def unregistered() -> JSONResponse:
        processes, counts, swept_at = state.unregistered_view()
        # and the processes the control planes run that no bot claims (their runs are not recorded)
        control_plane = state.controlplanes.view()["unregistered"]
        return JSONResponse({"time": time.time(), "swept_at": swept_at, "counts": counts,
                             "processes": processes, "control_plane": control_plane})

    # -- dependencies read from the bots' sources (botwatch.deps) ------------------------------------
    dependency_index = dependencies
    if dependency_index is None:
        from ..config.estate import LoadedEstate
        from ..deps.index import DependencyIndex

        dependency_index = DependencyIndex(LoadedEstate(state.estate, None))

    @app.get("/api/v1/dependencies", summary="What each bot depends on, read from its source: applications, "
             "screens, selectors, URLs, queues, assets and credentials (names only), files, mailboxes")
    def dependencies_of_bots() -> JSONResponse:
        found = dependency_index.current()
        return JSONResponse({"time": time.time(), "refreshed_at": dependency_index.refreshed_at,
                             "bots": [found[name].to_json() for name in sorted(found)]})

    @app.get("/api/v1/impact", summary="Which bots a change to an application, URL, screen, selector text, "
             "queue or asset would hit, most critical first, with owners and teams")
    def impact(q: Annotated[str, Query(min_length=1, max_length=1000,
                                       description="Matched case-insensitively in each dependency's value, "
                                                   "screen and application")],
               kind: Annotated[list[_DEPENDENCY_KIND], Query(description="Only dependencies of these kinds")] = [],
               ) -> JSONResponse:
        return JSONResponse({"time": time.time(), "refreshed_at": dependency_index.refreshed_at,
                             **dependency_index.impact(q, tuple(dict.fromkeys(kind)))})

    # -- control planes' webhooks (botwatch.server.webhooks) ----------------------------------------
    if receivers is None:  # an app without sources takes no webhooks
        receivers = Receivers()
        receivers.attach(())
    add_webhook_routes(app, state, receivers)

    # -- UI snapshots ----------------------------------------------------------------------------
    @app.post("/api/v1/snapshots/{bot}/{screen}", response_model=SnapshotReportOut,
              summary="Check a UI snapshot against the screen's baseline (the first one becomes it)",
              description="The body is the snapshot: an HTML page (text/html), an accessibility tree "
                          "(application/json: Playwright's page.accessibility.snapshot() or Chrome DevTools' "
                          "AX nodes) or a screenshot (image/png); `kind` overrides the Content-Type.",
              responses={400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut},
                         413: {"model": ErrorOut}, 429: {"model": ErrorOut},
                         501: {"model": ErrorOut, "description": "UI drift is off: the drift extra is not installed"},
                         503: {"model": ErrorOut}})
    async def snapshot(request: Request, bot: Bot, screen: ScreenName,
                       kind: Annotated[_SNAPSHOT_KIND | None, Query(
                           description="html, a11y or png; default from the Content-Type")] = None,
                       run_id: Annotated[str | None, Query(description="The run the snapshot belongs to",
                                                           pattern=_RUN_ID)] = None,
                       x_botwatch_key: XKey = None):
        refused = await run_in_threadpool(_admit_snapshot, bot, x_botwatch_key)
        if refused is not None:
            await discard_body(request.receive)
            return refused
        body = await request.body()
        return await run_in_threadpool(_snapshot, bot, screen, kind, run_id, request.headers.get("content-type"),
                                       body)

    def _admit_snapshot(bot: str, key: str | None) -> JSONResponse | None:
        """The refusal of a snapshot, decided before its body is read; None when it is taken."""
        if security.any_key and not security.key_allows(key, {bot}):
            return _refuse("snapshot", 401, "missing or wrong X-Botwatch-Key")
        if not _BOT_NAME.match(bot):
            return _refuse("snapshot", 400, "invalid bot name", "a bot name is 1-64 characters of [a-z0-9_-]")
        if not extras.available("drift"):  # refused before the body is read: nothing can compare it
            from ..ui.probe import DRIFT

            state.count_dropped("snapshot")
            hint = str(extras.MissingExtra("drift", DRIFT))
            if not drift_off_warned:
                drift_off_warned.append(True)
                log.warning("UI snapshots are refused (HTTP 501): %s", hint)
            return _error(501, "UI drift is off", hint)
        return _refuse_bot(bot, "snapshot", "too many snapshots")

    def _snapshot(bot, screen, kind, run_id, content_type, body) -> Response:
        from ..ui import SnapshotError
        from ..ui.probe import ScreenLimitReached, kind_for

        try:
            snap_kind = kind_for(explicit=kind, content_type=content_type, data=body)
            report = probe.ingest(state, bot, screen, snap_kind, body, run_id=run_id, source="api")
        except ScreenLimitReached as exc:  # a readable snapshot, one screen too many for the bot
            state.count_dropped("snapshot")
            return _error(409, "too many screens", str(exc))
        except SnapshotError as exc:
            state.count_parse_error("snapshot")
            return _error(400, "unreadable snapshot", str(exc))
        except JournalError as exc:
            return _journal_unavailable(exc)
        return JSONResponse(report.to_json())

    # -- check-ins (Healthchecks.io ping protocol) ------------------------------------------------
    ping_responses = {200: {"content": {"text/plain": {}}, "description": "OK"}, 400: {"model": ErrorOut},
                      403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut},
                      429: {"model": ErrorOut}, 503: {"model": ErrorOut}}

    async def check_in(request: Request, key: str, bot: str, action: str | None, rid: str | None,
                       items: tuple[int | None, int | None] = (None, None)) -> Response:
        refused = await run_in_threadpool(_admit_check_in, key, bot, action, items)
        if refused is not None:
            await discard_body(request.receive)
            return refused
        tail, size = await _tail(request, limits.log_excerpt_bytes) if request.method == "POST" else (b"", 0)
        return await run_in_threadpool(_check_in, bot, action, rid, tail, size, items)

    def _admit_check_in(key: str, bot: str, action: str | None,
                        items: tuple[int | None, int | None]) -> JSONResponse | None:
        """The refusal of a check-in, decided before its body is read; None when it is taken."""
        if not security.any_key:
            return _refuse("ping", 403, "check-ins are disabled", "set agent.ping_key in the estate file")
        if not security.key_allows(key, {bot}):
            return _refuse("ping", 403, "wrong ping key")
        if not _BOT_NAME.match(bot):
            return _refuse("ping", 400, "invalid bot name", "a bot name is 1-64 characters of [a-z0-9_-]")
        if action not in (None, "start", "fail", "log") and not _exit_status(action):
            return _refuse("ping", 400, "unknown check-in", "use /start, /fail, /log or an exit status (0-255, or 32 bits on Windows)")
        if action in ("start", "log") and items != (None, None):
            return _refuse("ping", 400, "items belong to a run's end",
                           f"items and items_failed are reported when the run ends, not with /{action}")
        return _refuse_bot(bot, "ping", "too many check-ins")

    def _check_in(bot: str, action: str | None, rid: str | None, tail: bytes, size: int,
                  items: tuple[int | None, int | None]) -> Response:
        exit_status = exitcodes.unsigned(int(action)) if action not in (None, "start", "fail", "log") else None
        now = time.time()
        excerpt = _excerpt(tail, size, limits.log_excerpt_bytes)
        if excerpt:
            from ..core.redact import redact

            excerpt = redact(excerpt)
        if action == "start":
            event = RunStarted(bot=bot, run_id=rid or f"ping-{new_run_id()}", time=now, source="ping")
        elif action == "log":
            event = LogNoted(bot=bot, time=now, excerpt=excerpt or "", run_id=rid)
        else:
            failed = action == "fail" or (exit_status is not None and exit_status != 0)
            run_id, started = state.match_start(bot, rid)
            events = [RunFinished(bot=bot, run_id=run_id or f"ping-{new_run_id()}", ended=now, started=started,
                                  outcome="failure" if failed else "success", exit_status=exit_status,
                                  output_tail=excerpt, source="ping", **_items_of(items))]
            return _apply(events)
        return _apply([event])

    def _apply(events) -> Response:
        try:
            result = state.apply(events)
        except JournalError as exc:
            return _journal_unavailable(exc)
        if result.rejected:
            return _error(400, "check-in refused", result.rejected[0]["error"])
        return PlainTextResponse("OK")

    async def ping(request: Request, key: Key, bot: Bot, rid: Rid = None, items: ItemsQ = None,
                   items_failed: ItemsFailedQ = None):
        return await check_in(request, key, bot, None, rid, (items, items_failed))

    async def ping_action(request: Request, key: Key, bot: Bot, action: Action, rid: Rid = None,
                          items: ItemsQ = None, items_failed: ItemsFailedQ = None):
        return await check_in(request, key, bot, action, rid, (items, items_failed))

    # one route per method, so that each operation of the API description has its own id
    for method in ("GET", "POST", "HEAD"):
        app.add_api_route("/ping/{key}/{bot}", ping, methods=[method], operation_id=f"ping_{method.lower()}",
                          summary="Check in: a run succeeded", responses=ping_responses,
                          response_class=PlainTextResponse)
        app.add_api_route("/ping/{key}/{bot}/{action}", ping_action, methods=[method],
                          operation_id=f"ping_action_{method.lower()}",
                          summary="Check in: start, fail, log, or an exit status", responses=ping_responses,
                          response_class=PlainTextResponse)

    # The batch is read by the handler (each event is validated alone): the API description
    # still describes it, with every event type.
    describe = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = describe()
            batch = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(batch.pop("$defs", {}))
            schemas["EventBatch"] = batch
        return app.openapi_schema

    app.openapi = openapi

    if agent.api_docs:
        @app.get(DOCS_URL, include_in_schema=False)
        def docs() -> HTMLResponse:
            page = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API")
            return HTMLResponse(page.body, headers={"Content-Security-Policy": _DOCS_POLICY})

    # -- the status page (botwatch.server.status_page) ----------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        from .status_page import page_for_state

        return HTMLResponse(page_for_state(state, governance, version=__version__, dependencies=dependencies),
                            headers={"Cache-Control": "no-store"})

    return app


def _items_of(items: tuple[int | None, int | None]) -> dict[str, int]:
    """A check-in's `?items=&items_failed=` as a run's items (one given: the other is 0)."""
    processed, failed = items
    if processed is None and failed is None:
        return {}
    return {"items_processed": processed or 0, "items_failed": failed or 0}


def _exit_status(action: str) -> bool:
    """Whether a check-in's action is an exit status: 0-255, or a Windows status of 32 bits,
    signed or unsigned (ASCII digits only: int() reads others)."""
    digits = action[1:] if action.startswith("-") else action
    return digits.isascii() and digits.isdigit() and len(digits) <= 10 and exitcodes.valid(int(action))


async def _tail(request: Request, limit: int) -> tuple[bytes, int]:
    """The last `limit` bytes of a request's body and its size: no more is held while it arrives."""
    tail, size = bytearray(), 0
    async for chunk in request.stream():
        size += len(chunk)
        tail += chunk
        if len(tail) > limit:
            del tail[:len(tail) - limit]
    return bytes(tail), size


def _excerpt(tail: bytes, size: int, limit: int) -> str | None:
    """The tail of a check-in's body (`size` bytes in all), with the truncation noted."""
    if not tail:
        return None
    if size <= limit:
        return tail.decode("utf-8", "replace")
    return f"[{size - limit} bytes truncated]\n" + tail[-limit:].decode("utf-8", "replace")

