"""Prometheus exposition of one bot's totals, kept in the spool of a host without an agent.

The deliverer keeps complete per-bot totals (runs, failures by reason, the duration histogram,
the latest run) for the Pushgateway and textfile targets; this collector renders them with the
same names, types and help as the agent's catalogue (exporters/prometheus.py), so dashboards
and alerts work on either. The spool's own row (bot '') renders the events the spool dropped.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from botwatch.classify import REASONS
from botwatch.exporters.prometheus import finite
from botwatch.state import DURATION_BUCKETS

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
            dropped = CounterMetricFamily("botwatch_agent_events_dropped",
                                          "Events dropped (limits, spool overflow), by source.", labels=["source"])
            dropped.add_metric(["spool"], t["dropped_total"])
            yield dropped
            return
        b = [t["bot"]]
        runs = CounterMetricFamily("botwatch_runs", "Finished runs.", labels=["bot"])
        runs.add_metric(b, t["runs_total"])
        yield runs
        failures = CounterMetricFamily("botwatch_run_failures", "Failed runs by reason.", labels=["bot", "reason"])
        for reason in REASONS:
            failures.add_metric([t["bot"], reason], t["failures"].get(reason, 0))
        yield failures
        duration = HistogramMetricFamily("botwatch_run_duration_seconds", "Run duration.", labels=["bot"])
        counts = list(t["buckets"]) + [0] * (len(DURATION_BUCKETS) - len(t["buckets"]))
        acc, buckets = 0, []
        for le, n in zip(_LE, counts):
            acc += n
            buckets.append((le, acc))
        buckets.append(("+Inf", t["duration_count"]))
        duration.add_metric(b, buckets, t["duration_sum"])
        yield duration
        for key, name, doc in (
            ("last_run_duration", "botwatch_last_run_duration_seconds", "Duration of the latest finished run."),
            ("last_run_end", "botwatch_last_run_end_timestamp_seconds", "End time of the latest finished run."),
            ("last_success", "botwatch_last_success_timestamp_seconds", "End time of the latest successful run."),
            ("last_failure", "botwatch_last_failure_timestamp_seconds", "End time of the latest failed run."),
        ):
            if t[key] is not None:  # absent until it happened, as on the agent
                gauge = GaugeMetricFamily(name, doc, labels=["bot"])
                gauge.add_metric(b, t[key])
                yield gauge
        consec = GaugeMetricFamily("botwatch_consecutive_failures", "Failed runs in a row, up to the latest run.",
                                   labels=["bot"])
        consec.add_metric(b, t["consecutive_failures"])
        yield consec


def totals_registry(totals: dict) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    return registry
