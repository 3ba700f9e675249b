"""Starts and stops the agent's OTLP exports (metrics and run traces) as the settings say."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.registry import CollectorRegistry

from botwatch.core.extras import MissingExtra, require
from botwatch.core.redact import redact_url
from botwatch.state.runtime import EstateState

from .otlp_settings import OtlpSettings

if TYPE_CHECKING:  # the OpenTelemetry packages load only when an export is switched on
    from opentelemetry.sdk.trace import TracerProvider

    from .otlp_metrics import MetricsPusher
    from .otlp_traces import RunTracer, SpanQueue

log = logging.getLogger("botwatch.exporters.otlp")


@dataclass
class OtlpExports:
    metrics: MetricsPusher | None = None
    traces: SpanQueue | None = None
    provider: TracerProvider | None = None  # the one the run tracer uses
    tracer: RunTracer | None = None  # a state listener

    def stop(self, state: EstateState | None = None) -> None:
        """Stop pushing, after one last push of each (bounded by the timeouts)."""
        if self.tracer is not None and state is not None and self.tracer in state.listeners:
            state.listeners.remove(self.tracer)
        try:
            if self.traces is not None:
                self.traces.shutdown()
            if self.metrics is not None:
                self.metrics.stop()
        except Exception:
            log.exception("stopping the OTLP export failed")


def start(settings: OtlpSettings, state: EstateState, registry: CollectorRegistry) -> OtlpExports:
    """Start what `settings` asks for; the OpenTelemetry packages load only then. An export that
    cannot start is logged and left off: /metrics and the rest of the agent go on. Without the
    otlp extra, one line says so and nothing starts."""
    exports = OtlpExports()
    wanted = [what for what, target in (("metrics", settings.metrics), ("run traces", settings.traces)) if target]
    if not wanted:
        return exports
    try:
        require("otlp", "OTLP export of " + " and ".join(wanted))
    except MissingExtra as exc:
        log.warning("%s; the agent goes on without it", exc)
        return exports
    try:
        _start_metrics(settings, state, registry, exports)
    except Exception:
        log.exception("OTLP metrics cannot start; the agent goes on without them")
    try:
        _start_traces(settings, state, exports)
    except Exception:
        log.exception("OTLP run traces cannot start; the agent goes on without them")
    return exports


def _start_metrics(settings: OtlpSettings, state: EstateState, registry: CollectorRegistry,
                   exports: OtlpExports) -> None:
    if settings.metrics is not None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        from .otlp_metrics import MetricsPusher

        target = settings.metrics
        exporter = OTLPMetricExporter(endpoint=target.endpoint, headers=target.headers, timeout=target.timeout)
        exports.metrics = MetricsPusher(registry, exporter, interval=settings.interval, timeout=target.timeout,
                                        resource=settings.resource, endpoint=target.endpoint,
                                        count_failure=state.count_export_failure)
        exports.metrics.start()
        log.info("OTLP metrics: every %.0fs to %s", settings.interval, redact_url(target.endpoint))


def _start_traces(settings: OtlpSettings, state: EstateState, exports: OtlpExports) -> None:
    if settings.traces is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from .otlp_traces import RunTracer, SpanQueue, tracer_provider

        target = settings.traces
        exporter = OTLPSpanExporter(endpoint=target.endpoint, headers=target.headers, timeout=target.timeout)
        exports.traces = SpanQueue(exporter, endpoint=target.endpoint, timeout=target.timeout,
                                   max_queued=settings.max_queued_spans, count_failure=state.count_export_failure,
                                   count_dropped=state.count_dropped)
        exports.provider = tracer_provider(settings.resource, settings.sampling)
        exports.provider.add_span_processor(exports.traces)
        exports.tracer = RunTracer(exports.provider, state.count_dropped)
        state.listeners.append(exports.tracer)
        log.info("OTLP run traces to %s", redact_url(target.endpoint))
