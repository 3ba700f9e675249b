"""Bad check-ins, event batches and UI snapshots, fuzzed against the agent's HTTP app (in
process, for many examples) and a real agent process (for a few): always 2xx or a 4xx with a
JSON `{"error": ...}`, never 5xx; what was recorded before stays; what is refused is counted.

The OpenAPI-driven checks live in tests/test_checkin.py (schemathesis); these send what no
schema describes: wrong types, huge and deep values, bytes that are not UTF-8 or not JSON.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings, strategies as st

from botwatch.config.estate import parse_estate_text
from botwatch.state.journal import Journal
from botwatch.state.runtime import EstateState

from conftest import free_port, http_get, http_post_json, write_estate
from fuzzing import bounded

KEY = "fuzz-key"
ESTATE = """\
agent:
  limits: {max_body_bytes: 65536, events_per_second: 1000000, burst: 1000000, max_batch: 50}
bots:
  - name: alpha
    ui:
      screens:
        login: {selectors: {user: "css:#user", send: "//button"}, mask: [[0, 0, 10, 10]]}
  - name: beta
"""
EVENT_TYPES = ["run_started", "run_finished", "resource_sample", "step", "failure", "ui_lookup", "spool_dropped"]
FIELDS = ["bot", "run_id", "time", "ended", "started", "outcome", "exit_status", "reason", "signal", "timed_out",
          "host", "output_tail", "cpu_seconds", "peak_rss_bytes", "screen", "selector", "rss_bytes", "processes",
          "name", "status", "message", "parent", "found", "kind", "wait", "healed", "count", "source", "type"]




class App:
    """The agent's app over a real journal, with a run recorded before any fuzzing."""

    def __init__(self, folder: Path):
        from fastapi.testclient import TestClient

        from botwatch.exporters.prometheus import estate_registry
        from botwatch.server.app import Security, create_app

        self.journal = Journal(folder / "journal.db")
        self.state = EstateState(parse_estate_text(ESTATE, "estate.yaml"), self.journal)
        self.client = TestClient(create_app(self.state, estate_registry(self.state), Security(estate_key=KEY)),
                                 raise_server_exceptions=False)
        good = {"events": [{"type": "run_started", "bot": "alpha", "run_id": "kept-1", "time": 1_700_000_000},
                           {"type": "run_finished", "bot": "alpha", "run_id": "kept-1", "ended": 1_700_000_060,
                            "started": 1_700_000_000, "outcome": "failure", "reason": "ui_drift"}]}
        r = self.client.post("/api/v1/events", json=good, headers={"X-Botwatch-Key": KEY})
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
        assert self.client.get(f"/ping/{KEY}/beta").text == "OK"
        self.kept = {r.run_id: (r.bot, r.outcome, r.ended) for r in self.journal.iter_runs()}
        self.kept_ids = set(self.kept)
        assert "kept-1" in self.kept_ids and len(self.kept_ids) == 2

    def recorded(self) -> dict:
        return {r.run_id: (r.bot, r.outcome, r.ended) for r in self.journal.iter_runs() if r.run_id in self.kept_ids}

    def refusals(self) -> int:
        m = self.state.self_metrics()
        return sum(m["parse_errors"].values()) + sum(m["dropped"].values())

    def send(self, method: str, url: str, body: bytes | None, headers: dict):
        """One request under the guard; the answer must be 2xx, or 4xx with a JSON error, and counted."""
        before = self.refusals()
        with bounded(seconds=30, what=f"{method} {url} {headers} {body[:300] if body else body!r}"):
            r = self.client.request(method, url, content=body, headers=headers)
        what = (method, url, headers, body[:300] if body else body, r.status_code, r.text[:300])
        assert r.status_code < 500, what
        assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, what
        if r.status_code >= 400:
            if method != "HEAD":
                doc = r.json()
                assert isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"], what
            assert self.refusals() > before, f"refused but not counted: {what}"
        elif url.startswith("/api/v1/events"):
            doc = r.json()
            assert set(doc) == {"accepted", "duplicates", "rejected", "ignored"}, what
            if doc["rejected"]:
                assert self.refusals() >= before + len(doc["rejected"]), f"rejected but not counted: {what}"
        elif url.startswith("/api/v1/snapshots/"):
            doc = r.json()
            assert 0.0 <= doc["score"] <= 1.0 and isinstance(doc["changes"], list), what
        assert self.recorded() == self.kept, f"a recorded run changed after {what}"
        return r


@pytest.fixture(scope="module")
def app():
    with tempfile.TemporaryDirectory() as tmp:
        a = App(Path(tmp))
        yield a
        # the agent still answers its pages after all of it
        for url in ("/metrics", "/healthz", "/api/v1/status", "/"):
            assert a.client.get(url).status_code == 200, url
        a.journal.close()


# -- events -------------------------------------------------------------------------------------

wild = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30) | st.floats()
    | st.text(max_size=40) | st.sampled_from(["alpha", "beta", "zeta", "Bad Bot", "r-1", "success", "failure",
                                              "ui_drift", "pass", "x" * 70_000, "1e400", "-0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
plausible_times = st.floats(0, 2e9) | st.sampled_from([1e300, 1e400, -1.0, 32_503_680_000.5])
event = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES) | wild, "bot": st.sampled_from(["alpha", "beta", "zeta"]) | wild},
    optional={f: (plausible_times | wild) if f in ("time", "ended", "started") else wild for f in FIELDS[2:-1]})


def dumps(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")  # NaN and lone surrogates on purpose


bodies = st.one_of(
    st.builds(lambda evs: dumps({"events": evs}), st.lists(event, max_size=4)),
    wild.map(dumps),
    st.builds(lambda evs: dumps({"events": evs}), wild),
    st.binary(max_size=300),
    st.integers(1, 200_000).map(lambda n: b'{"events": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.builds(lambda evs, cut: dumps({"events": evs})[:cut], st.lists(event, min_size=1, max_size=3),
              st.integers(0, 200)),
)
headers = st.fixed_dictionaries(
    {"Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                      "application/json; charset=latin-1", "image/png", ""])},
    optional={"X-Botwatch-Key": st.sampled_from([KEY, KEY, KEY, "wrong", ""]),
              "X-Botwatch-Spool": st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
              "X-Botwatch-Spool-Pending": st.sampled_from(["1", "-1", "x", "99999999999999999999999"])})


@settings(max_examples=250, deadline=None, derandomize=True)
@given(body=bodies, hdrs=headers)
def test_an_event_batch_is_taken_or_refused_with_a_json_error_and_counted(app, body, hdrs):
    app.send("POST", "/api/v1/events", body, hdrs)


# -- check-ins ----------------------------------------------------------------------------------

segment = st.sampled_from([KEY, "alpha", "beta", "zeta", "start", "fail", "log", "0", "255", "256", "-1", "00",
                           "１", "x" * 300]) | st.text(min_size=1, max_size=20)
ping_urls = st.builds(
    lambda key, bot, action, rid: "/ping/" + "/".join(quote(s, safe="") for s in [key, bot, *action]) + rid,
    st.sampled_from([KEY, KEY, "wrong"]) | segment, st.sampled_from(["alpha", "beta"]) | segment,
    st.lists(segment, max_size=1), st.sampled_from(["", "?rid=r-1", "?rid=", "?rid=%ff", "?rid=" + "r" * 200])
    | st.text(max_size=10).map(lambda s: "?rid=" + quote(s, safe="")))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(method=st.sampled_from(["GET", "POST", "HEAD"]), url=ping_urls,
       body=st.none() | st.binary(max_size=200) | st.just(b"\xff" * 70_000) | st.text().map(str.encode))
def test_a_check_in_is_taken_or_refused_with_a_json_error_and_counted(app, method, url, body):
    app.send(method, url, body if method == "POST" else None, {})


# -- snapshots ----------------------------------------------------------------------------------

def png(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    from PIL import Image

    im = Image.new(mode, (width, height))
    im.putdata([(i * 7 + seed) % 256 if mode in ("L", "1", "P") else ((i * 7 + seed) % 256, i % 256, seed % 256)
                for i in range(width * height)])
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header (with a correct CRC) declares any size: a bomb is refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat or zlib.compress(b"\x00" * 65536, 9)) + chunk(b"IEND", b""))


@st.composite
def png_bytes(draw) -> bytes:
    data = png(draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.sampled_from(["RGB", "L", "1", "P"])),
               draw(st.integers(0, 255)))
    op = draw(st.sampled_from(["whole", "truncate", "flip", "magic", "declared"]))
    if op == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif op == "flip":
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        data = bytes(raw)
    elif op == "magic":
        data = draw(st.sampled_from([b"\x89PNX", b"GIF89a", b"\x00\x00\x00\x00", b"BM", b""])) + data[8:]
    elif op == "declared":
        data = png_declaring(draw(st.sampled_from([0, 1, 65_535, 100_000, 2 ** 31 - 1])),
                             draw(st.sampled_from([0, 1, 65_535, 100_000, 2 ** 31 - 1])))
    return data


html_tags = ["html", "body", "div", "form", "input", "button", "span", "script", "style", "head", "table", "tr",
             "td", "iframe", "svg", "template", "a", "x-custom", "1bad", ""]
html_attrs = ["id", "class", "name", "type", "role", "aria-label", "data-testid", "title", "for", "xmlns", "on:click"]
html_trees = st.recursive(
    st.text(max_size=20).map(lambda s: s.replace("<", "&lt;")),
    lambda inner: st.builds(
        lambda tag, attrs, kids, close: f"<{tag}" + "".join(f' {k}="{v}"' for k, v in attrs.items()) + ">"
        + "".join(kids) + (f"</{tag}>" if close else ""),
        st.sampled_from(html_tags), st.dictionaries(st.sampled_from(html_attrs), st.text(max_size=10).map(
            lambda s: s.replace('"', "")), max_size=3), st.lists(inner, max_size=4), st.booleans()),
    max_leaves=30)
html_bytes = st.one_of(
    html_trees.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(lambda s, enc: s.encode(enc, "replace"), html_trees, st.sampled_from(["utf-16", "latin-1", "utf-8"])),
    st.integers(1, 20_000).map(lambda n: b"<html><body>" + b"<div>" * n + b"</body></html>"),
    st.binary(max_size=300).map(lambda b: b"<" + b),
    st.just(b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><html>&b;</html>"),
)
ax_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.dictionaries(
    st.sampled_from(["type", "value"]), st.text(max_size=10) | st.integers(), max_size=2)
playwright_trees = st.recursive(
    st.fixed_dictionaries({"role": ax_values}, optional={"name": ax_values, "value": ax_values,
                                                         "description": ax_values, "focused": ax_values}),
    lambda inner: st.fixed_dictionaries({"role": ax_values}, optional={
        "name": ax_values, "children": st.lists(inner, max_size=4) | ax_values,
        "checked": ax_values}) | st.dictionaries(st.text(max_size=6), ax_values, max_size=3),
    max_leaves=20)
ax_nodes = st.lists(st.fixed_dictionaries(
    {"nodeId": st.sampled_from(["1", "2", "3", "4", 1, 2, None, "\u0000"])},
    optional={"role": ax_values, "name": ax_values, "ignored": st.booleans() | ax_values,
              "childIds": st.lists(st.sampled_from(["1", "2", "3", "4", 1, None]), max_size=3) | ax_values,
              "parentId": st.sampled_from(["1", "2", "9", None]),
              "properties": st.lists(st.fixed_dictionaries({"name": ax_values, "value": ax_values}), max_size=2)}),
    max_size=6)
a11y_bytes = st.one_of(
    playwright_trees.map(dumps),
    ax_nodes.map(lambda nodes: dumps({"nodes": nodes})),
    ax_nodes.map(dumps),
    st.integers(1, 200_000).map(lambda n: b'{"role": "x", "children": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.binary(max_size=200).map(lambda b: b"{" + b),
)
snapshots = st.one_of(
    st.tuples(st.just("html"), html_bytes), st.tuples(st.just("a11y"), a11y_bytes),
    st.tuples(st.just("png"), png_bytes()),
    st.tuples(st.sampled_from(["html", "a11y", "png"]), st.binary(max_size=300)),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(snap=snapshots, screen=st.sampled_from(["login", "home", "other"]),
       how=st.sampled_from(["content-type", "kind", "sniff", "wrong-kind"]))
def test_a_snapshot_gets_a_score_or_a_json_error_and_is_counted(app, snap, screen, how):
    kind, data = snap
    content_type = {"html": "text/html", "a11y": "application/json", "png": "image/png"}[kind]
    url, hdrs = f"/api/v1/snapshots/alpha/{screen}", {"X-Botwatch-Key": KEY}
    if how == "content-type":
        hdrs["Content-Type"] = content_type
    elif how == "kind":
        url += f"?kind={kind}"
    elif how == "wrong-kind":
        url += "?kind=" + {"html": "png", "a11y": "html", "png": "a11y"}[kind]
    else:
        hdrs["Content-Type"] = "application/octet-stream"
    app.send("POST", url, data, hdrs)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(snap=snapshots)
def test_the_drift_probe_gives_a_report_or_a_snapshot_error(snap):
    from botwatch.ui import SnapshotError
    from botwatch.ui.probe import DriftProbe

    kind, data = snap
    probe = DriftProbe(parse_estate_text(ESTATE, "estate.yaml"))  # baselines in memory
    for screen in ("login", "home"):
        with bounded(seconds=30, what=f"{kind} snapshot {data[:300]!r}"):
            try:
                report = probe.check("alpha", screen, kind, data)
            except SnapshotError as exc:
                assert str(exc), data[:300]
                continue
        assert 0.0 <= report.score <= 1.0 and report.baseline, (kind, data[:300])
        again = probe.check("alpha", screen, kind, data)  # the same snapshot against itself
        assert again.score == 0.0 and not again.baseline


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    from botwatch.ui import SnapshotError
    from botwatch.ui.image import MAX_PIXELS, parse_png

    side = 100_000  # 10**10 pixels declared, 64 KiB of zeros sent
    bomb = png_declaring(side, side, zlib.compress(b"\x00" * (1 << 20), 9))
    assert side * side > MAX_PIXELS
    for data in (bomb, png_declaring(2 ** 31 - 1, 2 ** 31 - 1), png_declaring(MAX_PIXELS // 1000 + 1, 1000)):
        with bounded(f"a PNG declaring {data[16:24].hex()}", seconds=10):
            with pytest.raises(SnapshotError, match="too large|cannot be decoded|decompression bomb"):
                parse_png(data)


def test_bad_input_to_a_real_agent_is_answered_counted_and_loses_nothing(tmp_path, agents):
    """A few of the worst bodies, over HTTP to a real agent process."""
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", "- name: alpha\n", port,
                          extra=f"  ping_key: {KEY}\n          limits: {{max_body_bytes: 65536}}")
    agent = agents(config, port).start()
    h = {"X-Botwatch-Key": KEY}
    ok = {"events": [{"type": "run_finished", "bot": "alpha", "run_id": "kept-1", "ended": 1_700_000_060,
                      "started": 1_700_000_000, "outcome": "success"}]}
    assert http_post_json(agent.url + "/api/v1/events", ok, headers=h)[0] == 200
    bad = [b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # too large: 413
           b'{"events": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # nested too deeply: 400
           b"\xff\xfe\x00\x01", b'{"events": "x"}', b"[]", b"null"]
    for body in bad:
        status, doc = http_post_json(agent.url + "/api/v1/events", body, headers=h)
        assert 400 <= status < 500 and isinstance(doc.get("error"), str), (status, doc, body[:100])
    bad_events = [{"type": "run_finished", "bot": "alpha", "run_id": "r", "ended": 1e400, "outcome": "success"},
                  {"type": "run_finished", "bot": "alpha", "run_id": "r", "ended": 1e300, "outcome": "success"},
                  {"type": "step", "bot": "alpha", "run_id": "r", "name": "\ud800", "ended": 1}]
    for event in bad_events:  # each event is judged alone: refused in the answer, not the request
        status, doc = http_post_json(agent.url + "/api/v1/events", dumps({"events": [event]}), headers=h)
        assert status == 200 and [r["index"] for r in doc["rejected"]] == [0], (status, doc, event)
    status, doc = http_post_json(agent.url + "/api/v1/events",
                                 {"events": [{"type": "run_started", "bot": "zeta", "run_id": "z", "time": 1}]},
                                 headers=h)
    assert status == 200 and len(doc["rejected"]) == 1
    m = agent.metrics()
    # the 413 counts as dropped; each refused event and the unknown bot's as a parse error
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == len(bad) - 1 + len(bad_events) + 1
    assert m['botwatch_agent_events_dropped_total{source="http"}'] == 1
    assert m['botwatch_runs_total{bot="alpha"}'] == 1
    for url in ("/", "/api/v1/status", "/healthz"):
        assert http_get(agent.url + url)[0] == 200, url
