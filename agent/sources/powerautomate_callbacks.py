"""Desktop-flow completion callbacks: a run recorded the moment it ends, the pull left to reconcile
(docs/powerautomate.md, "Callbacks").

A desktop flow started with `RunDesktopFlow` and a `callbackUrl` has Power Automate POST
`{statuscode, statecode, startedon, completedon, flowsessionid}` there when the run ends. The call
carries no signature or token, so nothing in it is believed: the flow session it names is read
from Dataverse (`GET flowsessions(<id>)`), and only when Dataverse has that session, ended, with
the status the callback claims, is it recorded, from Dataverse's row, as the pull would record it
(same run id: the journal keeps it once). A callback naming no session Dataverse has, or another
status, is refused (`ignored`, counted and warned); one that cannot be checked now (Dataverse
unreachable, the budget used up, the run not yet ended there) is left to the next pull
(`deferred`, answered 202, which Power Automate does not retry). A genuine callback refused (its
run not ended in Dataverse yet) costs nothing: the pull records the run when Dataverse has it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..core.events import RunFinished
from ..state.journal import JournalError
from .controlplane import ApiError
from .powerautomate import API, STATUSCODES, loads_lenient

if TYPE_CHECKING:
    from .powerautomate import PowerAutomateConnection, PowerAutomateSource

FETCH_TIMEOUT = 5.0  # seconds for the session's read: Power Automate waits for the answer to its POST
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Malformed(ValueError):
    pass


def parse(body: bytes) -> tuple[str, int]:
    """The callback's flowsessionid (lower case) and statuscode; Malformed says what is wrong."""
    try:
        doc = loads_lenient(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not a JSON document: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise Malformed("not a desktop-flow callback: a JSON object is expected")
    sid = doc.get("flowsessionid", doc.get("flowsessionId"))
    status = doc.get("statuscode")
    if not isinstance(sid, str) or not GUID.match(sid):
        raise Malformed("no flowsessionid (a GUID)")
    if not isinstance(status, int) or isinstance(status, bool) or status not in STATUSCODES:
        raise Malformed(f"no known statuscode: {str(status)[:20]!r}")
    return sid.lower(), status


def receive(source: PowerAutomateSource, conn: PowerAutomateConnection, body: bytes) -> tuple[int, dict[str, Any]]:
    """One callback for `conn`: the HTTP status and answer (every outcome counted)."""
    name = conn.cfg.name
    state = source.state

    def answer(outcome: str, status: int, detail: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state.count_webhook(source.name, name, outcome)
        return status, detail

    try:
        sid, claimed = parse(body)
    except Malformed as exc:
        source.warn((name, "callback-malformed"), "powerautomate %s: a malformed callback refused: %s", name, exc)
        return answer("malformed", 400, {"error": "malformed callback", "detail": str(exc)})
    if STATUSCODES[claimed][0] != "ended":
        return answer("unknown", 200, {"unknown": claimed})
    url = conn.client.url(f"{API}/flowsessions({sid})", {"$select": source.SESSION_COLUMNS})
    try:
        got = conn.client.get_now(url, source.prefer(), FETCH_TIMEOUT)
    except ApiError as exc:
        if exc.status == 404:  # Dataverse has no such session: forged, or another environment's
            source.warn((name, "callback-unknown"), "powerautomate %s: a callback names flow session %s, which "
                        "Dataverse does not have: refused", name, sid)
            return answer("ignored", 200, {"ignored": 1, "why": "no such flow session"})
        source.warn((name, "callback-fetch"), "powerautomate %s: cannot read a callback's flow session (%s): left to "
                    "the next pull", name, exc)
        return answer("deferred", 202, {"deferred": 1})
    if got is None:  # no request left in the budget now
        return answer("deferred", 202, {"deferred": 1})
    session = got.data
    if not isinstance(session, dict) or str(session.get("flowsessionid", "")).lower() != sid:
        source.warn((name, "callback-id"), "powerautomate %s: Dataverse answered another row for flow session %s: "
                    "refused", name, sid)
        return answer("ignored", 200, {"ignored": 1, "why": "another row"})
    actual = session.get("statuscode")
    if actual != claimed:
        source.warn((name, "callback-status"), "powerautomate %s: a callback claims status %s for flow session %s, "
                    "which Dataverse has as %r: refused", name, claimed, sid, actual)
        return answer("ignored", 200, {"ignored": 1, "why": "status differs from Dataverse"})
    event = source.session_event(conn, session)
    if not isinstance(event, RunFinished):  # an unregistered flow, a bad row (counted there)
        return answer("ignored", 200, {"ignored": 1})
    try:
        source.state.apply([event])
    except JournalError as exc:
        source.warn((name, "callback-journal"), "powerautomate %s: cannot record a callback's run (%s): left to the "
                    "next pull", name, exc)
        return answer("deferred", 202, {"deferred": 1})
    return answer("accepted", 200, {"accepted": 1, "run_id": event.run_id})
