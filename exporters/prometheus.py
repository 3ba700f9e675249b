"""Prometheus exposition of the estate state: a custom collector (no global registry).

Names, types, help and labels come from the metric catalogue (catalogue.py); `promtool check metrics`
must print nothing for this output.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from botwatch import __version__
from botwatch.sources.runtimes import PLATFORMS as SHADOW_PLATFORMS
from botwatch.sources import registry as sources
from botwatch.state.runtime import EstateState
from botwatch.state.controlplanes import REQUEST_OUTCOMES, SESSION_STATES, WEBHOOK_OUTCOMES
from botwatch.state.workqueues import EXCEPTIONS, PROCESSED_STATUSES, SLA_STATES
from botwatch.core.vocabulary import DURATION_BUCKETS, ITEM_STATUSES, LOOKUP_KINDS, REASONS, STATES, UI_WAIT_BUCKETS

from .catalogue import METRICS, cumulative_buckets

log = logging.getLogger("botwatch.exporters.prometheus")
_LE = [floatToGoString(b) for b in DURATION_BUCKETS]
_UI_LE = [floatToGoString(b) for b in UI_WAIT_BUCKETS]

# Every source the agent counts dropped events and parse errors under (EstateState.count_dropped
# and count_parse_error, the deliverers' spool reports). Their counters are exported at 0 from the
# start: a counter whose series appears with its first increment hides that increment from
# increase() and rate(), which need an earlier sample.
# The events' and parse errors' sources are the registry's (the agent's clients and every source
# loaded), asked for at each scrape: EVENT_SOURCES and PARSE_ERROR_SOURCES read them too.
DROPPED_SOURCES = ("api", "bot_limit", "http", "otlp_traces", "ping", "snapshot", "spool")
IGNORED_SOURCES = ("api",)  # EstateState.count_ignored: events of a type this agent does not know
EXPORTERS = ("otlp_metrics", "otlp_traces")  # the agent's push exporters (export failures are counted)
_PRESET = {"events": sources.event_labels, "dropped": lambda: DROPPED_SOURCES, "ignored": lambda: IGNORED_SOURCES,
           "parse_errors": sources.error_labels,
           "export_failures": lambda: EXPORTERS, "labels_shortened": lambda: ("screen",)}


def __getattr__(name: str):
    if name == "EVENT_SOURCES":
        return sources.event_labels()
    if name == "PARSE_ERROR_SOURCES":
        return sources.error_labels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}


def family(name: str, *, totals: bool = False) -> Metric:
    """An empty family of the catalogue's metric `name`; `totals`: as a bot host's totals say it."""
    spec = METRICS[name]
    doc = spec.totals_help if totals and spec.totals_help else spec.help
    return _FAMILIES[spec.type](name, doc, labels=list(spec.labels))


LARGEST = sys.float_info.max
_warned = [0.0]


def finite(families: Iterable[Metric]) -> Iterator[Metric]:
    """The families with every sample value a finite float: one value beyond a float (an integer
    of 400 digits), infinite or NaN must not break a scrape. Such a value becomes the largest
    float of its sign (NaN 0) and is logged, at most once a minute. Inputs are bounded where
    they enter: this is the second line."""
    for fam in families:
        for i, s in enumerate(fam.samples):
            if not -LARGEST <= s.value <= LARGEST:  # False for NaN too
                value = LARGEST if s.value > 0 else -LARGEST if s.value < 0 else 0.0
                fam.samples[i] = s._replace(value=value)
                now = time.monotonic()
                if now - _warned[0] >= 60.0:
                    _warned[0] = now
                    log.warning("%s%s had a value that is not a finite number; exported as %s", s.name,
                                s.labels, value)
        yield fam


class EstateCollector:
    """Collects the catalogue's bot metrics and the agent's self-monitoring metrics."""

    def __init__(self, state: EstateState, clock: Callable[[], float] = time.time):
        self.state = state
        self.clock = clock
        self.errors_total = 0

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: registration must not trigger a collect

    def collect(self) -> Iterator[Metric]:
        try:
            yield from finite(self._collect())
        except Exception:  # an exporter never breaks the pipeline: log, count, serve the rest
            self.errors_total += 1
            log.exception("collecting estate metrics failed")

    def _collect(self) -> Iterator[Metric]:
        views = self.state.views(self.clock())
        (info, state, runs, failures, duration, last_dur, last_end, last_ok, last_fail, consec, in_prog, started,
         next_exp, grace, missed, cpu, mem, hung, nprocs, items, empty) = (family(n) for n in (
            "botwatch_bot_info", "botwatch_bot_state", "botwatch_runs", "botwatch_run_failures",
            "botwatch_run_duration_seconds", "botwatch_last_run_duration_seconds",
            "botwatch_last_run_end_timestamp_seconds", "botwatch_last_success_timestamp_seconds",
            "botwatch_last_failure_timestamp_seconds", "botwatch_consecutive_failures", "botwatch_run_in_progress",
            "botwatch_run_started_timestamp_seconds", "botwatch_schedule_next_expected_timestamp_seconds",
            "botwatch_schedule_grace_seconds", "botwatch_missed_runs", "botwatch_bot_cpu_seconds",
            "botwatch_bot_resident_memory_bytes", "botwatch_bot_hung", "botwatch_bot_processes", "botwatch_bot_items",
            "botwatch_empty_runs"))

        for v in views:
            c = v.cfg
            b = [v.name]
            info.add_metric([v.name, c.team or "", c.owner or "", c.platform, c.lifecycle or "", c.criticality], 1)
            for s in STATES:
                state.add_metric([v.name, s], 1 if s == v.state else 0)
            runs.add_metric(b, v.runs_total)
            for r in REASONS:
                failures.add_metric([v.name, r], v.failures.get(r, 0))
            duration.add_metric(b, cumulative_buckets(_LE, v.bucket_counts, v.duration_count), v.duration_sum)
            if v.last_run_duration is not None:
                last_dur.add_metric(b, v.last_run_duration)
            if v.last_run_end is not None:
                last_end.add_metric(b, v.last_run_end)
            if v.last_success is not None:
                last_ok.add_metric(b, v.last_success)
            if v.last_failure is not None:
                last_fail.add_metric(b, v.last_failure)
            consec.add_metric(b, v.consecutive_failures)
            in_prog.add_metric(b, v.runs_in_progress)
            started.add_metric(b, v.oldest_active_start or 0)
            if v.next_due is not None:
                next_exp.add_metric(b, v.next_due)
                grace.add_metric(b, c.grace)
            missed.add_metric(b, v.missed_runs_total)
            cpu.add_metric(b, v.cpu_seconds_total)
            mem.add_metric(b, v.resident_memory_bytes)
            hung.add_metric(b, 1 if v.hung else 0)
            nprocs.add_metric(b, v.processes)
            for status, n in zip(ITEM_STATUSES, (v.items_processed_total, v.items_failed_total)):
                items.add_metric([v.name, status], n)
            empty.add_metric(b, v.empty_runs_total)
        yield from (info, state, runs, failures, duration, last_dur, last_end, last_ok, last_fail, consec,
                    in_prog, started, next_exp, grace, missed, cpu, mem, hung, nprocs, items, empty)
        yield from self._ui_metrics(views)
        yield self._unregistered()
        yield from self._self_metrics()

    def _ui_metrics(self, views) -> Iterator[Metric]:
        lookups, fails, healed, wait, overflow, drift, baseline, declared = (family(n) for n in (
            "botwatch_ui_lookups", "botwatch_ui_lookup_failures", "botwatch_ui_healed_lookups",
            "botwatch_ui_lookup_wait_seconds", "botwatch_ui_screens_overflow", "botwatch_ui_drift_score",
            "botwatch_ui_baseline_timestamp_seconds", "botwatch_ui_declared_selector_matches"))
        for v in views:
            if not v.ui:
                continue
            for screen, u in sorted(v.ui.items()):
                labels = [v.name, screen]
                lookups.add_metric(labels, u.lookups)
                for kind in LOOKUP_KINDS:
                    fails.add_metric([v.name, screen, kind], u.failures[kind])
                healed.add_metric(labels, u.healed)
                wait.add_metric(labels, cumulative_buckets(_UI_LE, u.wait_buckets, u.wait_count), u.wait_sum)
                score = u.drift_score
                if score is not None:
                    drift.add_metric(labels, score)
                    if u.baseline_time is not None:
                        baseline.add_metric(labels, u.baseline_time)
                    for name, n in sorted(u.declared_matches.items()):
                        declared.add_metric([v.name, screen, name], n)
            overflow.add_metric([v.name], v.ui_screens_overflowed)
        yield from (lookups, fails, healed, wait, overflow, drift, baseline, declared)

    def _unregistered(self) -> Metric:
        _, counts, _ = self.state.unregistered_view()
        fam = family("botwatch_unregistered_bot_processes")
        for platform in sorted(set(SHADOW_PLATFORMS) | set(counts)):
            fam.add_metric([platform], counts.get(platform, 0))
        return fam

    def _self_metrics(self) -> Iterator[Metric]:
        build = family("botwatch_agent_build_info")
        build.add_metric([__version__], 1)
        yield build
        m = self.state.self_metrics()
        spool = family("botwatch_agent_spool_pending_runs")
        spool.add_metric([], self.state.spool_pending_runs())
        yield spool
        for key, name in (
            ("events", "botwatch_agent_events"), ("dropped", "botwatch_agent_events_dropped"),
            ("ignored", "botwatch_agent_events_ignored"), ("parse_errors", "botwatch_agent_parse_errors"),
            ("export_failures", "botwatch_agent_export_failures"),
            ("labels_shortened", "botwatch_agent_label_values_shortened"),
        ):
            fam = family(name)
            counts = dict.fromkeys(_PRESET[key](), 0) | m[key]
            for source, n in sorted(counts.items()):
                fam.add_metric([source], n)
            yield fam
        yield from self._controlplane_metrics()

    def _controlplane_metrics(self) -> Iterator[Metric]:
        """Each control-plane connection's health, requests and webhooks (every outcome from 0 on)."""
        view = self.state.controlplanes.view()
        up = family("botwatch_agent_controlplane_up")
        last = family("botwatch_agent_controlplane_last_success_timestamp_seconds")
        requests = family("botwatch_agent_controlplane_requests")
        webhooks = family("botwatch_agent_webhooks")
        for name, health in sorted(view["connections"].items()):
            labels = [health["platform"], name]
            if health["up"] is not None:
                up.add_metric(labels, 1 if health["up"] else 0)
            if health["last_success"] is not None:
                last.add_metric(labels, health["last_success"])
            for outcome in REQUEST_OUTCOMES:
                requests.add_metric([*labels, outcome], view["requests"].get((name, outcome), 0))
            for outcome in WEBHOOK_OUTCOMES:
                webhooks.add_metric([*labels, outcome], view["webhooks"].get((name, outcome), 0))
        stuck = family("botwatch_bot_stuck_runs")
        for bot, n in sorted(self.state.controlplanes.stuck_runs().items()):
            stuck.add_metric([bot], n)
        yield from (up, requests, webhooks, last, stuck)
        yield from self._queue_metrics()
        yield from self._robot_metrics()

    def _queue_metrics(self) -> Iterator[Metric]:
        """Each work queue's backlog (from its latest pull) and its items processed (every status
        and exception from 0 on, for every queue either knows)."""
        backlogs, processed = self.state.workqueues.view()
        now = self.clock()
        info, items, oldest = family("botwatch_queue_info"), family("botwatch_queue_items"), \
            family("botwatch_queue_oldest_item_age_seconds")
        past_sla = family("botwatch_queue_items_past_sla")
        for key, b in sorted(backlogs.items()):
            labels = list(key)
            info.add_metric([*labels, b.team or ""], 1)
            items.add_metric([*labels, "new"], b.new)
            items.add_metric([*labels, "in_progress"], b.in_progress)
            oldest.add_metric(labels, max(0.0, now - b.oldest_new) if b.oldest_new is not None else 0)
            for sla in SLA_STATES:
                past_sla.add_metric([*labels, sla], getattr(b, sla))
        done, failures = family("botwatch_queue_items_processed"), family("botwatch_queue_item_failures")
        retries, seconds = family("botwatch_queue_item_retries"), family("botwatch_queue_item_processing_seconds")
        for key in sorted(set(backlogs) | set(processed)):
            labels = list(key)
            p = processed.get(key)
            counts = p.items if p is not None else {}
            for status in PROCESSED_STATUSES:
                done.add_metric([*labels, status], sum(n for (s, _), n in counts.items() if s == status))
            for exception in EXCEPTIONS:
                failures.add_metric([*labels, exception], counts.get(("failed", exception), 0))
            retries.add_metric(labels, p.retries if p is not None else 0)
            seconds.add_metric(labels, p.seconds if p is not None else 0.0)
        yield from (info, items, oldest, past_sla, done, failures, retries, seconds)

    def _robot_metrics(self) -> Iterator[Metric]:
        sessions = family("botwatch_robot_sessions")
        capacity, busy = family("botwatch_robot_unattended_capacity"), family("botwatch_robot_unattended_busy")
        for name, robots in sorted(self.state.controlplanes.robots_view().items()):
            for machine, states in sorted(robots.machines.items()):
                for state in SESSION_STATES:
                    sessions.add_metric([robots.platform, name, machine, state], states.get(state, 0))
            capacity.add_metric([robots.platform, name], robots.unattended_capacity)
            busy.add_metric([robots.platform, name], robots.unattended_busy)
        yield from (sessions, capacity, busy)


def estate_registry(state: EstateState, clock: Callable[[], float] = time.time,
                    governance=None) -> CollectorRegistry:
    """A registry holding only the estate collectors (tests and the agent need no global state).
    `governance`: the agent's botwatch.governance.Governance; by default one over the state's bots."""
    from .governance import GovernanceCollector
    from botwatch.governance import governance_for_state

    registry = CollectorRegistry(auto_describe=False)
    registry.register(EstateCollector(state, clock))
    registry.register(GovernanceCollector(governance or governance_for_state(state)))
    return registry
