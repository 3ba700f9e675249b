"""Hostile text: lines and messages built so that a backtracking regex scans on to the end of
the line from every place where it may start, which takes time growing with the square of the
line (a megabyte: minutes). Classification, the log parsers and redaction still answer within
a hang guard and give the right reason; a real agent reading such a line keeps answering and
recording the other bots.

The guards bound a hang and assert no speed: each input takes well under a second; with the
regexes these tests replaced, minutes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime

import pytest

from botwatch.core.classify import Classifier
from botwatch.config.estate import BotConfig, Estate, LogSpec
from botwatch.core.events import RunFinished, RunStarted, UiLookup
from botwatch.state.journal import Journal
from botwatch.parsers.base import make_parser
from botwatch.core.redact import redact
from botwatch.state.runtime import EstateState
from conftest import free_port, http_get, wait_for
from fuzzing import bounded

MB = 1_000_000
HANG = 20.0  # seconds: a hang guard, far above what any of these inputs takes
ANSWER = 15.0  # seconds an agent may take to answer an HTTP request while it reads a hostile line
KEY = "adversarial-ping-key"


def repeated(unit: str, size: int = MB) -> str:
    return unit * (size // len(unit))


# (what, text, reason, kind): the repeated part comes first; the line that gives the reason
# comes last, where a pattern finds it only after every start in the repeated part has failed.
CLASSIFIED = [
    ("a UiPath selector error with a line of unclosed elements",
     "SelectorNotFoundException: " + repeated("<html "), "ui_drift", "not_found"),
    ("SeleniumLibrary's with locator, repeated",
     "' not found. " + repeated("Button with locator '") + "\nButton with locator 'id:ok' not found.",
     "ui_drift", "not_found"),
    ("SeleniumLibrary's page should have contained, repeated",
     "' but did not. " + repeated("Page should have contained link '")
     + "\nPage should have contained link 'Invoices' but did not.", "ui_drift", "not_found"),
    ("SeleniumLibrary's element did not appear, repeated",
     "' did not appear in " + repeated("Element '") + "\nElement 'css:#total' did not appear in 5 seconds.",
     "ui_drift", "not_found"),
    ("SeleniumLibrary's element not visible, repeated",
     "' not visible after " + repeated("Element '") + "\nElement 'id:ok' not visible after 5 seconds.",
     "ui_drift", "not_found"),
    ("a Playwright locator timeout after a megabyte of locator calls",
     repeated("locator.click: ") + "Timeout 30000ms exceeded.", "ui_drift", "not_found"),
    ("a Playwright strict mode violation naming a megabyte of locators",
     "Error: strict mode violation: " + repeated("locator('button') "), "ui_drift", "ambiguous"),
    ("a Selenium NoSuchElementException with a megabyte of selector JSON",
     "selenium.common.exceptions.NoSuchElementException: Message: no such element: "
     + repeated('{"method":"css selector","selector":"'), "ui_drift", "not_found"),
    ("a megabyte of single quotes", repeated("'") + "\nLogon failed for user 'svc'", "credentials", None),
    ("a megabyte of double quotes", repeated('"') + "\nLogon failed for user 'svc'", "credentials", None),
    ("a megabyte of brackets", repeated("[<{(") + "\nBusinessRuleException: limit", "business", None),
    ("a megabyte of spaces", repeated(" ") + "\nBusinessRuleException: limit", "business", None),
    ("credential words and status codes", repeated("credential 40x "), "unknown", None),
    ("a megabyte line of one letter", repeated("x"), "unknown", None),
]


@pytest.mark.parametrize("what,text,reason,kind", CLASSIFIED, ids=[c[0] for c in CLASSIFIED])
def test_it_classifies_hostile_text_within_the_guard_with_the_right_reason(what, text, reason, kind):
    with bounded(f"classify: {what}", HANG):
        got = Classifier().classify(exit_status=1, output=text)
    assert (got.reason, got.kind) == (reason, kind)


@pytest.mark.parametrize("what,text,reason,kind", CLASSIFIED, ids=[c[0] for c in CLASSIFIED])
def test_it_redacts_hostile_text_within_the_guard_and_leaves_text_without_secrets_alone(what, text, reason, kind):
    with bounded(f"redact: {what}", HANG):
        assert redact(text) == text


def test_an_estates_own_slow_pattern_sees_no_more_than_the_cap_of_a_text():
    slow = Classifier([{"reason": "data", "regex": r"Row '.*' is empty"}])  # `.*`: quadratic on its own
    text = "' is empty " + repeated("Row '") + "\nRow '7' is empty"
    with bounded("an estate's own `'.*'` pattern on a megabyte", HANG):
        assert slow.classify(exit_status=1, output=text).reason == "data"


# -- redaction ----------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"

REDACTED = [
    ("JWT look-alikes joined by dashes", repeated("eyJaaaaaaaa-") + " " + JWT, "IxMjM0NTY3ODkwIn0"),
    ("ODBC braces never closed", repeated("pwd={ ") + "\nServer=db;Pwd={s3cr3t-in-braces};", "s3cr3t-in-braces"),
    ("curl before a user option", repeated("curl ") + "curl -u bob:hunter2-curl https://x", "hunter2-curl"),
    ("mysql before a password flag", repeated("mysql ") + "mysql -psecret-mysql db", "secret-mysql"),
    ("quoted values never closed", repeated('password=" ') + "\npassword=quoted-secret", "quoted-secret"),
    ("options of dashes", repeated("--a-") + " --db-password option-secret", "option-secret"),
    ("X- header names", repeated("x-key") + "\nX-Api-Key: header-secret", "header-secret"),
    ("URLs without a host", repeated("a://") + " https://u:url-secret@host/", "url-secret"),
    ("a PEM block never ended", "-----BEGIN RSA PRIVATE KEY-----\n" + repeated("MIIEow "), "MIIEow"),
]


@pytest.mark.parametrize("what,text,secret", REDACTED, ids=[r[0] for r in REDACTED])
def test_it_redacts_a_megabyte_built_against_each_rule_within_the_guard(what, text, secret):
    with bounded(f"redact: {what}", HANG):
        out = redact(text)
    assert secret not in out and "[REDACTED]" in out


# -- the UiPath parser --------------------------------------------------------------------------


def uipath_line(level: str, message: str, second: int, job: str = "j1") -> str:
    body = {"message": message, "level": {"Info": "Information"}.get(level, level), "logType": "Default",
            "timeStamp": f"2024-05-01T08:00:{second:02d}+01:00", "processName": "Invoices", "jobId": job}
    return f"08:00:{second:02d}.1234 {level} {json.dumps(body)}"


def uipath_parser():
    return make_parser(BotConfig(name="b"), LogSpec(path="x.log", format="uipath"), Classifier())


HOSTILE_SELECTOR = "SelectorNotFoundException: " + repeated("<html ", 241_000)  # the 241 KB line of the report

# (what, message of an Error entry, reason of the run): what the Robot writes first decides
FAILED = [
    ("the 241 KB selector line", HOSTILE_SELECTOR, "ui_drift"),
    ("a megabyte of unclosed selector elements",
     "SelectorNotFoundException: " + repeated("<wnd app='x' "), "ui_drift"),
    ("a selector after a megabyte of unclosed elements",
     "Cannot find the UI element corresponding to this selector: " + repeated("<html ")
     + "\n<html app='chrome.exe' title='Invoices' /><webctrl id='btnSend' />", "ui_drift"),
    ("a megabyte of JWT look-alikes", "Logon failed for user 'svc' " + repeated("eyJaaaaaaaa-"), "credentials"),
    ("a megabyte of unclosed ODBC braces", "BusinessRuleException: " + repeated("pwd={ "), "business"),
    ("a megabyte of locators never found",
     "Could not find the user-interface (UI) element for this action. " + repeated("Button with locator '"),
     "ui_drift"),
]


@pytest.mark.parametrize("what,message,reason", FAILED, ids=[f[0] for f in FAILED])
def test_the_uipath_parser_reads_a_hostile_error_entry_within_the_guard(what, message, reason):
    lines = [uipath_line("Info", "Invoices execution started", 0), uipath_line("Error", message, 5),
             uipath_line("Info", "Invoices execution ended", 9)]
    with bounded(f"uipath: {what}", HANG):
        fed = uipath_parser().feed_lines(lines)
    assert fed.errors == 0 and fed.failure is None
    [run] = [e for e in fed.events if isinstance(e, RunFinished)]
    assert (run.run_id, run.outcome, run.reason) == ("j1", "failure", reason)
    assert len(run.output_tail) < 2000  # the first thousand characters of the message
    if reason == "ui_drift":
        [lookup] = [e for e in fed.events if isinstance(e, UiLookup)]
        assert (lookup.found, lookup.kind, lookup.run_id) == (False, "not_found", "j1")


def test_the_selector_on_the_line_after_a_line_of_unclosed_elements_is_the_one_recorded():
    message = FAILED[2][1]
    with bounded("uipath: a selector after a megabyte of unclosed elements", HANG):
        fed = uipath_parser().feed_lines([uipath_line("Error", message, 5)])
    [lookup] = [e for e in fed.events if isinstance(e, UiLookup)]
    assert lookup.selector == "<html app='chrome.exe' title='Invoices' /><webctrl id='btnSend' />"
    assert lookup.screen == "Invoices"


def test_a_message_that_only_looks_like_a_runs_start_after_a_megabyte_of_spaces_starts_nothing():
    lines = [uipath_line("Info", "Invoices execution started" + " " * MB + "x", 0),
             uipath_line("Info", "Invoices execution started" + " " * MB + ".", 1)]
    with bounded("uipath: execution started, a megabyte of spaces", HANG):
        fed = uipath_parser().feed_lines(lines)
    assert fed.errors == 0
    [started] = fed.events  # the second line's: spaces, a full stop, the end
    assert isinstance(started, RunStarted)
    assert started.time == datetime.fromisoformat("2024-05-01T08:00:01+01:00").timestamp()


# -- a user's regex log ---------------------------------------------------------------------


def test_a_regex_logs_own_slow_error_pattern_sees_no_more_than_the_cap_of_a_line():
    p = make_parser(BotConfig(name="b"), LogSpec(path="x.log", format="regex", start=r"^start (?P<run_id>\d+)",
                                                 end=r"^end (?P<run_id>\d+)", error=r"ERROR '.*' failed"), Classifier())
    hostile = "' failed " + repeated("ERROR '")  # no start of the pattern is followed by "' failed"
    with bounded("regex: the estate's own `'.*'` error pattern on a megabyte line", HANG):
        fed = p.feed_lines(["start 1", hostile, "ERROR 'export' failed", "end 1"])
    [run] = [e for e in fed.events if isinstance(e, RunFinished)]
    assert (run.run_id, run.outcome, run.output_tail) == ("1", "failure", "ERROR 'export' failed")


# -- the estate state ---------------------------------------------------------------------------


def test_the_state_finds_a_ui_drift_runs_selector_after_a_line_of_unclosed_elements(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    state = EstateState(Estate(bots=[BotConfig(name="b")]), journal)
    tail = ("SelectorNotFoundException: " + repeated("<html ")
            + "\nat <html app='chrome.exe' title='Invoices' /><webctrl id='btnSend' />")
    run = RunFinished("b", "r1", ended=time.time(), outcome="failure", reason="ui_drift", output_tail=tail)
    with bounded("state: a ui_drift run's output tail of unclosed elements", HANG):
        state.apply([run])
    [stored] = [r for r in journal.iter_runs() if r.run_id == "r1"]
    assert stored.reason == "ui_drift"
    assert stored.selector == "<html app='chrome.exe' title='Invoices' /><webctrl id='btnSend' />"
    journal.close()


# -- a real agent -------------------------------------------------------------------------------


def journal_runs(path) -> list[dict]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT bot, run_id, outcome, reason FROM runs ORDER BY ended")]
    finally:
        db.close()


def test_an_agent_reading_the_hostile_uipath_line_answers_and_records_another_bots_check_ins(tmp_path, agents):
    logs = tmp_path / "Logs"
    logs.mkdir()
    log = logs / "2024-05-01_Execution.log"
    log.write_bytes((uipath_line("Info", "Invoices execution started", 0) + "\r\n").encode())
    port = free_port()
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  ping_key: {KEY}\n"
        "bots:\n  - name: invoice-recon\n    platform: uipath\n"
        "    watch:\n      logs:\n        - {path: Logs/*_Execution.log, format: uipath}\n"
        "  - name: beta\n")
    agent = agents(config, port).start()
    wait_for(lambda: agent.metrics().get('botwatch_run_in_progress{bot="invoice-recon"}') == 1,
             what="the run's start read from the log")
    with open(log, "ab") as fh:
        fh.write((uipath_line("Error", HOSTILE_SELECTOR, 5) + "\r\n"
                  + uipath_line("Info", "Invoices execution ended", 9) + "\r\n").encode())
    # while the agent reads the line: another bot checks in, and /healthz answers
    check_ins = 8
    for i in range(check_ins):
        for url in (f"{agent.url}/ping/{KEY}/beta?rid=beta-{i}", f"{agent.url}/healthz"):
            try:
                status, _ = http_get(url, timeout=ANSWER)
            except OSError as exc:
                pytest.fail(f"{url} gave no answer within {ANSWER:g}s while the agent read the line: {exc}")
            assert status == 200, url
        time.sleep(0.3)
    assert len([r for r in journal_runs(tmp_path / "journal.db") if r["bot"] == "beta"]) == check_ins

    def hostile_run():
        return [r for r in journal_runs(tmp_path / "journal.db") if r["bot"] == "invoice-recon"]

    [run] = wait_for(hostile_run, timeout=60, what="the run with the hostile line")
    assert (run["run_id"], run["outcome"], run["reason"]) == ("j1", "failure", "ui_drift")
