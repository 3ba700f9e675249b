"""Check-ins over the Healthchecks.io ping protocol and the events API, against a real agent."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, outbox_and_dead, require, wait_for, write_estate

KEY = "k3y-Fr0m-The-Estate"
BOT_KEY = "only-for-gamma"
BOTS = """\
- name: alpha
  team: finance
- name: beta
- name: gamma
  ping_key: BOT_KEY_PLACEHOLDER
"""


def estate_file(tmp_path, port, agent_extra=""):
    """An estate whose check-ins need KEY (from the environment, as in production) or gamma's own key."""
    path = tmp_path / "botwatch.yaml"
    path.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  ping_key: env:TEST_PING_KEY\n"
        f"{agent_extra}bots:\n" + "".join("  " + line + "\n" for line in
                                           BOTS.replace("BOT_KEY_PLACEHOLDER", BOT_KEY).splitlines()))
    return path


@pytest.fixture
def agent(tmp_path, agents):
    port = free_port()
    return agents(estate_file(tmp_path, port), port, env={"TEST_PING_KEY": KEY}).start()


def request(url, data=None, method=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([require("curl", "curl"), "-sS", "-m", "10", *args], capture_output=True, text=True)


def runs(agent) -> list[dict]:
    db = sqlite3.connect(f"file:{agent.config.parent / 'journal.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY ended")]
    finally:
        db.close()


def test_a_start_and_fail_pair_with_rid_becomes_one_failed_run_with_its_duration(agent):
    rid = "nightly-2026-11-24"
    r = curl(f"{agent.url}/ping/{KEY}/alpha/start?rid={rid}")
    assert (r.returncode, r.stdout) == (0, "OK")
    wait_for(lambda: agent.metrics()['botwatch_run_in_progress{bot="alpha"}'] == 1, what="run in progress")
    time.sleep(0.2)  # let the run have a measurable duration
    status, _, body = request(f"{agent.url}/ping/{KEY}/alpha/fail?rid={rid}", data=b"step 3\nLogon failed for user 'svc'\n",
                              method="POST")
    assert (status, body) == (200, b"OK")
    [run] = runs(agent)
    assert (run["run_id"], run["outcome"], run["reason"], run["source"]) == (rid, "failure", "credentials", "ping")
    assert run["ended"] - run["started"] >= 0.2
    m = agent.metrics()
    assert m['botwatch_runs_total{bot="alpha"}'] == 1 and m['botwatch_run_in_progress{bot="alpha"}'] == 0
    assert m['botwatch_run_failures_total{bot="alpha",reason="credentials"}'] == 1
    assert m['botwatch_run_duration_seconds_count{bot="alpha"}'] == 1


def test_every_check_in_form_of_the_protocol_is_understood(agent):
    assert curl(f"{agent.url}/ping/{KEY}/beta").stdout == "OK"  # success, GET
    assert curl("-X", "POST", "--data-binary", "all good", f"{agent.url}/ping/{KEY}/beta").stdout == "OK"
    assert curl(f"{agent.url}/ping/{KEY}/beta/0").stdout == "OK"  # exit status 0: success
    assert curl(f"{agent.url}/ping/{KEY}/beta/3").stdout == "OK"  # exit status 3: failure
    assert curl(f"{agent.url}/ping/{KEY}/beta/log", "--data-binary", "just a note").stdout == "OK"  # no run
    assert curl("-I", f"{agent.url}/ping/{KEY}/beta").returncode == 0  # HEAD
    # a start without rid pairs with the next end without rid, as Healthchecks does
    assert curl(f"{agent.url}/ping/{KEY}/beta/start").stdout == "OK"
    assert curl(f"{agent.url}/ping/{KEY}/beta/fail").stdout == "OK"
    rs = runs(agent)
    assert [(r["outcome"], r["exit_status"]) for r in rs] == [
        ("success", None), ("success", None), ("success", 0), ("failure", 3), ("success", None), ("failure", None)]
    assert rs[-1]["started"] is not None and rs[-1]["run_id"].startswith("ping-")
    assert rs[1]["output_tail"] == "all good"
    assert agent.metrics()['botwatch_consecutive_failures{bot="beta"}'] == 1


def test_a_bot_may_check_in_with_its_own_key_but_not_for_other_bots(agent):
    assert curl(f"{agent.url}/ping/{BOT_KEY}/gamma").stdout == "OK"
    status, _, body = request(f"{agent.url}/ping/{BOT_KEY}/alpha")
    assert status == 403 and json.loads(body)["error"] == "wrong ping key"


BAD = [
    ("wrong key", "/ping/not-the-key/alpha", None, 403, "wrong ping key"),
    ("unknown bot", f"/ping/{KEY}/ghost", None, 404, "unknown bot"),
    ("exit status 2**32", f"/ping/{KEY}/alpha/4294967296", None, 400, "unknown check-in"),
    ("exit status below -2**31", f"/ping/{KEY}/alpha/-2147483649", None, 400, "unknown check-in"),
    ("unknown action", f"/ping/{KEY}/alpha/finish", None, 400, "unknown check-in"),
    ("invalid rid", f"/ping/{KEY}/alpha?rid=bad%20rid!", None, 422, "invalid request"),
    ("oversized body", f"/ping/{KEY}/alpha", b"x" * 9_000_000, 413, "request body too large"),
    ("malformed JSON", "/api/v1/events", b'{"events": [', 422, "invalid request"),
]


@pytest.mark.parametrize("what,path,body,status,error", BAD, ids=[b[0] for b in BAD])
def test_bad_check_ins_get_a_clear_json_4xx_and_record_nothing(agent, what, path, body, status, error):
    assert curl(f"{agent.url}/ping/{KEY}/alpha?rid=good-1").stdout == "OK"
    got, headers, payload = request(agent.url + path, data=body, method="POST" if body else "GET")
    assert got == status
    assert headers["content-type"].startswith("application/json")
    if error:
        assert json.loads(payload)["error"] == error
    assert curl(f"{agent.url}/ping/{KEY}/alpha?rid=good-2").stdout == "OK"
    assert curl(f"{agent.url}/ping/{KEY}/alpha?rid=good-1").stdout == "OK"  # a retry: recorded once
    assert [r["run_id"] for r in runs(agent)] == ["good-1", "good-2"]
    assert KEY not in agent.log.read_text()  # the key is never logged


def test_the_events_api_needs_the_key_when_one_is_configured(agent):
    batch = json.dumps({"events": [{"type": "run_finished", "bot": "alpha", "run_id": "e1", "ended": time.time(),
                                    "outcome": "success"}]}).encode()
    status, _, body = request(agent.url + "/api/v1/events", batch, "POST", {"Content-Type": "application/json"})
    assert status == 401 and json.loads(body)["error"] == "missing or wrong X-Botwatch-Key"
    status, _, body = request(agent.url + "/api/v1/events", batch, "POST",
                              {"Content-Type": "application/json", "X-Botwatch-Key": KEY})
    assert status == 200 and json.loads(body)["accepted"] == 1
    status, _, body = request(agent.url + "/api/v1/events", b'{"events": [', "POST",
                              {"Content-Type": "application/json", "X-Botwatch-Key": KEY})
    assert status == 422 and json.loads(body)["error"] == "invalid request"
    exit_2_32 = json.dumps({"events": [{"type": "run_finished", "bot": "alpha", "run_id": "e2", "ended": 1.0,
                                        "outcome": "failure", "exit_status": 2 ** 32}]}).encode()
    status, _, body = request(agent.url + "/api/v1/events", exit_2_32, "POST",
                              {"Content-Type": "application/json", "X-Botwatch-Key": KEY})
    [refused] = json.loads(body)["rejected"]
    assert status == 200 and refused["index"] == 0 and "exit_status" in refused["error"]
    assert [r["run_id"] for r in runs(agent)] == ["e1"]


def test_ui_look_ups_steps_and_declared_failures_are_accepted(agent):
    now = time.time()
    events = [
        {"type": "run_started", "bot": "alpha", "run_id": "r1", "time": now - 5},
        {"type": "ui_lookup", "bot": "alpha", "run_id": "r1", "time": now - 4, "screen": "invoice", "found": True,
         "wait": 0.3, "selector": "#btnSubmit"},
        {"type": "ui_lookup", "bot": "alpha", "run_id": "r1", "time": now - 3, "screen": "invoice", "found": False,
         "kind": "ambiguous", "wait": 2.0},
        {"type": "ui_lookup", "bot": "alpha", "run_id": "r1", "time": now - 3, "screen": "invoice", "found": True,
         "healed": True},
        {"type": "step", "bot": "alpha", "run_id": "r1", "name": "open invoice", "ended": now - 2, "status": "fail"},
        {"type": "failure", "bot": "alpha", "run_id": "r1", "time": now - 1, "reason": "business",
         "message": "duplicate invoice"},
        {"type": "run_finished", "bot": "alpha", "run_id": "r1", "ended": now, "started": now - 5, "outcome": "failure"},
    ]
    status, _, body = request(agent.url + "/api/v1/events", json.dumps({"events": events}).encode(), "POST",
                              {"Content-Type": "application/json", "X-Botwatch-Key": KEY})
    assert status == 200 and json.loads(body) == {"accepted": 7, "duplicates": 0, "rejected": [], "ignored": []}
    m = agent.metrics()
    assert m['botwatch_ui_lookups_total{bot="alpha",screen="invoice"}'] == 3
    assert m['botwatch_ui_lookup_failures_total{bot="alpha",kind="ambiguous",screen="invoice"}'] == 1
    assert m['botwatch_ui_healed_lookups_total{bot="alpha",screen="invoice"}'] == 1
    assert m['botwatch_ui_lookup_wait_seconds_count{bot="alpha",screen="invoice"}'] == 2
    assert m['botwatch_run_failures_total{bot="alpha",reason="business"}'] == 1  # the reason the bot declared


def test_check_ins_are_refused_when_no_ping_key_is_configured(tmp_path, agents):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port)
    a = agents(config, port).start()
    status, _, body = request(f"{a.url}/ping/anything/alpha")
    assert status == 403 and json.loads(body)["error"] == "check-ins are disabled"


def test_auto_registration_accepts_unknown_bots_when_switched_on(tmp_path, agents):
    port = free_port()
    config = estate_file(tmp_path, port, "  auto_register: true\n")
    a = agents(config, port, env={"TEST_PING_KEY": KEY}).start()
    assert curl(f"{a.url}/ping/{KEY}/newcomer/7").stdout == "OK"
    m = a.metrics()
    assert m['botwatch_runs_total{bot="newcomer"}'] == 1
    assert m['botwatch_run_failures_total{bot="newcomer",reason="unknown"}'] == 1
    status, _, _ = request(f"{a.url}/ping/{KEY}/Not%20A%20Name")
    assert status == 400


def test_a_bot_over_its_rate_gets_429_and_the_refusals_are_counted(tmp_path, agents):
    port = free_port()
    config = estate_file(tmp_path, port, "  limits: {events_per_second: 0.01, burst: 3}\n")
    a = agents(config, port, env={"TEST_PING_KEY": KEY}).start()
    codes = [request(f"{a.url}/ping/{KEY}/alpha")[0] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    status, headers, body = request(f"{a.url}/ping/{KEY}/alpha")
    assert headers["Retry-After"] == "1" and json.loads(body)["error"] == "too many check-ins"
    m = a.metrics()
    assert m['botwatch_agent_events_dropped_total{source="ping"}'] == 3
    assert m['botwatch_runs_total{bot="alpha"}'] == 3


def test_tls_and_basic_auth_protect_metrics_and_the_api_but_not_check_ins(tmp_path, agents):
    import bcrypt

    subprocess.run([require("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  prom: '{hashed}'\n")
    port = free_port()
    config = estate_file(tmp_path, port, f"  web_config: {tmp_path / 'web.yml'}\n")
    a = agents(config, port, env={"TEST_PING_KEY": KEY})
    a.url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    a._healthy = lambda: _tls_healthy(a, ctx)
    a.start()

    def get(path, auth=None):
        headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
        req = urllib.request.Request(a.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    assert get("/metrics")[0] == 401
    assert get("/metrics", "prom:wrong")[0] == 401
    status, body = get("/metrics", "prom:s3cret")
    assert status == 200 and b"botwatch_runs_total" in body
    for path in ("/api/v1/status", "/api/v1/dependencies", "/api/v1/impact?q=x"):  # reading needs the password
        assert get(path)[0] == 401, path
    assert get("/api/v1/dependencies", "prom:s3cret")[0] == 200
    assert get(f"/ping/{KEY}/alpha") == (200, b"OK")  # check-ins use their key
    with pytest.raises(OSError):  # URLError or a reset connection
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()  # plain HTTP is refused


def _tls_healthy(a, ctx):
    if a.proc.poll() is not None:
        raise AssertionError(f"agent exited: {a.log.read_text()}")
    try:
        with urllib.request.urlopen(a.url + "/healthz", timeout=1, context=ctx) as r:
            return r.status == 200
    except OSError:
        return False


def test_schemathesis_finds_no_server_error_in_the_api(agent, tmp_path):
    r = subprocess.run(
        [str(__import__("pathlib").Path(__import__("sys").executable).with_name("schemathesis")), "run",
         f"{agent.url}/api/v1/openapi.json", "--checks", "not_a_server_error", "--max-examples", "40",
         "--seed", "1", "-H", f"X-Botwatch-Key: {KEY}", "--report-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    import re

    cases = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert cases and int(cases.group(1)) == int(cases.group(2)) > 100, r.stdout[-3000:]
    # the warnings allowed: generated (random) ping keys are refused, as they must be; generated bot
    # names are unknown to the snapshot API (404), and generated connections have no webhook receiver
    # (404), as they must be
    warnings = re.findall(r"⚠️ ([^:\n]+):", r.stdout)
    assert set(warnings) <= {"Authentication failed", "Missing test data"}, r.stdout
    if "Missing test data" in warnings:
        missing = r.stdout.split("Missing test data", 1)[1].split("💡", 1)[0]
        assert set(re.findall(r"- (\w+ \S+)", missing)) <= {
            "POST /api/v1/snapshots/{bot}/{screen}", "POST /api/v1/webhooks/{platform}/{connection}"}, r.stdout
    assert agent.proc.poll() is None  # still serving


def test_a_long_check_in_body_keeps_its_tail_and_notes_the_truncation(agent):
    body = b"x" * 20_000 + b"\nLogon failed for user 'svc' password=hunter2\n"
    status, _, answer = request(f"{agent.url}/ping/{KEY}/alpha/fail?rid=long-1", data=body, method="POST")
    assert (status, answer) == (200, b"OK")
    [run] = runs(agent)
    assert run["output_tail"].startswith(f"[{len(body) - 10_240} bytes truncated]\n")
    assert run["output_tail"].endswith("Logon failed for user 'svc' password=[REDACTED]\n")
    assert run["reason"] == "credentials"


def test_every_operation_of_the_api_description_has_its_own_id():
    import warnings

    from fastapi.testclient import TestClient

    from botwatch.config.estate import Estate
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import create_app
    from botwatch.state.runtime import EstateState

    state = EstateState(Estate(bots=[]), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns about duplicate operation ids
        doc = TestClient(create_app(state, estate_registry(state))).get("/api/v1/openapi.json").json()
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert {"ping_get", "ping_post", "ping_head"} <= set(ids)


# -- the events API: each event of a batch is judged alone ----------------------------------------

def post_events(agent, events=None, body: bytes | None = None, content_type="application/json"):
    data = body if body is not None else json.dumps({"events": events}).encode()
    status, _, answer = request(agent.url + "/api/v1/events", data, "POST",
                                {"Content-Type": content_type, "X-Botwatch-Key": KEY})
    return status, json.loads(answer or b"{}")


def finished(bot, run_id, **fields):
    return {"type": "run_finished", "bot": bot, "run_id": run_id, "ended": time.time(), "started": time.time() - 3,
            "outcome": "success"} | fields


def test_an_invalid_event_is_refused_alone_and_the_other_bots_runs_of_its_batch_are_recorded(agent):
    events = [finished("alpha", "a-1"),
              finished("alpha", "a-2", outcome="crashed"),  # not an outcome
              finished("Beta", "b-0"),  # not a bot name
              finished("ghost", "g-1"),  # well formed, a bot the estate does not have
              finished("beta", "b-1", outcome="failure", exit_status=3)]
    status, answer = post_events(agent, events)
    assert status == 200
    assert [r["index"] for r in answer["rejected"]] == [1, 2, 3]  # indexes in the batch as posted
    errors = [r["error"] for r in answer["rejected"]]
    assert "outcome" in errors[0] and "bot" in errors[1] and "ghost" in errors[2]
    assert answer["accepted"] == 2 and answer["ignored"] == []
    assert sorted((r["bot"], r["run_id"], r["outcome"]) for r in runs(agent)) == [
        ("alpha", "a-1", "success"), ("beta", "b-1", "failure")]
    m = agent.metrics()
    assert m['botwatch_runs_total{bot="alpha"}'] == 1 and m['botwatch_runs_total{bot="beta"}'] == 1
    assert m['botwatch_run_failures_total{bot="beta",reason="unknown"}'] == 1
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 3


def test_an_event_of_a_type_this_agent_does_not_know_is_ignored_and_counted_not_refused(agent):
    assert agent.metrics()['botwatch_agent_events_ignored_total{source="api"}'] == 0  # exported from the start
    events = [{"type": "run_paused", "bot": "alpha", "run_id": "a-1", "time": time.time(), "why": "maintenance"},
              finished("alpha", "a-1")]
    status, answer = post_events(agent, events)
    assert status == 200 and answer["accepted"] == 1 and answer["rejected"] == []
    assert [i["index"] for i in answer["ignored"]] == [0] and "run_paused" in answer["ignored"][0]["error"]
    assert [r["run_id"] for r in runs(agent)] == ["a-1"]
    m = agent.metrics()
    assert m['botwatch_agent_events_ignored_total{source="api"}'] == 1
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 0


def test_an_event_with_a_field_this_agent_does_not_know_is_recorded(agent):
    status, answer = post_events(agent, [finished("beta", "b-1", queue_item="INV-7", retry={"of": "b-0"})])
    assert status == 200 and answer["accepted"] == 1 and answer["rejected"] == [] == answer["ignored"]
    assert [r["run_id"] for r in runs(agent)] == ["b-1"]


def test_an_unreadable_batch_is_still_refused_whole_with_a_json_4xx_and_counted(agent):
    good = finished("alpha", "a-1")
    unreadable = [
        (b'{"events": [' + json.dumps(good).encode(), "application/json"),  # cut short
        (b"\xff\xfe not json", "application/json"),
        (json.dumps({"events": good}).encode(), "application/json"),  # events not a list
        (json.dumps([good]).encode(), "application/json"),  # not an object
        (b'{"events": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),  # nested too deeply
        (json.dumps({"events": [good]}).encode(), "text/plain"),  # not sent as JSON
    ]
    for body, content_type in unreadable:
        status, answer = post_events(agent, body=body, content_type=content_type)
        assert 400 <= status < 500 and answer["error"], (status, answer, body[:80])
    assert runs(agent) == []
    assert agent.metrics()['botwatch_agent_parse_errors_total{source="api"}'] == len(unreadable)
    assert post_events(agent, [good])[0] == 200  # the agent still takes the next batch
    assert [r["run_id"] for r in runs(agent)] == ["a-1"]


def test_the_answer_to_a_full_batch_of_bad_events_stays_small(agent):
    long_type = "x" * 5000  # unknown types (ignored) and an invalid one (rejected), each echoed in the answer
    events = [{"type": long_type, "bot": "alpha"} if i % 2 else {"type": {"k": long_type}, "bot": "alpha"}
              for i in range(1000)]  # agent.limits.max_batch
    status, _, body = request(agent.url + "/api/v1/events", json.dumps({"events": events}).encode(), "POST",
                              {"Content-Type": "application/json", "X-Botwatch-Key": KEY})
    answer = json.loads(body)
    assert status == 200 and len(answer["rejected"]) == len(answer["ignored"]) == 500
    assert len(body) < 1000 * 400  # every event answered, each briefly


def test_the_api_description_still_describes_the_batch_with_every_event_type(agent):
    status, _, body = request(agent.url + "/api/v1/openapi.json")
    doc = json.loads(body)
    operation = doc["paths"]["/api/v1/events"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    batch = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    items = batch["properties"]["events"]["items"]
    assert set(items["discriminator"]["mapping"]) == {
        "run_started", "run_finished", "resource_sample", "step", "failure", "ui_lookup", "spool_dropped"}
    for target in items["discriminator"]["mapping"].values():
        assert target.rsplit("/", 1)[1] in doc["components"]["schemas"]
    answer = doc["components"]["schemas"]["IngestOut"]["properties"]
    assert {"accepted", "duplicates", "rejected", "ignored"} <= set(answer)


def test_the_deliverer_buries_only_the_invalid_event_and_delivers_the_runs_around_it(agent, tmp_path):
    from botwatch.client.spool import Spool

    path = tmp_path / "spool.db"
    spool = Spool(str(path))
    where = {"agent_url": agent.url, "config": str(agent.config)}
    now = time.time()
    spool.add_finished("alpha", "a-1", started=now - 5, ended=now - 1, outcome="success", **where)
    bad = {"type": "step", "bot": "alpha", "run_id": "a-1", "name": "post invoice", "ended": now, "status": "exploded"}
    spool.add_event("step", "alpha", "a-1", json.dumps(bad), **where)
    spool.add_finished("beta", "b-1", started=now - 5, ended=now, outcome="failure", exit_status=2, **where)
    spool.close()
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_AGENT_URL", "BOTWATCH_CONFIG")}
    proc = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(path), "--patience", "5"],
                          env=env | {"TEST_PING_KEY": KEY}, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted((r["bot"], r["run_id"]) for r in runs(agent)) == [("alpha", "a-1"), ("beta", "b-1")]
    left, dead = outbox_and_dead(str(path))
    assert left == 0
    [(event, error)] = dead
    assert json.loads(event)["status"] == "exploded" and "status" in error


# -- check-ins answer as Healthchecks.io does ------------------------------------------------------

def curl_headers(*args) -> tuple[int, dict[str, str]]:
    """(status, headers by lower-case name) of the last answer curl printed with -D - (or -I)."""
    r = curl("-o", os.devnull, "-D", "-", *args)
    assert r.returncode == 0, r.stderr
    block = r.stdout.replace("\r\n", "\n").strip().split("\n\n")[-1].split("\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in block[1:]))
    return int(block[0].split()[1]), headers


def test_every_answer_to_a_check_in_carries_its_body_limit_and_allows_browsers(tmp_path, agents):
    port = free_port()
    config = estate_file(tmp_path, port, "  limits: {log_excerpt_bytes: 4096}\n")
    a = agents(config, port, env={"TEST_PING_KEY": KEY}).start()
    (tmp_path / "huge").write_bytes(b"x" * 9_000_000)
    answers = {
        "GET success": curl_headers(f"{a.url}/ping/{KEY}/alpha"),
        "POST with a body": curl_headers("--data-binary", "all good", f"{a.url}/ping/{KEY}/alpha/0"),
        "HEAD": curl_headers("-I", f"{a.url}/ping/{KEY}/alpha/start"),
        "wrong key": curl_headers(f"{a.url}/ping/not-the-key/alpha"),
        "unknown bot": curl_headers(f"{a.url}/ping/{KEY}/ghost"),
        "unknown action": curl_headers(f"{a.url}/ping/{KEY}/alpha/finish"),
        "invalid rid": curl_headers(f"{a.url}/ping/{KEY}/alpha?rid=bad%20rid!"),
        "body too large": curl_headers("--data-binary", f"@{tmp_path / 'huge'}", f"{a.url}/ping/{KEY}/alpha/fail"),
    }
    assert {what: status for what, (status, _) in answers.items()} == {
        "GET success": 200, "POST with a body": 200, "HEAD": 200, "wrong key": 403, "unknown bot": 404,
        "unknown action": 400, "invalid rid": 422, "body too large": 413}
    for what, (_, headers) in answers.items():
        assert headers.get("ping-body-limit") == "4096", (what, headers)
        assert headers.get("access-control-allow-origin") == "*", (what, headers)
    assert "ping-body-limit" not in curl_headers(f"{a.url}/healthz")[1]  # check-ins only


def test_a_head_request_is_a_check_in_that_records_a_run(agent):
    status, headers = curl_headers("-I", f"{agent.url}/ping/{KEY}/beta/3?rid=head-1")
    assert status == 200 and headers["ping-body-limit"] == "10240" and headers["access-control-allow-origin"] == "*"
    assert [(r["run_id"], r["outcome"], r["exit_status"]) for r in runs(agent)] == [("head-1", "failure", 3)]
    assert agent.metrics()['botwatch_runs_total{bot="beta"}'] == 1
