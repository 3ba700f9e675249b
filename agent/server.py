"""The agent's HTTP surface (FastAPI on uvicorn): /metrics, /healthz, the events API, status.

Handlers are plain `def`: FastAPI runs them in its thread pool, so the SQLite journal writes
do not block the event loop.
"""

from __future__ import annotations

import html
import time
from typing import Annotated, Literal, Union

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .events import from_wire
from .journal import JournalError
from .state import EstateState

MAX_BATCH = 1000
_NAME = r"^[a-z0-9_-]{1,64}$"
_RUN_ID = r"^[A-Za-z0-9._:-]{1,128}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bot: str = Field(pattern=_NAME)
    run_id: str = Field(pattern=_RUN_ID)
    source: str = Field(default="api", max_length=32)


class RunStartedIn(_Wire):
    type: Literal["run_started"]
    time: float = Field(ge=0)
    host: str | None = Field(default=None, max_length=255)


class RunFinishedIn(_Wire):
    type: Literal["run_finished"]
    ended: float = Field(ge=0)
    outcome: Literal["success", "failure", "unknown"]
    started: float | None = Field(default=None, ge=0)
    exit_status: int | None = Field(default=None, ge=0, le=255)
    reason: Literal["ui_drift", "credentials", "business", "data", "timeout", "crash", "killed", "unknown"] | None = None
    signal: int | None = Field(default=None, ge=1, le=128)
    timed_out: bool = False
    host: str | None = Field(default=None, max_length=255)
    output_tail: str | None = Field(default=None, max_length=16384)
    cpu_seconds: float | None = Field(default=None, ge=0)
    peak_rss_bytes: int | None = Field(default=None, ge=0)


class ResourceSampleIn(_Wire):
    type: Literal["resource_sample"]
    time: float = Field(ge=0)
    cpu_seconds: float = Field(ge=0)
    rss_bytes: int = Field(ge=0)
    processes: int = Field(default=1, ge=0)


EventIn = Annotated[Union[RunStartedIn, RunFinishedIn, ResourceSampleIn], Field(discriminator="type")]


class EventBatch(BaseModel):
    events: list[EventIn] = Field(max_length=MAX_BATCH)


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[dict]


def create_app(state: EstateState, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(title="botwatch agent", version=__version__, openapi_url="/api/v1/openapi.json",
                  docs_url="/api/v1/docs", redoc_url=None)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):
        state.count_parse_error("api")
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()][:20]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    @app.get("/healthz", summary="Liveness and journal health")
    def healthz() -> JSONResponse:
        ok = True
        detail = "ok"
        if state.journal is not None:
            try:
                state.journal.count_runs()
            except Exception as exc:  # journal unreadable: the agent is not healthy
                ok, detail = False, str(exc)
        return JSONResponse({"status": "ok" if ok else "unhealthy", "journal": detail, "bots": len(state.bots),
                             "version": __version__}, status_code=200 if ok else 503)

    @app.post("/api/v1/events", response_model=IngestOut, summary="Ingest a batch of events",
              responses={422: {"description": "Invalid batch"}, 503: {"description": "Journal unavailable; retry"}})
    def ingest(batch: Annotated[EventBatch, Body()]):
        events = [from_wire(e.model_dump()) for e in batch.events]
        try:
            result = state.apply(events)
        except JournalError as exc:
            return JSONResponse({"error": "journal unavailable, retry later", "detail": str(exc)}, status_code=503)
        return IngestOut(accepted=result.accepted, duplicates=result.duplicates, rejected=result.rejected)

    @app.get("/api/v1/status", summary="Every bot's current state")
    def status() -> JSONResponse:
        now = time.time()
        return JSONResponse({"time": now, "bots": [v.to_json() for v in state.views(now)]})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        rows = "".join(
            f"<tr><td>{html.escape(v.name)}</td><td>{html.escape(v.cfg.team or '')}</td>"
            f"<td class='{v.state}'>{v.state}</td><td>{v.runs_total}</td><td>{v.consecutive_failures}</td></tr>"
            for v in state.views())
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>botwatch</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'></head><body>"
            f"<h1>botwatch agent {__version__}</h1><p><a href='/metrics'>/metrics</a> · "
            "<a href='/api/v1/status'>/api/v1/status</a> · <a href='/api/v1/docs'>API</a></p>"
            "<table><tr><th>bot</th><th>team</th><th>state</th><th>runs</th><th>failures in a row</th></tr>"
            f"{rows}</table></body></html>")

    return app
