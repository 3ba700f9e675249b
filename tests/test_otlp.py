"""OTLP export: the metric catalogue and run traces pushed over OTLP/HTTP to a real receiver
(tests/otlp_receiver.py decodes the protobuf with opentelemetry-proto), settings from the estate
file and the OTEL_* environment, and an endpoint that is down and comes back."""

from __future__ import annotations

import logging
import re
import tracemalloc

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from botwatch.config.estate import parse_estate_text
from botwatch.core.events import RunFinished, RunStarted, StepFinished, UiLookup
from botwatch.exporters import otlp
from botwatch.exporters.otlp_metrics import NAMES, MetricsPusher, attributes
from botwatch.exporters.otlp_settings import resolve
from botwatch.exporters.otlp_traces import RunTracer, SpanQueue, tracer_provider
from botwatch.exporters.prometheus import estate_registry
from botwatch.state.runtime import EstateState
from conftest import free_port, http_post_json, metrics_when, wait_for, write_estate
from otlp_receiver import OtlpReceiver

NOW = 1_790_000_000.0
ESTATE = """\
name: north
agent:
  limits: {max_screens: 4}
bots:
  - name: alpha
    team: finance
    owner: ana@example.com
    every: 1h
    ui: {screens: {login: {selectors: {user: '#user'}}}}
  - name: beta
    team: hr
    platform: robotframework
"""


def busy_state() -> EstateState:
    """Runs of every outcome, failure reasons, UI look-ups over the screen limit."""
    state = EstateState(parse_estate_text(ESTATE), None, clock=lambda: NOW)
    events = []
    for i, (bot, outcome, reason, secs) in enumerate([
        ("alpha", "success", None, 3.0), ("alpha", "failure", "ui_drift", 40.0), ("alpha", "failure", "timeout", 700.0),
        ("beta", "success", None, 0.5), ("beta", "failure", "killed", 2.0), ("beta", "success", None, 20000.0),
    ]):
        start = NOW - 10_000 + i * 100
        events += [RunStarted(bot, f"r{i}", start),
                   RunFinished(bot, f"r{i}", start + secs, outcome, started=start, reason=reason,
                               exit_status=0 if outcome == "success" else 1)]
    for screen, found, wait in [("login", True, 0.2), ("login", False, 5.0), ("grid", True, 1.1), ("x" * 300, True, 0.0),
                                ("extra", True, 0.1), ("sixth", True, 0.1)]:
        events.append(UiLookup("alpha", NOW - 50, screen, found, wait=wait,
                               kind=None if found else "not_found"))
    events.append(RunStarted("beta", "active", NOW - 20))
    state.apply(events)
    state.count_export_failure("otlp_metrics", 2)
    return state


def push_once(state: EstateState, receiver: OtlpReceiver, **kw) -> MetricsPusher:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=receiver.url + "/v1/metrics", timeout=5)
    pusher = MetricsPusher(estate_registry(state, clock=lambda: NOW), exporter, interval=60, timeout=5,
                           resource={"service.name": "botwatch-agent", "botwatch.estate.name": "north"},
                           endpoint=receiver.url, count_failure=state.count_export_failure, clock=lambda: NOW, **kw)
    assert pusher.push()
    return pusher


@pytest.fixture
def receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


# -- metrics: one source of truth ------------------------------------------------------------

def test_every_family_of_the_catalogue_has_a_dotted_otlp_name_of_its_own():
    families = [f.name for f in estate_registry(busy_state(), clock=lambda: NOW).collect()]
    missing = [f for f in families if f not in NAMES]
    assert not missing, f"families without an OTLP name: {missing}"
    names = [NAMES[f][0] for f in families]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"botwatch(\.[a-z_]+)+", n) for n in names), names
    assert NAMES["botwatch_run_duration_seconds"] == ("botwatch.run.duration", "s")


def prometheus_samples(state: EstateState) -> list[tuple[str, str, dict, float]]:
    """(family, sample name, labels, value) of every sample /metrics renders for `state`."""
    text = generate_latest(estate_registry(state, clock=lambda: NOW)).decode()
    return [(fam.name, s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def test_otlp_and_metrics_agree_on_every_sample_for_the_same_runs(receiver):
    state = busy_state()
    push_once(state, receiver)
    got = receiver.latest_metrics()
    samples = prometheus_samples(state)
    assert len(samples) > 150
    checked = 0
    for family, name, labels, value in samples:
        otel_name, unit = NAMES[family]
        metric = got[otel_name]
        if name.endswith(("_bucket", "_count", "_sum")) and metric.kind == "histogram":
            plain = {k: v for k, v in labels.items() if k != "le"}
            point = next(p for p in metric.points if p.attributes == attributes(plain))
            if name.endswith("_count"):
                assert point.count == value
            elif name.endswith("_sum"):
                assert point.sum == pytest.approx(value)
            else:  # Prometheus buckets are cumulative, OTLP's per bucket
                le = float(labels["le"])
                upto = sum(c for b, c in zip(point.bounds + [float("inf")], point.bucket_counts) if b <= le)
                assert upto == value, (name, labels)
        else:
            want = attributes(labels)
            points = [p for p in metric.points if all(p.attributes.get(k) == v for k, v in want.items())
                      and len(p.attributes) - len(want) <= 1]
            assert len(points) == 1, (name, labels, metric.points)
            assert points[0].value == pytest.approx(value), (name, labels)
            if family.endswith("_total") or metric.kind == "sum":
                assert metric.monotonic and metric.cumulative
        checked += 1
    assert checked == len(samples)
    # counters that matter, read back from OTLP by their dotted names and CI/CD attributes
    runs = {p.attributes["cicd.pipeline.name"]: p.value for p in got["botwatch.runs"].points}
    assert runs == {"alpha": 3, "beta": 3}
    failures = {(p.attributes["cicd.pipeline.name"], p.attributes["botwatch.failure.reason"],
                 p.attributes["cicd.pipeline.result"]): p.value for p in got["botwatch.run.failures"].points}
    assert failures[("alpha", "ui_drift", "failure")] == 1
    assert failures[("alpha", "timeout", "timeout")] == 1
    assert failures[("beta", "killed", "error")] == 1
    assert failures[("beta", "crash", "failure")] == 0
    duration = next(p for p in got["botwatch.run.duration"].points if p.attributes["cicd.pipeline.name"] == "beta")
    assert duration.count == 3 and duration.bucket_counts[0] == 1 and duration.bucket_counts[-1] == 1
    assert got["botwatch.run.duration"].unit == "s"
    assert got["botwatch.agent.export.failures"].points[0].attributes == {"botwatch.exporter": "otlp_metrics"}


def test_resource_attributes_name_the_host_the_agent_version_and_the_estate(receiver, monkeypatch):
    from botwatch import __version__

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")
    push_once(busy_state(), receiver)
    resource = receiver.resource()
    assert resource["service.name"] == "botwatch-agent"
    assert resource["botwatch.estate.name"] == "north"
    assert resource["deployment.environment.name"] == "prod"
    settings = resolve(parse_estate_text(ESTATE), {"OTEL_METRICS_EXPORTER": "otlp"})
    assert settings.resource["service.version"] == __version__ and settings.resource["host.name"]


def test_a_screen_name_longer_than_the_label_limit_is_shortened_and_counted():
    state = busy_state()
    screens = {s for v in state.views(NOW) for s in v.ui}
    long = [s for s in screens if s.startswith("xxx")]
    assert len(long) == 1 and len(long[0]) == 64 and re.search(r"~[0-9a-f]{8}$", long[0])
    assert state.self_metrics()["labels_shortened"] == {"screen": 1}
    text = generate_latest(estate_registry(state, clock=lambda: NOW)).decode()
    assert 'botwatch_agent_label_values_shortened_total{label="screen"} 1.0' in text
    # the screen limit (4) still holds: the fifth screen is "other", counted
    assert "other" in screens and 'botwatch_ui_screens_overflow_total{bot="alpha"} 1.0' in text


# -- settings ----------------------------------------------------------------------------------

def test_nothing_is_pushed_unless_the_file_or_the_environment_asks():
    settings = resolve(parse_estate_text(ESTATE), {})
    assert not settings.enabled


def test_the_standard_otel_variables_switch_the_exports_on_without_editing_the_estate_file():
    env = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "console,otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cr%3Dt",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_METRIC_EXPORT_INTERVAL": "15000",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"}
    s = resolve(parse_estate_text(ESTATE), env)
    assert s.metrics.endpoint == "http://collector:4318/v1/metrics"
    assert s.traces.endpoint == "http://tempo:4318/v1/traces"  # a signal's own endpoint is taken as is
    assert s.metrics.headers == {"api-key": "s3cr=t"} and s.metrics.timeout == 2.5 and s.interval == 15.0
    assert "s3cr" not in repr(s)  # headers carry keys: never in a repr (or a log)


def test_the_estate_file_wins_over_the_environment_and_resolves_secret_headers(monkeypatch):
    monkeypatch.setenv("COLLECTOR_KEY", "k-123")
    estate = parse_estate_text("agent:\n  otlp:\n    endpoint: https://otlp.example.com\n    headers: {X-Key: env:COLLECTOR_KEY}\n"
                               "    interval: 30s\n    timeout: 4s\n    traces: true\n    traces_sampling: 0.25\nbots: []\n")
    s = resolve(estate, {"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318",
                         "OTEL_METRIC_EXPORT_INTERVAL": "1000"})
    assert s.metrics.endpoint == "https://otlp.example.com/v1/metrics"  # an endpoint in the file: metrics on
    assert s.traces.endpoint == "https://otlp.example.com/v1/traces"
    assert s.metrics.headers == {"x-key": "k-123"} and s.interval == 30.0 and s.traces.timeout == 4.0
    assert s.sampling == 0.25
    off = resolve(parse_estate_text("agent:\n  otlp: {metrics: false}\nbots: []\n"), {"OTEL_METRICS_EXPORTER": "otlp"})
    assert off.metrics is None


def test_a_malformed_otel_variable_is_an_error_naming_it():
    with pytest.raises(ValueError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        resolve(parse_estate_text(ESTATE), {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "soon"})


def test_an_otlp_endpoint_that_is_not_a_url_is_a_config_error_at_its_line():
    from botwatch.config.estate import ConfigError

    with pytest.raises(ConfigError) as exc:
        parse_estate_text("agent:\n  otlp:\n    endpoint: collector:4318\nbots: []\n", "estate.yaml")
    assert "estate.yaml:3" in str(exc.value) and "http://" in str(exc.value)


# -- run traces --------------------------------------------------------------------------------

def traced(receiver: OtlpReceiver, sampling: float | None = None, max_queued: int = 1000):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    state = EstateState(parse_estate_text(ESTATE), None, clock=lambda: NOW)
    queue = SpanQueue(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=1), endpoint=receiver.url,
                      timeout=1, max_queued=max_queued, count_failure=state.count_export_failure,
                      count_dropped=state.count_dropped, flush_interval=0.1)
    provider = tracer_provider({"service.name": "botwatch-agent"}, sampling)
    provider.add_span_processor(queue)
    state.listeners.append(RunTracer(provider, state.count_dropped))
    return state, queue


def robot_run(run_id: str, start: float, outcome: str = "failure") -> list:
    return [
        RunStarted("beta", run_id, start),
        StepFinished("beta", run_id, "Log in", start + 4, "pass", start + 1, source="robot"),
        StepFinished("beta", run_id, "Open Browser", start + 2, "pass", start + 1, source="robot", parent="Log in"),
        StepFinished("beta", run_id, "Submit invoice", start + 9, "fail", start + 4, "Element 'id:btnSubmit' not found",
                     source="robot"),
        StepFinished("beta", run_id, "Click Button", start + 9, "fail", start + 5, source="robot",
                     parent="Submit invoice"),
        RunFinished("beta", run_id, start + 10, outcome, started=start, exit_status=1 if outcome == "failure" else 0,
                    reason="ui_drift" if outcome == "failure" else None, source="robot"),
    ]


def test_a_run_becomes_a_span_with_its_tasks_beneath_and_their_keywords_beneath_them(receiver):
    state, queue = traced(receiver)
    state.apply(robot_run("r-1", NOW - 100))
    assert queue.force_flush()
    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"RUN beta", "Log in", "Open Browser", "Submit invoice", "Click Button"}
    run = spans["RUN beta"]
    assert run.parent_span_id == b""
    assert run.attributes == {
        "cicd.pipeline.name": "beta", "cicd.pipeline.run.id": "r-1", "cicd.pipeline.action.name": "RUN",
        "cicd.pipeline.result": "failure", "botwatch.run.outcome": "failure", "botwatch.run.source": "robot",
        "botwatch.failure.reason": "ui_drift", "error.type": "ui_drift", "process.exit.code": 1}
    assert run.status_code == 2 and run.status_message == "ui_drift"
    assert (run.start_ns, run.end_ns) == (int((NOW - 100) * 1e9), int((NOW - 90) * 1e9))
    assert spans["Log in"].parent_span_id == run.span_id
    assert spans["Submit invoice"].parent_span_id == run.span_id
    assert spans["Open Browser"].parent_span_id == spans["Log in"].span_id
    assert spans["Click Button"].parent_span_id == spans["Submit invoice"].span_id
    assert {s.trace_id for s in spans.values()} == {run.trace_id}
    assert spans["Submit invoice"].attributes["cicd.pipeline.task.run.result"] == "failure"
    assert spans["Submit invoice"].status_message == "Element 'id:btnSubmit' not found"
    assert spans["Log in"].attributes["cicd.pipeline.task.run.result"] == "success"


def test_a_run_the_journal_already_had_is_not_traced_twice(receiver, tmp_path):
    from botwatch.state.journal import Journal
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    journal = Journal(tmp_path / "j.db")
    state = EstateState(parse_estate_text(ESTATE), journal, clock=lambda: NOW)
    queue = SpanQueue(OTLPSpanExporter(endpoint=receiver.url + "/v1/traces", timeout=1), endpoint=receiver.url,
                      timeout=1, max_queued=100, count_failure=state.count_export_failure,
                      count_dropped=state.count_dropped)
    provider = tracer_provider({}, None)
    provider.add_span_processor(queue)
    state.listeners.append(RunTracer(provider, state.count_dropped))
    run = RunFinished("alpha", "once", NOW - 5, "success", started=NOW - 9)
    state.apply([run])
    state.apply([run])  # a deliverer's retry
    assert queue.force_flush()
    assert [s.name for s in receiver.spans()] == ["RUN alpha"]
    journal.close()


def test_sampling_zero_traces_no_run_and_one_traces_every_run(receiver):
    state, queue = traced(receiver, sampling=0.0)
    for i in range(20):
        state.apply(robot_run(f"none-{i}", NOW - 500 + i, "success"))
    assert queue.force_flush() and receiver.spans() == []
    state, queue = traced(receiver, sampling=1.0)
    for i in range(20):
        state.apply(robot_run(f"all-{i}", NOW - 500 + i, "success"))
    assert queue.force_flush()
    # every run, each once (a push the receiver took but answered too late for a loaded client is
    # sent again: OTLP delivery is at least once, so spans are counted by their run)
    traced_runs = {s.attributes["cicd.pipeline.run.id"] for s in receiver.spans() if s.name == "RUN beta"}
    assert traced_runs == {f"all-{i}" for i in range(20)}


# -- an endpoint that is down ------------------------------------------------------------------

def test_spans_wait_in_a_bounded_queue_while_the_endpoint_is_down_and_arrive_when_it_is_back(caplog):
    receiver = OtlpReceiver()  # not started: its port refuses connections
    state, queue = traced(receiver, max_queued=100)
    caplog.set_level(logging.WARNING, logger="botwatch.exporters.otlp")
    for i in range(200):
        state.apply([RunFinished("alpha", f"r{i}", NOW - 1000 + i, "success", started=NOW - 1001 + i)])
    wait_for(lambda: state.export_failures_total.get("otlp_traces", 0) >= 2, what="failed pushes")
    assert len(queue.queue) + len(queue.inflight) <= 100 + queue.batch_size
    dropped = state.self_metrics()["dropped"]["otlp_traces"]
    assert dropped >= 200 - 100 - queue.batch_size
    assert len([r for r in caplog.records if "cannot push" in r.getMessage()]) == 1  # once per outage
    receiver.start()
    try:
        queue.backoff.failures = 0
        queue._retry_at = 0.0
        wait_for(lambda: not queue.queue and not queue.inflight, timeout=90, what="the queue to drain")
        got = {s.attributes["cicd.pipeline.run.id"] for s in receiver.spans()}
        assert len(got) + dropped == 200  # every run either arrived or was counted as dropped
        assert "r199" in got  # the newest are kept, the oldest dropped
        assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        queue.shutdown()
        receiver.stop()


def test_failed_metric_pushes_keep_nothing(caplog):
    """Nothing is queued for a later push: memory after 300 failed pushes is what it was after 50."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    state = busy_state()
    exporter = OTLPMetricExporter(endpoint=f"http://127.0.0.1:{free_port()}/v1/metrics", timeout=0.2)
    pusher = MetricsPusher(estate_registry(state, clock=lambda: NOW), exporter, interval=60, timeout=0.2,
                           resource={}, endpoint="down", count_failure=state.count_export_failure)
    tracemalloc.start()
    try:
        for _ in range(50):
            assert not pusher.push()
        before = tracemalloc.take_snapshot()
        for _ in range(250):
            pusher.push()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 256 * 1024, f"{growth} bytes kept by 250 failed pushes"
    assert state.export_failures_total["otlp_metrics"] == 2 + 300


# -- the real agent ----------------------------------------------------------------------------

AGENT_BOTS = """\
- name: alpha
  team: finance
  every: 1h
- name: beta
  team: hr
"""


def otel_env(receiver: OtlpReceiver) -> dict:
    return {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}


def post_runs(agent, runs: list[tuple[str, str, str, str | None]]) -> None:
    events = []
    for bot, rid, outcome, reason in runs:
        events += [{"type": "run_started", "bot": bot, "run_id": rid, "time": NOW - 60},
                   {"type": "step", "bot": bot, "run_id": rid, "name": "Main", "started": NOW - 59, "ended": NOW - 2},
                   {"type": "run_finished", "bot": bot, "run_id": rid, "ended": NOW - 1, "started": NOW - 60,
                    "outcome": outcome, **({"reason": reason} if reason else {})}]
    status, body = http_post_json(agent.url + "/api/v1/events", {"events": events})
    assert status == 200 and body["accepted"] == len(events), body


def otlp_totals(receiver: OtlpReceiver) -> dict[str, float]:
    got = receiver.latest_metrics()
    out = {}
    for otel_name, prom in (("botwatch.runs", "botwatch_runs_total"),
                            ("botwatch.run.failures", "botwatch_run_failures_total")):
        for p in got.get(otel_name, type("M", (), {"points": []})).points:
            a = p.attributes
            labels = f'bot="{a["cicd.pipeline.name"]}"' + (f',reason="{a["botwatch.failure.reason"]}"'
                                                           if "botwatch.failure.reason" in a else "")
            out[f"{prom}{{{labels}}}"] = p.value
    return out


def bot_counters(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(("botwatch_runs_total{", "botwatch_run_failures_total{"))}


def test_an_agent_switched_on_by_the_otel_variables_pushes_what_metrics_shows_and_traces_runs(
        tmp_path, agents, receiver):
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", AGENT_BOTS, port), port, env=otel_env(receiver)).start()
    post_runs(agent, [("alpha", "a1", "success", None), ("alpha", "a2", "failure", "credentials"),
                      ("beta", "b1", "failure", "business")])
    expected = bot_counters(agent.metrics())
    assert expected['botwatch_run_failures_total{bot="alpha",reason="credentials"}'] == 1
    wait_for(lambda: otlp_totals(receiver) == expected, timeout=60, what="OTLP totals equal to /metrics")
    wait_for(lambda: len([s for s in receiver.spans() if s.name.startswith("RUN ")]) == 3, what="three run spans")
    spans = receiver.spans()
    runs = {s.attributes["cicd.pipeline.run.id"]: s for s in spans if s.name.startswith("RUN ")}
    assert runs["a2"].attributes["cicd.pipeline.result"] == "failure"
    assert runs["a2"].attributes["botwatch.failure.reason"] == "credentials"
    steps = [s for s in spans if s.name == "Main"]
    assert sorted(s.parent_span_id for s in steps) == sorted(r.span_id for r in runs.values())


def test_an_endpoint_down_for_a_while_gets_correct_counters_and_the_runs_traces_when_it_is_back(
        tmp_path, agents):
    receiver = OtlpReceiver()  # its port is chosen, nothing listens yet
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", AGENT_BOTS, port), port, env=otel_env(receiver)).start()
    try:
        post_runs(agent, [("alpha", f"down-{i}", "failure" if i % 3 == 0 else "success", "data" if i % 3 == 0 else None)
                          for i in range(9)])
        m = metrics_when(agent, lambda m: m.get('botwatch_agent_export_failures_total{exporter="otlp_traces"}', 0) >= 1
                         and m.get('botwatch_agent_export_failures_total{exporter="otlp_metrics"}', 0) >= 2,
                         "failed pushes counted")
        assert m['botwatch_runs_total{bot="alpha"}'] == 9  # the agent's other outputs go on
        log = agent.log.read_text()
        assert log.count("otlp_metrics: cannot push") == 1 and log.count("otlp_traces: cannot push") == 1
        receiver.start()
        expected = bot_counters(agent.metrics())
        wait_for(lambda: otlp_totals(receiver) == expected, timeout=90, what="the counters after the outage")
        assert otlp_totals(receiver)['botwatch_run_failures_total{bot="alpha",reason="data"}'] == 3
        wait_for(lambda: {s.attributes.get("cicd.pipeline.run.id") for s in receiver.spans()
                          if s.name == "RUN alpha"} == {f"down-{i}" for i in range(9)},
                 timeout=90, what="the spans of the runs made during the outage")
        wait_for(lambda: "otlp_metrics: pushing to" in agent.log.read_text(), what="the recovery logged")
        assert "works again" in agent.log.read_text()
    finally:
        receiver.stop()


def test_the_agent_stops_cleanly_with_its_endpoint_down(tmp_path, agents):
    """A final push that cannot land costs at most its timeout; the agent still exits 0."""
    receiver = OtlpReceiver()
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", AGENT_BOTS, port), port, env=otel_env(receiver)).start()
    post_runs(agent, [("beta", "last", "success", None)])
    assert agent.kill(15) == 0
    assert "botwatch agent: stopped" in agent.log.read_text()


def test_otlp_exports_can_be_started_and_stopped_in_process(receiver):
    state = busy_state()
    settings = resolve(parse_estate_text(f"agent:\n  otlp: {{endpoint: '{receiver.url}', traces: true}}\nbots: []\n"),
                       {})
    exports = otlp.start(settings, state, estate_registry(state, clock=lambda: NOW))
    assert exports.tracer in state.listeners
    state.apply(robot_run("inproc", NOW - 30))
    exports.stop(state)
    assert exports.tracer not in state.listeners
    assert receiver.latest_metrics()["botwatch.runs"].points  # the final push on stop
    assert {s.name for s in receiver.spans()} >= {"RUN beta", "Log in"}


def test_an_export_that_cannot_start_is_logged_and_the_other_still_starts(receiver, monkeypatch, caplog):
    import opentelemetry.exporter.otlp.proto.http.metric_exporter as metric_exporter

    def broken(*args, **kwargs):
        raise RuntimeError("no TLS library for this endpoint")

    monkeypatch.setattr(metric_exporter, "OTLPMetricExporter", broken)
    state = busy_state()
    settings = resolve(parse_estate_text(f"agent:\n  otlp: {{endpoint: '{receiver.url}', traces: true}}\nbots: []\n"),
                       {})
    with caplog.at_level(logging.ERROR, logger="botwatch.exporters.otlp"):
        exports = otlp.start(settings, state, estate_registry(state, clock=lambda: NOW))
    assert exports.metrics is None and exports.traces is not None
    assert "OTLP metrics cannot start" in caplog.text
    exports.stop(state)
