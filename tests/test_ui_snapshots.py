"""UI snapshots through a real agent: the API, the watched folder, the metrics, the journal across
restarts, `botwatch drift` and the SDK."""

from __future__ import annotations

import io
import json
import os
import random
import sqlite3
import subprocess
import textwrap
import urllib.error
import urllib.request

import pytest

from conftest import BOTWATCH, free_port, wait_for

KEY = "snapshot-test-key"
BOTS = """\
- name: invoices
  every: 1h
  ui:
    screens:
      invoice: {selectors: {submit: "#btnSubmit", amount: "input[name=amount]"}}
      portal: {mask: [[1500, 0, 1920, 120]]}
- name: other
"""
SCORE = 'botwatch_ui_drift_score{bot="invoices",screen="invoice"}'
BASELINE = 'botwatch_ui_baseline_timestamp_seconds{bot="invoices",screen="invoice"}'
SUBMIT = 'botwatch_ui_declared_selector_matches{bot="invoices",screen="invoice",selector="submit"}'
AMOUNT = 'botwatch_ui_declared_selector_matches{bot="invoices",screen="invoice",selector="amount"}'


def page(button_id: str = "btnSubmit", banner: str = "") -> bytes:
    rows = "".join(f"<tr><td>INV-{i}</td><td class='amount'>{i * 17}.00</td></tr>" for i in range(30))
    return (f"<html><head><title>Invoices</title></head><body>{banner}<form id='f'><label>Amount</label>"
            f"<input name='amount'><button id='{button_id}' class='btn'>Submit</button></form>"
            f"<table>{rows}</table></body></html>").encode()


@pytest.fixture
def estate(tmp_path):
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n"
                      f"  sweep_interval: 1s\n  ping_key: {KEY}\n  snapshots: snaps\nbots:\n"
                      + textwrap.indent(BOTS, "  "), encoding="utf-8")
    return config, port, tmp_path / "snaps"


def post(agent, screen: str, body: bytes, content_type: str = "text/html", *, bot: str = "invoices",
         key: str | None = KEY, query: str = "") -> tuple[int, dict]:
    headers = {"Content-Type": content_type}
    if key:
        headers["X-Botwatch-Key"] = key
    req = urllib.request.Request(f"{agent.url}/api/v1/snapshots/{bot}/{screen}{query}", data=body, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def drift(config, *args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BOTWATCH_CONFIG"}
    return subprocess.run([*BOTWATCH, "drift", *args[:1], "--config", str(config), *args[1:]], input=stdin,
                          capture_output=True, env=env, timeout=120)


def test_the_api_takes_the_first_snapshot_as_the_baseline_and_scores_the_next(estate, agents):
    config, port, _ = estate
    agent = agents(config, port).start()
    status, first = post(agent, "invoice", page(), query="?run_id=run-1")
    assert status == 200
    assert first["baseline"] is True and first["score"] == 0 and first["warning"] is False
    assert first["selectors"] == {"submit": 1, "amount": 1} and first["run_id"] == "run-1"
    status, same = post(agent, "invoice", page(banner="<p class='notice'>Closed on Friday</p>"))
    assert status == 200 and same["baseline"] is False and same["score"] < 0.3
    status, broken = post(agent, "invoice", page(button_id="btnSend"))
    assert status == 200
    assert broken["score"] >= 0.9 and broken["warning"] is True and broken["drift_warning"] == 0.3
    assert broken["selectors"] == {"submit": 0, "amount": 1}
    assert broken["changes"][0] == "selector submit (#btnSubmit) matches 0 elements (baseline: 1)"
    m = agent.metrics()
    assert m[SCORE] == broken["score"]
    assert m[BASELINE] == pytest.approx(first["baseline_time"])
    assert (m[SUBMIT], m[AMOUNT]) == (0, 1)
    assert m['botwatch_agent_events_total{source="api"}'] == 3
    # ?kind= wins over the content type; a screen with no declared selectors reports none
    status, tree = post(agent, "dialog", b'{"role": "dialog", "name": "Confirm", "children": []}',
                        "application/octet-stream", query="?kind=a11y")
    assert status == 200 and tree["kind"] == "a11y" and tree["selectors"] == {}


def test_the_api_refuses_unreadable_snapshots_wrong_keys_and_unknown_bots(estate, agents):
    config, port, _ = estate
    agent = agents(config, port).start()
    status, body = post(agent, "invoice", b"\x89PNG\r\n\x1a\n-truncated-", "image/png")
    assert status == 400 and body["error"] == "unreadable snapshot"
    assert "cannot be decoded" in body["detail"]
    status, body = post(agent, "invoice", b"", "text/html")
    assert status == 400 and body["detail"] == "empty snapshot: no HTML"
    status, body = post(agent, "invoice", b"<p>x</p>", "application/zip")
    assert status == 400 and "cannot tell the kind of snapshot" in body["detail"]
    assert post(agent, "invoice", page(), key=None)[0] == 401
    assert post(agent, "invoice", page(), key="wrong")[0] == 401
    assert post(agent, "invoice", page(), bot="ghost")[0] == 404
    m = agent.metrics()
    assert m['botwatch_agent_parse_errors_total{source="snapshot"}'] == 6
    assert SCORE not in m  # nothing was recorded
    status, body = post(agent, "invoice", page())
    assert status == 200 and body["baseline"] is True  # the refused ones took no baseline


def test_a_full_hd_screenshot_fits_the_default_body_limit(estate, agents):
    from PIL import Image

    config, port, _ = estate
    agent = agents(config, port).start()
    noise = random.Random(5).randbytes(1920 * 1080 * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (1920, 1080), noise).save(buf, format="PNG")
    png = buf.getvalue()
    assert len(png) > 6_000_000  # incompressible: the worst case of an RGB screenshot
    status, first = post(agent, "portal", png, "image/png")
    assert status == 200 and first["baseline"] is True and first["kind"] == "png"
    status, again = post(agent, "portal", png, "image/png")
    assert status == 200 and again["score"] == 0.0
    assert agent.metrics()['botwatch_ui_drift_score{bot="invoices",screen="portal"}'] == 0


def test_the_watched_folder_checks_new_files_once_in_name_order_and_the_state_survives_a_restart(estate, agents):
    config, port, snaps = estate
    folder = snaps / "invoices" / "invoice"
    folder.mkdir(parents=True)
    (folder / "2025-06-01T07-00-00.html").write_bytes(page())
    (folder / "2025-06-01T08-00-00.html").write_bytes(page(button_id="btnSend"))
    (folder / "2025-06-01T08-30-00.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "notes.txt").write_text("ignored")
    (snaps / "ghost" / "home").mkdir(parents=True)
    (snaps / "ghost" / "home" / "a.html").write_bytes(page())
    agent = agents(config, port).start()
    m = wait_for(lambda: (lambda m: m if m.get('botwatch_agent_events_total{source="folder"}') == 2 else None)(
        agent.metrics()), what="both page snapshots checked")
    assert m[SCORE] >= 0.9 and (m[SUBMIT], m[AMOUNT]) == (0, 1)  # the later file was compared with the earlier
    baseline_time = m[BASELINE]
    wait_for(lambda: agent.metrics().get('botwatch_agent_parse_errors_total{source="snapshot"}') == 1,
             what="the broken screenshot counted")
    agent.stop()

    again = agents(config, port).start()
    m = again.metrics()
    assert m[SCORE] >= 0.9 and m[BASELINE] == baseline_time and (m[SUBMIT], m[AMOUNT]) == (0, 1)
    (folder / "2025-06-01T09-00-00.html").write_bytes(page())  # the page is back as it was
    m = wait_for(lambda: (lambda m: m if m.get(SCORE) == 0 else None)(again.metrics()), what="the new file checked")
    assert m['botwatch_agent_events_total{source="folder"}'] == 1  # the old files were not checked again
    assert m['botwatch_agent_parse_errors_total{source="snapshot"}'] == 0  # exported at 0 from the start


def test_drift_cli_sets_checks_and_accepts_baselines_with_exit_codes(estate, agents, tmp_path):
    config, port, _ = estate
    good, renamed, bad = tmp_path / "good.html", tmp_path / "renamed.html", tmp_path / "bad.png"
    good.write_bytes(page())
    renamed.write_bytes(page(button_id="btnSend"))
    bad.write_bytes(b"not an image")

    r = drift(config, "check", "invoices", "invoice", str(good))
    assert r.returncode == 2 and b"no html baseline for bot invoices screen invoice" in r.stderr
    r = drift(config, "baseline", "invoices", "invoice", str(good))
    assert r.returncode == 0, r.stderr
    assert b"submit" in r.stdout and b"new baseline" in r.stdout
    r = drift(config, "baseline", "invoices", "invoice", str(renamed))
    assert r.returncode == 1 and b"botwatch drift accept invoices invoice FILE" in r.stderr

    r = drift(config, "check", "invoices", "invoice", str(good))
    assert r.returncode == 0 and r.stdout.startswith(b"bot invoices, screen invoice (html): drift 0.00, ok")
    r = drift(config, "check", "invoices", "invoice", str(renamed), "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["score"] >= 0.9 and report["warning"] is True and report["baseline"] is False
    assert report["selectors"] == {"submit": 0, "amount": 1}
    assert any("id 'btnSubmit' -> 'btnSend'" in c for c in report["changes"])
    r = drift(config, "check", "invoices", "invoice", str(renamed))
    assert r.returncode == 1 and b"DRIFTING" in r.stdout and b"<- matches nothing" in r.stdout
    r = drift(config, "check", "invoices", "invoice", "-", "--kind", "html", stdin=page(button_id="btnSend"))
    assert r.returncode == 1
    for args in (("invoices", "invoice", str(bad)), ("ghost", "invoice", str(good)),
                 ("invoices", "invoice", str(tmp_path / "missing.html"))):
        r = drift(config, "check", *args)
        assert r.returncode == 2, (args, r.stderr)

    # the agent sees the CLI's baseline, drifts, and takes the acceptance without a new snapshot
    agent = agents(config, port).start()
    state_before = {k: v for k, v in agent.metrics().items() if k.startswith("botwatch_bot_state{bot=\"invoices\"")}
    status, report = post(agent, "invoice", renamed.read_bytes())
    assert status == 200 and report["baseline"] is False and report["score"] >= 0.9
    r = drift(config, "accept", "invoices", "invoice", str(renamed))
    assert r.returncode == 0, r.stderr
    m = wait_for(lambda: (lambda m: m if m.get(SCORE) == 0 else None)(agent.metrics()), what="the acceptance")
    assert (m[SUBMIT], m[AMOUNT]) == (0, 1)
    assert {k: v for k, v in m.items() if k.startswith("botwatch_bot_state{bot=\"invoices\"")} == state_before
    status, report = post(agent, "invoice", renamed.read_bytes())
    assert report["score"] == 0  # compared with the accepted baseline now
    r = drift(config, "check", "invoices", "invoice", str(good))
    assert r.returncode == 0  # the selector matches again: an improvement, not drift
    assert b"id 'btnSend' -> 'btnSubmit'" in r.stdout

    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    flips = db.execute("SELECT old_state, new_state, reason, kind FROM flips WHERE bot = 'invoices' ORDER BY id").fetchall()
    db.close()
    assert flips[-1] == ("drifting", "accepted", "ui baseline accepted: screen invoice (html)", "ui")
    assert all(kind == "state" for *_, kind in flips[:-1])
    agent.stop()
    again = agents(config, port).start()  # the state machine resumes from the last state flip, not the ui one
    assert {k: v for k, v in again.metrics().items()
            if k.startswith("botwatch_bot_state{bot=\"invoices\"")} == state_before


def test_the_sdk_posts_a_snapshot_that_belongs_to_the_current_run(estate, agents, monkeypatch, tmp_path):
    import botwatch

    config, port, _ = estate
    agent = agents(config, port).start()
    monkeypatch.setenv("BOTWATCH_CONFIG", str(config))
    monkeypatch.setenv("BOTWATCH_SPOOL", str(tmp_path / "spool.db"))
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")  # the run's own events stay in the spool
    monkeypatch.delenv("BOTWATCH_AGENT_URL", raising=False)
    with botwatch.run("invoices") as run:
        report = botwatch.snapshot("invoice", page().decode())
        broken = botwatch.snapshot("invoice", page(button_id="btnSend"))
    assert report["baseline"] is True and report["run_id"] == run.run_id
    assert broken["warning"] is True and broken["selectors"]["submit"] == 0
    tree = botwatch.snapshot("dialog", {"role": "dialog", "name": "Confirm"}, bot="invoices")
    assert tree["kind"] == "a11y" and tree["baseline"] is True
    saved = tmp_path / "shot.html"
    saved.write_bytes(page())
    assert botwatch.snapshot("invoice", path=saved, bot="invoices")["score"] == 0
    assert agent.metrics()[SCORE] == 0


def test_the_sdk_never_raises_into_the_bot_when_the_agent_is_away(monkeypatch, caplog):
    import botwatch

    monkeypatch.setenv("BOTWATCH_AGENT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("BOTWATCH_CONFIG", raising=False)
    assert botwatch.snapshot("invoice", page(), bot="invoices") is None
    assert botwatch.snapshot("invoice", object(), bot="invoices") is None
    assert botwatch.snapshot("invoice", path="/nonexistent/file.html", bot="invoices") is None
    assert botwatch.snapshot(None, page(), bot="invoices") is None
    assert "cannot reach the agent" in caplog.text


def test_the_sdk_stops_trying_an_agent_that_did_not_answer_for_a_while(monkeypatch):
    import urllib.request

    import botwatch
    from botwatch.client import sdk_snapshots

    monkeypatch.setattr(sdk_snapshots, "_unreachable", {})
    monkeypatch.setenv("BOTWATCH_AGENT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("BOTWATCH_CONFIG", raising=False)
    tries = []
    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **kw: tries.append(1) or real_urlopen(*a, **kw))
    for _ in range(5):  # a bot snapshotting every screen is held up by the first only
        assert botwatch.snapshot("invoice", page(), bot="invoices") is None
    assert len(tries) == 1
    monkeypatch.setattr(sdk_snapshots, "_unreachable", {})  # the pause is over: it tries again
    assert botwatch.snapshot("invoice", page(), bot="invoices") is None
    assert len(tries) == 2
