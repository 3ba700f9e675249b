"""A real OTLP/HTTP receiver for the tests: takes protobuf ExportMetricsServiceRequest and
ExportTraceServiceRequest bodies on /v1/metrics and /v1/traces (127.0.0.1 only), decodes them
with opentelemetry-proto, and can go down and come back on the same port."""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from conftest import free_port


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class Point:
    attributes: dict
    value: float | None = None  # sums and gauges
    count: int | None = None  # histograms
    sum: float | None = None
    bucket_counts: list | None = None
    bounds: list | None = None
    start_ns: int = 0


@dataclass
class ReceivedMetric:
    name: str
    unit: str
    kind: str  # sum | gauge | histogram
    monotonic: bool
    cumulative: bool
    points: list[Point]


@dataclass
class ReceivedSpan:
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    start_ns: int
    end_ns: int
    attributes: dict
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict


class OtlpReceiver:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.trace_requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        self._server = None

    def start(self) -> "OtlpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/metrics":
                    request, response = ExportMetricsServiceRequest(), ExportMetricsServiceResponse()
                    store = receiver.metric_requests
                elif self.path == "/v1/traces":
                    request, response = ExportTraceServiceRequest(), ExportTraceServiceResponse()
                    store = receiver.trace_requests
                else:
                    self.send_error(404)
                    return
                request.ParseFromString(body)
                with receiver.lock:
                    store.append(request)
                    receiver.headers.append(dict(self.headers))
                out = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- what arrived ----------------------------------------------------------------------
    def latest_metrics(self) -> dict[str, ReceivedMetric]:
        """The metrics of the latest metrics request, by name."""
        with self.lock:
            if not self.metric_requests:
                return {}
            request = self.metric_requests[-1]
        return decode_metrics(request)

    def resource(self) -> dict:
        with self.lock:
            return attrs(self.metric_requests[-1].resource_metrics[0].resource.attributes)

    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            requests = list(self.trace_requests)
        out = []
        for request in requests:
            for rs in request.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(ReceivedSpan(s.name, s.trace_id, s.span_id, s.parent_span_id,
                                                s.start_time_unix_nano, s.end_time_unix_nano, attrs(s.attributes),
                                                s.status.code, s.status.message, resource))
        return out


def decode_metrics(request: ExportMetricsServiceRequest) -> dict[str, ReceivedMetric]:
    out = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                assert kind is not None, f"metric {m.name} has no data"
                data = getattr(m, kind)
                points = []
                for p in data.data_points:
                    if kind == "histogram":
                        points.append(Point(attrs(p.attributes), count=p.count, sum=p.sum,
                                            bucket_counts=list(p.bucket_counts), bounds=list(p.explicit_bounds),
                                            start_ns=p.start_time_unix_nano))
                    else:
                        value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                        points.append(Point(attrs(p.attributes), value=value, start_ns=p.start_time_unix_nano))
                out[m.name] = ReceivedMetric(
                    m.name, m.unit, kind, bool(getattr(data, "is_monotonic", False)),
                    getattr(data, "aggregation_temporality", 0) == 2, points)
    return out
