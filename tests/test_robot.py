"""Robot Framework: output.xml of both schema generations, and the live listener.

The parser's promise: every output.xml gives one run with one step per task, with the tasks
and statuses Robot Framework's own reader (`robot.api.ExecutionResult`) reports; the run fails
when a task failed, for the reason the first failing task's message gives. The listener's:
the same run, reported to the agent as it happens, through the spool (so with the agent down
too), without ever changing the robot run's result.

The corpus tests read the real files in tests/corpus/robot; the last tests run a real RPA
suite (`robot --rpa`) in a child process, with a real agent where one is needed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from robot.api import ExecutionResult, ResultVisitor

from botwatch.core.classify import Classifier
from botwatch.config.estate import parse_estate_text
from botwatch.core.events import RunFinished, RunStarted, StepFinished, to_wire
from botwatch.integrations import robot as listener_module
from botwatch.state.journal import Journal
from botwatch.parsers.base import FileParser, IncompleteFile, ParseError
from botwatch.parsers.robot_output import (IncompleteOutputError, RobotOutputParser, bot_name_for_suite,
                                           parse_output_xml)
from botwatch.state.runtime import EstateState
from conftest import SDK_ENV, free_port, http_post_json, metrics_when, outbox_and_dead, wait_for, write_estate

PY = sys.executable
CORPUS = Path(__file__).parent / "corpus" / "robot"
CORPUS_FILES = sorted(CORPUS.glob("*.xml"))
STATUS = {"PASS": "pass", "FAIL": "fail", "SKIP": "skip", "NOT RUN": "skip"}
BOT = "invoice-portal"


class _Tests(ResultVisitor):
    def __init__(self):
        self.tests = []

    def visit_test(self, test):
        self.tests.append(test)


def keywords(events) -> list[tuple[str, str, str]]:
    """(task, keyword, status) of the steps beneath the tasks (the tasks' own keywords)."""
    return [(e.parent, e.name, e.status) for e in events if isinstance(e, StepFinished) and e.parent is not None]


def robot_keywords(path) -> list[tuple[str, str, str]]:
    """(task, keyword, status) of every task's setup, own body items and teardown, as Robot
    Framework reads them."""
    out = []
    for test in robot_tests(path):
        for item in [*([test.setup] if test.setup else []), *test.body, *([test.teardown] if test.teardown else [])]:
            name = (item.name if item.type in ("KEYWORD", "SETUP", "TEARDOWN")
                    else {"IF/ELSE ROOT": "IF", "TRY/EXCEPT ROOT": "TRY"}.get(item.type, item.type))
            out.append((test.name, name, STATUS[item.status]))
    return out


def robot_tests(path) -> list:
    """Every test (task) of an output, as Robot Framework's own reader gives them."""
    visitor = _Tests()
    ExecutionResult(str(path)).visit(visitor)
    return visitor.tests


def split(events):
    """The run's start, its tasks (the keywords beneath them left out: see keywords()) and its end."""
    started = [e for e in events if isinstance(e, RunStarted)]
    steps = [e for e in events if isinstance(e, StepFinished) and e.parent is None]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert len(started) == 1 and len(finished) == 1, events
    assert events[0] is started[0] and events[-1] is finished[0]
    return started[0], steps, finished[0]


# -- the corpus: real output.xml of every schema generation ------------------------------------

def test_the_corpus_holds_both_schema_generations():
    texts = {p.name: p.read_text(encoding="utf-8") for p in CORPUS_FILES}
    assert len(texts) >= 7
    assert any('starttime="' in t for t in texts.values())  # RF <= 6
    assert any('elapsed="' in t for t in texts.values())  # RF 7
    assert any('critical="yes"' in t for t in texts.values())  # RF <= 3
    assert any('rpa="true"' in t for t in texts.values())


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_corpus_output_gives_the_tasks_and_statuses_robot_frameworks_own_reader_reports(path):
    started, steps, finished = split(parse_output_xml(path, "corpus-bot"))
    expected = robot_tests(path)
    assert len(steps) == len(expected)
    assert [(s.name, s.status) for s in steps] == [(t.name, STATUS[t.status]) for t in expected]
    assert [s.message or "" for s in steps] == [t.message for t in expected]
    assert {s.run_id for s in steps} == {started.run_id} == {finished.run_id}
    failed = [t for t in expected if t.status == "FAIL"]
    assert finished.outcome == ("failure" if failed else "success")
    if failed:
        assert finished.reason == Classifier().classify(output=failed[0].message).reason
        assert finished.output_tail == failed[0].message
    else:
        assert finished.reason is None and finished.output_tail is None
    suite = ExecutionResult(str(path)).suite
    assert started.time == pytest.approx(suite.start_time.timestamp(), abs=1e-3)
    assert finished.duration == pytest.approx(suite.elapsed_time.total_seconds(), abs=2e-3)
    # beneath each task, its own keywords and control structures (the steps of run traces)
    assert keywords(parse_output_xml(path, "corpus-bot")) == robot_keywords(path)
    for step, test in zip(steps, expected):
        if test.start_time is not None:
            assert step.started == pytest.approx(test.start_time.timestamp(), abs=1e-3)
            assert step.ended - step.started == pytest.approx(test.elapsed_time.total_seconds(), abs=2e-3)


def test_a_failed_suite_teardown_fails_every_task_with_robot_frameworks_messages():
    events = parse_output_xml(CORPUS / "rf-2011trunk_noschema_suite_teardown_failed.xml", "legacy-bot")
    _, steps, finished = split(events)
    # in the file the tasks say PASS, PASS and FAIL; the suite teardown failed after them
    assert [(s.name, s.status) for s in steps] == [("Pass", "fail"), ("Fail", "fail"), ("Teardowns", "fail")]
    assert steps[0].message == "Parent suite teardown failed:\nXXX"
    assert steps[1].message == "Message\n\nAlso parent suite teardown failed:\nXXX"
    assert finished.outcome == "failure" and finished.output_tail == "Parent suite teardown failed:\nXXX"


def test_rf7_skip_and_rf5_not_run_tasks_are_skipped_steps_and_do_not_fail_the_run():
    _, steps, finished = split(parse_output_xml(CORPUS / "rf-7.1_schema5_fail_dashboard.xml", "dash"))
    assert sorted(s.status for s in steps) == ["fail", "pass", "pass", "pass", "pass", "skip"]
    assert [s.message for s in steps if s.status == "skip"] == ["Skipped with Skip keyword."]
    assert finished.outcome == "failure" and finished.reason == "unknown"  # "AssertionError" says nothing more


def test_old_schema_times_are_read_in_the_hosts_local_timezone(tmp_path):
    code = textwrap.dedent(f"""\
        import json
        from botwatch.parsers.robot_output import parse_output_xml
        events = parse_output_xml({str(CORPUS / "rf-6.1.1_schema4_legacy.xml")!r}, "b")
        print(json.dumps([events[0].time, events[-1].duration, events[0].run_id]))
        """)
    seen = {}
    for tz in ("UTC", "America/New_York", "Asia/Tokyo"):
        r = subprocess.run([PY, "-c", code], env={**os.environ, "TZ": tz}, capture_output=True, text=True, check=True)
        seen[tz] = json.loads(r.stdout)
    # 20231116 17:35:01.760 is a wall-clock time: 17:35 in New York is 5 hours after 17:35 UTC
    assert seen["America/New_York"][0] - seen["UTC"][0] == 5 * 3600
    assert seen["UTC"][0] - seen["Asia/Tokyo"][0] == 9 * 3600
    assert seen["UTC"][0] == datetime.fromisoformat("2023-11-16T17:35:01.760+00:00").timestamp()
    assert {round(v[1], 3) for v in seen.values()} == {0.022}  # durations do not depend on it
    assert len({v[2] for v in seen.values()}) == 1  # nor does the run id


def output_xml(task_status: str, message: str, *, new_schema: bool, teardown: str | None = None) -> bytes:
    """A small output.xml of one suite with a passing task and a task of `task_status`."""
    if new_schema:
        head = '<robot generator="Robot 7.1 (Python 3.12 on linux)" generated="2025-03-04T08:00:00.100000" ' \
               'rpa="true" schemaversion="5">'

        def status(s, msg="", start="2025-03-04T08:00:01.000000", elapsed="1.500000"):
            return f'<status status="{s}" start="{start}" elapsed="{elapsed}">{msg}</status>'
    else:
        head = '<robot generator="Robot 6.1.1 (Python 3.11 on linux)" generated="20250304 08:00:00.100" ' \
               'rpa="true" schemaversion="4">'

        def status(s, msg="", start="20250304 08:00:01.000", elapsed=None):
            return f'<status status="{s}" starttime="{start}" endtime="20250304 08:00:02.500">{msg}</status>'
    fixture = ""
    if teardown:
        fixture = f'<kw name="Close Browser" type="TEARDOWN">{status("FAIL", teardown)}</kw>'
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n{head}\n<suite id="s1" name="Invoice Portal">'
            f'<test id="s1-t1" name="Download Invoices"><kw name="Log" owner="BuiltIn">{status("PASS")}</kw>'
            f'{status("PASS")}</test>'
            f'<test id="s1-t2" name="Submit Invoices"><kw name="Click Button" owner="SeleniumLibrary">'
            f'{status(task_status, message)}</kw>{status(task_status, message)}</test>'
            f'{fixture}{status("FAIL" if task_status == "FAIL" or teardown else "PASS")}</suite>'
            '<statistics/><errors/></robot>').encode()


@pytest.mark.parametrize("new_schema", [False, True], ids=["rf6-schema", "rf7-schema"])
def test_a_selenium_element_not_found_fails_the_run_as_ui_drift_in_both_schemas(new_schema):
    data = output_xml("FAIL", "Element with locator 'id:submit' not found.", new_schema=new_schema)
    started, steps, finished = split(parse_output_xml(data, BOT))
    assert [(s.name, s.status) for s in steps] == [("Download Invoices", "pass"), ("Submit Invoices", "fail")]
    assert steps[1].message == "Element with locator 'id:submit' not found."
    assert (finished.outcome, finished.reason) == ("failure", "ui_drift")
    assert finished.started == started.time == datetime(2025, 3, 4, 8, 0, 1).timestamp()
    assert finished.duration == pytest.approx(1.5)
    assert finished.source == started.source == steps[0].source == "log:robot"


def test_the_first_failing_tasks_message_gives_the_reason_with_the_estates_patterns():
    data = output_xml("FAIL", "Invoice already booked: 4711", new_schema=True)
    assert parse_output_xml(data, BOT)[-1].reason == "unknown"
    classifier = Classifier([{"reason": "business", "contains": "Invoice already booked"}])
    assert parse_output_xml(data, BOT, classifier=classifier)[-1].reason == "business"


def test_a_failed_suite_teardown_in_a_new_schema_file_fails_the_passing_tasks():
    data = output_xml("PASS", "", new_schema=True, teardown="Window wasn't found")
    _, steps, finished = split(parse_output_xml(data, BOT))
    assert [s.status for s in steps] == ["fail", "fail"]
    assert steps[0].message == "Parent suite teardown failed:\nWindow wasn't found"
    assert (finished.outcome, finished.reason) == ("failure", "ui_drift")


def test_a_failure_message_is_redacted_before_it_is_kept():
    data = output_xml("FAIL", "Logon failed for user bot password=Hunter2!", new_schema=False)
    _, steps, finished = split(parse_output_xml(data, BOT))
    assert "Hunter2" not in steps[1].message and "Hunter2" not in finished.output_tail
    assert finished.reason == "credentials"


def test_the_same_file_read_again_is_the_same_run_and_is_recorded_once(tmp_path):
    path = CORPUS / "rf-6.1.1_schema4_legacy.xml"
    first, again = parse_output_xml(path, "legacy-bot"), parse_output_xml(path.read_bytes(), "legacy-bot")
    assert first == again
    assert parse_output_xml(path, "other-bot")[0].run_id != first[0].run_id
    estate = parse_estate_text("bots:\n  - name: legacy-bot\n")
    journal = Journal(tmp_path / "journal.db")
    try:
        state = EstateState(estate, journal)
        state.apply(first)
        result = state.apply(again)
        assert result.duplicates == 1
        (view,) = state.views()
        assert view.runs_total == 1 and view.failures["unknown"] == 1 and view.runs_in_progress == 0
    finally:
        journal.close()


def test_the_parser_class_reads_a_watched_file_for_its_bot(tmp_path):
    path = tmp_path / "output.xml"
    path.write_bytes(output_xml("FAIL", "Invoice already booked: 4711", new_schema=True))
    estate = parse_estate_text(textwrap.dedent("""\
        failure_patterns:
          - {reason: business, contains: "Invoice already booked"}
        bots:
          - name: invoice-portal
            watch:
              logs:
                - {path: output.xml, format: robot}
        """))
    bot = estate.bots[0]
    parser = RobotOutputParser(bot, bot.watch.logs[0], Classifier.for_estate(estate))
    assert isinstance(parser, FileParser) and parser.source == "log:robot"
    events = parser.parse_file(path)
    assert {e.bot for e in events} == {"invoice-portal"} and {e.source for e in events} == {"log:robot"}
    assert events[-1].reason == "business"
    assert RobotOutputParser("invoice-portal", None).parse_file(path)[-1].reason == "unknown"


def test_without_a_bot_name_the_suite_name_is_the_bots():
    assert bot_name_for_suite("Invoice Portal") == "invoice-portal"
    assert bot_name_for_suite("Invoices & Payments") == "invoices-payments"
    assert bot_name_for_suite("HR_onboarding") == "hr_onboarding"
    assert bot_name_for_suite("  ") is None


# -- what is not a complete output.xml ---------------------------------------------------------

@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_a_file_still_being_written_is_reported_incomplete(tmp_path, cut):
    data = (CORPUS / "rf-7.1_schema5_fail_dashboard.xml").read_bytes()
    path = tmp_path / "output.xml"
    path.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(IncompleteOutputError, match="^not a Robot Framework output.xml: incomplete"):
        RobotOutputParser(BOT, None).parse_file(path)
    with pytest.raises(ValueError):  # it is a ValueError too, and the watcher's IncompleteFile
        parse_output_xml(path, BOT)
    with pytest.raises(IncompleteFile):
        parse_output_xml(path, BOT)


def test_an_empty_file_is_incomplete():
    with pytest.raises(IncompleteOutputError, match="empty"):
        parse_output_xml(b"", BOT)


@pytest.mark.parametrize("data, why", [
    (b'<?xml version="1.0"?><html><body>report</body></html>', "root element is <html>"),
    (b'<testsuite name="pytest" tests="1"><testcase name="t"/></testsuite>', "root element is <testsuite>"),
    ((Path(__file__).parent / "corpus" / "uipath" / "runefar1_Execution2.log").read_bytes(), "malformed XML"),
    (b'<robot generated="20250304 08:00:00.100"><statistics/></robot>', "has no <suite>"),
    (b'<robot><suite name="S"><test name="T"/></suite></robot>', "root suite has no <status>"),
    (b'<robot><suite name="A"><status status="PASS"/></suite><suite name="B"/></robot>', "more than one root"),
    (b'<robot><suite name="S"><status status="PASS" starttime="N/A" endtime="N/A"/></suite></robot>',
     "no start time"),
    (b'<robot><suite name="S"><status status="PASS" start="2025-03-04T08:00:00"/></suite></robot>junk',
     "malformed XML"),
], ids=["html", "junit", "uipath-log", "no-suite", "no-status", "two-roots", "no-times", "trailing-junk"])
def test_other_files_are_not_robot_framework_output(tmp_path, data, why):
    path = tmp_path / "output.xml"
    path.write_bytes(data)
    with pytest.raises(ParseError, match=f"^not a Robot Framework output.xml: .*{why}") as caught:
        RobotOutputParser(BOT, None).parse_file(path)
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, IncompleteFile)


def test_an_entity_bomb_is_refused_without_being_expanded():
    levels = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE robot [<!ENTITY e0 "lol">{levels}]>'
            '<robot><suite name="S"><status status="FAIL" start="2025-03-04T08:00:00" elapsed="1">&e9;</status>'
            '</suite></robot>').encode()
    began = time.monotonic()
    with pytest.raises(ParseError, match="DOCTYPE"):
        parse_output_xml(bomb, BOT)
    assert time.monotonic() - began < 5  # refused at the DOCTYPE, not after a billion "lol"s


def test_an_external_entity_is_refused_and_the_file_it_names_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-value")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE robot [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<robot><suite name="S"><status status="FAIL" start="2025-03-04T08:00:00" elapsed="1">&x;</status>'
           '</suite></robot>').encode()
    with pytest.raises(ParseError, match="DOCTYPE") as caught:
        parse_output_xml(xxe, BOT)
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(ParseError, match="DOCTYPE"):  # a DOCTYPE without entities is refused as well
        parse_output_xml(b'<!DOCTYPE robot><robot/>', BOT)


def test_the_agent_does_not_need_robot_framework_to_read_output_xml():
    code = textwrap.dedent(f"""\
        import sys
        sys.modules["robot"] = None  # importing Robot Framework would fail
        from botwatch.parsers.robot_output import parse_output_xml
        events = parse_output_xml({str(CORPUS / "rf-7.0.1_schema5_pabot_first.xml")!r}, "b")
        assert events[-1].outcome == "success", events
        """)
    subprocess.run([PY, "-c", code], check=True)


# -- a real RPA run ------------------------------------------------------------------------------

LIBRARY = '''\
"""Keywords of the invoice portal bot (what SeleniumLibrary raises when a locator no longer matches)."""
import botwatch


class ElementNotFound(Exception):
    ROBOT_SUPPRESS_NAME = True  # as SeleniumLibrary's: the message alone


def open_invoice_portal():
    botwatch.ui_lookup(screen="login", selector="id:user", found=True, wait=0.2)


def click_submit():
    botwatch.ui_lookup(screen="checkout", selector="id:submit", found=False)
    raise ElementNotFound("Element with locator 'id:submit' not found.")
'''

SUITE = '''\
*** Settings ***
Library    Checkout.py
Library    OperatingSystem

*** Variables ***
${RELEASE}    ${CURDIR}${/}release

*** Tasks ***
Download Invoices
    Open Invoice Portal
    Run Keyword And Ignore Error    Fail    Optional cookie banner not shown
    Log    downloaded 3 invoices

Submit Invoices
    Open Invoice Portal
    Click Submit
    Log    not reached

Archive Invoices
    Wait Until Created    ${RELEASE}    timeout=5 min
'''

ESTATE_BOTS = """\
- name: invoice-portal
  platform: robotframework
  team: finance
"""


@pytest.fixture
def rpa(tmp_path, run_env):
    """The bot's folder (suite `invoice_portal.robot`, keyword library) and a robot environment."""
    bot_dir = tmp_path / "bot"
    bot_dir.mkdir()
    (bot_dir / "Checkout.py").write_text(LIBRARY)
    (bot_dir / "invoice_portal.robot").write_text(SUITE)
    env = {k: v for k, v in run_env.items() if k not in SDK_ENV}
    return bot_dir, env


def robot_cmd(bot_dir: Path, *options: str) -> list[str]:
    return [PY, "-m", "robot", "--rpa", "--output", str(bot_dir / "output.xml"), "--log", "NONE", "--report", "NONE",
            "--console", "dotted", *options, str(bot_dir / "invoice_portal.robot")]


def run_robot(bot_dir: Path, env: dict, *options: str) -> subprocess.CompletedProcess:
    r = subprocess.run(robot_cmd(bot_dir, *options), cwd=bot_dir, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr  # robot's exit status: one task failed
    assert "[ ERROR ]" not in r.stdout + r.stderr, r.stdout + r.stderr  # e.g. "Calling method ... of listener failed"
    return r


def spooled(spool: str) -> list[dict]:
    db = sqlite3.connect(spool)
    try:
        return [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox ORDER BY seq")]
    finally:
        db.close()


def test_an_rpa_run_with_the_listener_reaches_a_real_agent_as_it_happens(tmp_path, agents, rpa):
    bot_dir, env = rpa
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", ESTATE_BOTS, port), port).start()
    env["BOTWATCH_AGENT_URL"] = agent.url
    robot = subprocess.Popen(robot_cmd(bot_dir, "--listener", f"botwatch.integrations.robot:bot={BOT}"),
                             cwd=bot_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # while the last task waits, the run is in progress and its failure is already in
        m = metrics_when(agent, lambda m: m.get(f'botwatch_run_in_progress{{bot="{BOT}"}}') == 1
                         and m.get('botwatch_agent_events_total{source="robot"}', 0) >= 3,
                         "the run start, a step and the keyword failure, during the run")
        assert m[f'botwatch_runs_total{{bot="{BOT}"}}'] == 0
        assert robot.poll() is None
        (bot_dir / "release").touch()
        output = robot.communicate(timeout=300)[0]
    finally:
        if robot.poll() is None:
            robot.kill()
            robot.wait()
    assert robot.returncode == 1, output
    assert "[ ERROR ]" not in output, output
    m = metrics_when(agent, lambda m: m.get(f'botwatch_runs_total{{bot="{BOT}"}}') == 1, "the finished run")
    assert m[f'botwatch_run_failures_total{{bot="{BOT}",reason="ui_drift"}}'] == 1
    assert sum(v for k, v in m.items() if k.startswith("botwatch_run_failures_total{")) == 1
    assert m[f'botwatch_run_in_progress{{bot="{BOT}"}}'] == 0
    assert m[f'botwatch_ui_lookup_failures_total{{bot="{BOT}",kind="not_found",screen="checkout"}}'] == 1
    assert m[f'botwatch_ui_lookups_total{{bot="{BOT}",screen="login"}}'] == 2
    # every event was delivered and none refused: the start, 3 steps, 1 failure (the ignored
    # error is not one), the finish
    assert wait_for(lambda: outbox_and_dead(env["BOTWATCH_SPOOL"])[0] == 0, what="an empty outbox")
    assert outbox_and_dead(env["BOTWATCH_SPOOL"])[1] == []
    m = agent.metrics()
    body_items = robot_keywords(bot_dir / "output.xml")  # sent as steps beneath their tasks (run traces)
    assert ("Submit Invoices", "Click Submit", "fail") in body_items
    assert m['botwatch_agent_events_total{source="robot"}'] == 1 + 3 + len(body_items) + 1 + 1
    # the same run read from its output.xml is the same run: the agent records it once
    events = parse_output_xml(bot_dir / "output.xml", BOT)
    status, body = http_post_json(agent.url + "/api/v1/events", {"events": [to_wire(e) for e in events]})
    assert status == 200 and body["duplicates"] == 1, body
    m = agent.metrics()
    assert m[f'botwatch_runs_total{{bot="{BOT}"}}'] == 1
    assert m[f'botwatch_run_failures_total{{bot="{BOT}",reason="ui_drift"}}'] == 1


def test_the_output_xml_of_an_rpa_run_gives_the_estate_state_the_same_run(tmp_path, rpa):
    bot_dir, env = rpa
    (bot_dir / "release").touch()
    run_robot(bot_dir, env)
    events = parse_output_xml(bot_dir / "output.xml", BOT)
    started, steps, finished = split(events)
    assert [(s.name, s.status) for s in steps] == [
        ("Download Invoices", "pass"), ("Submit Invoices", "fail"), ("Archive Invoices", "pass")]
    assert [(s.name, s.status) for s in steps] == [(t.name, STATUS[t.status])
                                                          for t in robot_tests(bot_dir / "output.xml")]
    assert steps[1].message == "Element with locator 'id:submit' not found."
    # beneath each task, its own keywords, as Robot Framework's reader gives them
    assert keywords(events) == robot_keywords(bot_dir / "output.xml")
    assert ("Submit Invoices", "Click Submit", "fail") in keywords(events)
    assert ("Download Invoices", "Run Keyword And Ignore Error", "pass") in keywords(events)
    assert (finished.outcome, finished.reason) == ("failure", "ui_drift")
    estate = parse_estate_text("bots:\n" + textwrap.indent(ESTATE_BOTS, "  "))
    journal = Journal(tmp_path / "journal.db")
    state = EstateState(estate, journal)
    result = state.apply(events)
    assert result.accepted == len(events) and not result.rejected
    (view,) = state.views()
    assert view.runs_total == 1 and view.failures["ui_drift"] == 1 and sum(view.failures.values()) == 1
    assert (view.last_outcome, view.last_reason, view.runs_in_progress) == ("failure", "ui_drift", 0)
    assert view.last_run_duration == pytest.approx(finished.duration)
    # the same execution in the legacy schema (rebot --legacyoutput) is the same run
    legacy = bot_dir / "legacy.xml"
    r = subprocess.run([PY, "-m", "robot.rebot", "--legacyoutput", "--output", str(legacy), "--log", "NONE",
                        "--report", "NONE", str(bot_dir / "output.xml")], env=env, capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr  # rebot's exit status too: one task failed
    assert 'starttime="' in legacy.read_text(encoding="utf-8")
    old = parse_output_xml(legacy, BOT)
    assert [(type(e), e.run_id) for e in old] == [(type(e), e.run_id) for e in events]
    assert [(s.name, s.status, s.message) for s in split(old)[1]] == [(s.name, s.status, s.message) for s in steps]
    assert (old[-1].outcome, old[-1].reason) == ("failure", "ui_drift")
    assert old[-1].started == pytest.approx(finished.started, abs=1e-3)
    assert state.apply(old).duplicates == 1  # the journal knows the run already
    assert state.views()[0].runs_total == 1
    journal.close()


def test_with_the_agent_down_the_listener_spools_the_run_under_the_suites_bot_name(tmp_path, rpa):
    bot_dir, env = rpa
    (bot_dir / "release").touch()
    env["BOTWATCH_NO_DELIVERY"] = "1"  # nothing to deliver to: the events wait in the spool
    # no bot= (the suite names the bot); an agent URL holds colons, so `;` separates the arguments
    run_robot(bot_dir, env, "--listener", "botwatch.integrations.robot;agent_url=http://127.0.0.1:9")
    events = spooled(env["BOTWATCH_SPOOL"])
    db = sqlite3.connect(env["BOTWATCH_SPOOL"])
    try:
        assert {url for (url,) in db.execute("SELECT agent_url FROM outbox")} == {"http://127.0.0.1:9"}
    finally:
        db.close()
    robot_events = [e for e in events if e["source"] == "robot" and "parent" not in e]
    # the keyword's failure is reported when the keyword fails, before its task ends
    assert [e["type"] for e in robot_events] == ["run_started", "step", "failure", "step", "step", "run_finished"]
    # the keywords of each task's own body are steps beneath it (for run traces), within its time
    beneath = [e for e in events if e["type"] == "step" and "parent" in e]
    assert [(e["parent"], e["name"], e["status"]) for e in beneath] == robot_keywords(bot_dir / "output.xml")
    tasks = {e["name"]: e for e in robot_events if e["type"] == "step"}
    for e in beneath:
        assert tasks[e["parent"]]["started"] <= e["started"] <= e["ended"] <= tasks[e["parent"]]["ended"]
    assert {e["bot"] for e in events} == {BOT}  # "Invoice Portal" -> invoice-portal
    assert len({e["run_id"] for e in events}) == 1  # the keyword library's UI look-ups belong to the run
    failure = robot_events[2]
    assert (failure["reason"], failure["message"]) == ("ui_drift", "Element with locator 'id:submit' not found.")
    finished = robot_events[-1]
    assert (finished["outcome"], finished["reason"]) == ("failure", "ui_drift")
    assert finished["output_tail"] == "Element with locator 'id:submit' not found."
    assert [(e["name"], e["status"]) for e in robot_events if e["type"] == "step"] == [
        ("Download Invoices", "pass"), ("Submit Invoices", "fail"), ("Archive Invoices", "pass")]
    for e in robot_events:
        if e["type"] == "step":
            assert finished["started"] <= e["started"] <= e["ended"] <= finished["ended"]
    # the listener's run is the run of the output.xml written by the same execution
    parsed = parse_output_xml(bot_dir / "output.xml", BOT)
    assert parsed[0].run_id == events[0]["run_id"]
    assert parsed[0].time == pytest.approx(robot_events[0]["time"], abs=1e-3)


def test_a_failed_suite_setup_is_reported_once_and_fails_every_task(tmp_path, rpa):
    bot_dir, env = rpa
    suite = SUITE.replace("Library    OperatingSystem", "Library    OperatingSystem\nSuite Setup    Click Submit")
    (bot_dir / "invoice_portal.robot").write_text(suite)
    env["BOTWATCH_NO_DELIVERY"] = "1"
    r = subprocess.run(robot_cmd(bot_dir, "--listener", f"botwatch.integrations.robot:bot={BOT}"), cwd=bot_dir,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr  # all three tasks failed
    events = [e for e in spooled(env["BOTWATCH_SPOOL"]) if e["source"] == "robot"]
    assert [e["reason"] for e in events if e["type"] == "failure"] == ["ui_drift"]
    steps = [e for e in events if e["type"] == "step"]
    assert [s["status"] for s in steps] == ["fail", "fail", "fail"]
    assert steps[0]["message"].startswith("Parent suite setup failed:\nElement with locator 'id:submit' not found.")
    assert (events[-1]["outcome"], events[-1]["reason"]) == ("failure", "ui_drift")
    parsed = parse_output_xml(bot_dir / "output.xml", BOT)
    assert [(s.name, s.status, s.message) for s in split(parsed)[1]] == [
        (s["name"], s["status"], s["message"]) for s in steps]
    assert parsed[-1].reason == "ui_drift" and parsed[0].run_id == events[0]["run_id"]


def test_the_listener_never_changes_the_robot_runs_result(tmp_path, rpa):
    bot_dir, env = rpa
    (bot_dir / "release").touch()
    plain = run_robot(bot_dir, env)
    expected = [(t.name, t.status, t.message) for t in robot_tests(bot_dir / "output.xml")]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env["BOTWATCH_SPOOL"] = str(blocker / "spool.db")  # the spool cannot be created
    r = run_robot(bot_dir, env, "--listener", "botwatch.integrations.robot:bot=Invoice Portal!")
    assert r.returncode == plain.returncode
    assert [(t.name, t.status, t.message) for t in robot_tests(bot_dir / "output.xml")] == expected
    assert "cannot record" in r.stderr  # the monitoring problem is told, once, on stderr
    assert r.stderr.count("cannot record") == 1


class FakeResult:
    """What Robot Framework 7 passes a listener (only the attributes the listener reads)."""

    def __init__(self, name, status="PASS", message="", tests=(), suites=()):
        self.name, self.status, self.message = name, status, message
        self.start_time = self.end_time = datetime.now()
        self.tests, self.suites = list(tests), list(suites)


def test_a_keyword_library_that_declares_a_failure_fails_the_listeners_run(tmp_path, monkeypatch):
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWATCH_SPOOL", str(tmp_path / "spool.db"))
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")
    monkeypatch.chdir(tmp_path)
    listener = listener_module.Listener()
    suite = FakeResult("Invoice Portal")
    listener.start_suite(None, suite)
    import botwatch

    botwatch.fail(reason="business", message="Invoice already booked: 4711")  # in a keyword library
    task = FakeResult("Book Invoices")
    listener.start_test(None, task)
    listener.end_test(None, task)
    suite.tests.append(task)
    listener.end_suite(None, suite)
    botwatch.fail(reason="business")  # after the run: no longer part of it
    events = spooled(str(tmp_path / "spool.db"))
    assert [(e["type"], e["source"]) for e in events] == [
        ("run_started", "robot"), ("failure", "sdk"), ("step", "robot"), ("run_finished", "robot")]
    assert {e["bot"] for e in events} == {BOT} and len({e["run_id"] for e in events}) == 1
    assert (events[-1]["outcome"], events[-1]["reason"]) == ("failure", "business")
    assert events[-1]["output_tail"] == "Invoice already booked: 4711"


def test_listener_methods_swallow_every_error_of_their_own(monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("spool on fire")

    monkeypatch.setattr(listener_module.sdk_transport, "record", broken)
    monkeypatch.setattr(listener_module.sdk_log, "_warned", set())
    listener = listener_module.robot(bot=BOT)
    for method in ("start_suite", "start_test", "start_keyword", "end_keyword", "end_test", "end_suite"):
        getattr(listener, method)(None, FakeResult("Invoice Portal", "FAIL", "boom"))  # nothing raises
    assert listener_module.robot is listener_module.Listener
    assert listener_module.ROBOT_LISTENER_API_VERSION == 3 == listener.ROBOT_LISTENER_API_VERSION
    assert any("spool on fire" in r.getMessage() for r in caplog.records)
