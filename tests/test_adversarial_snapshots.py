"""Hostile UI snapshots against a real agent: links and huge files in the watched folder, trees
nested without end, images that decode to gigabytes, and a flood of new screens. Each is
refused (counted, answered 400 naming the limit) and the agent keeps answering."""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
import struct
import textwrap
import threading
import urllib.error
import urllib.request
import zlib

import pytest

from botwatch.ui import SnapshotError
from botwatch.ui.image import parse_png

from conftest import free_port, http_get, wait_for

KEY = "adversarial-snapshot-key"
MAX_DEPTH = 250  # levels of a page or tree (docs/ui-drift.md)
SECRET = "TopSecret-7f3c9a1e-payroll-password"
PARSE_ERRORS = 'botwatch_agent_parse_errors_total{source="snapshot"}'
DROPPED = 'botwatch_agent_events_dropped_total{source="snapshot"}'
FOLDER_EVENTS = 'botwatch_agent_events_total{source="folder"}'


def estate(tmp_path, limits: str = "") -> tuple:
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(textwrap.dedent(f"""\
        agent:
          listen: 127.0.0.1:{port}
          journal: {tmp_path / 'journal.db'}
          sweep_interval: 1s
          ping_key: {KEY}
          snapshots: snaps
        """) + (f"  limits: {limits}\n" if limits else "") + textwrap.dedent("""\
        bots:
          - name: invoices
            every: 1h
            ui:
              screens:
                invoice: {selectors: {submit: "#btnSubmit"}}
          - name: other
            every: 1h
        """), encoding="utf-8")
    return config, port, tmp_path / "snaps"


def page(button_id: str = "btnSubmit", banner: str = "") -> bytes:
    rows = "".join(f"<tr><td>INV-{i}</td><td class='amount'>{i * 17}.00</td></tr>" for i in range(30))
    return (f"<html><body>{banner}<form id='f'><input name='amount'><button id='{button_id}'>Submit</button>"
            f"</form><table>{rows}</table></body></html>").encode()


def snapshot(agent, screen: str, body: bytes, content_type: str = "text/html", bot: str = "invoices"
             ) -> tuple[int, dict]:
    req = urllib.request.Request(f"{agent.url}/api/v1/snapshots/{bot}/{screen}", data=body, method="POST",
                                 headers={"Content-Type": content_type, "X-Botwatch-Key": KEY})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def metric(agent, name: str) -> float:
    return agent.metrics().get(name, 0)


def baselines(tmp_path) -> list[tuple]:
    """(screen, kind, fingerprint blob, raw blob) of every baseline in the journal."""
    db = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT screen, kind, fingerprint, raw FROM ui_baselines ORDER BY screen, kind").fetchall()
    finally:
        db.close()


def journal_bytes(tmp_path) -> int:
    return sum(p.stat().st_size for p in tmp_path.glob("journal.db*"))


def checks_in_while_attacked(agent, attacks: list) -> list:
    """Run the attacks (callables) in threads; meanwhile another bot checks in and /healthz
    answers. Returns the attacks' results."""
    results: list = [None] * len(attacks)

    def run(i, attack):
        results[i] = attack()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(attacks)]
    for t in threads:
        t.start()
    assert http_get(f"{agent.url}/ping/{KEY}/other", timeout=15)[0] == 200
    assert http_get(f"{agent.url}/healthz", timeout=15)[0] == 200
    for t in threads:
        t.join(120)
    wait_for(lambda: metric(agent, 'botwatch_runs_total{bot="other"}') == 1, what="the other bot's check-in")
    assert http_get(f"{agent.url}/healthz", timeout=15)[0] == 200
    return results


def ax_chain(depth: int) -> bytes:
    """Chrome DevTools' AX nodes, each the only child of the one before."""
    nodes = [{"nodeId": str(i), "role": {"type": "role", "value": "generic"}, "name": {"value": f"n{i}"},
              "childIds": [str(i + 1)] if i + 1 < depth else []} for i in range(depth)]
    return json.dumps({"nodes": nodes}).encode()


def png_16_bit_rgb(width: int, height: int) -> bytes:
    """A PNG of 16-bit RGB samples, all black: small to send, huge to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + width * 6)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def small_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


# -- the watched folder ----------------------------------------------------------------------------

def test_links_in_the_snapshot_folder_to_private_files_outside_it_are_never_read(tmp_path, agents):
    config, port, snaps = estate(tmp_path)
    outside = tmp_path / "private"
    (outside / "leak").mkdir(parents=True)
    (outside / "other" / "home").mkdir(parents=True)
    secret_page = page(banner=f"<p id='note'>{SECRET}</p>")
    for f in (outside / "secret.html", outside / "leak" / "a.html", outside / "other" / "home" / "a.html"):
        f.write_bytes(secret_page)
        f.chmod(0o600)
    folder = snaps / "invoices" / "invoice"
    folder.mkdir(parents=True)
    (folder / "2025-06-01T07-00-00.html").symlink_to(outside / "secret.html")  # a file
    (snaps / "invoices" / "leak").symlink_to(outside / "leak")  # a screen's folder
    (snaps / "other").symlink_to(outside / "other")  # a bot's folder
    agent = agents(config, port).start()

    wait_for(lambda: metric(agent, PARSE_ERRORS) == 3, what="the three links counted")
    assert metric(agent, FOLDER_EVENTS) == 0 and baselines(tmp_path) == []
    # a look-alike page posted next is the baseline: nothing of the private file to compare with
    for bot, screen in (("invoices", "invoice"), ("invoices", "leak"), ("other", "home")):
        status, report = snapshot(agent, screen, page(banner="<p id='note'>z</p>"), bot=bot)
        assert status == 200 and report["baseline"] is True and SECRET not in json.dumps(report)
    agent.stop()

    for screen, kind, fingerprint, raw in baselines(tmp_path):
        assert SECRET.encode() not in zlib.decompress(fingerprint) + (zlib.decompress(raw) if raw else b"")
    for f in tmp_path.glob("journal.db*"):
        assert SECRET.encode() not in f.read_bytes()
    log = agent.log.read_text()
    assert SECRET not in log
    for link in (folder / "2025-06-01T07-00-00.html", snaps / "invoices" / "leak", snaps / "other"):
        assert str(link) in log  # warned of by name


def test_a_link_inside_the_snapshot_folder_is_refused_too_and_its_target_checked_once(tmp_path, agents):
    config, port, snaps = estate(tmp_path)
    folder = snaps / "invoices" / "invoice"
    folder.mkdir(parents=True)
    (folder / "2025-06-01T07-00-00.html").write_bytes(page())
    (folder / "latest.html").symlink_to("2025-06-01T07-00-00.html")
    agent = agents(config, port).start()

    wait_for(lambda: metric(agent, PARSE_ERRORS) == 1, what="the link counted")
    assert metric(agent, FOLDER_EVENTS) == 1  # the page itself, once
    assert [(s, k) for s, k, *_ in baselines(tmp_path)] == [("invoice", "html")]
    assert str(folder / "latest.html") in agent.log.read_text()


def test_a_snapshot_file_larger_than_the_body_limit_is_refused_unread(tmp_path, agents):
    config, port, snaps = estate(tmp_path)
    folder = snaps / "invoices" / "portal"
    folder.mkdir(parents=True)
    huge = folder / "2025-06-01T07-00-00.png"
    huge.write_bytes(small_png())  # a real screenshot at its head: read whole, it would be taken
    os.truncate(huge, 4 << 30)  # sparse: 4 GiB that take no disk
    (snaps / "invoices" / "invoice").mkdir()
    (snaps / "invoices" / "invoice" / "2025-06-01T07-00-00.html").write_bytes(page())
    agent = agents(config, port).start()

    wait_for(lambda: metric(agent, PARSE_ERRORS) == 1 and metric(agent, FOLDER_EVENTS) == 1, timeout=120,
             what="the huge file refused, the page beside it checked")
    assert [(s, k) for s, k, *_ in baselines(tmp_path)] == [("invoice", "html")]
    checks_in_while_attacked(agent, [])
    status, report = snapshot(agent, "portal", small_png(), "image/png")
    assert status == 200 and report["baseline"] is True  # the huge file took no baseline
    assert str(huge) in agent.log.read_text()


def test_the_folder_reader_reads_at_most_one_byte_past_the_limit(tmp_path):
    from botwatch.sources.snapshots import Refused, read_at_most, read_inside

    big = tmp_path / "big.html"
    big.write_bytes(b"<p>x</p>" * 1_000_000)
    fd = os.open(big, os.O_RDONLY)
    try:
        with pytest.raises(Refused):
            read_at_most(fd, 65_536)  # as if the file had grown after its size was looked at
        assert os.lseek(fd, 0, os.SEEK_CUR) == 65_537
    finally:
        os.close(fd)
    with pytest.raises(Refused):
        read_inside(tmp_path, ("big.html",), 65_536)  # its size alone refuses it
    assert read_inside(tmp_path, ("big.html",), 8_000_000) == big.read_bytes()


# -- trees nested without end ----------------------------------------------------------------------

def test_a_40000_deep_accessibility_chain_is_refused_naming_the_limit_and_the_agent_stays_responsive(
        tmp_path, agents):
    config, port, _ = estate(tmp_path)
    agent = agents(config, port).start()
    chain = ax_chain(40_000)
    assert len(chain) > 2_000_000

    [(status, body)] = checks_in_while_attacked(agent, [lambda: snapshot(agent, "tree", chain, "application/json")])
    assert status == 400 and body["error"] == "unreadable snapshot"
    assert f"more than {MAX_DEPTH} levels" in body["detail"]
    assert metric(agent, PARSE_ERRORS) == 1
    status, report = snapshot(agent, "tree", ax_chain(MAX_DEPTH), "application/json")  # at the limit: taken
    assert status == 200 and report["baseline"] is True


def test_a_deep_html_page_is_refused_and_a_wide_one_at_the_depth_limit_is_compared(tmp_path, agents):
    config, port, _ = estate(tmp_path)
    agent = agents(config, port).start()
    deep = b"<html><body>" + b"<div>" * 100_000 + b"x" + b"</div>" * 100_000 + b"</body></html>"
    levels = MAX_DEPTH - 3  # html, body and the leaves around them
    wide = (b"<html><body>" + b"<div>" * levels + b"<p>a</p>" * 90_000 + b"</div>" * levels + b"</body></html>")

    [(status, body), (wide_status, _)] = checks_in_while_attacked(
        agent, [lambda: snapshot(agent, "deep", deep), lambda: snapshot(agent, "wide", wide)])
    assert status == 400 and f"more than {MAX_DEPTH} levels" in body["detail"]
    assert wide_status == 200
    status, report = snapshot(agent, "wide", wide.replace(b"<p>a</p>", b"<p>b</p>", 9_000))
    assert status == 200 and report["baseline"] is False and 0 < report["score"] < 0.3


# -- images that decode to gigabytes ---------------------------------------------------------------

def test_a_16_bit_7740_by_7740_png_is_refused_before_it_is_decoded(monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im.size) or real_load(im))
    bomb = png_16_bit_rgb(7740, 7740)
    assert len(bomb) < 1_000_000
    with pytest.raises(SnapshotError, match="too large to decode"):
        parse_png(bomb)
    assert decoded == []
    parse_png(small_png())
    assert decoded == [(64, 36)]  # an ordinary screenshot is decoded


def test_sixteen_such_pngs_posted_at_once_are_all_refused_and_the_agent_stays_responsive(tmp_path, agents):
    config, port, _ = estate(tmp_path)
    agent = agents(config, port).start()
    bomb = png_16_bit_rgb(7740, 7740)

    answers = checks_in_while_attacked(
        agent, [lambda i=i: snapshot(agent, f"shot{i}", bomb, "image/png") for i in range(16)])
    assert all(status == 400 and "too large to decode" in body["detail"] for status, body in answers), answers
    assert metric(agent, PARSE_ERRORS) == 16 and baselines(tmp_path) == []


# -- a flood of new screens ------------------------------------------------------------------------

def noise_page(size: int, seed: int) -> bytes:
    """A page of random text (it does not compress) of about `size` bytes."""
    rnd = random.Random(seed)
    paragraphs = [f"<p>{base64.b64encode(rnd.randbytes(600)).decode()}</p>" for _ in range(size // 810)]
    return f"<html><body><h1>Report</h1>{''.join(paragraphs)}</body></html>".encode()


def test_posts_to_more_screens_than_the_cap_are_refused_and_the_journal_stops_growing(tmp_path, agents):
    config, port, _ = estate(tmp_path, "{max_screens: 3}")
    agent = agents(config, port).start()
    for screen in ("s1", "s2", "s3"):
        status, report = snapshot(agent, screen, page())
        assert status == 200 and report["baseline"] is True, report
    status, body = snapshot(agent, "s4", page())
    assert status == 409 and "agent.limits.max_screens" in body["detail"]
    status, report = snapshot(agent, "s1", page(button_id="btnSend"))
    assert status == 200 and report["baseline"] is False and report["score"] > 0  # still compared
    status, report = snapshot(agent, "s1", small_png(), "image/png")
    assert status == 200 and report["baseline"] is True  # another kind of a screen it has
    status, report = snapshot(agent, "invoice", page())
    assert status == 200 and report["baseline"] is True  # declared screens are not counted
    before, stored = journal_bytes(tmp_path), len(baselines(tmp_path))
    assert stored == 5

    big = noise_page(7_500_000, seed=1)
    for i in range(20):
        status, body = snapshot(agent, f"flood{i}", big)
        assert status == 409 and "agent.limits.max_screens" in body["detail"]
    assert len(baselines(tmp_path)) == stored
    assert journal_bytes(tmp_path) - before < 1_000_000  # 20 pages of 7.5 MB were posted
    assert metric(agent, DROPPED) == 21 and metric(agent, PARSE_ERRORS) == 0  # readable, refused: dropped
    status, report = snapshot(agent, "s2", page())
    assert status == 200 and report["score"] == 0


def test_a_baseline_is_stored_in_at_most_max_baseline_bytes(tmp_path, agents):
    config, port, _ = estate(tmp_path)
    agent = agents(config, port).start()
    status, report = snapshot(agent, "report", noise_page(7_500_000, seed=2))
    assert status == 200 and report["baseline"] is True
    [(_, _, fingerprint, raw)] = baselines(tmp_path)
    assert raw is None and len(fingerprint) <= 1_048_576  # the page left out: kept as its fingerprint
    status, report = snapshot(agent, "report", noise_page(7_500_000, seed=3))
    assert status == 200 and report["baseline"] is False  # compared with it

    rnd = random.Random(4)
    ids = "".join(f"<i id='{base64.b64encode(rnd.randbytes(45)).decode()}'></i>" for _ in range(80_000))
    status, body = snapshot(agent, "grid", f"<html><body>{ids}</body></html>".encode())
    assert status == 400 and "agent.limits.max_baseline_bytes" in body["detail"]
    assert len(baselines(tmp_path)) == 1
