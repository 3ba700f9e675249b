"""What the OTLP exports do, from the estate file's `agent.otlp` and the standard OTEL_*
environment variables (the file wins where it says something; the environment fills the rest).

Resolved once at start into an `OtlpSettings`, so that the exporters get plain values and the
tests can check the resolution without starting anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from botwatch import __version__
from botwatch.config.estate import Estate, resolve_secret
from botwatch.core.host import hostname

DEFAULT_ENDPOINT = "http://localhost:4318"  # the OTLP/HTTP default of the specification
DEFAULT_INTERVAL = 60.0  # seconds, OTEL_METRIC_EXPORT_INTERVAL's default
DEFAULT_TIMEOUT = 10.0  # seconds, OTEL_EXPORTER_OTLP_TIMEOUT's default


@dataclass(frozen=True)
class SignalTarget:
    endpoint: str  # full URL, /v1/<signal> included
    headers: dict[str, str] = field(repr=False)  # may hold an API key: never in a repr or a log
    timeout: float


@dataclass(frozen=True)
class OtlpSettings:
    metrics: SignalTarget | None  # None: metrics are not pushed
    traces: SignalTarget | None
    interval: float
    sampling: float | None  # share of runs traced; None: the SDK's OTEL_TRACES_SAMPLER
    max_queued_spans: int
    resource: dict[str, str]

    @property
    def enabled(self) -> bool:
        return self.metrics is not None or self.traces is not None


def _exporters(env: Mapping[str, str], name: str) -> set[str]:
    return {p.strip().lower() for p in env.get(name, "").split(",") if p.strip()}


def _headers(raw: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: `key1=value1,key2=value2` (values may be percent-encoded)."""
    from urllib.parse import unquote

    out = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = unquote(value.strip())
    return out


def _seconds_from_ms(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw) / 1000.0
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of milliseconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def resolve(estate: Estate, env: Mapping[str, str] | None = None) -> OtlpSettings:
    """The OTLP settings of this agent. Raises ValueError naming the variable that is wrong."""
    env = os.environ if env is None else env
    cfg = estate.agent.otlp
    env_on = {"metrics": "otlp" in _exporters(env, "OTEL_METRICS_EXPORTER"),
              "traces": "otlp" in _exporters(env, "OTEL_TRACES_EXPORTER")}
    # metrics: on when the file says so, or gives an endpoint and does not say no; else by the
    # environment. Traces: only when asked for (they cost more), in the file or the environment.
    wanted = {"metrics": cfg.metrics if cfg.metrics is not None else (cfg.endpoint is not None or env_on["metrics"]),
              "traces": cfg.traces if cfg.traces is not None else env_on["traces"]}
    timeout = cfg.timeout or _seconds_from_ms(env, "OTEL_EXPORTER_OTLP_TIMEOUT") or DEFAULT_TIMEOUT
    base_headers = _headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    file_headers = {k.lower(): v for k, raw in cfg.headers.items() if (v := resolve_secret(raw)) is not None}

    def target(signal: str) -> SignalTarget | None:
        if not wanted[signal]:
            return None
        upper = signal.upper()
        if cfg.endpoint:
            endpoint = cfg.endpoint.rstrip("/") + f"/v1/{signal}"
        elif env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"):
            endpoint = env[f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"]  # used as is, as the specification says
        else:
            endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/") + f"/v1/{signal}"
        headers = {**base_headers, **_headers(env.get(f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", "")), **file_headers}
        signal_timeout = cfg.timeout or _seconds_from_ms(env, f"OTEL_EXPORTER_OTLP_{upper}_TIMEOUT") or timeout
        return SignalTarget(endpoint, headers, signal_timeout)

    resource = {
        "service.name": env.get("OTEL_SERVICE_NAME") or "botwatch-agent",
        "service.version": __version__,
        "host.name": hostname(),
        "botwatch.estate.name": estate.name or "default",
    }
    return OtlpSettings(
        metrics=target("metrics"), traces=target("traces"),
        interval=cfg.interval or _seconds_from_ms(env, "OTEL_METRIC_EXPORT_INTERVAL") or DEFAULT_INTERVAL,
        sampling=cfg.traces_sampling, max_queued_spans=cfg.max_queued_spans, resource=resource,
    )
