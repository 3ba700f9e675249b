"""The SDK's UI snapshots: what a bot gives (HTML, an accessibility tree, a PNG, a saved file)
made into a body of a known kind, and posted to the agent's drift check with a short timeout.
An agent that did not answer is not tried again for a while: the bot is not held up twice."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .sdk_log import warn

SNAPSHOT_TIMEOUT = 5.0  # seconds a snapshot may take to post and check; then the bot goes on
SNAPSHOT_RETRY_AFTER = 60  # seconds without snapshot posts to an agent that did not answer
SNAPSHOT_KINDS = {"html": "text/html; charset=utf-8", "a11y": "application/json", "png": "image/png"}

_unreachable: dict[str, float] = {}  # agent URL -> monotonic time until which it is not tried


def snapshot_body(content: Any, path: Any, kind: Any) -> tuple[bytes | None, str | None]:
    """(the snapshot's bytes, its kind: html, a11y or png), the kind guessed from the file's
    extension or the content when not given; (None, None), with a warning, when there is none."""
    if kind is not None and kind not in SNAPSHOT_KINDS:
        warn(("snapshot-kind", str(kind)[:20]), "botwatch.snapshot(kind=%r): not one of html, a11y, png; guessed "
             "from the content instead", kind)
        kind = None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                body = fh.read()
        except OSError as exc:
            warn(("snapshot-path", str(path)[:200]), "botwatch.snapshot(path=%r): cannot read it (%s)", path, exc)
            return None, None
        if kind is None:
            ext = os.path.splitext(str(path))[1].lower()
            kind = {".html": "html", ".htm": "html", ".json": "a11y", ".png": "png"}.get(ext)
    elif content is None:
        warn("snapshot-empty", "botwatch.snapshot() without content or path: nothing to check")
        return None, None
    elif isinstance(content, (bytes, bytearray, memoryview)):
        body = bytes(content)
    elif isinstance(content, str):
        body = content.encode("utf-8")
        if kind is None and content.lstrip()[:1] in ("{", "["):
            kind = "a11y"
    elif isinstance(content, (dict, list)):
        body, kind = json.dumps(content, default=str).encode("utf-8"), kind or "a11y"
    elif hasattr(content, "save"):  # a Pillow image
        import io

        buf = io.BytesIO()
        content.save(buf, format="PNG")
        body, kind = buf.getvalue(), kind or "png"
    else:
        warn(("snapshot-type", type(content).__name__), "botwatch.snapshot(): cannot send a %s (give HTML text, "
             "PNG bytes, an accessibility tree dict, or path=)", type(content).__name__)
        return None, None
    if kind is None:
        head = body[:64].lstrip()
        kind = "png" if head.startswith(b"\x89PNG") else "a11y" if head[:1] in (b"{", b"[") else "html"
    return body, kind


def post_snapshot(bot_name: str, screen: str, kind: str, body: bytes, run_id: str | None, agent_url: str | None,
                  config: str | None) -> dict[str, Any] | None:
    """The agent's drift report of the snapshot (`POST /api/v1/snapshots/<bot>/<screen>`), or
    None, with a warning, when it could not be had."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from .delivery import agent_key_for, agent_url_for

    base = agent_url_for(agent_url, config)
    if time.monotonic() < _unreachable.get(base, 0.0):
        return None  # the agent did not answer a moment ago: the bot is not held up again
    query = urllib.parse.urlencode({"kind": kind, **({"run_id": run_id} if run_id else {})})
    url = f"{base}/api/v1/snapshots/{urllib.parse.quote(bot_name, safe='')}/{urllib.parse.quote(screen, safe='')}" \
          f"?{query}"
    headers = {"Content-Type": SNAPSHOT_KINDS[kind]}
    key = agent_key_for(config, bot_name)
    if key:
        headers["X-Botwatch-Key"] = key
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    from ..core.redact import redact_url  # for the warnings: the agent URL may carry user:password@

    try:
        with urllib.request.urlopen(req, timeout=SNAPSHOT_TIMEOUT) as resp:
            report: dict[str, Any] = json.loads(resp.read() or b"{}")
            return report
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        warn(("snapshot-http", exc.code), "botwatch.snapshot(): the agent at %s refused the snapshot of %s/%s "
             "(HTTP %s: %s)", redact_url(base), bot_name, screen, exc.code, detail)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError):  # no answer (refused, timed out): skip snapshots to it for a while
            _unreachable[base] = time.monotonic() + SNAPSHOT_RETRY_AFTER
        warn(("snapshot-agent", base), "botwatch.snapshot(): cannot reach the agent at %s (%s); the snapshot of "
             "%s/%s is not checked (snapshots to it are skipped for %ds)", redact_url(base), redact_url(str(exc)),
             bot_name, screen, SNAPSHOT_RETRY_AFTER)
    return None
