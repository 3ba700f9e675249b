"""Prometheus exposition of one bot's totals, kept in the spool of a host without an agent.

The deliverer keeps complete per-bot totals (runs, failures by reason, the duration histogram,
the latest run) for the Pushgateway and textfile targets; this collector renders them with the
same names, types and help as the agent's (the catalogue, exporters/catalogue.py), so dashboards
and alerts work on either. The spool's own row (bot '') renders the events the spool dropped.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from .prometheus import family, finite
from botwatch.core.vocabulary import DURATION_BUCKETS, REASONS

from .catalogue import cumulative_buckets

_LE = [floatToGoString(b) for b in DURATION_BUCKETS]


class TotalsCollector:
    """Renders one totals row (a dict with the spool's TOTALS_COLUMNS)."""

    def __init__(self, totals: dict):
        self.totals = totals

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return finite(self._collect())

    def _collect(self) -> Iterator[Metric]:
        t = self.totals
        if not t["bot"]:
            dropped = family("botwatch_agent_events_dropped", totals=True)
            dropped.add_metric(["spool"], t["dropped_total"])
            yield dropped
            return
        b = [t["bot"]]
        runs = family("botwatch_runs")
        runs.add_metric(b, t["runs_total"])
        yield runs
        failures = family("botwatch_run_failures")
        for reason in REASONS:
            failures.add_metric([t["bot"], reason], t["failures"].get(reason, 0))
        yield failures
        duration = family("botwatch_run_duration_seconds")
        counts = list(t["buckets"]) + [0] * (len(DURATION_BUCKETS) - len(t["buckets"]))
        duration.add_metric(b, cumulative_buckets(_LE, counts, t["duration_count"]), t["duration_sum"])
        yield duration
        for key, name in (
            ("last_run_duration", "botwatch_last_run_duration_seconds"),
            ("last_run_end", "botwatch_last_run_end_timestamp_seconds"),
            ("last_success", "botwatch_last_success_timestamp_seconds"),
            ("last_failure", "botwatch_last_failure_timestamp_seconds"),
        ):
            if t[key] is not None:  # absent until it happened, as on the agent
                gauge = family(name)
                gauge.add_metric(b, t[key])
                yield gauge
        consec = family("botwatch_consecutive_failures")
        consec.add_metric(b, t["consecutive_failures"])
        yield consec


def totals_registry(totals: dict) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    return registry
