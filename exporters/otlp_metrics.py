"""OTLP metrics: the catalogue of /metrics, pushed with the OpenTelemetry SDK's OTLP/HTTP exporter.

One source of truth: every push reads the same collectors that /metrics renders (the estate
registry) and converts their families into OpenTelemetry's data model: counters become
cumulative monotonic sums, gauges gauges, histograms cumulative explicit-bucket histograms.
Names become dotted (NAMES below), the `bot` label becomes `cicd.pipeline.name` and the other
labels `botwatch.<label>`; failed runs also carry `cicd.pipeline.result`.

Nothing is queued: a push that fails is dropped and the next one, built afresh from the state,
carries the same cumulative totals, so an endpoint that comes back gets correct counters and
memory does not grow while it is down. The pusher is its own thread (the "reader": when), the
SDK exporter does the sending (how); neither can block /metrics or the journal.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, Iterable

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.registry import CollectorRegistry

from botwatch import __version__

from .catalogue import CATALOGUE
from .otlp_retry import Backoff, Outage, quiet_sdk_loggers

log = logging.getLogger("botwatch.exporters.otlp")

# Prometheus family name -> (OTLP name, unit), from the catalogue.
NAMES: dict[str, tuple[str, str]] = {m.name: (m.otlp_name, m.unit) for m in CATALOGUE}
# the OTel CI/CD conventions where they fit; the other labels are botwatch.<label>
ATTRIBUTES = {"bot": "cicd.pipeline.name", "reason": "botwatch.failure.reason"}

# A failure reason as the CI/CD conventions' pipeline result: a run stopped by its time limit
# timed out; one killed from outside ended in an error of the system running it; the rest are
# the bot's own failures.
RESULT_OF_REASON = {"timeout": "timeout", "killed": "error"}


def otlp_name(family: str) -> tuple[str, str]:
    """(dotted name, unit) of a Prometheus family; a family missing from NAMES (a bug the
    tests catch) still goes out, with its underscores as dots."""
    return NAMES.get(family) or (family.replace("_", "."), "1")


def attributes(labels: dict[str, str]) -> dict[str, str]:
    return {ATTRIBUTES.get(k, f"botwatch.{k}"): v for k, v in labels.items()}


def pipeline_result(reason: str) -> str:
    return RESULT_OF_REASON.get(reason, "failure")


def to_metrics(families: Iterable, start_ns: int, now_ns: int) -> list[Metric]:
    """OpenTelemetry metrics of the prometheus_client families (as a registry collects them)."""
    out: list[Metric] = []
    for fam in families:
        if not fam.samples:
            continue  # a gauge with nothing to say yet (no failure so far): no empty metric
        name, unit = otlp_name(fam.name)
        if fam.type == "counter":
            points = []
            for s in fam.samples:
                if not s.name.endswith("_total"):
                    continue  # _created: OTLP carries the start time on each point instead
                attrs = attributes(s.labels)
                if fam.name == "botwatch_run_failures" and "reason" in s.labels:
                    attrs["cicd.pipeline.result"] = pipeline_result(s.labels["reason"])
                points.append(NumberDataPoint(attrs, start_ns, now_ns, _number(s.value), []))
            data = Sum(points, AggregationTemporality.CUMULATIVE, True)
        elif fam.type == "histogram":
            data = Histogram(_histogram_points(fam.samples, start_ns, now_ns), AggregationTemporality.CUMULATIVE)
        else:  # gauge, info, stateset, unknown: the latest value
            data = Gauge([NumberDataPoint(attributes(s.labels), start_ns, now_ns, _number(s.value), [])
                          for s in fam.samples])
        out.append(Metric(name=name, description=fam.documentation, unit=unit, data=data))
    return out


_INT64 = 2**63 - 1
_LARGEST = sys.float_info.max


def _number(value: float) -> int | float:
    """Whole numbers go out as ints (OTLP's as_int), as counts are; one beyond an int64 as a
    float, one beyond a float (or not a number) as the largest float of its sign (NaN 0): one
    value must not fail a push."""
    if not -_LARGEST <= value <= _LARGEST:
        return _LARGEST if value > 0 else -_LARGEST if value < 0 else 0.0
    value = float(value) if not isinstance(value, int) else value
    if isinstance(value, int) or value.is_integer():
        return int(value) if -_INT64 <= value <= _INT64 else float(value)
    return value


def _count(value: float) -> int:
    """A histogram count as OTLP's uint64 takes it."""
    return int(min(max(_number(value), 0), _INT64))


def _histogram_points(samples, start_ns: int, now_ns: int) -> list[HistogramDataPoint]:
    """Prometheus' cumulative `_bucket{le}` samples, `_count` and `_sum` per label set, as
    OTLP explicit-bucket points (per-bucket counts, bounds without +Inf)."""
    series: dict[tuple, dict] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        one = series.setdefault(tuple(sorted(labels.items())), {"labels": labels, "le": [], "count": 0, "sum": 0.0})
        if s.name.endswith("_bucket"):
            one["le"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            one["count"] = _count(s.value)
        elif s.name.endswith("_sum"):
            one["sum"] = float(_number(s.value))
    points = []
    for one in series.values():
        buckets = sorted(one["le"])
        bounds = [le for le, _ in buckets if le != float("inf")]
        counts, below = [], 0.0
        for _, cumulative in buckets:
            counts.append(_count(cumulative - below))
            below = cumulative
        if not buckets or buckets[-1][0] != float("inf"):
            counts.append(_count(one["count"] - below))
        points.append(HistogramDataPoint(attributes=attributes(one["labels"]), start_time_unix_nano=start_ns,
                                         time_unix_nano=now_ns, count=one["count"], sum=one["sum"],
                                         bucket_counts=counts, explicit_bounds=bounds, min=None, max=None,
                                         exemplars=[]))
    return points


class MetricsPusher(threading.Thread):
    """Pushes the registry's metrics every `interval` seconds; after a failure, again after a
    backoff (1 s doubling up to the interval), so a collector that comes back is caught up at
    once, and one that stays down costs one small request per interval."""

    def __init__(self, registry: CollectorRegistry, exporter: MetricExporter, *, interval: float, timeout: float,
                 resource: dict[str, str], endpoint: str, count_failure: Callable[[str], None],
                 clock: Callable[[], float] = time.time):
        super().__init__(name="botwatch-otlp-metrics", daemon=True)
        self.registry, self.exporter = registry, exporter
        self.interval, self.timeout, self.clock = interval, timeout, clock
        self.resource = Resource.create(resource)  # OTEL_RESOURCE_ATTRIBUTES merged in; ours win
        self.scope = InstrumentationScope("botwatch", __version__)
        self.start_ns = int(clock() * 1e9)
        self.backoff = Backoff(initial=min(1.0, interval), maximum=interval)
        self.outage = Outage("otlp_metrics", endpoint, count_failure,
                             "opentelemetry.exporter.otlp.proto.http.metric_exporter")
        self.stopped = threading.Event()
        self.pushes = 0  # successful ones
        quiet_sdk_loggers()

    def snapshot(self) -> MetricsData:
        metrics = to_metrics(self.registry.collect(), self.start_ns, int(self.clock() * 1e9))
        return MetricsData([ResourceMetrics(self.resource, [ScopeMetrics(self.scope, metrics, "")], "")])

    def push(self) -> bool:
        """One push; True when the endpoint took it. Never raises."""
        try:
            result = self.exporter.export(self.snapshot(), timeout_millis=self.timeout * 1000)
            why = ""
        except Exception as exc:  # the exporter must not break the agent
            result, why = MetricExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        if result is MetricExportResult.SUCCESS:
            self.pushes += 1
            self.backoff.succeeded()
            self.outage.success()
            return True
        self._retry_in = self.backoff.failed()
        self.outage.failure(self._retry_in, why)
        return False

    def run(self) -> None:
        delay = self.interval
        while not self.stopped.wait(delay):
            delay = self.interval if self.push() else self._retry_in

    def stop(self, final_push: bool = True) -> None:
        """Stop; one last push (bounded by the timeout) so the final totals are not lost."""
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=self.timeout + 5)
        if final_push:
            self.push()
        try:
            self.exporter.shutdown(timeout_millis=self.timeout * 1000)
        except Exception:
            log.debug("OTLP metric exporter shutdown failed", exc_info=True)
