"""Orchestrator webhooks: a job recorded the moment Orchestrator tells of it, the pull left to
reconcile (docs/uipath-orchestrator.md, "Webhooks").

Orchestrator POSTs an event (`{Type, EventId, Timestamp, Job | Jobs, OrganizationUnitId, ...}`)
signed with `X-UiPath-Signature`: Base64(HMAC-SHA256(key = the webhook's secret, message = the
raw body)). The signature is checked on the raw bytes, in constant time, before anything is parsed.

- A job event (`job.faulted`, `job.completed`, `job.stopped`, `job.started`, `job.created`...,
  one `Job` or a `Jobs` array): each job is fetched by its Id from its folder
  (`GET /odata/Jobs(<Id>)?$expand=Robot`), which proves it real and gives what the webhook
  lacks (`ReleaseName`, the bot), and is recorded at once as the pull would record it: same run
  id (`uipath:<Key>`), so when the pull reads it again the journal keeps it once.
- A queue item event: the connection is pulled soon.

A job whose fetch fails (Orchestrator unreachable, the connection's budget used up) is left to
the next pull (`deferred`, answered 202), as is a webhook Orchestrator never sent: it keeps no
undelivered webhook and disables one that fails for an hour, so the pull is what makes the
record complete; the webhook only makes it early.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..config.estate import resolve_secret
from ..core.events import Event
from ..state.journal import JournalError
from .controlplane import ApiError

if TYPE_CHECKING:
    from .uipath_orchestrator import Folder, OrchestratorConnection, UiPathOrchestratorSource

SIGNATURE = "x-uipath-signature"
FETCH_TIMEOUT = 5.0  # seconds for one job's fetch: Orchestrator waits for the answer to its POST
DEADLINE = 10.0  # seconds for the fetches of one webhook; the jobs left are deferred to the pull


def signed(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is the Base64 HMAC-SHA256 of `body` with `secret` (constant time)."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("ascii", "replace"))


def _id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class Malformed(ValueError):
    pass


def parse(body: bytes) -> tuple[str, dict[str, Any]]:
    """The event's Type and object; Malformed says what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested too deeply
        raise Malformed(f"not a JSON document: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Type"), str) or not doc["Type"]:
        raise Malformed("not an Orchestrator event: a JSON object with a 'Type' is expected")
    return doc["Type"][:100], doc


def job_refs(doc: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(folder Id, job Id, job Key) of each job of a job event: `Jobs` (an array, or one object as
    a sample of the docs prints it) or `Job`; the folder is the job's or the event's
    `OrganizationUnitId` (`FolderId` in some versions)."""
    jobs = doc.get("Jobs") if "Jobs" in doc else doc.get("Job")
    if isinstance(jobs, dict):
        jobs = [jobs]
    if not isinstance(jobs, list) or not jobs:
        raise Malformed("a job event without 'Job' or 'Jobs'")
    event_folder = _id(doc.get("OrganizationUnitId", doc.get("FolderId")))
    refs = []
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise Malformed(f"job {i}: not an object")
        folder = _id(job.get("OrganizationUnitId", job.get("FolderId", event_folder)))
        job_id, key = _id(job.get("Id")), job.get("Key")
        if folder is None:
            raise Malformed(f"job {i}: no folder (OrganizationUnitId or FolderId)")
        if job_id is None or not isinstance(key, str) or not key:
            raise Malformed(f"job {i}: no Id or Key")
        refs.append((folder, job_id, key[:100]))
    return refs


def receive(source: UiPathOrchestratorSource, conn: OrchestratorConnection, headers: Mapping[str, str],
            body: bytes) -> tuple[int, dict[str, Any]]:
    """One webhook for `conn`: the HTTP status and answer (every outcome counted)."""
    name = conn.cfg.name
    state = source.state
    secret = resolve_secret(conn.cfg.webhook_secret)
    if secret is None:  # unset since receives() was asked: nothing can be trusted
        return 404, {"error": "no receiver", "detail": f"connection {name!r} has no webhook_secret"}
    if not signed(secret, body, headers.get(SIGNATURE)):
        state.count_webhook(source.name, name, "bad_signature")
        source.warn((name, "webhook-signature"), "uipath %s: a webhook with a missing or wrong X-UiPath-Signature "
                    "refused (is the webhook's secret the connection's webhook_secret?)", name)
        return 401, {"error": "missing or wrong X-UiPath-Signature"}
    try:
        kind, doc = parse(body)
        refs = job_refs(doc) if kind.startswith("job.") else []
        folder_id = _id(doc.get("OrganizationUnitId", doc.get("FolderId")))
        if kind.startswith("queueItem.") and folder_id is None:
            raise Malformed("a queue item event without OrganizationUnitId or FolderId")
    except Malformed as exc:
        state.count_webhook(source.name, name, "malformed")
        source.warn((name, "webhook-malformed"), "uipath %s: a malformed webhook refused: %s", name, exc)
        return 400, {"error": "malformed event", "detail": str(exc)}
    if refs:
        return _jobs(source, conn, refs)
    if kind.startswith("queueItem."):
        assert folder_id is not None
        return _queue_item(source, conn, folder_id)
    state.count_webhook(source.name, name, "unknown")
    return 200, {"unknown": kind}


def _folder(conn: OrchestratorConnection, folder_id: int) -> Folder | None:
    return next((f for f in conn.folders if f.id == folder_id), None)


def _queue_item(source: UiPathOrchestratorSource, conn: OrchestratorConnection, folder_id: int) -> tuple[int, dict[str, Any]]:
    """The connection is pulled soon (its queues with it); a folder it does not read is ignored."""
    if conn.folders_read_at != float("-inf") and _folder(conn, folder_id) is None:
        source.state.count_webhook(source.name, conn.cfg.name, "ignored")
        return 200, {"ignored": 1}
    source.state.count_webhook(source.name, conn.cfg.name, "accepted")
    source.request_pull(conn)
    return 202, {"accepted": 1, "pull": "requested"}


def _jobs(source: UiPathOrchestratorSource, conn: OrchestratorConnection,
          refs: list[tuple[int, int, str]]) -> tuple[int, dict[str, Any]]:
    """Each job fetched and recorded at once; what cannot be fetched is left to the next pull."""
    name = conn.cfg.name
    outcomes = {"accepted": 0, "deferred": 0, "ignored": 0}
    events: list[Event] = []
    deadline = time.monotonic() + DEADLINE
    for folder_id, job_id, key in refs:
        folder = _folder(conn, folder_id)
        if folder is None:
            # before the first pull has read the folders, the pull decides
            outcomes["deferred" if conn.folders_read_at == float("-inf") else "ignored"] += 1
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            outcomes["deferred"] += 1
            continue
        try:
            answer = conn.client.get_now(conn.client.url(f"odata/Jobs({job_id})", {"$expand": "Robot"}),
                                         {"X-UIPATH-OrganizationUnitId": str(folder.id)}, min(FETCH_TIMEOUT, left))
        except ApiError as exc:
            if exc.status == 404:  # Orchestrator has no such job in that folder
                source.warn((name, "webhook-unknown-job"), "uipath %s: a webhook names job %s, which folder %r "
                            "does not have: ignored", name, job_id, folder.path)
                outcomes["ignored"] += 1
            else:
                source.warn((name, "webhook-fetch"), "uipath %s: cannot fetch a webhook's job (%s): left to the "
                            "next pull", name, exc)
                outcomes["deferred"] += 1
            continue
        if answer is None:  # no request left in the budget now
            outcomes["deferred"] += 1
            continue
        job = answer.data
        if not isinstance(job, dict) or job.get("Key") != key:
            source.warn((name, "webhook-key"), "uipath %s: job %s of a webhook has another Key in Orchestrator: "
                        "ignored", name, job_id)
            outcomes["ignored"] += 1
            continue
        event = source.event_for(conn, folder, job)
        if event is None:  # an unregistered process, a bad item (counted there)
            outcomes["ignored"] += 1
            continue
        events.append(event)
    if events:
        try:
            source.state.apply(events)
            outcomes["accepted"] += len(events)
        except JournalError as exc:
            source.warn((name, "webhook-journal"), "uipath %s: cannot record a webhook's jobs (%s): left to the "
                        "next pull", name, exc)
            outcomes["deferred"] += len(events)
    for outcome, n in outcomes.items():
        if n:
            source.state.count_webhook(source.name, name, outcome, n)
    return (202 if outcomes["deferred"] else 200), outcomes
