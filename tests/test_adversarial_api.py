"""Attacks on the agent's HTTP surface, replayed against real agent processes: numbers beyond
a float, keyless floods, password guessing, basic auth in the way of deliveries, browsers
(framing, sniffing, DNS rebinding, a CDN's script), and a flood of bot names.

What the agent promises here is written down in docs/security.md.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from conftest import BOTWATCH, free_port, http_get, outbox_and_dead, parse_metrics, wait_for

KEY = f"pk-{uuid.uuid4().hex}"
BOTS = "- name: alpha\n- name: beta\n"


def _agent(tmp_path, agents, extra: str = "", bots: str = BOTS):
    """A real agent whose key is KEY; `extra`: more lines of its `agent:` section."""
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n"
                      f"  ping_key: env:TEST_PING_KEY\n{extra}bots:\n"
                      + "".join(f"  {line}\n" for line in bots.splitlines()), encoding="utf-8")
    return agents(config, port, env={"TEST_PING_KEY": KEY}).start()


def _request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None,
             timeout: float = 15):
    """(status, headers (any case), body)."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _post_events(agent, events: list, headers: dict | None = None) -> tuple[int, dict]:
    status, _, body = _request(agent.url + "/api/v1/events", json.dumps({"events": events}).encode(),
                               {"Content-Type": "application/json", "X-Botwatch-Key": KEY, **(headers or {})})
    return status, json.loads(body)


def _metrics(agent) -> tuple[int, dict[str, float]]:
    status, body = http_get(agent.url + "/metrics", timeout=15)
    return status, parse_metrics(body.decode()) if status == 200 else {}


# -- every number a client sends is bounded and finite ------------------------------------------

HUGE = 10**400  # beyond any float: float(HUGE) raises OverflowError


def test_numbers_beyond_a_float_are_refused_and_counted_and_metrics_stay_finite(tmp_path, agents):
    agent = _agent(tmp_path, agents)
    now = time.time()
    start = {"type": "run_started", "bot": "alpha", "run_id": "r1", "time": now - 10}

    # a deliverer's report of its spool: the whole request is refused
    status, body = _post_events(agent, [start], {"X-Botwatch-Spool": "host-1", "X-Botwatch-Spool-Pending": str(HUGE)})
    assert status == 422 and body["error"] == "invalid request"

    # each event with a number out of bounds is refused alone; the others are taken
    batch = [
        start,
        {"type": "spool_dropped", "count": HUGE, "time": now},
        {"type": "resource_sample", "bot": "alpha", "run_id": "r1", "time": now - 5, "cpu_seconds": 1.0,
         "rss_bytes": HUGE},
        {"type": "resource_sample", "bot": "alpha", "run_id": "r1", "time": now - 4, "cpu_seconds": 1.0,
         "rss_bytes": 1000, "processes": HUGE},
        {"type": "ui_lookup", "bot": "alpha", "run_id": "r1", "time": now - 3, "screen": "login", "found": True,
         "wait": 1.7e308},
        {"type": "run_finished", "bot": "alpha", "run_id": "r2", "ended": now, "outcome": "success",
         "peak_rss_bytes": HUGE},
        {"type": "run_finished", "bot": "alpha", "run_id": "r3", "ended": now, "outcome": "success",
         "cpu_seconds": 1.7e308},
        {"type": "run_finished", "bot": "alpha", "run_id": "r4", "ended": now, "outcome": "success",
         "cpu_seconds": 1.7e308},
        {"type": "run_finished", "bot": "alpha", "run_id": "r5", "ended": now, "outcome": "success",
         "cpu_seconds": 12.5, "peak_rss_bytes": 2**40},
    ]
    status, body = _post_events(agent, batch)
    assert status == 200, body
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4, 5, 6, 7]
    assert body["accepted"] == 2  # the start and the sane run

    status, m = _metrics(agent)
    assert status == 200
    assert all(math.isfinite(v) for v in m.values()), [k for k, v in m.items() if not math.isfinite(v)]
    assert m['botwatch_runs_total{bot="alpha"}'] == 1
    assert m['botwatch_bot_cpu_seconds_total{bot="alpha"}'] == 12.5
    assert m["botwatch_agent_spool_pending_runs"] == 0
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 1 + 7
    assert http_get(agent.url + "/api/v1/status")[0] == 200


def test_an_exporter_serves_finite_values_when_the_state_holds_a_number_beyond_a_float():
    """The second line: whatever reached the state, /metrics, OTLP and the no-agent totals still
    render, with finite values."""
    from prometheus_client import generate_latest

    from botwatch.config.estate import parse_estate_text
    from botwatch.exporters.exposition import CachedExposition
    from botwatch.exporters.otlp_metrics import to_metrics
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.exporters.totals import totals_registry
    from botwatch.state.runtime import EstateState

    largest = sys.float_info.max
    state = EstateState(parse_estate_text("bots:\n  - name: alpha\n"), None)
    state.note_spool("host-1", HUGE)
    state.bots["alpha"].cpu_seconds_done = float("inf")
    state.bots["alpha"].duration_sum = float("nan")
    state.count_dropped("spool", HUGE)
    registry = estate_registry(state)

    body, _ = CachedExposition(registry).render()
    m = parse_metrics(body.decode())
    assert all(math.isfinite(v) for v in m.values())
    assert m["botwatch_agent_spool_pending_runs"] == largest
    assert m['botwatch_bot_cpu_seconds_total{bot="alpha"}'] == largest
    assert m['botwatch_agent_events_dropped_total{source="spool"}'] == largest

    points = [p.value for metric in to_metrics(registry.collect(), 0, 1) if hasattr(metric.data, "data_points")
              for p in metric.data.data_points if hasattr(p, "value")]
    assert points and all(math.isfinite(v) for v in points)

    totals = {"bot": "", "dropped_total": HUGE}
    assert b"1.7976931348623157e+308" in generate_latest(totals_registry(totals))


# -- authentication and size before any parsing -------------------------------------------------

def test_keyless_8_mb_batches_are_refused_before_parsing_while_the_agent_stays_responsive(tmp_path, agents):
    agent = _agent(tmp_path, agents)
    garbage = b'{"events": [' + b"x" * 8_000_000  # not JSON: parsed, it would be a 422
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def flood(key: str | None):
        for _ in range(2):
            headers = {"Content-Type": "application/json", **({"X-Botwatch-Key": key} if key else {})}
            status, _, body = _request(agent.url + "/api/v1/events", garbage, headers, timeout=60)
            with lock:
                answers.append((status, json.loads(body)["error"]))

    threads = [threading.Thread(target=flood, args=(None if i % 2 else "not-the-key",)) for i in range(16)]
    for t in threads:
        t.start()
    checked_in = 0
    try:
        while any(t.is_alive() for t in threads) or not checked_in:
            assert _request(f"{agent.url}/ping/{KEY}/beta")[0] == 200  # bounded by the 15 s timeout
            assert http_get(agent.url + "/healthz", timeout=15)[0] == 200
            checked_in += 1
    finally:
        for t in threads:
            t.join(timeout=120)
    assert answers == [(401, "missing or wrong X-Botwatch-Key")] * 32
    status, m = _metrics(agent)
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 32
    assert m['botwatch_runs_total{bot="beta"}'] == checked_in
    assert m['botwatch_runs_total{bot="alpha"}'] == 0


def test_a_bot_key_opens_the_batches_of_its_own_bot_only(tmp_path, agents):
    gamma_key = f"gk-{uuid.uuid4().hex}"
    agent = _agent(tmp_path, agents, bots=BOTS + f"- name: gamma\n  ping_key: {gamma_key}\n")
    run = {"type": "run_finished", "ended": time.time(), "outcome": "success"}
    status, body = _post_events(agent, [{**run, "bot": "gamma", "run_id": "g1"}], {"X-Botwatch-Key": gamma_key})
    assert (status, body["accepted"]) == (200, 1)
    status, body = _post_events(agent, [{**run, "bot": "alpha", "run_id": "a1"}], {"X-Botwatch-Key": gamma_key})
    assert (status, body["error"]) == (401, "missing or wrong X-Botwatch-Key")
    status, _, _ = _request(agent.url + "/api/v1/events", b"not json", {"Content-Type": "application/json",
                                                                        "X-Botwatch-Key": gamma_key[:-1]})
    assert status == 401  # no bot's key: refused before the body is read


# -- bot names ---------------------------------------------------------------------------------

PAGE = b"<html><body><form id='login'><input id='user'><button>Send</button></form></body></html>"


def test_names_breaking_the_bot_name_rule_are_refused_before_anything_is_stored(tmp_path, agents):
    agent = _agent(tmp_path, agents, extra="  auto_register: true\n")
    names = ("Bad%20Name", "UPPER", "dots.in.name")
    snapshots = [_request(f"{agent.url}/api/v1/snapshots/{name}/login", PAGE,
                          {"Content-Type": "text/html", "X-Botwatch-Key": KEY}) for name in names]
    check_ins = [_request(f"{agent.url}/ping/{KEY}/{name}") for name in names]
    status, _, _ = _request(f"{agent.url}/api/v1/snapshots/newcomer/login", PAGE,
                            {"Content-Type": "text/html", "X-Botwatch-Key": KEY})
    assert status == 200  # a good name is registered and gets its baseline
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT bot FROM ui_baselines").fetchall() == [("newcomer",)]
        assert sorted(n for (n,) in db.execute("SELECT name FROM bots")) == ["alpha", "beta", "newcomer"]
    finally:
        db.close()
    for status, _, body in snapshots + check_ins:
        assert (status, json.loads(body)["error"]) == (400, "invalid bot name")
    m = _metrics(agent)[1]
    assert m['botwatch_agent_parse_errors_total{source="snapshot"}'] == 3
    assert m['botwatch_agent_parse_errors_total{source="ping"}'] == 3


def test_the_rate_limiter_stays_bounded_after_100000_distinct_bot_names():
    from botwatch.server.limits import RateLimiter

    clock = [0.0]
    limiter = RateLimiter(rate=1.0, burst=5, clock=lambda: clock[0], max_keys=4000)
    for i in range(100_000):
        assert limiter.take({f"flood-{i}": 1}) is None
        if i % 1000 == 0:
            clock[0] += 0.5
    assert len(limiter) <= 4000
    assert limiter.take({"alpha": 5}) is None
    assert limiter.take({"alpha": 1}) == "alpha"  # a bot in use keeps its limit


# -- basic auth ---------------------------------------------------------------------------------

def _web_config(tmp_path, password: bytes = b"s3cret") -> str:
    import bcrypt

    hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prom: '{hashed}'\n", encoding="utf-8")
    return f"  web_config: {tmp_path / 'web.yml'}\n"


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_an_unknown_user_costs_the_same_password_check_as_a_wrong_password():
    import bcrypt

    from botwatch.config.web import BasicAuth

    user_hash = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5))
    calls: list[tuple[bytes, bytes]] = []

    def verify(password: bytes, hashed: bytes) -> bool:
        calls.append((password, hashed))
        return bcrypt.checkpw(password, hashed)

    auth = BasicAuth({"prom": user_hash.decode()}, verify=verify)
    assert auth.check(_basic("nobody", "guess-1")["Authorization"]) is False
    assert auth.check(_basic("prom", "guess-2")["Authorization"]) is False
    (unknown_password, dummy), (wrong_password, hashed) = calls
    assert (unknown_password, wrong_password, hashed) == (b"guess-1", b"guess-2", user_hash)
    assert dummy != user_hash and dummy[:7] == user_hash[:7] == b"$2b$05$"  # a real hash, of the same cost

    # a pair seen before costs nothing again, right or wrong
    assert auth.check(_basic("prom", "guess-2")["Authorization"]) is False
    assert auth.check(_basic("prom", "s3cret")["Authorization"]) is True
    assert auth.check(_basic("prom", "s3cret")["Authorization"]) is True
    assert len(calls) == 3
    # a password bcrypt cannot take is wrong, not an error
    assert auth.check(_basic("prom", "x" * 100)["Authorization"]) is False


def test_basic_auth_refuses_unknown_users_and_wrong_passwords_alike_and_throttles_guessing(tmp_path, agents):
    agent = _agent(tmp_path, agents, extra=_web_config(tmp_path))
    url = agent.url + "/metrics"
    timings = {}
    for what, headers in (("no password", {}), ("unknown user", _basic("nobody", "guess")),
                          ("wrong password", _basic("prom", "guess"))):
        began = time.perf_counter()
        status, answer_headers, body = _request(url, headers=headers)
        timings[what] = time.perf_counter() - began
        assert (status, json.loads(body)["error"]) == (401, "authentication required"), what
        assert answer_headers["WWW-Authenticate"] == 'Basic realm="botwatch"'
    print(f"answer times (not asserted): {', '.join(f'{k} {v * 1000:.1f} ms' for k, v in timings.items())}")
    assert _request(url, headers=_basic("prom", "s3cret"))[0] == 200
    for path in ("/sd", "/", "/api/v1/status"):
        assert _request(agent.url + path)[0] == 401, path
        assert _request(agent.url + path, headers=_basic("prom", "s3cret"))[0] == 200, path

    guesses = [_request(url, headers=_basic("prom" if i % 2 else f"user{i}", f"guess-{i}"))[:2] for i in range(30)]
    statuses = [status for status, _ in guesses]
    assert set(statuses) == {401, 429} and statuses[-1] == 429
    assert all(int(headers["Retry-After"]) >= 1 for status, headers in guesses if status == 429)
    # meanwhile, the scraper whose password was right is let in, and the agent answers
    assert _request(url, headers=_basic("prom", "s3cret"))[0] == 200
    assert http_get(agent.url + "/healthz")[0] == 200
    assert _request(f"{agent.url}/ping/{KEY}/beta")[0] == 200


def test_a_wrapped_run_reaches_an_agent_with_basic_auth_on(tmp_path, agents, run_env):
    agent = _agent(tmp_path, agents, extra=_web_config(tmp_path))
    env = {**run_env, "TEST_PING_KEY": KEY}
    r = subprocess.run([*BOTWATCH, "run", "--bot", "alpha", "--config", str(agent.config), "--", sys.executable,
                        "-c", "print('done')"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    def delivered():
        db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
        try:
            return db.execute("SELECT outcome FROM runs WHERE bot = 'alpha'").fetchall()
        finally:
            db.close()

    assert wait_for(delivered, timeout=60, what="the wrapped run in the agent's journal") == [("success",)]
    wait_for(lambda: outbox_and_dead(run_env["BOTWATCH_SPOOL"]) == (0, []), what="an empty spool")
    assert _request(agent.url + "/api/v1/events", b"{}", {"Content-Type": "application/json"})[0] == 401  # the key
    assert _request(agent.url + "/api/v1/status")[0] == 401  # reading still needs the password


# -- browsers -----------------------------------------------------------------------------------

def test_every_answer_tells_browsers_not_to_frame_sniff_or_run_scripts(tmp_path, agents):
    agent = _agent(tmp_path, agents)
    for path in ("/", "/metrics", "/healthz", "/api/v1/status", "/no-such-page", f"/ping/{KEY}/alpha",
                 "/ping/not-the-key/alpha"):
        _, headers, _ = _request(agent.url + path)
        headers = {k.lower(): v for k, v in headers.items()}
        policy = headers.get("content-security-policy", "")
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy, path
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("x-frame-options") == "DENY", path
        assert headers.get("referrer-policy") == "no-referrer", path


def _get_with_host(port: int, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers={"Host": host})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def test_a_request_naming_another_host_is_refused_and_the_agents_own_names_work(tmp_path, agents):
    """DNS rebinding: a page of evil.example, its name pointed at 127.0.0.1, must not read the agent."""
    agent = _agent(tmp_path, agents)
    port = agent.port
    for path in ("/api/v1/status", "/metrics", "/", "/sd", "/healthz"):
        status, body = _get_with_host(port, path, "evil.example")
        assert status == 421 and json.loads(body)["error"] == "unknown host name", path
        assert _get_with_host(port, path, "evil.example:80")[0] == 421, path
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
            assert _get_with_host(port, path, host)[0] == 200, (path, host)
    status, body = _get_with_host(port, "/sd", f"127.0.0.1:{port}")
    assert json.loads(body)[0]["targets"] == [f"127.0.0.1:{port}"]
    # a check-in carries its key: the name the client used does not matter
    assert _get_with_host(port, f"/ping/{KEY}/alpha", "monitor.internal.example")[0] == 200
    assert "add it to agent.allowed_hosts" in agent.log.read_text()


def test_the_host_names_in_allowed_hosts_are_answered(tmp_path, agents):
    agent = _agent(tmp_path, agents, extra="  allowed_hosts: [monitor.example.com, '*.bots.example.com']\n")
    port = agent.port
    for host in (f"monitor.example.com:{port}", "MONITOR.example.com.", f"agent.bots.example.com:{port}"):
        assert _get_with_host(port, "/api/v1/status", host)[0] == 200, host
    for host in ("example.com", "bots.example.com.evil.example", "monitor.example.com.evil.example"):
        assert _get_with_host(port, "/api/v1/status", host)[0] == 421, host


def test_api_docs_are_off_by_default_and_the_api_description_is_served(tmp_path, agents):
    agent = _agent(tmp_path, agents)
    assert http_get(agent.url + "/api/v1/docs")[0] == 404
    assert http_get(agent.url + "/docs/oauth2-redirect")[0] == 404
    status, body = http_get(agent.url + "/api/v1/openapi.json")
    assert status == 200 and "/api/v1/events" in json.loads(body)["paths"]


def test_api_docs_switched_on_are_served_with_a_policy_of_their_own():
    from fastapi.testclient import TestClient

    from botwatch.config.estate import parse_estate_text
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import Security, create_app
    from botwatch.state.runtime import EstateState

    state = EstateState(parse_estate_text("agent:\n  api_docs: true\nbots:\n  - name: alpha\n"), None)
    client = TestClient(create_app(state, estate_registry(state), Security(estate_key=KEY)))
    answer = client.get("/api/v1/docs")
    assert answer.status_code == 200 and "/api/v1/openapi.json" in answer.text
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src https://cdn.jsdelivr.net" in answer.headers["content-security-policy"]
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 421
