"""Work items of a run and empty runs: what a run reports it processed (the SDK's `botwatch.items()`,
`items` of a run_finished event, `?items=` on a check-in, a command `botwatch run` wraps), added up
per bot in botwatch_bot_items_total; and a success that processed fewer than the bot's `min_items`,
flagged `empty` on its record, counted in botwatch_empty_runs_total, kept across a restart.

Against real agents over HTTP and a real `botwatch run`; the SDK's own side is in test_sdk.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from botwatch.config.estate import ConfigError, parse_estate_text
from botwatch.core import items as run_items
from botwatch.core.events import RunFinished, from_wire, to_wire
from botwatch.state.journal import Journal
from conftest import BOTWATCH, SDK_ENV, free_port, http_get, http_post_json, metrics_when, write_estate

KEY = "items-ping-key"
BOTS = """\
- name: alpha
  team: finance
  min_items: 10
- name: beta
"""
PROCESSED = 'botwatch_bot_items_total{bot="%s",status="processed"}'
FAILED = 'botwatch_bot_items_total{bot="%s",status="failed"}'
EMPTY = 'botwatch_empty_runs_total{bot="%s"}'


def estate(tmp_path, port):
    return write_estate(tmp_path / "botwatch.yaml", BOTS, port, extra=f"  ping_key: {KEY}")


@pytest.fixture
def agent(tmp_path, agents):
    port = free_port()
    return agents(estate(tmp_path, port), port).start()


def ping(agent, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{agent.url}/ping/{KEY}/{path}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(agent, events: list[dict]) -> tuple[int, dict]:
    return http_post_json(agent.url + "/api/v1/events", {"events": events}, headers={"X-Botwatch-Key": KEY})


def journal_runs(agent) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{agent.config.parent / 'journal.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return {r["run_id"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    finally:
        db.close()


def run(run_id: str, bot: str = "alpha", outcome: str = "success", **extra) -> dict:
    now = time.time()
    return {"type": "run_finished", "bot": bot, "run_id": run_id, "started": now - 5, "ended": now,
            "outcome": outcome, **extra}


# -- the wire ----------------------------------------------------------------------------------

def test_a_runs_items_go_over_the_wire_as_one_object_and_empty_never_does():
    ev = RunFinished("alpha", "r1", 10.0, "success", items_processed=7, items_failed=1, empty=True)
    wire = to_wire(ev)
    assert wire["items"] == {"processed": 7, "failed": 1} and "empty" not in wire and "items_processed" not in wire
    back = from_wire({**wire, "empty": True})  # a client cannot flag its own run empty
    assert (back.items_processed, back.items_failed, back.empty) == (7, 1, False)
    assert to_wire(RunFinished("alpha", "r2", 10.0, "success")).get("items") is None


def test_the_hand_off_lines_add_up_and_a_line_cut_short_is_skipped():
    data = run_items.line(3, 0) + run_items.line(4, 1) + b"12"  # the last write was cut
    assert run_items.total(data) == (7, 1, 1)
    assert run_items.total(b"9999999999 0\n9999999999 0\n") == (run_items.MAX_ITEMS, 0, 0)
    assert run_items.total(b"-1 0\n1 2 3\nx y\n") == (0, 0, 3)


# -- the events API ----------------------------------------------------------------------------

def test_the_events_api_takes_a_runs_items_and_refuses_bad_ones_naming_the_field(agent):
    batch = [
        run("r1", items={"processed": 12, "failed": 2}),
        run("r2", items={"processed": -1}),
        run("r3", items={"processed": 5, "failed": "3"}),
        run("r4", items={"processed": 10**10}),
        run("r5", items={"processed": 2.5}),
        run("r6", items=[1, 2]),
        run("r7", bot="beta", items={"processed": 4}),
    ]
    status, body = post(agent, batch)
    assert status == 200, body
    assert body["accepted"] == 2  # the runs with sane items; each bad one refused alone
    errors = {r["index"]: r["error"] for r in body["rejected"]}
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert errors[1].startswith("items.processed: Input should be greater than or equal to 0")
    assert errors[2].startswith("items.failed: Input should be a valid integer")
    assert errors[3].startswith("items.processed: Input should be less than or equal to 1000000000")
    assert errors[4].startswith("items.processed: Input should be a valid integer")
    assert errors[5].startswith("items: ")
    m = agent.metrics()
    assert m['botwatch_agent_parse_errors_total{source="api"}'] == 5  # counted as other bad input
    assert (m[PROCESSED % "alpha"], m[FAILED % "alpha"]) == (12, 2)
    assert (m[PROCESSED % "beta"], m[FAILED % "beta"]) == (4, 0)
    recorded = journal_runs(agent)
    assert set(recorded) == {"r1", "r7"}
    assert (recorded["r1"]["items_processed"], recorded["r1"]["items_failed"]) == (12, 2)


def test_the_api_description_documents_the_items_of_a_run(agent):
    status, body = http_get(agent.url + "/api/v1/openapi.json")
    assert status == 200
    doc = json.loads(body)
    schemas = doc["components"]["schemas"]
    assert schemas["RunFinishedIn"]["properties"]["items"]["anyOf"][0] == {"$ref": "#/components/schemas/ItemsIn"}
    assert schemas["ItemsIn"]["properties"]["processed"]["maximum"] == run_items.MAX_ITEMS
    params = {p["name"] for p in doc["paths"]["/ping/{key}/{bot}"]["get"]["parameters"]}
    assert {"rid", "items", "items_failed"} <= params


# -- check-ins ---------------------------------------------------------------------------------

def test_a_check_in_reports_its_runs_items_as_query_parameters(agent):
    assert ping(agent, "beta?items=120&items_failed=3") == (200, b"OK")
    assert ping(agent, "beta/fail?items_failed=7") == (200, b"OK")
    assert ping(agent, "beta/start?rid=job-1") == (200, b"OK")
    assert ping(agent, "beta/0?rid=job-1&items=5") == (200, b"OK")
    m = agent.metrics()
    assert (m[PROCESSED % "beta"], m[FAILED % "beta"]) == (125, 10)
    assert m['botwatch_runs_total{bot="beta"}'] == 3
    assert (journal_runs(agent)["job-1"]["items_processed"], journal_runs(agent)["job-1"]["items_failed"]) == (5, 0)


def test_bad_items_on_a_check_in_are_refused_naming_the_parameter_and_counted(agent):
    status, body = ping(agent, "beta?items=-1")
    assert status == 422 and b"items" in body
    status, body = ping(agent, "beta?items_failed=many")
    assert status == 422 and b"items_failed" in body
    status, body = ping(agent, "beta/start?items=3")  # items come with the run's end
    assert status == 400 and b"items" in body
    m = agent.metrics()
    assert m['botwatch_agent_parse_errors_total{source="ping"}'] == 3
    assert m['botwatch_runs_total{bot="beta"}'] == 0 and m['botwatch_run_in_progress{bot="beta"}'] == 0


# -- a command botwatch run wraps --------------------------------------------------------------

WRAPPED = '''\
import subprocess, sys
import botwatch

botwatch.items(processed=40)
botwatch.items(processed=2, failed=1)
# a process of the same run reports too
subprocess.run([sys.executable, "-c", "import botwatch; botwatch.items(processed=8, failed=2)"], check=True)
'''


def test_a_wrapped_command_reports_its_items_with_the_run_of_botwatch_run(tmp_path, agent, run_env):
    script = tmp_path / "recon.py"
    script.write_text(WRAPPED)
    env = {k: v for k, v in run_env.items() if k not in SDK_ENV}
    r = subprocess.run([*BOTWATCH, "run", "--bot", "beta", "--config", str(agent.config), "--", sys.executable, str(script)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, "")
    m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="beta"}') == 1, "the wrapped run delivered")
    assert (m[PROCESSED % "beta"], m[FAILED % "beta"]) == (50, 3)
    [recorded] = journal_runs(agent).values()
    assert (recorded["source"], recorded["items_processed"], recorded["items_failed"]) == ("wrapper", 50, 3)
    assert not list(tmp_path.glob("spool.db.items-*"))  # the hand-off file is gone once read


def test_a_wrapped_command_that_reports_no_items_records_a_run_without_them(tmp_path, agent, run_env):
    env = {k: v for k, v in run_env.items() if k not in SDK_ENV}
    r = subprocess.run([*BOTWATCH, "run", "--bot", "alpha", "--config", str(agent.config), "--", sys.executable, "-c", "0"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="alpha"}') == 1, "the wrapped run delivered")
    [recorded] = journal_runs(agent).values()
    assert (recorded["items_processed"], recorded["items_failed"]) == (None, None)
    assert m[EMPTY % "alpha"] == 1  # alpha has min_items: a run that reported none processed none


# -- min_items: empty runs ---------------------------------------------------------------------

def test_min_items_flags_a_success_that_processed_too_few_as_an_empty_run_counted_across_a_restart(
        tmp_path, agents):
    port = free_port()
    config = estate(tmp_path, port)
    agent = agents(config, port).start()
    batch = [
        run("full", items={"processed": 12}),
        run("few", items={"processed": 3, "failed": 9}),
        run("silent"),  # no items at all: processed none
        run("broken", outcome="failure", reason="crash", items={"processed": 0}),  # a failure is never empty
        run("other-bot", bot="beta", items={"processed": 0}),  # beta sets no min_items
    ]
    status, body = post(agent, batch)
    assert (status, body["accepted"], body["rejected"]) == (200, 5, [])
    expected = {EMPTY % "alpha": 2, EMPTY % "beta": 0, 'botwatch_runs_total{bot="alpha"}': 4,
                PROCESSED % "alpha": 15, FAILED % "alpha": 9,
                'botwatch_run_failures_total{bot="alpha",reason="crash"}': 1}
    m = agent.metrics()
    assert {k: m[k] for k in expected} == expected
    assert {rid: r["empty"] for rid, r in journal_runs(agent).items()} == {
        "full": 0, "few": 1, "silent": 1, "broken": 0, "other-bot": 0}
    assert m['botwatch_bot_state{bot="alpha",state="failing"}'] == 1  # the failure ended last

    # the latest run empty: the status API, the status page and `botwatch status` say so
    time.sleep(0.01)
    status, body = post(agent, [run("latest", items={"processed": 1})])
    assert status == 200 and body["accepted"] == 1
    status, page = http_get(agent.url + "/api/v1/status")
    [alpha] = [b for b in json.loads(page)["bots"] if b["bot"] == "alpha"]
    assert (alpha["last_empty"], alpha["empty_runs_total"], alpha["min_items"]) == (True, 3, 10)
    assert alpha["state"] == "up"  # an empty run is still a success
    status, html = http_get(agent.url + "/")
    assert status == 200
    assert b"<span class='outcome'>success, empty</span>" in html and b", 1 item</span>" in html
    assert b"3 items, 9 failed" in html and b"fewer than 10 items" in html
    out = subprocess.run([*BOTWATCH, "status", "--agent", agent.url], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "success (empty)" in out.stdout

    # runs are replayed from the journal on start: the counts survive a restart
    agent.stop()
    again = agents(config, port).start()
    m = again.metrics()
    assert {k: m[k] for k in expected} == {**expected, EMPTY % "alpha": 3, 'botwatch_runs_total{bot="alpha"}': 5,
                                           PROCESSED % "alpha": 16}
    [alpha] = [b for b in json.loads(http_get(again.url + "/api/v1/status")[1])["bots"] if b["bot"] == "alpha"]
    assert alpha["last_empty"] is True


def test_min_items_is_a_whole_number_of_at_least_one():
    for bad, message in (("0", "greater than or equal to 1"), ("-3", "greater than or equal to 1"),
                         ("many", "valid integer"), ("2000000000", "less than or equal to 1000000000")):
        with pytest.raises(ConfigError) as exc:
            parse_estate_text(f"bots:\n  - name: a\n    min_items: {bad}\n", "e.yaml")
        [problem] = exc.value.problems
        assert problem.startswith("e.yaml:3: bots[0].min_items:") and message in problem, problem
    assert parse_estate_text("bots:\n  - name: a\n    min_items: 25\n").bots[0].min_items == 25


# -- the journal -------------------------------------------------------------------------------

def test_an_older_journal_gains_the_items_columns_and_its_runs_stay_readable(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(textwrap.dedent("""\
        CREATE TABLE runs (bot TEXT NOT NULL, run_id TEXT NOT NULL, host TEXT, started REAL, ended REAL NOT NULL,
            exit_status INTEGER, outcome TEXT NOT NULL, reason TEXT, signal INTEGER,
            timed_out INTEGER NOT NULL DEFAULT 0, output_tail TEXT, cpu_seconds REAL, peak_rss_bytes INTEGER,
            source TEXT, received REAL NOT NULL, PRIMARY KEY (bot, run_id));
        INSERT INTO runs (bot, run_id, ended, outcome, received) VALUES ('alpha', 'old-1', 5.0, 'success', 5.0);
        """))
    db.commit()
    db.close()
    ro = Journal(path, readonly=True)  # read as it is, before any migration
    [old] = ro.iter_runs()
    assert (old.run_id, old.items_processed, old.empty) == ("old-1", None, False)
    assert ro.recent_runs("alpha")[0]["run_id"] == "old-1"
    ro.close()
    j = Journal(path)
    with j.transaction() as t:
        assert t.insert_run(RunFinished("alpha", "new-1", 9.0, "success", items_processed=0, items_failed=4,
                                        empty=True), 9.0)
    runs = {r.run_id: r for r in j.iter_runs("alpha")}
    assert (runs["old-1"].items_processed, runs["old-1"].empty) == (None, False)
    assert (runs["new-1"].items_processed, runs["new-1"].items_failed, runs["new-1"].empty) == (0, 4, True)
    assert j.recent_runs("alpha")[0].items() >= {"run_id": "new-1", "items_failed": 4, "empty": 1}.items()
