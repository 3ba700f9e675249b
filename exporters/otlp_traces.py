"""Run traces over OTLP/HTTP: each finished run becomes a span, its known steps child spans.

The estate state tells `RunTracer` of every newly recorded run and step (EstateState.listeners,
after the journal has them). Steps wait for their run's end; the run's span is then made with
the OpenTelemetry SDK, with the run's own start and end times, and its steps beneath it (a step
whose `parent` names another step of the run nests under that one: Robot Framework keywords
under their task). Span names and attributes follow the OTel CI/CD conventions: the span
`RUN <bot>`, `cicd.pipeline.name`, `cicd.pipeline.run.id`, `cicd.pipeline.result`.

Finished spans wait in `SpanQueue`, bounded: while the endpoint is down the oldest are dropped
(counted in botwatch_agent_events_dropped_total{source="otlp_traces"}), a batch that failed is
kept and retried with backoff, and nothing here waits on the network but its own thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Iterable

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from botwatch import __version__
from botwatch.core.events import Event, RunFinished, StepFinished

from .otlp_metrics import pipeline_result
from .otlp_retry import Backoff, Outage, quiet_sdk_loggers

log = logging.getLogger("botwatch.exporters.otlp")
STEP_RESULT = {"pass": "success", "fail": "failure", "skip": "skip"}


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class SpanQueue(SpanProcessor):
    """Holds finished spans for a pusher thread that exports them in batches."""

    def __init__(self, exporter: SpanExporter, *, endpoint: str, timeout: float, max_queued: int,
                 count_failure: Callable[[str], None], count_dropped: Callable[[str, int], None],
                 batch_size: int = 512, flush_interval: float = 2.0):
        self.exporter, self.timeout = exporter, timeout
        self.max_queued, self.batch_size, self.flush_interval = max_queued, batch_size, flush_interval
        self.count_dropped = count_dropped
        self.queue: collections.deque[ReadableSpan] = collections.deque()
        self.inflight: list[ReadableSpan] = []  # the batch being sent (kept until the endpoint takes it)
        self.cond = threading.Condition()
        self.stopped = False
        self.exported = 0  # spans the endpoint took
        self.backoff = Backoff(initial=1.0, maximum=60.0)
        self.outage = Outage("otlp_traces", endpoint, count_failure,
                             "opentelemetry.exporter.otlp.proto.http.trace_exporter")
        self._retry_at = 0.0
        quiet_sdk_loggers()
        self.thread = threading.Thread(target=self._run, name="botwatch-otlp-traces", daemon=True)
        self.thread.start()

    # -- SpanProcessor ---------------------------------------------------------------------
    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self.cond:
            if len(self.queue) >= self.max_queued:
                self.queue.popleft()  # the oldest goes: bounded memory beats a complete history
                self.count_dropped("otlp_traces", 1)
            self.queue.append(span)
            if len(self.queue) >= self.batch_size:
                self.cond.notify()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send what is queued now (one attempt per batch); True when nothing is left."""
        with self.cond:
            while self._send_one_batch():
                pass
            return not self.queue and not self.inflight

    def shutdown(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join(timeout=self.timeout + 5)
        self.force_flush()
        try:
            self.exporter.shutdown()
        except Exception:
            log.debug("OTLP span exporter shutdown failed", exc_info=True)

    # -- the pusher ------------------------------------------------------------------------
    def _run(self) -> None:
        import time

        with self.cond:
            while not self.stopped:
                wait = max(self.flush_interval, self._retry_at - time.monotonic())
                self.cond.wait(wait)
                if self.stopped or time.monotonic() < self._retry_at:
                    continue
                while self._send_one_batch():
                    pass

    def _send_one_batch(self) -> bool:
        """Called with the lock held; sends without it. True when a batch went out and more wait."""
        import time

        if not self.inflight:
            while self.queue and len(self.inflight) < self.batch_size:
                self.inflight.append(self.queue.popleft())
        if not self.inflight:
            return False
        batch = list(self.inflight)
        self.cond.release()
        try:
            try:
                result, why = self.exporter.export(batch), ""
            except Exception as exc:
                result, why = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        finally:
            self.cond.acquire()
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
            self.inflight = []
            self.backoff.succeeded()
            self.outage.success()
            return bool(self.queue)
        delay = self.backoff.failed()
        self._retry_at = time.monotonic() + delay
        self.outage.failure(delay, why)
        return False


class RunTracer:
    """The state listener that turns recorded runs and their steps into spans."""

    def __init__(self, provider: TracerProvider, count_dropped: Callable[[str, int], None], *,
                 max_pending_runs: int = 10_000, max_steps_per_run: int = 1_000):
        self.tracer = provider.get_tracer("botwatch", __version__)
        self.count_dropped = count_dropped
        self.max_pending_runs, self.max_steps_per_run = max_pending_runs, max_steps_per_run
        # steps of runs not finished yet: (bot, run id) -> steps, oldest run first
        self.pending: collections.OrderedDict[tuple[str, str], list[StepFinished]] = collections.OrderedDict()
        self.lock = threading.Lock()

    def __call__(self, events: Iterable[Event]) -> None:
        with self.lock:
            for ev in events:
                if isinstance(ev, StepFinished):
                    self._hold(ev)
                elif isinstance(ev, RunFinished):
                    self._trace(ev, self.pending.pop((ev.bot, ev.run_id), []))

    def _hold(self, step: StepFinished) -> None:
        key = (step.bot, step.run_id)
        steps = self.pending.get(key)
        if steps is None:
            if len(self.pending) >= self.max_pending_runs:  # runs that never finish must not pile up
                _, lost = self.pending.popitem(last=False)
                self.count_dropped("otlp_traces", len(lost))
            steps = self.pending[key] = []
        if len(steps) >= self.max_steps_per_run:
            self.count_dropped("otlp_traces", 1)
            return
        steps.append(step)

    def _trace(self, run: RunFinished, steps: list[StepFinished]) -> None:
        known = [s.started for s in steps if s.started is not None]
        start = run.started if run.started is not None else min(known, default=run.ended)
        attrs = {
            "cicd.pipeline.name": run.bot,
            "cicd.pipeline.run.id": run.run_id,
            "cicd.pipeline.action.name": "RUN",
            "botwatch.run.outcome": run.outcome,
            "botwatch.run.source": run.source,
        }
        if run.outcome == "success":
            attrs["cicd.pipeline.result"] = "success"
        elif run.outcome == "failure":
            attrs["cicd.pipeline.result"] = pipeline_result(run.reason or "unknown")
            attrs["botwatch.failure.reason"] = run.reason or "unknown"
            attrs["error.type"] = run.reason or "unknown"
        if run.exit_status is not None:
            attrs["process.exit.code"] = run.exit_status
        if run.host:
            attrs["botwatch.run.host"] = run.host
        if run.screen:
            attrs["botwatch.ui.screen"] = run.screen
        root = self.tracer.start_span(f"RUN {run.bot}", kind=SpanKind.INTERNAL, start_time=_ns(start),
                                      attributes=attrs)
        if run.outcome == "failure":
            root.set_status(Status(StatusCode.ERROR, run.reason or "unknown"))
        parents = {None: root}
        # tasks first, then what nests under them (a step naming an unknown parent goes under the run)
        for step in sorted(steps, key=lambda s: s.parent is not None):
            parent = parents.get(step.parent, root)
            span = self.tracer.start_span(
                step.name, context=trace.set_span_in_context(parent), kind=SpanKind.INTERNAL,
                start_time=_ns(step.started if step.started is not None else step.ended),
                attributes={"cicd.pipeline.task.name": step.name,
                            "cicd.pipeline.task.run.result": STEP_RESULT[step.status],
                            "botwatch.step.source": step.source,
                            **({"botwatch.step.parent": step.parent} if step.parent else {})})
            if step.status == "fail":
                span.set_status(Status(StatusCode.ERROR, step.message or "failed"))
            span.end(end_time=_ns(max(step.ended, step.started or step.ended)))
            if step.parent is None:
                parents.setdefault(step.name, span)
        root.end(end_time=_ns(max(run.ended, start)))


def tracer_provider(resource: dict[str, str], sampling: float | None) -> TracerProvider:
    """`sampling` is the share of runs traced; None leaves it to OTEL_TRACES_SAMPLER (the SDK's
    default: every run)."""
    sampler = ParentBased(TraceIdRatioBased(sampling)) if sampling is not None else None
    return TracerProvider(resource=Resource.create(resource), sampler=sampler, shutdown_on_exit=False)
