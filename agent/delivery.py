"""The deliverer: sends spooled events to their target, oldest first.

Started detached by `botwatch run` after it has committed a run to the spool. One deliverer
per spool holds a lock; others exit at once (the holder picks their events up). Failures are
retried with exponential backoff; events the agent refuses for good (unknown bot, invalid)
are moved to the spool's `dead` table. Nothing here can affect a bot's exit status.

Targets:
- the agent (default): batches of events are posted to its events API;
- a Pushgateway (`pushgateway:<URL>`) or node_exporter's textfile collector (`textfile:<DIR>`):
  there is no agent to count, so each finished run is folded into its bot's totals in the
  spool (exactly once: applied and removed in one transaction), and the bot's totals are then
  published, as the agent's metric catalogue names them. A failed publication only leaves the
  totals pending; they are published again later, complete.

Events the full spool had to drop are reported too: to the agent as a `spool_dropped` event,
to the other targets as botwatch_agent_events_dropped_total{source="spool"}. The count is only
taken off once it was delivered.
"""

from __future__ import annotations

import hashlib
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


_estates: dict[str, tuple[int, object]] = {}


def _estate(config: str | None):
    """The estate file a run was given, parsed once per change; None if there is none or it is unusable."""
    if not config:
        return None
    try:
        mtime = os.stat(config).st_mtime_ns
    except OSError:
        return None
    cached = _estates.get(config)
    if cached is None or cached[0] != mtime:
        try:
            from .config import load_estate

            loaded = load_estate(config)
        except Exception as exc:
            log.warning("estate file %s unusable (%s); delivering without its agent address and key (to %s "
                        "unless the run named its agent)", config, str(exc).splitlines()[0],
                        os.environ.get("BOTWATCH_AGENT_URL") or DEFAULT_AGENT_URL)
            loaded = None
        cached = _estates[config] = (mtime, loaded)
    return cached[1]


def agent_url_for(explicit: str | None, config: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    env = os.environ.get("BOTWATCH_AGENT_URL")
    if env:
        return env.rstrip("/")
    loaded = _estate(config)
    if loaded is not None:
        host, port = loaded.listen
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"
    return DEFAULT_AGENT_URL


def agent_key_for(config: str | None, bot: str) -> str | None:
    """The X-Botwatch-Key for the agent: the estate's agent.ping_key, else the bot's own ping_key."""
    loaded = _estate(config)
    if loaded is None:
        return None
    try:
        from .config import resolve_secret

        key = resolve_secret(getattr(loaded.estate.agent, "ping_key", None))
        if key:
            return key
        for b in loaded.estate.bots:
            if b.name == bot:
                return resolve_secret(getattr(b, "ping_key", None))
    except Exception as exc:
        log.warning("no key for the agent from %s: %s", config, exc)
    return None


class Rejected(Exception):
    """The agent refused the whole batch for good (a 4xx other than 401/403/408/429)."""


def post_events(url: str, events: list[str], timeout: float = 10.0, key: str | None = None,
                spool: tuple[str, int] | None = None) -> dict:
    """POST a batch; `spool` is (spool id, runs left in it once the batch is delivered), which the
    agent exports as its spool backlog."""
    body = ('{"events":[' + ",".join(events) + "]}").encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-Botwatch-Key"] = key
    if spool is not None:
        headers["X-Botwatch-Spool"], headers["X-Botwatch-Spool-Pending"] = spool[0], str(spool[1])
    req = urllib.request.Request(url + "/api/v1/events", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        # a missing or wrong key is a set-up problem to fix, not a reason to throw runs away: they wait
        if 400 <= exc.code < 500 and exc.code not in (401, 403, 408, 429):
            raise Rejected(f"HTTP {exc.code}: {detail}") from None
        raise


def deliver_once(spool: Spool, now: float | None = None) -> tuple[int, int]:
    """Send every ready event and publish due totals; returns (delivered, failed).
    Raises nothing for network errors."""
    now = time.time() if now is None else now
    delivered, failed = _deliver_to_agents(spool, now)
    spool.fold(apply_finished)
    published, not_published = publish_totals(spool, now)
    return delivered + published, failed + not_published


def _deliver_to_agents(spool: Spool, now: float) -> tuple[int, int]:
    rows = spool.ready(now)
    delivered = failed = 0
    reached = None
    by_target: dict[tuple[str, str | None], list[tuple]] = {}
    for row in rows:
        seq, bot, run_id, agent_url, config, event, attempts, kind = row
        by_target.setdefault((agent_url_for(agent_url, config), agent_key_for(config, bot)), []).append(row)
    left = spool.pending()  # runs in the spool: each batch delivered takes its own off
    for (url, key), batch in by_target.items():
        runs = sum(1 for r in batch if r[7] == "finish")
        try:
            answer = post_events(url, [r[5] for r in batch], key=key, spool=(spool_id(spool), max(left - runs, 0)))
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
                log.warning("agent %s did not take the events (%s); %d event(s) wait in %s and will be retried",
                            url, exc, len(batch), spool.path)
            continue
        refused = {item.get("index"): item.get("error") for item in answer.get("rejected", [])}
        for i, r in enumerate(batch):
            if i in refused:
                spool.bury(r[0], str(refused[i]))
                log.warning("agent refused event for bot %r run %s: %s", r[1], r[2], refused[i])
        spool.delivered([r[0] for i, r in enumerate(batch) if i not in refused])
        delivered += len(batch) - len(refused)
        left -= runs
        reached = reached or (url, key)
    if reached:
        _report_agent_drops(spool, *reached)
    return delivered, failed


def _report_agent_drops(spool: Spool, url: str, key: str | None) -> None:
    """Tell the agent how many of its events the full spool dropped (alone: an agent that does not
    know the event must not refuse the runs with it). The count stays until this succeeds."""
    count, at = spool.dropped("agent")
    if count <= 0:
        return
    event = {"type": "spool_dropped", "count": count, "time": at or time.time(), "host": hostname(),
             "source": "spool"}
    try:
        post_events(url, [json.dumps(event)], key=key)
    except (Rejected, OSError, ValueError) as exc:
        log.warning("could not report %d dropped event(s) to the agent %s (%s); the count is kept", count, url, exc)
        return
    spool.dropped_reported("agent", count)
    log.warning("reported %d event(s) dropped from the full spool %s to the agent %s", count, spool.path, url)


# -- targets without an agent: totals -------------------------------------------------------

def apply_finished(totals: dict, event_json: str) -> None:
    """Fold one finished run into its bot's totals, as the agent's state does (state.BotRuntime)."""
    from .classify import REASONS
    from .state import DURATION_BUCKETS

    ev = json.loads(event_json)
    failures = totals["failures"]
    for reason in REASONS:
        failures.setdefault(reason, 0)
    if len(totals["buckets"]) != len(DURATION_BUCKETS):
        totals["buckets"] = (list(totals["buckets"]) + [0] * len(DURATION_BUCKETS))[:len(DURATION_BUCKETS)]
    ended, started, outcome = ev.get("ended"), ev.get("started"), ev.get("outcome")
    totals["host"] = ev.get("host") or totals["host"]
    totals["runs_total"] += 1
    dur = max(0.0, ended - started) if ended is not None and started is not None else None
    if dur is not None:
        totals["duration_sum"] += dur
        totals["duration_count"] += 1
        for i, le in enumerate(DURATION_BUCKETS):
            if dur <= le:
                totals["buckets"][i] += 1
                break
    if ended is None:
        return
    if outcome == "failure":
        reason = ev.get("reason") if ev.get("reason") in failures else "unknown"
        failures[reason] += 1
        totals["last_failure"] = max(totals["last_failure"] or 0.0, ended)
    elif outcome == "success":
        totals["last_success"] = max(totals["last_success"] or 0.0, ended)
    # a run replayed after a newer one counts, but does not rewrite the latest run
    if totals["last_run_end"] is None or ended >= totals["last_run_end"]:
        totals["last_run_end"] = ended
        totals["last_run_duration"] = dur
        totals["last_exit_status"] = ev.get("exit_status")
        totals["last_outcome"] = outcome
        if outcome == "failure":
            totals["consecutive_failures"] += 1
        elif outcome == "success":
            totals["consecutive_failures"] = 0


def publish(target: str, totals: dict) -> None:
    """Publish one bot's totals (or the spool's own) to a Pushgateway or a textfile directory."""
    kind, _, where = target.partition(":")
    if kind == "pushgateway":
        from botwatch.exporters.pushgateway import push_totals

        push_totals(where, totals, hostname())
    elif kind == "textfile":
        from botwatch.exporters.textfile import write_totals

        write_totals(where, totals)
    else:
        raise ValueError(f"unknown target {target!r}")


def publish_totals(spool: Spool, now: float) -> tuple[int, int]:
    """Publish every due totals row; a target that fails keeps its rows pending, with backoff."""
    published = failed = 0
    due: dict[str, list[dict]] = {}
    for totals in spool.totals_due(now):
        due.setdefault(totals["target"], []).append(totals)
    for target, rows in due.items():
        if any(r["attempts"] for r in rows):
            # the target was away and may have come back empty (a restarted Pushgateway without
            # persistence): every group is published again, from the complete totals
            spool.republish_all(target)
            rows = [r for r in spool.totals_due(now) if r["target"] == target]
        for i, totals in enumerate(rows):
            try:
                publish(target, totals)
            except Exception as exc:
                waiting = rows[i:]
                attempts = max(r["attempts"] for r in waiting)
                spool.publish_later(target, [r["bot"] for r in waiting], f"{type(exc).__name__}: {exc}",
                                    backoff(attempts))
                failed += len(waiting)
                if attempts == 0:
                    log.warning("%s unreachable (%s); the totals of %d bot(s) wait in %s and will be published "
                                "again", target, exc, len(waiting), spool.path)
                break
            spool.published(target, totals["bot"])
            published += 1
            if totals["attempts"]:
                log.info("%s reachable again: published the totals of %r", target, totals["bot"] or "the spool")
    return published, failed


def spool_id(spool: Spool) -> str:
    """Which spool a batch comes from, for the agent's backlog gauge: host and a hash of the
    path (the path itself, a user's home, stays on the host)."""
    return f"{hostname()}:{hashlib.sha1(os.path.abspath(spool.path).encode()).hexdigest()[:12]}"


def hostname() -> str:
    """The host's name as the wrapper records it in its events."""
    try:
        return os.uname().nodename
    except AttributeError:  # Windows
        return os.environ.get("COMPUTERNAME", "")


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
            log.warning("giving up for now: %d run(s) or bot totals stay in %s until the next run",
                        spool.pending(), spool.path)
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
