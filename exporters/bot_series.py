"""The series of one bot: every catalogue family that has a sample (or a few) for each bot.

Written once, read two ways. `write_bot` tells a sink each sample of one bot, family by family;
`MetricSink` makes prometheus_client families of them (the collector every exporter reads) and
`fragments.BotEncoder` writes them straight to exposition lines (/metrics keeps those per bot).
Both take the same calls in the same order, so both say the same.

The run counters carry an exemplar: `botwatch_runs_total` the latest finished run's id,
`botwatch_run_failures_total` the latest failed run's on the sample of its reason. Only
OpenMetrics prints them. A run id is the client's or the platform's own (a log line's job id, a
control plane's job key), so it is left out where it may not be shown: when it looks like a
credential (botwatch.core.redact would change it), or when it is too long for the 128
characters OpenMetrics allows an exemplar's labels (a scraper refuses the whole scrape then).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from botwatch.core.redact import redact
from botwatch.core.vocabulary import DURATION_BUCKETS, ITEM_STATUSES, LOOKUP_KINDS, REASONS, STATES, UI_WAIT_BUCKETS
from botwatch.state.readmodel import BotView

from .catalogue import METRICS, cumulative_buckets

BOT_FAMILIES = (
    "botwatch_bot_info", "botwatch_bot_state", "botwatch_runs", "botwatch_run_failures",
    "botwatch_run_duration_seconds", "botwatch_last_run_duration_seconds",
    "botwatch_last_run_end_timestamp_seconds", "botwatch_last_success_timestamp_seconds",
    "botwatch_last_failure_timestamp_seconds", "botwatch_consecutive_failures", "botwatch_run_in_progress",
    "botwatch_run_started_timestamp_seconds", "botwatch_schedule_next_expected_timestamp_seconds",
    "botwatch_schedule_grace_seconds", "botwatch_missed_runs", "botwatch_bot_cpu_seconds",
    "botwatch_bot_resident_memory_bytes", "botwatch_bot_hung", "botwatch_bot_processes", "botwatch_bot_items",
    "botwatch_empty_runs",
    # the UI families follow the others (each family's samples are contiguous in an exposition)
    "botwatch_ui_lookups", "botwatch_ui_lookup_failures", "botwatch_ui_healed_lookups",
    "botwatch_ui_lookup_wait_seconds", "botwatch_ui_screens_overflow", "botwatch_ui_drift_score",
    "botwatch_ui_baseline_timestamp_seconds", "botwatch_ui_declared_selector_matches",
)
(INFO, STATE, RUNS, FAILURES, DURATION, LAST_DURATION, LAST_END, LAST_SUCCESS, LAST_FAILURE, CONSECUTIVE,
 IN_PROGRESS, STARTED, NEXT_DUE, GRACE, MISSED, CPU, MEMORY, HUNG, PROCESSES, ITEMS, EMPTY,
 UI_LOOKUPS, UI_FAILURES, UI_HEALED, UI_WAIT, UI_OVERFLOW, UI_DRIFT, UI_BASELINE, UI_DECLARED) = range(len(BOT_FAMILIES))

_LE = [floatToGoString(b) for b in DURATION_BUCKETS]
_UI_LE = [floatToGoString(b) for b in UI_WAIT_BUCKETS]
EXEMPLAR_LABEL = "run_id"
EXEMPLAR_MAX_CHARS = 128  # OpenMetrics: label names and values of an exemplar together


class Sink(Protocol):
    def add(self, family: int, labels: Sequence[str], value: float, exemplar: Exemplar | None = None) -> None: ...

    def add_histogram(self, family: int, labels: Sequence[str], buckets: list[tuple[str, float]],
                      sum_value: float) -> None: ...


@lru_cache(maxsize=4096)
def shown_run_id(run_id: str) -> bool:
    """Whether `run_id` may be an exemplar's label (see the module's docstring)."""
    if len(EXEMPLAR_LABEL) + len(run_id) > EXEMPLAR_MAX_CHARS:
        return False
    try:
        run_id.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from an undecodable log line
        return False
    return redact(run_id) == run_id


def run_exemplar(run_id: str, ended: float) -> Exemplar | None:
    return Exemplar({EXEMPLAR_LABEL: run_id}, 1.0, ended) if shown_run_id(run_id) else None


def write_bot(v: BotView, sink: Sink) -> None:
    """Every sample of the bot `v`, in the order of BOT_FAMILIES within each family."""
    c = v.cfg
    b = (v.name,)
    sink.add(INFO, (v.name, c.team or "", c.owner or "", c.platform, c.lifecycle or "", c.criticality), 1)
    for s in STATES:
        sink.add(STATE, (v.name, s), 1 if s == v.state else 0)
    sink.add(RUNS, b, v.runs_total, run_exemplar(*v.last_run) if v.last_run else None)
    failed = v.last_failed_run
    for r in REASONS:
        exemplar = run_exemplar(failed[0], failed[2]) if failed is not None and failed[1] == r else None
        sink.add(FAILURES, (v.name, r), v.failures.get(r, 0), exemplar)
    sink.add_histogram(DURATION, b, cumulative_buckets(_LE, v.bucket_counts, v.duration_count), v.duration_sum)
    for family, value in ((LAST_DURATION, v.last_run_duration), (LAST_END, v.last_run_end),
                          (LAST_SUCCESS, v.last_success), (LAST_FAILURE, v.last_failure)):
        if value is not None:
            sink.add(family, b, value)
    sink.add(CONSECUTIVE, b, v.consecutive_failures)
    sink.add(IN_PROGRESS, b, v.runs_in_progress)
    sink.add(STARTED, b, v.oldest_active_start or 0)
    if v.next_due is not None:
        sink.add(NEXT_DUE, b, v.next_due)
        sink.add(GRACE, b, c.grace)
    sink.add(MISSED, b, v.missed_runs_total)
    sink.add(CPU, b, v.cpu_seconds_total)
    sink.add(MEMORY, b, v.resident_memory_bytes)
    sink.add(HUNG, b, 1 if v.hung else 0)
    sink.add(PROCESSES, b, v.processes)
    for status, n in zip(ITEM_STATUSES, (v.items_processed_total, v.items_failed_total)):
        sink.add(ITEMS, (v.name, status), n)
    sink.add(EMPTY, b, v.empty_runs_total)
    if v.ui:
        _write_ui(v, sink)


def _write_ui(v: BotView, sink: Sink) -> None:
    for screen, u in sorted(v.ui.items()):
        labels = (v.name, screen)
        sink.add(UI_LOOKUPS, labels, u.lookups)
        for kind in LOOKUP_KINDS:
            sink.add(UI_FAILURES, (v.name, screen, kind), u.failures[kind])
        sink.add(UI_HEALED, labels, u.healed)
        sink.add_histogram(UI_WAIT, labels, cumulative_buckets(_UI_LE, u.wait_buckets, u.wait_count), u.wait_sum)
        score = u.drift_score
        if score is not None:
            sink.add(UI_DRIFT, labels, score)
            if u.baseline_time is not None:
                sink.add(UI_BASELINE, labels, u.baseline_time)
            for name, n in sorted(u.declared_matches.items()):
                sink.add(UI_DECLARED, (v.name, screen, name), n)
    sink.add(UI_OVERFLOW, (v.name,), v.ui_screens_overflowed)


_FAMILY_TYPES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}


def family(name: str, *, totals: bool = False) -> Metric:
    """An empty family of the catalogue's metric `name`; `totals`: as a bot host's totals say it."""
    spec = METRICS[name]
    doc = spec.totals_help if totals and spec.totals_help else spec.help
    return _FAMILY_TYPES[spec.type](name, doc, labels=list(spec.labels))


class MetricSink:
    """The bots' samples as prometheus_client families, in the order of BOT_FAMILIES."""

    def __init__(self) -> None:
        self.families = [family(name) for name in BOT_FAMILIES]

    def add(self, family: int, labels: Sequence[str], value: float, exemplar: Exemplar | None = None) -> None:
        if exemplar is None:
            self.families[family].add_metric(labels, value)
        else:
            self.families[family].add_metric(labels, value, exemplar=exemplar)

    def add_histogram(self, family: int, labels: Sequence[str], buckets: list[tuple[str, float]],
                      sum_value: float) -> None:
        self.families[family].add_metric(labels, buckets, sum_value)
