"""Estate state: applies events to per-bot aggregates and computes each bot's state.

State that depends on time (late, down) is computed from timestamps when read, as
Healthchecks does; `sweep()` records the resulting changes as flips in the journal. Every
finished run and flip is committed to the journal before `apply()` returns, and the whole
state is rebuilt from the journal on start.

Around it: `enrich.py` (what is added to a run before it is aggregated), `selfstats.py` (the
agent's counts about itself), `registries.py` (spool backlogs, the process sweep's findings) and
`readmodel.py` (the snapshots exporters read).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypedDict

from ..core.classify import Classifier
from ..config.estate import BotConfig, Estate, Limits
from .enrich import RUN_FINISHED, STEP_FINISHED, BotContext, enriched
from ..core.events import (Event, FailureNoted, LogNoted, ResourceSample, RunFinished, RunStarted, SpoolDropped,
                     StepFinished, UiLookup, UiSnapshot)
from .journal import Flip, Journal
from .readmodel import BotView
from ..core.host import hostname
from .controlplanes import ControlPlanes
from .workqueues import ItemTotals, WorkQueues
from .registries import ProcessSweep, SpoolBacklogs
from ..core.schedule import maintenance_at, maintenance_changes_at, next_due
from .selfstats import SelfStats
from ..sources import registry
from ..core import vocabulary
from ..core.vocabulary import DURATION_BUCKETS, LOOKUP_KINDS, REASONS, UI_WAIT_BUCKETS, bucket_index, count_finished_run

STATES = vocabulary.STATES
UI_FAILURE_KINDS = LOOKUP_KINDS
OTHER_SCREEN = "other"
# The `source` label of botwatch_agent_events_total: the agent's own sources and its clients'
# (EVENT_SOURCES, from the source registry). A client may send any source name; names outside
# this set are counted as "other", so that they cannot grow the label's values without end.


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "EVENT_SOURCES":  # read when asked: source modules loaded later add their labels
        return registry.event_labels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


log = logging.getLogger("botwatch.state")


# Each bot's record carries a version from this counter, new whenever anything it holds changes
# (a record is copied before it is changed, and the copy gets the next version): an exporter keeps
# what it rendered for a bot until the bot's version or the clock says it is out of date.
_versions = itertools.count(1)


def next_version() -> int:
    return next(_versions)


def bounded_label(value: str, max_length: int) -> str:
    """`value`, or when longer than `max_length`, its head and a hash of the whole (distinct
    values stay distinct, the label stays bounded)."""
    if len(value) <= max_length:
        return value
    digest = hashlib.blake2s(value.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{value[:max_length - 9]}~{digest}"


@dataclass
class UiScreen:
    """Selector health of one screen of one bot."""

    lookups: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UI_FAILURE_KINDS, 0))
    healed: int = 0
    wait_buckets: list[int] = field(default_factory=lambda: [0] * len(UI_WAIT_BUCKETS))
    wait_sum: float = 0.0
    wait_count: int = 0
    # snapshot drift, per kind of snapshot (html, a11y, png): (score, time, baseline time)
    drift: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)
    # elements each declared selector matched in the latest snapshot, per kind (html, a11y)
    selector_matches: dict[str, dict[str, int]] = field(default_factory=dict)

    def observe_snapshot(self, kind: str, time_: float, score: float, baseline_time: float | None,
                         selectors: dict[str, int] | None) -> None:
        old = self.drift.get(kind)
        if old is not None and old[1] > time_:
            return  # a replayed older snapshot does not replace the latest
        self.drift[kind] = (float(score), time_, baseline_time)
        if kind != "png" and selectors is not None:
            self.selector_matches[kind] = {str(k): int(v) for k, v in selectors.items()}

    @property
    def drift_score(self) -> float | None:
        """The highest of the latest scores of each kind of snapshot."""
        return max(d[0] for d in self.drift.values()) if self.drift else None

    @property
    def baseline_time(self) -> float | None:
        """The oldest baseline the latest snapshots were compared with."""
        times = [d[2] for d in self.drift.values() if d[2] is not None]
        return min(times) if times else None

    @property
    def declared_matches(self) -> dict[str, int]:
        """From the latest HTML snapshot, else the latest accessibility tree."""
        return self.selector_matches.get("html") or self.selector_matches.get("a11y") or {}

    def observe(self, ev: UiLookup) -> None:
        self.lookups += 1
        if not ev.found:
            self.failures[ev.kind or LOOKUP_KINDS[0]] += 1
        if ev.healed:
            self.healed += 1
        if ev.wait is not None:
            self.wait_sum += ev.wait
            self.wait_count += 1
            i = bucket_index(ev.wait, UI_WAIT_BUCKETS)
            if i is not None:
                self.wait_buckets[i] += 1

    def copy(self) -> "UiScreen":
        return UiScreen(self.lookups, dict(self.failures), self.healed, list(self.wait_buckets), self.wait_sum,
                        self.wait_count, dict(self.drift), {k: dict(v) for k, v in self.selector_matches.items()})


@dataclass
class BotRuntime:
    """Everything known about one bot, aggregated from its events."""

    cfg: BotConfig
    first_seen: float
    runs_total: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    last_run_started: float | None = None
    last_run_end: float | None = None
    last_run_duration: float | None = None
    last_outcome: str | None = None
    last_reason: str | None = None
    last_success: float | None = None
    last_failure: float | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    failing_latched: bool = False  # failing until `recovery_threshold` successes in a row
    platform_scheduled: bool = False  # its control plane starts it on a schedule
    active: dict[str, float] = field(default_factory=dict)  # run id -> start time
    active_cpu: dict[str, float] = field(default_factory=dict)  # run id -> cpu seconds so far
    active_rss: dict[str, int] = field(default_factory=dict)
    active_procs: dict[str, int] = field(default_factory=dict)  # run id -> processes in its tree
    cpu_seconds_done: float = 0.0
    recent_finished: dict[str, None] = field(default_factory=dict)  # bounded, insertion-ordered
    noted_reasons: dict[str, str] = field(default_factory=dict)  # run id -> reason the bot declared
    ui: dict[str, UiScreen] = field(default_factory=dict)
    ui_screens_overflowed: int = 0
    labels_shortened: int = 0  # screen names longer than limits.max_label_length
    ui_misses: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # run id -> last failed look-up
    last_ui_failure: tuple[str | None, str | None] | None = None  # (screen, selector) of the latest ui_drift failure
    steps_total: int = 0
    items_processed_total: int = 0  # work items the runs reported (botwatch_bot_items)
    items_failed_total: int = 0
    empty_runs_total: int = 0  # successes that processed fewer items than min_items
    last_empty: bool = False  # the latest run was an empty one
    last_log: str | None = None
    missed_runs_total: int = 0
    recorded_state: str = "new"
    last_run: tuple[str, float] | None = None  # (run id, end) of the latest finished run
    last_failed_run: tuple[str, str, float] | None = None  # (run id, reason, end) of the latest failed run
    version: int = field(default_factory=next_version)  # see next_version
    _due_memo: tuple[float, float | None] | None = None

    # -- time-derived views ---------------------------------------------------------------
    def reference_time(self, after_maintenance: float | None = None) -> float:
        """The latest sign of life (a run start, else a run end), or the registration time, or
        the end of the latest maintenance window: the next run is expected one schedule step
        after it."""
        ref = self.last_run_started if self.last_run_started is not None else self.last_run_end
        if ref is None:
            ref = self.first_seen
        if self.active:
            ref = max(ref, max(self.active.values()))
        if after_maintenance is not None:
            ref = max(ref, after_maintenance)
        return ref

    def next_due(self, after_maintenance: float | None = None) -> float | None:
        ref = self.reference_time(after_maintenance)
        if self._due_memo is None or self._due_memo[0] != ref:
            due = next_due(after=ref, schedule=self.cfg.schedule, every=self.cfg.every, timezone=self.cfg.timezone)
            self._due_memo = (ref, due)
        return self._due_memo[1]

    def maintenance(self, now: float) -> tuple[bool, float | None]:
        if not self.cfg.maintenance:
            return False, None
        return maintenance_at(now, self.cfg.maintenance, self.cfg.timezone)

    def status(self, now: float) -> tuple[str, float, str]:
        """(state, since, why) at `now`, from timestamps only."""
        if self.cfg.paused:
            return "paused", self.first_seen, "paused in the estate file"
        in_window, window_end = self.maintenance(now)
        if in_window:
            return "paused", now, "in a maintenance window"
        due = self.next_due(window_end)
        if due is not None and not self.active:
            if now > due + self.cfg.grace:
                return "down", due + self.cfg.grace, f"missed schedule: due {_iso(due)}, grace {int(self.cfg.grace)}s"
        if self.failing_latched:
            why = (f"{self.consecutive_failures} consecutive failure(s), last reason {self.last_reason}"
                   if self.consecutive_failures else
                   f"recovering: {self.consecutive_successes} of {self.cfg.recovery_threshold} successes in a row")
            return "failing", self.last_failure or now, why
        if due is not None and not self.active and now > due:
            return "late", due, f"due {_iso(due)}, within grace"
        if self.runs_total == 0:
            return "new", self.first_seen, "no run recorded yet"
        return "up", self.last_success or self.last_run_end or now, "last run succeeded"

    # -- event application ----------------------------------------------------------------
    def observe_started(self, run_id: str, at: float) -> None:
        # a start delivered after its own finish (replays) must not resurrect the run
        if run_id not in self.recent_finished:
            self.active.setdefault(run_id, at)

    def observe_finished(self, run: RunFinished) -> None:
        self.recent_finished[run.run_id] = None
        if len(self.recent_finished) > 256:
            del self.recent_finished[next(iter(self.recent_finished))]
        self.noted_reasons.pop(run.run_id, None)
        self.active.pop(run.run_id, None)
        self.active_rss.pop(run.run_id, None)
        last_cpu = self.active_cpu.pop(run.run_id, None)
        self.active_procs.pop(run.run_id, None)
        if run.cpu_seconds:
            self.cpu_seconds_done += run.cpu_seconds
        elif last_cpu:  # sampled while running, its end unmeasured (a log, a check-in): the counter keeps it
            self.cpu_seconds_done += last_cpu
        self.ui_misses.pop(run.run_id, None)
        self.items_processed_total += run.items_processed or 0
        self.items_failed_total += run.items_failed or 0
        if run.empty:
            self.empty_runs_total += 1
        if run.outcome == "failure" and run.ended is not None and run.ended >= (self.last_failure or 0.0):
            self.last_failed_run = (run.run_id, run.reason if run.reason in REASONS else "unknown", run.ended)
        # the counting rules a bot host's totals share; a replayed older run does not rewrite "last"
        if count_finished_run(vars(self), self.bucket_counts, run.duration, run.outcome, run.reason, run.ended):
            self.last_reason = run.reason if run.outcome == "failure" else None
            self.last_run = (run.run_id, run.ended)
            self.last_empty = run.empty
            if run.outcome == "failure" and run.reason == "ui_drift":
                self.last_ui_failure = (run.screen, run.selector)
            if run.started is not None:
                self.last_run_started = max(self.last_run_started or 0.0, run.started)
            if run.outcome == "failure":
                self.consecutive_successes = 0
                if self.consecutive_failures >= self.cfg.failure_threshold:
                    self.failing_latched = True
            elif run.outcome == "success":
                self.consecutive_successes += 1
                if self.consecutive_successes >= self.cfg.recovery_threshold:
                    self.failing_latched = False

    def note_failure(self, run_id: str, reason: str) -> None:
        self.noted_reasons[run_id] = reason
        if len(self.noted_reasons) > 256:
            del self.noted_reasons[next(iter(self.noted_reasons))]

    def ui_screen(self, screen: str, limits: Limits) -> UiScreen:
        """The screen's record; past `max_screens` screens, "other" (the overflow is counted, not
        lost). Screens declared under `ui.screens` in the estate are always their own."""
        if len(screen) > limits.max_label_length:  # a label value: bounded, counted
            screen = bounded_label(screen, limits.max_label_length)
            self.labels_shortened += 1
        if screen not in self.ui and len(self.ui) >= limits.max_screens and screen not in self.cfg.ui.screens:
            screen = OTHER_SCREEN  # bounded label values
            self.ui_screens_overflowed += 1
        got = self.ui.get(screen)
        if got is None:
            got = self.ui[screen] = UiScreen()
        return got

    def observe_ui(self, ev: UiLookup, limits: Limits) -> None:
        self.ui_screen(ev.screen, limits).observe(ev)
        if not ev.found and ev.run_id:
            self.ui_misses[ev.run_id] = (ev.screen, ev.selector)
            if len(self.ui_misses) > 256:
                del self.ui_misses[next(iter(self.ui_misses))]

    def observe_snapshot(self, ev: UiSnapshot, limits: Limits) -> None:
        self.ui_screen(ev.screen, limits).observe_snapshot(ev.kind, ev.time, ev.score, ev.baseline_time,
                                                                ev.selectors)

    @property
    def cpu_seconds_total(self) -> float:
        return self.cpu_seconds_done + sum(self.active_cpu.values())

    @property
    def resident_memory_bytes(self) -> int:
        return sum(self.active_rss.values())

    @property
    def processes(self) -> int:
        """Processes in the trees of the active runs (as last sampled)."""
        return sum(self.active_procs.values())

    def next_change(self, now: float) -> float:
        """The earliest time from `now` on after which what `status`, the exported next due time
        or `hung` say may differ from what they say at `now`, unless an event changes the bot
        first (inf: never). Earlier is harmless; never later (tests/test_fragments.py)."""
        times = []
        if self.cfg.max_runtime is not None and self.active:
            times.append(min(self.active.values()) + self.cfg.max_runtime)  # hung after it
        if not self.cfg.paused:
            window_end = None
            if self.cfg.maintenance:
                times.append(maintenance_changes_at(now, self.cfg.maintenance, self.cfg.timezone))
                window_end = self.maintenance(now)[1]
            due = self.next_due(window_end)
            if due is not None:
                times += (due, due + self.cfg.grace)  # late after the first, down after the second
        return min((t for t in times if t >= now), default=float("inf"))

    def hung(self, now: float) -> bool:
        """The oldest active run has been running longer than `max_runtime` (any source)."""
        if self.cfg.max_runtime is None or not self.active:
            return False
        return now - min(self.active.values()) > self.cfg.max_runtime

    def withdraw(self, run_id: str, into: str | None = None) -> None:
        """Forget an active run without recording it. Its samples move to the active run `into`
        if given, else its CPU time so far stays counted."""
        if run_id not in self.active:
            return
        cpu = self.active_cpu.pop(run_id, 0.0)
        rss = self.active_rss.pop(run_id, None)
        procs = self.active_procs.pop(run_id, None)
        self.active.pop(run_id, None)
        if into is not None and into in self.active:
            self.active_cpu[into] = max(self.active_cpu.get(into, 0.0), cpu)
            if rss is not None:
                self.active_rss[into] = rss
            if procs is not None:
                self.active_procs[into] = procs
        else:
            self.cpu_seconds_done += cpu


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Rejected(TypedDict):
    """An event the state did not take: its index in the batch, and why."""

    index: int
    error: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)


class UnknownBot(Exception):
    pass


class EstateState:
    """The one source of truth every exporter renders."""

    def __init__(self, estate: Estate, journal: Journal | None = None, *,
                 clock: Callable[[], float] = time.time, classifier: Classifier | None = None):
        self.estate = estate
        self.journal = journal
        self.clock = clock
        self.classifier = classifier or Classifier.for_estate(estate)
        self.lock = threading.RLock()
        self.host = hostname()  # the name the wrapper, deliverer and SDK record, on every platform
        self.bots: dict[str, BotRuntime] = {}
        # under the state's lock, so that a reader sees them and the bots of the same moment
        self.stats = SelfStats(self.lock)
        self.spools = SpoolBacklogs(self.lock, clock)
        self.process_sweep = ProcessSweep(self.lock)
        self.controlplanes = ControlPlanes(self.lock, clock)
        self.workqueues = WorkQueues(self.lock, clock)
        # called with the runs and steps of every applied batch, after they are journaled (run traces)
        self.listeners: list[Callable[[list[Event]], None]] = []
        self._ui_seq = 0  # the latest UI drift row of the journal applied (see _sync_ui)
        self._load()

    # -- startup ---------------------------------------------------------------------------
    def _load(self) -> None:
        now = self.clock()
        first_seen = self.journal.first_seen() if self.journal else {}
        for cfg in self.estate.bots:
            self.bots[cfg.name] = BotRuntime(cfg=cfg, first_seen=first_seen.get(cfg.name, now))
        if not self.journal:
            return
        if not self.journal.readonly:
            with self.journal.transaction() as j:
                for name in self.bots:
                    j.ensure_bot(name, now)
        for run in self.journal.iter_runs():
            bot = self.bots.get(run.bot)
            if bot is not None:  # runs of bots since removed from the estate stay in the journal
                bot.observe_finished(run)
        self.workqueues.restore(self.journal.queue_item_days())
        for name, n in self.journal.flip_counts("down").items():
            if name in self.bots:
                self.bots[name].missed_runs_total = n
        for name, flip in self.journal.last_flips().items():
            if name in self.bots:
                self.bots[name].recorded_state = flip.new_state
        self._sync_ui()

    # -- ingest ----------------------------------------------------------------------------
    # the agent's counts about itself (SelfStats), as its sources, server and exporters call them
    def count_event(self, source: str, n: int = 1) -> None:
        self.stats.count_event(source, n)

    def count_parse_error(self, source: str, n: int = 1) -> None:
        self.stats.count_parse_error(source, n)

    def count_dropped(self, source: str, n: int = 1) -> None:
        self.stats.count_dropped(source, n)

    def count_ignored(self, source: str, n: int = 1) -> None:
        """Events of a type this agent does not know (sent by a newer client): taken, not applied."""
        self.stats.count_ignored(source, n)

    def count_export_failure(self, exporter: str, n: int = 1) -> None:
        self.stats.count_export_failure(exporter, n)

    @property
    def parse_errors_total(self) -> dict[str, int]:
        return self.stats.parse_errors

    @property
    def export_failures_total(self) -> dict[str, int]:
        return self.stats.export_failures

    def apply(self, events: Iterable[Event], offsets: dict[str, tuple[str, int]] | None = None) -> IngestResult:
        """Apply a batch atomically: journal first, memory after the commit succeeded.

        `offsets` (log readers: key -> (file identity, offset)) are committed in the same
        transaction, so a restart neither re-reads nor skips what the batch came from.

        Raises JournalError if the journal cannot be written; nothing is applied then, so the
        sender keeps the batch and retries.
        """
        result = IngestResult()
        now = self.clock()
        with self.lock:
            staged: dict[str, BotRuntime] = {}
            flips: list[Flip] = []
            runs: list[RunFinished] = []
            snaps: list[UiSnapshot] = []
            ordered: list[Event] = []  # the runs and steps, in batch order, for the listeners
            duplicates: set[int] = set()  # ids of the runs the journal already had
            for i, ev in enumerate(events):
                self.stats.count_event(ev.source)
                if isinstance(ev, SpoolDropped):
                    self.stats.count_dropped("spool", ev.count)
                    result.accepted += 1
                    continue
                base = self.bots.get(ev.bot) or staged.get(ev.bot) or self._auto_register(ev.bot, now)
                if base is None:
                    if self.estate.agent.auto_register and len(self.bots) >= self.estate.agent.limits.max_bots:
                        # a cardinality guard: a flood of new names must not grow the series without end
                        self.stats.count_dropped("bot_limit")
                        error = (f"unknown bot {ev.bot!r}: the agent already has agent.limits.max_bots "
                                 f"({self.estate.agent.limits.max_bots}) bots; not registered")
                    else:
                        error = f"unknown bot {ev.bot!r}: not in the estate file (or switch on agent.auto_register)"
                    result.rejected.append({"index": i, "error": error})
                    continue
                bot = staged.get(ev.bot)
                if bot is None:
                    bot = staged[ev.bot] = _copy_runtime(base)
                if isinstance(ev, RunFinished):
                    ev = enriched(ev, RUN_FINISHED, self._context(bot))
                    runs.append(ev)
                    ordered.append(ev)
                elif isinstance(ev, RunStarted):
                    bot.observe_started(ev.run_id, ev.time)
                    result.accepted += 1
                elif isinstance(ev, ResourceSample):
                    if ev.run_id in bot.active:
                        bot.active_cpu[ev.run_id] = ev.cpu_seconds
                        bot.active_rss[ev.run_id] = ev.rss_bytes
                        bot.active_procs[ev.run_id] = ev.processes
                    result.accepted += 1
                elif isinstance(ev, FailureNoted):
                    bot.note_failure(ev.run_id, ev.reason)
                    result.accepted += 1
                elif isinstance(ev, UiLookup):
                    bot.observe_ui(ev, self.estate.agent.limits)
                    result.accepted += 1
                elif isinstance(ev, UiSnapshot):
                    snaps.append(ev)
                elif isinstance(ev, StepFinished):
                    ev = enriched(ev, STEP_FINISHED, self._context(bot))
                    bot.steps_total += 1
                    ordered.append(ev)
                    result.accepted += 1
                elif isinstance(ev, LogNoted):
                    bot.last_log = ev.excerpt[-2048:]
                    result.accepted += 1
            if self.journal is not None and (runs or offsets or snaps):
                with self.journal.transaction() as j:
                    for key, (identity, offset) in (offsets or {}).items():
                        j.set_offset(key, identity, offset, now)
                    for sn in snaps:
                        j.set_ui_drift(sn.bot, sn.screen, sn.kind, time=sn.time, score=sn.score,
                                       baseline_time=sn.baseline_time, run_id=sn.run_id, selectors=sn.selectors,
                                       source=sn.source)
                    for run in runs:
                        if j.insert_run(run, now):
                            staged[run.bot].observe_finished(run)
                            result.accepted += 1
                        else:
                            result.duplicates += 1
                            duplicates.add(id(run))
                    flips = self._flips_for(staged, now)
                    for f in flips:
                        j.insert_flip(f)
            else:
                for run in runs:
                    staged[run.bot].observe_finished(run)
                    result.accepted += 1
                flips = self._flips_for(staged, now)
            for sn in snaps:  # journaled (or no journal): now in memory
                staged[sn.bot].observe_snapshot(sn, self.estate.agent.limits)
                result.accepted += 1
            self.bots.update(staged)
            if self.listeners and ordered:
                self._notify(ordered, duplicates)
        return result

    def _context(self, bot: BotRuntime) -> BotContext:
        return BotContext(bot.cfg, self.classifier, bot.noted_reasons, bot.ui_misses)

    def _notify(self, ordered: list[Event], duplicates: set[int]) -> None:
        """Tell the listeners of the batch's steps and newly recorded runs (a run the journal
        already had is not news). A listener's error is logged; it never undoes the batch."""
        news = [ev for ev in ordered if id(ev) not in duplicates]
        for listener in self.listeners:
            try:
                listener(news)
            except Exception:
                log.exception("a state listener failed")

    def register_platform_bot(self, name: str, platform: str, team: str | None, owner: str | None = None,
                              scheduled: bool | None = None) -> bool:
        """A bot a control-plane source found (an Orchestrator process...): registered with its
        platform, team and owner unless the estate file has it; False when agent.limits.max_bots
        is reached (counted as dropped). A bot registered before a restart gets them back.
        `scheduled`: whether the platform starts it on a schedule (None: not known from this)."""
        owner = owner[:254] if owner else None
        with self.lock:
            bot = self.bots.get(name)
            if bot is not None:
                bot.version = next_version()  # changed in place below
                if scheduled is not None:
                    bot.platform_scheduled = scheduled or bot.platform_scheduled
                if self.estate.bot(name) is None and (bot.cfg.platform, bot.cfg.team, bot.cfg.owner) != (
                        platform, team, owner or bot.cfg.owner):
                    try:
                        bot.cfg = BotConfig(name=name, platform=platform, team=team, owner=owner or bot.cfg.owner)
                    except ValueError:  # an owner the estate file would refuse: kept without it
                        bot.cfg = BotConfig(name=name, platform=platform, team=team)
                return True
            if len(self.bots) >= self.estate.agent.limits.max_bots:
                self.stats.count_dropped("bot_limit")
                return False
            try:
                cfg = BotConfig(name=name, platform=platform, team=team, owner=owner)
            except ValueError:
                try:
                    cfg = BotConfig(name=name, platform=platform, team=team)
                except ValueError:
                    return False
            now = self.clock()
            bot = self.bots[name] = BotRuntime(cfg=cfg, first_seen=now)
            bot.platform_scheduled = bool(scheduled)
            if self.journal is not None:
                # registered before a restart: its runs are on record (the source found it again)
                for run in self.journal.iter_runs(name):
                    bot.observe_finished(run)
                if not self.journal.readonly:
                    with self.journal.transaction() as j:
                        j.ensure_bot(name, now)
            return True

    # the control planes' health, requests, webhooks and unregistered processes (ControlPlanes)
    def note_connection(self, platform: str, connection: str, up: bool) -> None:
        self.controlplanes.note_connection(platform, connection, up)

    def count_request(self, platform: str, connection: str, outcome: str) -> None:
        self.controlplanes.count_request(platform, connection, outcome)

    def count_webhook(self, platform: str, connection: str, outcome: str, n: int = 1) -> None:
        self.controlplanes.count_webhook(platform, connection, outcome, n)

    def note_unregistered_process(self, platform: str, connection: str, folder: str, process: str,
                                  run_key: str | None = None) -> None:
        self.controlplanes.note_unregistered(platform, connection, folder, process, run_key)

    def record_queue_items(self, rows: list[ItemTotals], checkpoint: tuple[str, str, dict[str, Any]] | None) -> None:
        """Work-queue items that ended, with the checkpoint (source, identity, state) of the pull
        that read them, in one journal transaction: a restart neither loses nor repeats them.
        Raises JournalError when the journal cannot be written (then nothing is counted)."""
        if self.journal is not None and not self.journal.readonly:
            with self.journal.transaction() as j:
                if rows:
                    j.add_queue_items(rows)
                if checkpoint is not None:
                    j.put_checkpoint(*checkpoint)
        self.workqueues.add_processed(rows)

    def _auto_register(self, name: str, now: float) -> BotRuntime | None:
        """A bot not in the estate file, accepted because agent.auto_register is on."""
        if not self.estate.agent.auto_register or len(self.bots) >= self.estate.agent.limits.max_bots:
            return None
        try:
            cfg = BotConfig(name=name)
        except ValueError:
            return None
        bot = BotRuntime(cfg=cfg, first_seen=now)
        self.bots[name] = bot
        if self.journal is not None and not self.journal.readonly:
            with self.journal.transaction() as j:
                j.ensure_bot(name, now)
        return bot

    def match_start(self, bot: str, rid: str | None) -> tuple[str | None, float | None]:
        """For a check-in that ends a run: (run id, start time) of the run it ends.

        With `rid`, the run started with that id. Without, as Healthchecks does, the latest run
        started by a check-in without an id."""
        with self.lock:
            b = self.bots.get(bot)
            if b is None:
                return rid, None
            if rid is not None:
                return rid, b.active.get(rid)
            pings = [(t, r) for r, t in b.active.items() if r.startswith("ping-")]
            if not pings:
                return None, None
            t, r = max(pings)
            return r, t

    def _flips_for(self, bots: dict[str, BotRuntime], now: float) -> list[Flip]:
        flips = []
        for name, bot in bots.items():
            state, since, why = bot.status(now)
            if state != bot.recorded_state:
                flips.append(Flip(name, min(since, now), bot.recorded_state, state, why))
                if state == "down":
                    bot.missed_runs_total += 1
                bot.recorded_state = state
        return flips

    def sweep(self, now: float | None = None) -> list[Flip]:
        """Record the time-driven changes (late, down) as flips. Called periodically."""
        now = self.clock() if now is None else now
        try:
            self._sync_ui()
        except Exception:  # a journal busy or unreadable for a moment: the next sweep catches up
            pass
        with self.lock:
            staged = {}
            for name, bot in self.bots.items():
                state, _, _ = bot.status(now)
                if state != bot.recorded_state:
                    staged[name] = _copy_runtime(bot)
            if not staged:
                return []
            flips = self._flips_for(staged, now)
            if self.journal is not None:
                with self.journal.transaction() as j:
                    for f in flips:
                        j.insert_flip(f)
            self.bots.update(staged)
            return flips

    def _sync_ui(self) -> None:
        """Apply the UI drift rows written to the journal since the last call: the latest drift
        of each screen on start, and what `botwatch drift accept` wrote while the agent runs."""
        if self.journal is None:
            return
        if self.journal.ui_drift_seq() <= self._ui_seq:
            return
        rows = self.journal.ui_drift(self._ui_seq)
        limits = self.estate.agent.limits
        with self.lock:
            for r in rows:
                self._ui_seq = max(self._ui_seq, r["id"])
                b = self.bots.get(r["bot"])
                if b is None:
                    continue
                known = b.ui.get(r["screen"])
                if known is not None and r["kind"] in known.drift and known.drift[r["kind"]][1] >= r["time"]:
                    continue  # already applied (the agent's own write)
                b = _copy_runtime(b)
                b.ui_screen(r["screen"], limits).observe_snapshot(r["kind"], r["time"], r["score"],
                                                                  r["baseline_time"], r["selectors"])
                self.bots[r["bot"]] = b

    # -- reading ---------------------------------------------------------------------------
    def views(self, now: float | None = None) -> list[BotView]:
        now = self.clock() if now is None else now
        with self.lock:
            return [BotView.of(bot, now) for bot in self.bots.values()]

    # -- process watching ------------------------------------------------------------------
    def active_runs(self, bot: str) -> dict[str, float]:
        """Run id -> start time of the bot's active runs."""
        with self.lock:
            b = self.bots.get(bot)
            return dict(b.active) if b is not None else {}

    def withdraw_run(self, bot: str, run_id: str, into: str | None = None) -> None:
        """Drop an active run that another source records (nothing is journaled: active runs
        live in memory only); its samples move to the active run `into` when given."""
        with self.lock:
            b = self.bots.get(bot)
            if b is not None and run_id in b.active:
                b = _copy_runtime(b)
                b.withdraw(run_id, into)
                self.bots[bot] = b

    # the process sweep's findings besides runs (ProcessSweep), as the process watcher reports them
    def set_unregistered(self, processes: list[dict[str, Any]], counts: dict[str, int], at: float) -> None:
        self.process_sweep.set_unregistered(processes, counts, at)

    def unregistered_view(self) -> tuple[list[dict[str, Any]], dict[str, int], float | None]:
        return self.process_sweep.unregistered_view()

    def note_cmdline_secrets(self, secrets: dict[str, int]) -> None:
        self.process_sweep.note_cmdline_secrets(secrets)

    @property
    def cmdline_secrets(self) -> dict[str, int]:
        """Bots with a running process whose command line holds a credential: bot -> pid (governance)."""
        return self.process_sweep.cmdline_secrets

    # the spools' backlogs (SpoolBacklogs), as the deliverers report them
    def note_spool(self, spool: str, pending: int, now: float | None = None) -> None:
        self.spools.note(spool, pending, now)

    def spool_pending_runs(self, now: float | None = None) -> int:
        return self.spools.pending_runs(now)

    def self_metrics(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return self.stats.snapshot(sum(b.labels_shortened for b in self.bots.values()))


def _copy_runtime(bot: BotRuntime) -> BotRuntime:
    new = copy.copy(bot)
    new.version = next_version()
    new.failures = dict(bot.failures)
    new.bucket_counts = list(bot.bucket_counts)
    new.active = dict(bot.active)
    new.active_cpu = dict(bot.active_cpu)
    new.active_rss = dict(bot.active_rss)
    new.active_procs = dict(bot.active_procs)
    new.recent_finished = dict(bot.recent_finished)
    new.noted_reasons = dict(bot.noted_reasons)
    new.ui = {k: v.copy() for k, v in bot.ui.items()}
    new.ui_misses = dict(bot.ui_misses)
    return new
