"""What the OTLP exporters share when their endpoint fails: exponential backoff, one log line per
outage (and one when it ends), the failure counter, and the OpenTelemetry SDK's own per-attempt
log lines kept out of the agent's log (their latest text becomes the reason of our one line).
"""

from __future__ import annotations

import logging
import random
import threading

from botwatch.core.redact import redact_url

log = logging.getLogger("botwatch.exporters.otlp")

# The SDK's OTLP/HTTP exporters log every failed attempt (and retry inside one export); an
# endpoint that is down for an hour must not write a line a minute into the agent's log.
_SDK_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


class _SdkLines(logging.Filter):
    """Keeps the latest SDK exporter line per logger instead of letting it through."""

    def __init__(self):
        super().__init__()
        self.latest: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self.latest[record.name] = record.getMessage()
        except Exception:
            self.latest[record.name] = str(record.msg)
        return False


_sdk_lines = _SdkLines()
_installed = threading.Lock()
_done = False


def quiet_sdk_loggers() -> None:
    global _done
    with _installed:
        if not _done:
            for name in _SDK_LOGGERS:
                logging.getLogger(name).addFilter(_sdk_lines)
            _done = True


def sdk_reason(logger_name: str) -> str:
    return _sdk_lines.latest.get(logger_name, "")


class Backoff:
    """Delays between attempts after failures: `initial`, doubling up to `maximum`, +-10% jitter
    (many agents that lost the same collector do not come back in step)."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, rng: random.Random | None = None):
        self.initial, self.maximum = initial, max(initial, maximum)
        self.failures = 0
        self.rng = rng or random.Random()

    def failed(self) -> float:
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** (self.failures - 1))
        return delay * self.rng.uniform(0.9, 1.1)

    def succeeded(self) -> None:
        self.failures = 0


class Outage:
    """Counts every failed push and logs an outage once, when it starts and when it ends."""

    def __init__(self, exporter: str, endpoint: str, count_failure, sdk_logger: str):
        self.exporter, self.endpoint = exporter, redact_url(endpoint)  # user:password@ in a URL stays out of logs
        self.count_failure, self.sdk_logger = count_failure, sdk_logger
        self.failed_pushes = 0  # of the current outage

    def failure(self, retry_in: float, why: str = "") -> None:
        self.count_failure(self.exporter)
        if self.failed_pushes == 0:
            reason = why or sdk_reason(self.sdk_logger) or sdk_reason("opentelemetry.exporter.otlp.common.http")
            log.warning("%s: cannot push to %s (%s); retrying with backoff (next in %.0fs), counted in "
                        "botwatch_agent_export_failures_total{exporter=%r}; this is logged again when it recovers",
                        self.exporter, self.endpoint, redact_url(reason) or "no reason given", retry_in, self.exporter)
        self.failed_pushes += 1

    def success(self) -> None:
        if self.failed_pushes:
            log.warning("%s: pushing to %s works again after %d failed attempt(s)", self.exporter, self.endpoint,
                        self.failed_pushes)
        self.failed_pushes = 0
