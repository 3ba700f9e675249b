"""Prometheus exposition of the estate state: a custom collector (no global registry).

Names, types, help and labels come from the metric catalogue (catalogue.py), a bot's samples from
bot_series.py; `promtool check metrics` must print nothing for this output. /metrics renders the
collector's samples through its section (exposition.EstateSection), which keeps each bot's lines.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from botwatch import __version__
from botwatch.sources.runtimes import PLATFORMS as SHADOW_PLATFORMS
from botwatch.sources import registry as sources
from botwatch.state.runtime import EstateState
from botwatch.state.controlplanes import REQUEST_OUTCOMES, SESSION_STATES, WEBHOOK_OUTCOMES
from botwatch.state.workqueues import EXCEPTIONS, PROCESSED_STATUSES, SLA_STATES

from .bot_series import MetricSink, family, write_bot
from .exposition import EstateSection
from .textformat import LARGEST, finite

__all__ = ["EstateCollector", "EstateRegistry", "LARGEST", "estate_registry", "family", "finite"]
log = logging.getLogger("botwatch.exporters.prometheus")

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


class EstateCollector:
    """Collects the catalogue's bot metrics and the agent's self-monitoring metrics.

    `collect()` builds every family afresh (OTLP, the tests, any registry reader); /metrics
    renders the same samples through `section()` (exposition.EstateSection), which keeps each
    bot's lines until the bot changes."""

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

    def section(self) -> EstateSection:
        return EstateSection(self)

    def _collect(self) -> Iterator[Metric]:
        sink = MetricSink()
        for v in self.state.views(self.clock()):
            write_bot(v, sink)
        yield from sink.families
        yield from self.other_families()

    def other_families(self) -> Iterator[Metric]:
        """The families without a series per bot's record, after the bots' (in this order)."""
        yield self._unregistered()
        yield from self._self_metrics()

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


class EstateRegistry(CollectorRegistry):
    """A registry that lists its collectors in order: /metrics renders each its own way
    (exposition.CachedExposition), in the order `collect()` yields them."""

    def __init__(self) -> None:
        super().__init__(auto_describe=False)
        self.collectors: list = []

    def register(self, collector) -> None:
        super().register(collector)
        self.collectors.append(collector)

    def unregister(self, collector) -> None:
        super().unregister(collector)
        self.collectors.remove(collector)


def estate_registry(state: EstateState, clock: Callable[[], float] = time.time,
                    governance=None, dependencies=None) -> EstateRegistry:
    """A registry holding only the estate collectors (tests and the agent need no global state).
    `governance`: the agent's botwatch.governance.Governance; by default one over the state's bots.
    `dependencies`: the agent's botwatch.deps.index.DependencyIndex; by default one over the
    state's estate that reads nothing until refreshed."""
    from .dependencies import DependenciesCollector
    from .governance import GovernanceCollector
    from botwatch.config.estate import LoadedEstate
    from botwatch.deps.index import DependencyIndex
    from botwatch.governance import governance_for_state

    registry = EstateRegistry()
    registry.register(EstateCollector(state, clock))
    registry.register(GovernanceCollector(governance or governance_for_state(state)))
    registry.register(DependenciesCollector(dependencies or DependencyIndex(LoadedEstate(state.estate, None))))
    return registry
