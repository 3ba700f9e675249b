"""The deliverer: sends spooled events to their target, oldest first.

Started detached (runrecord.start_deliverer) by `botwatch run` and the SDK once they have
committed a run or its events to the spool. One deliverer per spool holds a lock; others exit
at once (the holder picks their events up). Failures are retried with exponential backoff;
events the agent refuses for good (unknown bot, invalid) are moved to the spool's `dead`
table. Nothing here can affect a bot's exit status.

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
import math
import os
import random
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, cast

from . import runrecord
from .._platform import create_private, lock_exclusive
from ..core.redact import redact_url
from .spool import Spool, default_spool_path
from ..core.vocabulary import DURATION_BUCKETS, REASONS, count_finished_run

if TYPE_CHECKING:
    from concurrent.futures import Future
    from typing import IO, Any, Literal

    from ..config.estate import LoadedEstate
    from .spool import ReadyRow, Totals

    AgentTarget = tuple[Literal["agent"], str, str | None]  # ("agent", its URL, its key)
    TotalsTarget = tuple[Literal["totals"], str]  # ("totals", "pushgateway:<URL>")
    Target = AgentTarget | TotalsTarget
    AgentAnswer = tuple[dict[str, Any], bool]  # _post_batch: (the agent's answer, whether it took the drops)
    AgentCarried = tuple[list[ReadyRow], int]  # (the batch, the dropped events reported with it)
    TotalsAnswer = tuple[int, Exception | None]  # _publish_rows: (how many were published, the error)
    InFlight = tuple[Future[AgentAnswer], AgentCarried] | tuple[Future[TotalsAnswer], list[Totals]]

log = logging.getLogger("botwatch.delivery")
DEFAULT_AGENT_URL = "http://127.0.0.1:9464"
MAX_BACKOFF = 60.0
PROBE_EVERY = 5.0  # seconds: how often new events may try a target that is backing off (it may be back)


def backoff(attempts: int) -> float:
    """1 s, 2 s, 4 s ... up to a minute, with jitter so that many hosts do not retry in step."""
    return min(MAX_BACKOFF, 2.0 ** attempts) * random.uniform(0.8, 1.2)


_estates: dict[str, tuple[int, LoadedEstate | None]] = {}


def _estate(config: str | None) -> LoadedEstate | None:
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
            from ..config.estate import load_estate

            loaded: LoadedEstate | None = load_estate(config)
        except Exception as exc:
            log.warning("estate file %s unusable (%s); delivering without its agent address and key (to %s "
                        "unless the run named its agent)", config, str(exc).splitlines()[0],
                        redact_url(os.environ.get("BOTWATCH_AGENT_URL") or DEFAULT_AGENT_URL))
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
        from ..config.estate import resolve_secret

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
    """The agent refused the whole batch for good (a 4xx other than 401/403/408/413/429)."""


class TooLarge(Exception):
    """The agent refused the batch for its size (413): it is sent again in smaller batches."""


def post_events(url: str, events: list[str], timeout: float = 10.0, key: str | None = None,
                spool: tuple[str, int] | None = None) -> dict[str, Any]:
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
            answer: dict[str, Any] = json.loads(resp.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        if exc.code == 413:
            raise TooLarge(f"HTTP 413: {detail}") from None
        # a missing or wrong key is a set-up problem to fix, not a reason to throw runs away: they wait
        if 400 <= exc.code < 500 and exc.code not in (401, 403, 408, 429):
            raise Rejected(f"HTTP {exc.code}: {detail}") from None
        raise


class Deliverer:
    """Sends a spool's events, each target on its own.

    A target is an agent (its URL and key) or a Pushgateway. Each is sent to in a worker thread,
    at most one request at a time, and backs off alone: while one target is away (an old agent
    URL in one bot's config, a Pushgateway that is down) or slow to answer, the others are
    served as their events arrive. The spool itself is read and written by the calling thread
    only; workers do nothing but HTTP. Textfile targets are local writes and are done at once.
    """

    LEASE = 30.0  # events in flight are not picked again before this (a crash mid-request retries them)

    def __init__(self, spool: Spool, workers: int = 8) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.spool = spool
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="botwatch-delivery")
        self.inflight: dict[Target, InFlight] = {}  # target -> (future, what it carries)
        self.held: dict[AgentTarget, list[int]] = {}  # target -> its events spooled while a request was in flight
        self.resting: dict[AgentTarget, float] = {}   # target -> when it may be tried again (its backoff)
        self.probed: dict[AgentTarget, float] = {}    # target -> when a new event last probed it while resting
        self.batch_size: dict[AgentTarget, int] = {}  # agent -> the largest batch it takes (halved at each 413)
        self.delivered = self.failed = 0
        self.last_progress = time.time()
        self.newest = 0  # the latest event spooled that this deliverer has seen

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- one pass ---------------------------------------------------------------------------------
    def step(self, now: float | None = None) -> None:
        """Take in finished requests, then start one for every target with events due."""
        now = time.time() if now is None else now
        newest = self.spool.newest_seq()
        if newest > self.newest:  # a newly spooled run gets the deliverer's full patience
            self.newest, self.last_progress = newest, time.time()
        self.collect()
        self._send_events(now)
        self.spool.fold(apply_finished)
        publish_local(self.spool, now)
        self._publish_remote(now)

    def collect(self, timeout: float | None = 0.0) -> bool:
        """Apply the answers of finished requests (waiting up to `timeout` for one); True if any."""
        from concurrent.futures import FIRST_COMPLETED, wait

        if not self.inflight:
            return False
        futures: list[Future[Any]] = [f for f, _ in self.inflight.values()]  # of both kinds: only waited for
        done, _ = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        for target, (future, carried) in list(self.inflight.items()):
            if future in done:
                del self.inflight[target]
                # a target's kind says what its request carries
                if target[0] == "agent":
                    self._events_answered(target, cast("Future[AgentAnswer]", future), cast("AgentCarried", carried))
                else:
                    self._totals_answered(target, cast("Future[TotalsAnswer]", future), cast("list[Totals]", carried))
        return bool(done)

    def drain(self) -> None:
        """Wait for every request in flight and apply its answer."""
        while self.inflight:
            self.collect(timeout=None)

    def _progress(self, n: int) -> None:
        if n:
            self.delivered += n
            self.last_progress = time.time()

    # -- agents -----------------------------------------------------------------------------------
    def _send_events(self, now: float) -> None:
        by_target: dict[AgentTarget, list[ReadyRow]] = {}
        for row in self.spool.ready(now):
            seq, bot, run_id, agent_url, config, event, attempts, kind = row
            target: AgentTarget = ("agent", agent_url_for(agent_url, config), agent_key_for(config, bot))
            by_target.setdefault(target, []).append(row)
        left = self.spool.pending()  # runs in the spool: each batch, once delivered, takes its own off
        for target, batch in by_target.items():
            seqs = [r[0] for r in batch]
            if target in self.inflight:  # due again when its request ends, not before
                self.spool.defer(seqs, now + self.LEASE)
                self.held.setdefault(target, []).extend(seqs)
                continue
            if self.resting.get(target, 0.0) > now:  # waits out its target's backoff, alone...
                probe_at = self.probed.get(target, 0.0) + PROBE_EVERY
                if now < probe_at:
                    self.spool.defer(seqs, min(self.resting[target], probe_at))
                    continue
                self.probed[target] = now  # ...but a new event probes it now and then: it may be back
            limit = self.batch_size.get(target, len(batch))
            if len(batch) > limit:  # the rest goes once this part is through
                later = seqs[limit:]
                self.spool.defer(later, now + self.LEASE)
                self.held.setdefault(target, []).extend(later)
                batch, seqs = batch[:limit], seqs[:limit]
            self.spool.defer(seqs, now + self.LEASE)
            runs = sum(1 for r in batch if r[7] == "finish")
            dropped, dropped_at = (0, None) if self._drops_in_flight() else self.spool.dropped("agent")
            _, url, key = target
            future = self.pool.submit(_post_batch, url, key, [r[5] for r in batch],
                                      (spool_id(self.spool), max(left - runs, 0)), dropped, dropped_at)
            self.inflight[target] = (future, (batch, dropped))

    def _events_answered(self, target: AgentTarget, future: Future[AgentAnswer], carried: AgentCarried) -> None:
        batch, dropped = carried
        _, url, _key = target
        seqs = [r[0] for r in batch]
        try:
            answer, drops_taken = future.result()
        except TooLarge as exc:
            if len(batch) > 1:  # the agent's max_batch or body limit is smaller: halve and go on at once
                self.batch_size[target] = len(batch) // 2
                self.spool.defer(seqs, 0.0)
                log.info("agent %s takes smaller batches (%s): sending at most %d events at a time",
                         redact_url(url), redact_url(str(exc)), self.batch_size[target])
            else:  # one event larger than the agent takes: it never will
                self.spool.bury(seqs[0], str(exc))
                log.warning("agent %s refused an event of bot %r run %s for its size: %s", redact_url(url),
                            batch[0][1], batch[0][2], redact_url(str(exc)))
            self._release(target, 0.0)
            return
        except Rejected as exc:
            for seq in seqs:
                self.spool.bury(seq, str(exc))
            log.warning("agent %s refused %d event(s): %s", redact_url(url), len(batch), redact_url(str(exc)))
            self._release(target, 0.0)
            return
        except Exception as exc:  # unreachable, timed out, a broken answer: all retried later
            attempts = max(r[6] for r in batch)
            delay = backoff(attempts)
            self.spool.retry_later(seqs, f"{type(exc).__name__}: {exc}", delay)
            self.failed += len(batch)
            if attempts == 0:
                log.warning("agent %s did not take the events (%s); %d event(s) wait in %s and will be retried",
                            redact_url(url), redact_url(str(exc)), len(batch), self.spool.path)
            self._release(target, time.time() + delay)
            return
        refused = {item.get("index"): item.get("error") for item in answer.get("rejected", [])}
        for i, r in enumerate(batch):
            if i in refused:
                self.spool.bury(r[0], str(refused[i]))
                log.warning("agent refused event for bot %r run %s: %s", r[1], r[2], refused[i])
        self.spool.delivered([r[0] for i, r in enumerate(batch) if i not in refused])
        self._progress(len(batch) - len(refused))
        self._pull_forward(target)
        if drops_taken:
            self.spool.dropped_reported("agent", dropped)
            log.warning("reported %d event(s) dropped from the full spool %s to the agent %s",
                        dropped, self.spool.path, redact_url(url))
        self._release(target, 0.0)

    def _pull_forward(self, target: AgentTarget) -> None:
        """The target answered: its events still waiting out a backoff (this deliverer's or an
        earlier one's, which gave up) are due now, not at the end of a backoff it no longer needs."""
        in_flight = {r[0] for t, (_f, carried) in self.inflight.items() if t[0] == "agent"
                     for r in cast("AgentCarried", carried)[0]}
        targets: dict[tuple[str | None, str | None, str], AgentTarget] = {}
        due = []
        for seq, bot, agent_url, config in self.spool.waiting(time.time()):
            key = (agent_url, config, bot)
            if key not in targets:
                targets[key] = ("agent", agent_url_for(agent_url, config), agent_key_for(config, bot))
            if targets[key] == target and seq not in in_flight:
                due.append(seq)
        if due:
            self.spool.defer(due, 0.0)
            self.held.pop(target, None)

    def _drops_in_flight(self) -> bool:
        """The count of dropped events goes with one request at a time (else it could be counted twice)."""
        return any(t[0] == "agent" and cast("AgentCarried", carried)[1] > 0
                   for t, (_f, carried) in self.inflight.items())

    def _release(self, target: AgentTarget, resting_until: float) -> None:
        """The target's request ended: its events held back meanwhile are due at `resting_until`
        (0: now; else the end of the target's backoff)."""
        if resting_until:  # a failed probe does not shorten the backoff the target is in
            self.resting[target] = max(self.resting.get(target, 0.0), resting_until)
        else:
            self.resting.pop(target, None)
        self.spool.defer(self.held.pop(target, []), resting_until)

    # -- Pushgateways -------------------------------------------------------------------------------
    def _publish_remote(self, now: float) -> None:
        due: dict[str, list[Totals]] = {}
        for totals in self.spool.totals_due(now):
            if not totals["target"].startswith("textfile:"):
                due.setdefault(totals["target"], []).append(totals)
        for name, rows in due.items():
            target: TotalsTarget = ("totals", name)
            if target in self.inflight:
                continue
            if any(r["attempts"] for r in rows):
                # the target was away and may have come back empty (a restarted Pushgateway without
                # persistence): every group is published again, from the complete totals
                self.spool.republish_all(name)
                rows = [r for r in self.spool.totals_due(now) if r["target"] == name]
            self.spool.defer_totals(name, [r["bot"] for r in rows], now + self.LEASE)
            self.inflight[target] = (self.pool.submit(_publish_rows, name, rows), rows)

    def _totals_answered(self, target: TotalsTarget, future: Future[TotalsAnswer], rows: list[Totals]) -> None:
        name = target[1]
        published, error = future.result()
        for totals in rows[:published]:
            self.spool.published(name, totals["bot"], totals)
            if totals["attempts"]:
                log.info("%s reachable again: published the totals of %r", redact_url(name),
                         totals["bot"] or "the spool")
        self._progress(published)
        if error is None:
            if published:
                self.spool.totals_due_now(name)  # reachable: what waited out its backoff goes now
            return
        waiting = rows[published:]
        attempts = max(r["attempts"] for r in waiting)
        self.spool.publish_later(name, [r["bot"] for r in waiting], f"{type(error).__name__}: {error}",
                                 backoff(attempts))
        self.failed += len(waiting)
        if attempts == 0:
            log.warning("%s unreachable (%s); the totals of %d bot(s) wait in %s and will be published again",
                        redact_url(name), redact_url(str(error)), len(waiting), self.spool.path)


def _post_batch(url: str, key: str | None, events: list[str], spool: tuple[str, int], dropped: int,
                dropped_at: float | None) -> AgentAnswer:
    """(the agent's answer, whether it took the count of dropped events). Runs in a worker.

    The drops go alone, after the batch: an agent that does not know the event must not refuse
    the runs with it. The count stays in the spool until an agent takes it."""
    answer = post_events(url, events, key=key, spool=spool)
    if dropped <= 0:
        return answer, False
    event = {"type": "spool_dropped", "count": dropped, "time": dropped_at or time.time(), "host": runrecord.host(),
             "source": "spool"}
    try:
        post_events(url, [json.dumps(event)], key=key)
    except (Rejected, OSError, ValueError) as exc:
        log.warning("could not report %d dropped event(s) to the agent %s (%s); the count is kept", dropped,
                    redact_url(url), redact_url(str(exc)))
        return answer, False
    return answer, True


def _publish_rows(target: str, rows: list[Totals]) -> TotalsAnswer:
    """Publish totals rows in order until one fails: (how many were published, the error). Runs in a worker."""
    for i, totals in enumerate(rows):
        try:
            publish(target, totals)
        except Exception as exc:
            return i, exc
    return len(rows), None


def publish_local(spool: Spool, now: float | None = None, target: str | None = None) -> int:
    """Write the due totals of textfile targets (all, or just `target`) now: a local write has no
    reason to queue. Done inside a spool transaction, so that a wrapper and the deliverer writing
    the same file take turns and the newest totals are written last. Returns the files written."""
    now = time.time() if now is None else now

    def mine(totals: Totals) -> bool:
        name: str = totals["target"]
        return name.startswith("textfile:") and (target is None or name == target)

    if not any(mine(t) for t in spool.totals_due(now)):
        return 0  # the common case: no write lock taken
    written = 0
    with spool.transaction():
        for totals in filter(mine, spool.totals_due(now)):
            name = totals["target"]
            try:
                publish(name, totals)
            except Exception as exc:
                spool.publish_later(name, [totals["bot"]], f"{type(exc).__name__}: {exc}", backoff(totals["attempts"]))
                if not totals["attempts"]:
                    log.warning("%s not writable (%s); the totals of %r wait in %s and will be written again",
                                name, redact_url(str(exc)), totals["bot"] or "the spool", spool.path)
                continue
            spool.published(name, totals["bot"], totals)
            written += 1
    return written


def deliver_once(spool: Spool, now: float | None = None) -> tuple[int, int]:
    """Send every ready event and publish due totals, waiting for every answer; returns
    (delivered, failed). Raises nothing for network errors."""
    deliverer = Deliverer(spool)
    try:
        deliverer.step(now)
        deliverer.drain()
        spool.fold(apply_finished)
    finally:
        deliverer.close()
    return deliverer.delivered, deliverer.failed


# -- targets without an agent: totals -------------------------------------------------------

def apply_finished(totals: Totals, event_json: str) -> None:
    """Fold one finished run into its bot's totals, as the agent's state does (state.BotRuntime)."""
    ev = json.loads(event_json)
    failures = totals["failures"]
    for reason in REASONS:
        failures.setdefault(reason, 0)
    if len(totals["buckets"]) != len(DURATION_BUCKETS):
        totals["buckets"] = (list(totals["buckets"]) + [0] * len(DURATION_BUCKETS))[:len(DURATION_BUCKETS)]
    ended, started, outcome = ev.get("ended"), ev.get("started"), ev.get("outcome")
    totals["host"] = ev.get("host") or totals["host"]
    dur = max(0.0, ended - started) if ended is not None and started is not None else None
    if count_finished_run(totals, totals["buckets"], dur, outcome, ev.get("reason"), ended):
        totals["last_exit_status"] = ev.get("exit_status")


def publish(target: str, totals: Totals) -> None:
    """Publish one bot's totals (or the spool's own) to a Pushgateway or a textfile directory."""
    kind, _, where = target.partition(":")
    if kind == "pushgateway":
        # botwatch.exporters is exporters/, mapped in by the install: a checker reading agent/ as the
        # package `agent` cannot find it
        from botwatch.exporters.pushgateway import push_totals  # type: ignore[import-not-found]

        push_totals(where, totals, runrecord.host())
    elif kind == "textfile":
        from botwatch.exporters.textfile import write_totals  # type: ignore[import-not-found]

        write_totals(where, totals)
    else:
        raise ValueError(f"unknown target {target!r}")


def spool_id(spool: Spool) -> str:
    """Which spool a batch comes from, for the agent's backlog gauge: host and a hash of the
    path (the path itself, a user's home, stays on the host)."""
    return f"{runrecord.host()}:{hashlib.sha1(os.path.abspath(spool.path).encode()).hexdigest()[:12]}"


def run_deliverer(spool_path: str, patience: float, lock: IO[bytes] | None = None) -> int:
    """Deliver until the spool is empty or nothing succeeded for `patience` seconds."""
    lock = lock or lock_exclusive(spool_path + ".lock")
    while lock is not None:
        try:
            spool = Spool(spool_path, warn=log.warning)
            try:
                gave_up, seen = _deliver_until_empty(spool, patience)
            finally:
                spool.close()
        finally:
            lock.close()
        # An event spooled while we were finishing (or giving up) found the lock taken, and its
        # own deliverer left it to us: look once more.
        check = Spool(spool_path)
        try:
            if check.newest_seq() <= seen and (gave_up or check.next_attempt_at() is None):
                return 0
        finally:
            check.close()
        lock = lock_exclusive(spool_path + ".lock")
    return 0  # another deliverer is at work and will see our events


POLL = 0.2  # how often a deliverer waiting on a backoff looks for newly spooled events


def _deliver_until_empty(spool: Spool, patience: float) -> tuple[bool, int]:
    """(gave up: nothing delivered and nothing new spooled for `patience` seconds, else all is
    done; the latest event it saw spooled).

    Between passes it waits for the first of: an answer from a target, the next retry due, or
    a new event written to the spool (SQLite's data_version changes with every other writer's
    commit), so a new run for a reachable target never waits out another target's backoff."""
    deliverer = Deliverer(spool)
    try:
        while os.path.exists(spool.path):
            deliverer.step()
            nxt = spool.next_attempt_at()
            if nxt is None and not deliverer.inflight:
                return False, deliverer.newest
            if time.time() - deliverer.last_progress > patience:
                deliverer.drain()  # a request in flight may yet succeed: its answer counts first
                if time.time() - deliverer.last_progress > patience:
                    log.warning("giving up for now: %d run(s) or bot totals stay in %s until the next run",
                                spool.pending(), spool.path)
                    return True, deliverer.newest
                continue
            deadline = min(nxt if nxt is not None else math.inf, time.time() + MAX_BACKOFF)
            version = spool.data_version()
            while time.time() < deadline and spool.data_version() == version:
                wait = min(POLL, max(0.0, deadline - time.time()))
                if deliverer.inflight:
                    if deliverer.collect(timeout=wait):
                        break
                else:
                    time.sleep(wait)
        return True, deliverer.newest
    finally:
        deliverer.drain()
        deliverer.close()


class _RedactingFormatter(logging.Formatter):
    """No URL's user:password@ reaches spool.log, whatever line or traceback carries it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


def main(argv: list[str] | None = None, lock: IO[bytes] | None = None) -> int:
    """`python -m botwatch.deliver [--spool PATH] [--patience SECONDS]` (started by the wrapper)."""
    args = sys.argv[1:] if argv is None else argv
    opts = {"--spool": default_spool_path(), "--patience": os.environ.get("BOTWATCH_DELIVERY_PATIENCE", "600")}
    for flag, value in zip(args[::2], args[1::2]):
        if flag not in opts:
            print("usage: python -m botwatch.deliver [--spool PATH] [--patience SECONDS]", file=sys.stderr)
            return 2
        opts[flag] = value
    spool_path = opts["--spool"]
    if not logging.getLogger().handlers:  # as logging.basicConfig: a host process's logging stays its own
        log_path = os.path.splitext(spool_path)[0] + ".log"
        try:
            create_private(log_path)  # 0600 before logging opens it: it names bots, runs and agents
        except OSError:
            pass  # opening it says why
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        return run_deliverer(spool_path, float(opts["--patience"]), lock)
    except Exception:
        log.exception("delivery failed")
        return 1
