"""The Robot Framework listener's UI part: look-ups, healing, screens and failure naming.

Real `robot --rpa` runs against a stand-in for the Browser library (tests/bots/fakebrowser: the
Browser library's keyword and argument names and its error messages, over a page held in
memory), so that every rule of the listener is exercised in a fraction of a second. The real
Browser library in real Chromium is test_robot_browser_library.py; the real SeleniumLibrary in
real Chromium is the scenario of test_ui_drift_scenario.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botwatch.integrations import robot as listener_module
from conftest import SDK_ENV

PY = sys.executable
FAKE_BROWSER = Path(__file__).parent / "bots" / "fakebrowser"
BOT = "invoice-portal"

SETTINGS = """\
*** Settings ***
Library    Browser
"""


def run_robot(tmp_path: Path, tasks: str, *, listener: str = f"botwatch.integrations.robot:bot={BOT}",
              rc: int = 0) -> tuple[list[dict], str]:
    """Run the suite with the listener, the agent away; the events it spooled and robot's output."""
    suite = tmp_path / "portal.robot"
    suite.write_text(SETTINGS + textwrap.dedent(tasks))
    env = {k: v for k, v in os.environ.items() if k not in SDK_ENV}
    env.update(BOTWATCH_SPOOL=str(tmp_path / "spool.db"), BOTWATCH_NO_DELIVERY="1")
    r = subprocess.run([PY, "-m", "robot", "--rpa", "--output", "NONE", "--log", "NONE", "--report", "NONE",
                        "--console", "dotted", "--pythonpath", str(FAKE_BROWSER), "--listener", listener, str(suite)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = r.stdout + r.stderr
    assert r.returncode == rc, output
    assert "[ ERROR ]" not in output, output
    db = sqlite3.connect(tmp_path / "spool.db")
    try:
        events = [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox ORDER BY seq")]
    finally:
        db.close()
    return events, output


def lookups(events: list[dict]) -> list[tuple]:
    """(screen, selector, found, healed, kind) of each look-up, in order."""
    return [(e["screen"], e["selector"], e["found"], e["healed"], e.get("kind"))
            for e in events if e["type"] == "ui_lookup"]


def test_a_fallback_clicked_after_the_primary_missed_is_one_healed_look_up(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Submit Invoice
            Show Page    css:#menu .submit
            ${clicked}=    Run Keyword And Return Status    Click    id:btnSubmit
            IF    not ${clicked}    Click    css:#menu .submit
        """)
    assert lookups(events) == [("Submit Invoice", "css:#menu .submit", True, True, None)]
    (lookup,) = [e for e in events if e["type"] == "ui_lookup"]
    assert lookup["source"] == "robot" and lookup["bot"] == BOT
    assert lookup["run_id"] == events[0]["run_id"]  # it belongs to the run


def test_the_primary_found_at_once_is_a_plain_look_up(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Submit Invoice
            Show Page    id:btnSubmit    css:#menu .submit
            ${clicked}=    Run Keyword And Return Status    Click    id:btnSubmit
            IF    not ${clicked}    Click    css:#menu .submit
        """)
    assert lookups(events) == [("Submit Invoice", "id:btnSubmit", True, False, None)]


def test_a_user_keyword_trying_a_list_of_locators_heals_with_the_one_that_matched(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Submit Invoice
            Show Page    text=Submit invoice
            Click First Found    id:btnSubmit    css:button.submit    text=Submit invoice
            Click First Found    text=Submit invoice

        *** Keywords ***
        Click First Found
            [Arguments]    @{selectors}
            FOR    ${selector}    IN    @{selectors}
                ${clicked}=    Run Keyword And Return Status    Click    ${selector}
                IF    ${clicked}    RETURN
            END
            Fail    None of ${selectors} found
        """)
    assert lookups(events) == [("Submit Invoice", "text=Submit invoice", True, True, None),
                               ("Submit Invoice", "text=Submit invoice", True, False, None)]


def test_a_fallback_in_an_except_branch_heals(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Submit Invoice
            Show Page    css:#menu .submit
            TRY
                Click    id:btnSubmit
            EXCEPT    *Timeout*    type=glob
                Click    css:#menu .submit
            END
        """)
    assert lookups(events) == [("Submit Invoice", "css:#menu .submit", True, True, None)]


def test_a_retry_of_the_same_locator_is_found_not_healed_and_its_wait_counts(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Read Total
            Show Page    id:total    id:next
            Appear Later    id:total    2
            Wait Until Keyword Succeeds    5x    10ms    Wait For Elements State    id:total    visible
            Click    id:next
        """)
    assert lookups(events) == [("Read Total", "id:total", True, False, None), ("Read Total", "id:next", True, False, None)]
    total = [e for e in events if e["type"] == "ui_lookup"][0]
    assert total["wait"] >= 3 * 0.05  # the two misses' waits and its own (the stand-in waits 50 ms each)


def test_a_probe_for_an_optional_element_is_neither_a_failure_nor_a_heal(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Log In
            Show Page    id:user    id:next
            ${banner}=    Run Keyword And Return Status    Click    id:accept-cookies
            Fill Text    id:user    invoice-bot
            Click    id:next
        """)
    assert lookups(events) == [("Log In", "id:user", True, False, None), ("Log In", "id:next", True, False, None)]


def test_a_miss_that_fails_the_task_names_the_screen_and_the_selectors_tried(tmp_path):
    events, output = run_robot(tmp_path, """\
        *** Tasks ***
        Submit Invoice
            [Tags]    screen:invoice
            Show Page    id:amount
            Fill Text    id:amount    120.50
            ${clicked}=    Run Keyword And Return Status    Click    id:btnSubmit
            IF    not ${clicked}    Click    css:#menu .submit
            Log    not reached
        """, rc=1)
    assert "TimeoutError: locator.click: Timeout 100ms exceeded." in output  # robot's own message unchanged
    assert lookups(events) == [("invoice", "id:amount", True, False, None),
                               ("invoice", "css:#menu .submit", False, False, "not_found")]
    failure = next(e for e in events if e["type"] == "failure")
    named = ("screen invoice, selector css:#menu .submit (also tried id:btnSubmit): TimeoutError: "
             "locator.click: Timeout 100ms exceeded.")
    assert failure["reason"] == "ui_drift" and failure["message"].startswith(named)
    finished = events[-1]
    assert finished["type"] == "run_finished"
    assert (finished["outcome"], finished["reason"]) == ("failure", "ui_drift")
    assert (finished["screen"], finished["selector"]) == ("invoice", "css:#menu .submit")
    assert finished["output_tail"].startswith(named)
    step = next(e for e in events if e["type"] == "step" and "parent" not in e)  # the task, not a keyword
    assert step["message"].startswith("TimeoutError")  # the task's step keeps robot's message


def test_an_element_matched_several_times_is_an_ambiguous_look_up(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Open Invoice
            Show Page    css:.invoice-row=3
            Click    css:.invoice-row
        """, rc=1)
    assert lookups(events) == [("Open Invoice", "css:.invoice-row", False, False, "ambiguous")]
    assert events[-1]["output_tail"].startswith("screen Open Invoice, selector css:.invoice-row: Error: locator.click: "
                                              "Error: strict mode violation")


def test_a_keyword_that_fails_for_another_reason_records_no_look_up(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Check Total
            Show Page    id:total
            Get Text    id:total    ==    Total: 99.00
        """, rc=1)
    assert lookups(events) == []  # the element was there; its text was not what the bot expected
    assert "screen" not in events[-1]


def test_checks_that_an_element_is_absent_and_counts_are_not_look_ups(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Tasks ***
        Wait For Spinner
            Show Page    id:table
            Wait For Elements State    id:spinner    detached
            ${rows}=    Get Element Count    css:tr
            Wait For Elements State    id:table    visible
        """)
    assert lookups(events) == [("Wait For Spinner", "id:table", True, False, None)]
    assert next(e for e in events if e["type"] == "ui_lookup")["wait"] >= 0.05  # a Wait For ... keyword


def test_the_screen_comes_from_keyword_tags_the_variable_task_tags_the_option_or_the_task(tmp_path):
    tasks = """\
        *** Tasks ***
        Submit Invoice
            [Tags]    screen:invoice
            Show Page    id:user    id:amount    id:ok
            Log In
            Click    id:amount
            VAR    ${BOTWATCH_SCREEN}    confirmation    scope=TEST
            Click    id:ok
            Log In

        Archive Invoice
            Show Page    id:ok
            Click    id:ok

        *** Keywords ***
        Log In
            [Tags]    screen:login
            Click    id:user
        """
    events, _ = run_robot(tmp_path, tasks)
    assert [e[0] for e in lookups(events)] == ["login", "invoice", "confirmation", "login", "Archive Invoice"]
    (tmp_path / "again").mkdir()
    events, _ = run_robot(tmp_path / "again", tasks, listener=f"botwatch.integrations.robot;bot={BOT};screen=portal")
    assert [e[0] for e in lookups(events)] == ["login", "invoice", "confirmation", "login", "portal"]


def test_variables_in_locators_are_resolved_as_robot_framework_resolves_them(tmp_path):
    events, _ = run_robot(tmp_path, """\
        *** Variables ***
        ${SUBMIT}    id:btnSubmit

        *** Tasks ***
        Submit Invoice
            Show Page    id:btnSubmit
            Click    selector=${SUBMIT}
            Run Keyword And Return Status    Click    ${SUBMIT}
        """)
    assert [e[1] for e in lookups(events)] == ["id:btnSubmit", "id:btnSubmit"]


def test_options_after_a_colon_may_be_separated_by_semicolons():
    listener = listener_module.Listener(bot="invoice-portal;snapshots=html;screen=portal")
    assert (listener._bot_arg, listener._screen_arg, listener._snapshot_kinds) == ("invoice-portal", "portal", ("html",))
    listener = listener_module.Listener(bot="invoice-portal", snapshots="both")
    assert listener._snapshot_kinds == ("html", "png")
    assert listener_module.Listener(bot="a;b")._bot_arg == "a;b"  # not an option: left as it is


def test_an_unknown_snapshots_option_is_warned_about_and_takes_none(caplog):
    listener = listener_module.Listener(bot="invoice-portal", snapshots="jpeg")
    assert listener._snapshot_kinds == ()
    assert "snapshots='jpeg' is not one of html, png, both, none" in caplog.text


def test_snapshots_of_a_library_without_an_open_page_are_warned_about_and_the_run_goes_on(tmp_path):
    events, output = run_robot(tmp_path, """\
        *** Settings ***
        Library    SeleniumLibrary

        *** Tasks ***
        Submit Invoice
            Run Keyword And Return Status    Click Element    id:btnSubmit
            Log    done
        """, listener=f"botwatch.integrations.robot:bot={BOT}:snapshots=both")
    assert "[ WARN ]" in output and "no html snapshot of screen 'Submit Invoice'" in output
    assert lookups(events) == []  # "No browser is open" says nothing about the element
    assert events[-1]["outcome"] == "success"


@pytest.mark.parametrize("message, expected", [
    ("Button with locator 'id:btnSubmit' not found.", ("ui_drift", "not_found")),
    ("Element 'id:total' not visible after 5 seconds.", ("ui_drift", "not_found")),
    ("Page should have contained element 'id:invoice-form' but did not.", ("ui_drift", "not_found")),
    ("Error: strict mode violation: locator('css:.row') resolved to 3 elements", ("ui_drift", "ambiguous")),
    ("No browser is open.", None),
])
def test_look_up_failures_are_told_apart_by_the_failure_patterns(message, expected):
    found = listener_module.Listener._ui_match(listener_module._Run("b", "r", 0.0, None, None), message)
    assert (None if found is None else (found.reason, found.kind)) == expected
