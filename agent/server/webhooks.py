"""`POST /api/v1/webhooks/<platform>/<connection>`: pushes from the control planes the sources
read (Orchestrator's webhooks...), handed to the source named `platform` (sources/base.py:
`receives`, `receive`).

The server knows no platform: it refuses what no source takes (404) before reading the body,
reads the body within `agent.limits.max_body_bytes` (BodyLimit, 413) and gives it, unparsed, to
the source, which authenticates it (a signature over the raw bytes) before it parses it. The
daemon builds the app before the sources: until it hands them over, a push is answered 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Iterable

from fastapi import FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .limits import discard_body

if TYPE_CHECKING:
    from ..sources.base import Source
    from ..state.runtime import EstateState

PREFIX = "/api/v1/webhooks/"
NAME = r"^[a-z0-9_-]{1,32}$"


class Receivers:
    """The sources that take pushes, by name, once the daemon has built them."""

    def __init__(self) -> None:
        self.sources: dict[str, Source] | None = None

    def attach(self, sources: Iterable[object]) -> None:
        from ..sources.base import Source

        self.sources = {s.name: s for s in sources if isinstance(s, Source)}


Platform = Annotated[str, Path(description="The source the push is for: `uipath`, `powerautomate`", pattern=NAME)]
Connection = Annotated[str, Path(description="The connection's `name` in the estate file", pattern=NAME)]


def add_routes(app: FastAPI, state: EstateState, receivers: Receivers) -> None:
    def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)

    def _refuse(platform: str, connection: str) -> JSONResponse | None:
        """The answer to a push no source takes, before its body is read; None when one does."""
        if receivers.sources is None:
            return _error(503, "starting", "the sources are not running yet", {"Retry-After": "5"})
        source = receivers.sources.get(platform)
        if source is None or not source.receives(connection):
            state.count_parse_error("api")
            return _error(404, "no receiver", f"no {platform} connection {connection!r} takes webhooks here "
                          "(is its webhook_secret set, or callbacks: true?)")
        return None

    def _receive(platform: str, connection: str, headers: dict[str, str], body: bytes) -> JSONResponse:
        assert receivers.sources is not None
        status, answer = receivers.sources[platform].receive(connection, headers, body)
        return JSONResponse(answer, status_code=status)

    error: dict[str, Any] = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    taken: dict[str, Any] = {"content": {"application/json": {"schema": {"type": "object"}}}}

    @app.post(PREFIX + "{platform}/{connection}", summary="Receive a control plane's webhook",
              description=(
                  "A webhook of an RPA control plane the agent reads, for one of its connections "
                  "(`platforms.<platform>` in the estate file). UiPath Orchestrator: job and queue item events, "
                  "signed with `X-UiPath-Signature` (Base64 HMAC-SHA256 of the raw body with the connection's "
                  "`webhook_secret`); a job is fetched from Orchestrator and recorded at once, what cannot be is "
                  "left to the next pull. Power Automate: desktop-flow completion callbacks (`callbackUrl`), unsigned by "
                  "design, so each is confirmed by reading its flow session from Dataverse; a callback Dataverse "
                  "does not confirm is not recorded. Answers 200 (recorded or ignored) or 202 (left to the next "
                  "pull)."),
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"type": "object"}}}}},
              responses={200: {"description": "Taken", **taken}, 202: {"description": "Left to the next pull", **taken},
                         400: {"description": "Malformed event", **error},
                         401: {"description": "Missing or wrong signature", **error},
                         404: {"description": "No connection of that platform takes webhooks", **error},
                         413: {"description": "Body over agent.limits.max_body_bytes", **error},
                         503: {"description": "The agent is starting", **error}})
    async def webhook(request: Request, platform: Platform, connection: Connection) -> JSONResponse:
        refused = await run_in_threadpool(_refuse, platform, connection)
        if refused is not None:
            await discard_body(request.receive)
            return refused
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await run_in_threadpool(_receive, platform, connection, headers, body)
