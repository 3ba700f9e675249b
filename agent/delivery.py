"""The deliverer: sends spooled events to the agent, oldest first, in batches.

Started detached by `botwatch run` after it has committed a run to the spool. One deliverer
per spool holds a lock; others exit at once (the holder picks their events up). Failures are
retried with exponential backoff; events the agent refuses for good (unknown bot, invalid)
are moved to the spool's `dead` table. Nothing here can affect a bot's exit status.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
import urllib.error
import urllib.request

from ._platform import lock_exclusive
from .spool import Spool, default_spool_path

log = logging.getLogger("botwatch.delivery")
DEFAULT_AGENT_URL = "http://127.0.0.1:9464"
MAX_BACKOFF = 60.0


def backoff(attempts: int) -> float:
    """1 s, 2 s, 4 s ... up to a minute, with jitter so that many hosts do not retry in step."""
    return min(MAX_BACKOFF, 2.0 ** attempts) * random.uniform(0.8, 1.2)


def agent_url_for(explicit: str | None, config: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("BOTWATCH_AGENT_URL")
    if env:
        return env.rstrip("/")
    if config and os.path.exists(config):
        try:
            from .config import load_estate

            host, port = load_estate(config).listen
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            return f"http://{host}:{port}"
        except Exception as exc:
            log.warning("estate file %s unusable (%s); delivering to %s", config, str(exc).splitlines()[0],
                        DEFAULT_AGENT_URL)
    return DEFAULT_AGENT_URL


class Rejected(Exception):
    """The agent refused the whole batch for good (a 4xx other than 408/429)."""


def post_events(url: str, events: list[str], timeout: float = 10.0) -> dict:
    body = ('{"events":[' + ",".join(events) + "]}").encode("utf-8")
    req = urllib.request.Request(url + "/api/v1/events", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise Rejected(f"HTTP {exc.code}: {detail}") from None
        raise


def deliver_once(spool: Spool, now: float | None = None) -> tuple[int, int]:
    """Send every ready event; returns (delivered, failed). Raises nothing for network errors."""
    now = time.time() if now is None else now
    rows = spool.ready(now)
    delivered = failed = 0
    by_target: dict[str, list[tuple]] = {}
    for row in rows:
        seq, bot, run_id, agent_url, config, event, attempts = row
        by_target.setdefault(agent_url_for(agent_url, config), []).append(row)
    for url, batch in by_target.items():
        try:
            answer = post_events(url, [r[5] for r in batch])
        except Rejected as exc:
            for r in batch:
                spool.bury(r[0], str(exc))
            log.warning("agent %s refused %d event(s): %s", url, len(batch), exc)
            continue
        except (OSError, ValueError) as exc:
            attempts = max(r[6] for r in batch)
            spool.retry_later([r[0] for r in batch], f"{type(exc).__name__}: {exc}", backoff(attempts))
            failed += len(batch)
            if attempts == 0:
                log.warning("agent %s unreachable (%s); %d event(s) wait in %s and will be retried",
                            url, exc, len(batch), spool.path)
            continue
        refused = {item.get("index"): item.get("error") for item in answer.get("rejected", [])}
        for i, r in enumerate(batch):
            if i in refused:
                spool.bury(r[0], str(refused[i]))
                log.warning("agent refused event for bot %r run %s: %s", r[1], r[2], refused[i])
        spool.delivered([r[0] for i, r in enumerate(batch) if i not in refused])
        delivered += len(batch) - len(refused)
    return delivered, failed


def run_deliverer(spool_path: str, patience: float, lock=None) -> int:
    """Deliver until the spool is empty or nothing succeeded for `patience` seconds."""
    lock = lock or lock_exclusive(spool_path + ".lock")
    while lock is not None:
        try:
            spool = Spool(spool_path)
            try:
                gave_up = _deliver_until_empty(spool, patience)
            finally:
                spool.close()
        finally:
            lock.close()
        if gave_up:
            return 0
        # An event spooled while we were finishing found the lock taken: look once more.
        check = Spool(spool_path)
        try:
            if check.next_attempt_at() is None:
                return 0
        finally:
            check.close()
        lock = lock_exclusive(spool_path + ".lock")
    return 0  # another deliverer is at work and will see our events


def _deliver_until_empty(spool: Spool, patience: float) -> bool:
    last_progress = time.time()
    while os.path.exists(spool.path):
        delivered, _failed = deliver_once(spool)
        if delivered:
            last_progress = time.time()
        nxt = spool.next_attempt_at()
        if nxt is None:
            return False
        if time.time() - last_progress > patience:
            log.warning("giving up for now: %d run(s) stay in %s until the next run", spool.pending(), spool.path)
            return True
        time.sleep(min(max(0.05, nxt - time.time()), MAX_BACKOFF))
    return True


def main(argv: list[str] | None = None, lock=None) -> int:
    """`python -m botwatch.deliver [--spool PATH] [--patience SECONDS]` (started by the wrapper)."""
    args = sys.argv[1:] if argv is None else argv
    opts = {"--spool": default_spool_path(), "--patience": os.environ.get("BOTWATCH_DELIVERY_PATIENCE", "600")}
    for flag, value in zip(args[::2], args[1::2]):
        if flag not in opts:
            print("usage: python -m botwatch.deliver [--spool PATH] [--patience SECONDS]", file=sys.stderr)
            return 2
        opts[flag] = value
    spool_path = opts["--spool"]
    logging.basicConfig(filename=os.path.splitext(spool_path)[0] + ".log", level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    try:
        return run_deliverer(spool_path, float(opts["--patience"]), lock)
    except Exception:
        log.exception("delivery failed")
        return 1
