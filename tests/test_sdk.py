"""The Python SDK: `botwatch.run`, `@botwatch.bot`, `botwatch.fail`, `botwatch.items`,
`botwatch.ui_lookup`, `botwatch.step`.

Its promise: every event is in the local spool when the call returns, with no agent running;
a deliverer takes it to the agent later; the bot's results and exceptions pass through
unchanged, and no monitoring problem ever raises into the bot.

The first tests run the SDK in this process against a private spool with delivery switched
off; the last ones run real bot scripts with delivery on, against a real agent process.
"""

from __future__ import annotations

import asyncio
import json
import os
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import botwatch
from botwatch.client import sdk_log
from botwatch.client import sdk_transport
from conftest import SDK_ENV, free_port, metrics_when, outbox_and_dead, wait_for, write_estate

PY = sys.executable


class SelectorNotFoundException(Exception):
    """What a UI automation library raises when a selector no longer matches the screen."""


# -- helpers ----------------------------------------------------------------------------------

@pytest.fixture
def spool(tmp_path, monkeypatch) -> Path:
    """A private spool, delivery off, no estate file or agent from the environment."""
    path = tmp_path / "spool.db"
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWATCH_SPOOL", str(path))
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sdk_log, "_warned", set())  # each test sees its own "logged once" warnings
    return path


def rows(path: Path) -> list[dict]:
    """Every spooled event, oldest first, with the columns the deliverer uses."""
    db = sqlite3.connect(path)
    try:
        found = db.execute("SELECT kind, bot, run_id, agent_url, config, event FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    return [{"kind": r[0], "bot": r[1], "run_id": r[2], "agent_url": r[3], "config": r[4],
             "event": json.loads(r[5])} for r in found]


def events(path: Path, type_: str | None = None) -> list[dict]:
    return [r["event"] for r in rows(path) if type_ is None or r["event"]["type"] == type_]


def only(path: Path, type_: str) -> dict:
    found = events(path, type_)
    assert len(found) == 1, f"expected one {type_} event, found {found}"
    return found[0]


def sdk_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "botwatch.sdk" and r.levelno >= logging.WARNING]


# -- the package --------------------------------------------------------------------------------

def test_importing_botwatch_loads_no_sdk_until_it_is_used():
    code = textwrap.dedent("""\
        import sys, botwatch
        assert [m for m in sys.modules if m.startswith("botwatch")] == ["botwatch"], sys.modules.keys()
        run = botwatch.run
        assert "botwatch.client.sdk" in sys.modules
        from botwatch import bot, fail, items, step, ui_lookup
        import botwatch.client.sdk as sdk
        assert (run, bot, fail, items, step, ui_lookup) == (sdk.run, sdk.bot, sdk.fail, sdk.items, sdk.step,
                                                            sdk.ui_lookup)
        assert {"run", "bot", "fail", "items", "step", "ui_lookup", "__version__"} <= set(dir(botwatch))
        try:
            botwatch.no_such_thing
        except AttributeError:
            pass
        else:
            raise AssertionError("unknown attributes must raise AttributeError")
        """)
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# -- runs -------------------------------------------------------------------------------------

def test_a_run_records_its_start_and_a_successful_finish_with_source_sdk(spool):
    with botwatch.run("invoice-recon") as r:
        assert r.bot == "invoice-recon"
        run_id = r.run_id
    started, finished = events(spool)
    assert started == {"type": "run_started", "bot": "invoice-recon", "run_id": run_id, "time": started["time"],
                       "host": started["host"], "source": "sdk"}
    assert finished["type"] == "run_finished" and finished["run_id"] == run_id
    assert finished["outcome"] == "success" and finished["source"] == "sdk"
    assert finished["started"] == started["time"] <= finished["ended"]
    assert "reason" not in finished and "output_tail" not in finished
    assert [row["kind"] for row in rows(spool)] == ["start", "finish"]  # the deliverer counts "finish" rows
    assert all(row["bot"] == "invoice-recon" and row["run_id"] == run_id for row in rows(spool))


def test_the_bot_decorator_makes_each_call_a_run_and_returns_the_result_unchanged(spool):
    result = object()

    @botwatch.bot("invoice-recon")
    def recon(a, *, b):
        """Reconcile."""
        return result, a, b

    assert recon(1, b=2) == (result, 1, 2)
    assert recon(3, b=4)[0] is result
    assert recon.__name__ == "recon" and recon.__doc__ == "Reconcile."
    finished = events(spool, "run_finished")
    assert [e["outcome"] for e in finished] == ["success", "success"]
    assert len({e["run_id"] for e in finished}) == 2


def test_the_bare_bot_decorator_names_the_bot_after_the_function(spool):
    @botwatch.bot
    def nightly_export():
        return 7

    assert nightly_export() == 7
    assert only(spool, "run_finished")["bot"] == "nightly_export"


def test_an_exception_propagates_unchanged_and_a_selector_error_is_ui_drift(spool):
    error = SelectorNotFoundException("Could not find the UI element for selector <webctrl id='post' />")

    @botwatch.bot("invoice-recon")
    def recon():
        raise error

    with pytest.raises(SelectorNotFoundException) as raised:
        recon()
    assert raised.value is error
    finished = only(spool, "run_finished")
    assert finished["outcome"] == "failure" and finished["reason"] == "ui_drift"
    assert "exit_status" not in finished
    assert finished["output_tail"].startswith("Traceback (most recent call last):")
    assert "SelectorNotFoundException: Could not find the UI element" in finished["output_tail"]


def test_a_plain_exception_is_a_crash_with_the_redacted_traceback_as_output_tail(spool):
    with pytest.raises(ZeroDivisionError):
        with botwatch.run("invoice-recon"):
            1 / 0  # password=hunter2 (a secret in the bot's own failing line)
    finished = only(spool, "run_finished")
    assert finished["outcome"] == "failure" and finished["reason"] == "crash"
    assert "ZeroDivisionError: division by zero" in finished["output_tail"]
    assert "hunter2" not in json.dumps(rows(spool)) and "[REDACTED]" in finished["output_tail"]


def test_the_estates_failure_patterns_classify_an_exception_when_the_estate_file_is_readable(spool, tmp_path):
    (tmp_path / "botwatch.yaml").write_text(textwrap.dedent("""\
        failure_patterns:
          - {reason: business, contains: "Invoice already booked"}
        bots:
          - name: invoice-recon
        """))
    with pytest.raises(ValueError):
        with botwatch.run("invoice-recon"):
            raise ValueError("Invoice already booked: INV-1")
    assert only(spool, "run_finished")["reason"] == "business"
    assert rows(spool)[-1]["config"] == str(tmp_path / "botwatch.yaml")


def test_an_unusable_estate_file_falls_back_to_the_built_in_patterns_with_a_warning(spool, tmp_path, monkeypatch,
                                                                                     caplog):
    broken = tmp_path / "broken.yaml"
    broken.write_text("bots: [\n")
    monkeypatch.setenv("BOTWATCH_CONFIG", str(broken))
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            with botwatch.run("invoice-recon"):
                1 / 0
    assert [e["reason"] for e in events(spool, "run_finished")] == ["crash", "crash"]
    assert len([m for m in sdk_warnings(caplog) if "broken.yaml" in m]) == 1


def test_fail_makes_a_run_that_ends_normally_a_failure_with_the_declared_reason(spool):
    with botwatch.run("invoice-recon") as r:
        botwatch.fail(reason="business", message="Invoice already booked: INV-1")
        botwatch.fail(reason="data", message="a later consequence")
    failures = events(spool, "failure")
    assert [(f["reason"], f["message"]) for f in failures] == [
        ("business", "Invoice already booked: INV-1"), ("data", "a later consequence")]
    assert all(f["run_id"] == r.run_id and f["bot"] == "invoice-recon" and f["source"] == "sdk" for f in failures)
    finished = only(spool, "run_finished")
    assert (finished["outcome"], finished["reason"]) == ("failure", "business")  # the first reason declared
    assert finished["output_tail"] == "Invoice already booked: INV-1"


def test_a_reason_declared_with_fail_wins_over_the_classification_of_the_exception(spool):
    with pytest.raises(ZeroDivisionError):
        with botwatch.run("invoice-recon"):
            botwatch.fail(reason="credentials", message="password expired")
            1 / 0
    finished = only(spool, "run_finished")
    assert (finished["outcome"], finished["reason"]) == ("failure", "credentials")
    assert "ZeroDivisionError" in finished["output_tail"]


def test_fail_without_a_reason_leaves_the_reason_to_the_exception(spool):
    with pytest.raises(SelectorNotFoundException):
        with botwatch.run("invoice-recon"):
            botwatch.fail(message="the grid did not load")
            raise SelectorNotFoundException("grid")
    assert only(spool, "failure")["reason"] == "unknown"
    assert only(spool, "run_finished")["reason"] == "ui_drift"


def test_fail_outside_any_run_records_a_failure_and_logs_a_warning(spool, monkeypatch, caplog):
    assert botwatch.fail(reason="credentials", message="token=abc123 rejected", bot="invoice-recon") is None
    failure = only(spool, "failure")
    assert failure["bot"] == "invoice-recon" and failure["reason"] == "credentials"
    assert failure["message"] == "token=[REDACTED] rejected"
    assert any("outside any run" in m and "invoice-recon" in m for m in sdk_warnings(caplog))

    monkeypatch.setenv("BOTWATCH_BOT", "nightly-export")
    monkeypatch.setenv("BOTWATCH_RUN_ID", "job-42")
    botwatch.fail(reason="data")
    assert [(f["bot"], f["run_id"]) for f in events(spool, "failure")][-1] == ("nightly-export", "job-42")


def test_fail_outside_any_run_and_without_a_bot_records_nothing_and_does_not_raise(spool, caplog):
    botwatch.fail(reason="data", message="no bot to blame")
    assert not spool.exists() or rows(spool) == []
    assert any("without a bot" in m for m in sdk_warnings(caplog))


@pytest.mark.parametrize("code, outcome, exit_status", [
    (0, "success", 0), (None, "success", 0), (3, "failure", 3), ("cannot log in", "failure", 1)])
def test_system_exit_zero_is_a_success_and_any_other_status_a_failure_with_that_exit_status(
        spool, code, outcome, exit_status):
    with pytest.raises(SystemExit) as raised:
        with botwatch.run("invoice-recon"):
            sys.exit(code)
    assert raised.value.code == code
    finished = only(spool, "run_finished")
    assert (finished["outcome"], finished["exit_status"]) == (outcome, exit_status)
    assert ("reason" in finished) == (outcome == "failure")


def test_system_exit_while_handling_an_error_is_classified_from_that_error(spool):
    with pytest.raises(SystemExit):
        with botwatch.run("invoice-recon"):
            try:
                raise SelectorNotFoundException("post button")
            except SelectorNotFoundException:
                sys.exit(2)
    finished = only(spool, "run_finished")
    assert (finished["outcome"], finished["exit_status"], finished["reason"]) == ("failure", 2, "ui_drift")


def test_system_exit_zero_after_fail_is_still_a_failure(spool):
    with pytest.raises(SystemExit):
        with botwatch.run("invoice-recon"):
            botwatch.fail(reason="business")
            sys.exit(0)
    finished = only(spool, "run_finished")
    assert (finished["outcome"], finished["reason"]) == ("failure", "business")


def test_an_interrupted_run_is_a_failure_with_reason_killed(spool):
    with pytest.raises(KeyboardInterrupt):
        with botwatch.run("invoice-recon"):
            raise KeyboardInterrupt
    assert only(spool, "run_finished")["reason"] == "killed"


def test_a_run_can_carry_the_orchestrators_own_run_id(spool):
    with botwatch.run("invoice-recon", run_id="uipath:job.4711") as r:
        assert r.run_id == "uipath:job.4711"
    assert {row["run_id"] for row in rows(spool)} == {"uipath:job.4711"}


# -- work items ---------------------------------------------------------------------------------

def test_items_add_up_within_a_run_and_travel_with_its_end(spool):
    with botwatch.run("invoice-recon"):
        botwatch.items(processed=3)
        botwatch.items(processed=2, failed=1)
        botwatch.items(failed=1)
    assert only(spool, "run_finished")["items"] == {"processed": 5, "failed": 2}
    assert [e["type"] for e in events(spool)] == ["run_started", "run_finished"]  # no event of their own


def test_a_run_that_reports_no_items_carries_none_and_a_failed_run_keeps_its_items(spool):
    with botwatch.run("invoice-recon"):
        pass
    with pytest.raises(RuntimeError):
        with botwatch.run("invoice-recon"):
            botwatch.items(processed=4, failed=1)
            raise RuntimeError("the portal answered 502")
    first, second = events(spool, "run_finished")
    assert "items" not in first
    assert (second["outcome"], second["items"]) == ("failure", {"processed": 4, "failed": 1})


def test_items_belong_to_the_innermost_run(spool):
    with botwatch.run("invoice-recon"):
        botwatch.items(processed=1)
        with botwatch.run("nightly-export"):
            botwatch.items(processed=10)
        botwatch.items(processed=1)
    inner, outer = events(spool, "run_finished")
    assert (inner["bot"], inner["items"]) == ("nightly-export", {"processed": 10, "failed": 0})
    assert (outer["bot"], outer["items"]) == ("invoice-recon", {"processed": 2, "failed": 0})


def test_bad_item_counts_are_dropped_or_bounded_with_a_warning_and_never_raise(spool, caplog):
    with botwatch.run("invoice-recon"):
        assert botwatch.items(processed=-1) is None
        botwatch.items(processed="12", failed=2.5)
        botwatch.items(processed=True)
        botwatch.items(processed=3, colour="red")
        botwatch.items(processed=10**12)
    assert only(spool, "run_finished")["items"] == {"processed": 1_000_000_000, "failed": 0}
    warnings = sdk_warnings(caplog)
    for fragment in ("processed=-1", "processed='12'", "failed=2.5", "processed=True", "colour",
                     "more than 1000000000"):
        assert any(fragment in w for w in warnings), (fragment, warnings)


def test_items_outside_any_run_are_not_recorded_and_say_so(spool, caplog):
    botwatch.items(processed=5)
    assert not spool.exists() or rows(spool) == []
    assert any("outside any run is not recorded" in w for w in sdk_warnings(caplog))


def test_items_outside_any_sdk_run_go_to_the_hand_off_file_botwatch_run_names(spool, tmp_path, monkeypatch):
    hand_off = tmp_path / "state" / "spool.db.items-run-1"  # its folder made on the first call
    monkeypatch.setenv("BOTWATCH_ITEMS_FILE", str(hand_off))
    botwatch.items(processed=3)
    botwatch.items(processed=4, failed=1)
    with botwatch.run("invoice-recon"):  # inside an SDK run, the items are that run's
        botwatch.items(processed=100)
    assert hand_off.read_bytes() == b"3 0\n4 1\n"
    if os.name == "posix":  # private to its owner; Windows keeps that in ACLs, not in the mode
        assert hand_off.stat().st_mode & 0o077 == 0
    assert only(spool, "run_finished")["items"] == {"processed": 100, "failed": 0}


# -- steps and UI look-ups ----------------------------------------------------------------------

def test_steps_pass_fail_and_skip_within_the_current_run(spool):
    error = RuntimeError("the portal answered 502")
    with pytest.raises(RuntimeError) as raised:
        with botwatch.run("invoice-recon") as r:
            with botwatch.step("log in"):
                pass
            with botwatch.step("download statements") as s:
                s.skip("no statements today")
            with botwatch.step("check totals") as s:
                s.fail("3 totals differ")
            with botwatch.step("post invoices"):
                raise error
    assert raised.value is error
    steps = events(spool, "step")
    assert [(s["name"], s["status"], s.get("message")) for s in steps] == [
        ("log in", "pass", None), ("download statements", "skip", "no statements today"),
        ("check totals", "fail", "3 totals differ"), ("post invoices", "fail", "RuntimeError: the portal answered 502")]
    assert all(s["run_id"] == r.run_id and s["started"] <= s["ended"] and s["source"] == "sdk" for s in steps)
    assert only(spool, "run_finished")["outcome"] == "failure"


def test_a_step_opened_inside_another_names_it_as_its_parent(spool):
    with botwatch.run("invoice-recon"):
        with botwatch.step("post invoices"):
            with botwatch.step("open ERP"):
                pass
            with botwatch.step("post batch") as s:
                s.fail("1 of 40 refused")
        with botwatch.step("log out"):
            pass
    steps = events(spool, "step")
    assert [(s["name"], s.get("parent"), s["status"]) for s in steps] == [
        ("open ERP", "post invoices", "pass"), ("post batch", "post invoices", "fail"),
        ("post invoices", None, "pass"), ("log out", None, "pass")]


def test_a_step_that_fails_without_an_exception_leaves_the_run_a_success(spool):
    with botwatch.run("invoice-recon"):
        with botwatch.step("one transaction") as s:
            s.fail("business rule exception on INV-7")
    assert only(spool, "run_finished")["outcome"] == "success"


def test_a_step_outside_any_run_runs_its_block_and_records_nothing(spool, caplog):
    with botwatch.step("orphan") as s:
        s.skip()
        done = True
    assert done and (not spool.exists() or events(spool) == [])
    assert any("outside any run" in m for m in sdk_warnings(caplog))


def test_ui_lookups_belong_to_the_current_run_and_outside_any_run_have_no_run_id(spool):
    with botwatch.run("invoice-recon") as r:
        botwatch.ui_lookup(screen="invoices", selector="<webctrl id='grid' />", found=True, wait=0.8)
        botwatch.ui_lookup(screen="invoices", selector="#post", found=False, kind="ambiguous", healed=True)
        botwatch.ui_lookup(screen="login", selector="#user", found=False)
    botwatch.ui_lookup(screen="login", selector="#user", found=True, bot="invoice-recon")
    lookups = events(spool, "ui_lookup")
    for e in lookups:
        assert e["bot"] == "invoice-recon" and e["source"] == "sdk" and isinstance(e["time"], float)
    assert [e.get("run_id") for e in lookups] == [r.run_id, r.run_id, r.run_id, None]
    assert [(e["screen"], e["found"], e.get("kind"), e.get("wait"), e["healed"]) for e in lookups] == [
        ("invoices", True, None, 0.8, False), ("invoices", False, "ambiguous", None, True),
        ("login", False, "not_found", None, False), ("login", True, None, None, False)]
    assert lookups[0]["selector"] == "<webctrl id='grid' />"


# -- runs in runs, tasks and threads ------------------------------------------------------------

def test_the_async_decorator_makes_each_await_a_run_and_passes_results_and_exceptions_through(spool):
    @botwatch.bot("invoice-recon")
    async def recon(n):
        await asyncio.sleep(0)
        botwatch.ui_lookup(screen="invoices", found=True)
        if n:
            raise SelectorNotFoundException("grid")
        return "done"

    assert asyncio.iscoroutinefunction(recon)
    assert asyncio.run(recon(0)) == "done"
    with pytest.raises(SelectorNotFoundException):
        asyncio.run(recon(1))
    finished = events(spool, "run_finished")
    assert [(e["outcome"], e.get("reason")) for e in finished] == [("success", None), ("failure", "ui_drift")]
    assert [e["run_id"] for e in events(spool, "ui_lookup")] == [e["run_id"] for e in finished]


def test_nested_runs_attach_events_to_the_innermost_run_and_then_to_the_outer_one_again(spool):
    with botwatch.run("nightly-batch") as outer:
        botwatch.ui_lookup(screen="menu", found=True)
        with botwatch.run("invoice-recon") as inner:
            botwatch.ui_lookup(screen="invoices", found=True)
            botwatch.fail(reason="data")
        botwatch.ui_lookup(screen="menu", found=True)
    lookups = events(spool, "ui_lookup")
    assert [(e["bot"], e["run_id"]) for e in lookups] == [
        ("nightly-batch", outer.run_id), ("invoice-recon", inner.run_id), ("nightly-batch", outer.run_id)]
    finished = {e["bot"]: e for e in events(spool, "run_finished")}
    assert (finished["invoice-recon"]["outcome"], finished["invoice-recon"]["reason"]) == ("failure", "data")
    assert finished["nightly-batch"]["outcome"] == "success"  # the inner run's failure is its own


def test_concurrent_tasks_and_threads_each_keep_their_own_run(spool):
    async def task(name):
        async with botwatch.run(name):
            for _ in range(5):
                botwatch.ui_lookup(screen=name, found=True)
                await asyncio.sleep(0)

    async def both():
        await asyncio.gather(task("task-a"), task("task-b"))

    asyncio.run(both())

    def thread(name):
        with botwatch.run(name):
            for _ in range(5):
                botwatch.ui_lookup(screen=name, found=True)

    threads = [threading.Thread(target=thread, args=(f"thread-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_of = {e["bot"]: e["run_id"] for e in events(spool, "run_started")}
    assert len(run_of) == 6
    lookups = events(spool, "ui_lookup")
    assert len(lookups) == 30
    assert all(e["bot"] == e["screen"] and e["run_id"] == run_of[e["bot"]] for e in lookups)


# -- never raising into the bot ------------------------------------------------------------------

def test_bad_arguments_are_coerced_or_dropped_with_a_warning_and_never_raise(spool, caplog):
    with botwatch.run("Invoice Recon", colour="red") as r:
        botwatch.fail(reason="flaky-network", message=object())
        botwatch.ui_lookup(screen=None, found=0, kind="vanished", wait="soon", healed=None, colour="red")
        botwatch.ui_lookup(screen="s" * 500, selector=42, found=True, kind="ambiguous", wait=float("nan"))
        with botwatch.step(None):
            pass
    assert r.bot == "invoice-recon"
    assert {row["bot"] for row in rows(spool)} == {"invoice-recon"}
    assert only(spool, "failure")["reason"] == "unknown"
    assert only(spool, "run_finished")["reason"] == "unknown"
    first, second = events(spool, "ui_lookup")
    assert (first["screen"], first["found"], first["kind"], "wait" in first, first["healed"]) == (
        "unknown", False, "not_found", False, False)
    assert len(second["screen"]) == 64 and second["selector"] == "42" and "kind" not in second
    assert "wait" not in second
    assert only(spool, "step")["name"] == "step"
    warned = " ".join(sdk_warnings(caplog))
    for text in ("'Invoice Recon'", "colour", "flaky-network", "vanished", "soon", "without a name"):
        assert text in warned, text


def test_a_run_whose_bot_name_is_unusable_runs_its_block_and_records_nothing(spool, caplog):
    with botwatch.run("!!!") as r:
        botwatch.ui_lookup(screen="x", found=True)
        botwatch.fail(reason="data")
        value = 5
    assert value == 5 and r.run_id is not None
    assert not spool.exists() or rows(spool) == []
    assert any("'!!!'" in m and "not recorded" in m for m in sdk_warnings(caplog))


def test_an_unwritable_spool_never_raises_is_logged_once_and_leaves_the_bots_results_unchanged(
        tmp_path, spool, monkeypatch, caplog):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BOTWATCH_SPOOL", str(blocker / "spool.db"))
    result, error = object(), SelectorNotFoundException("grid")

    @botwatch.bot("invoice-recon")
    def works():
        with botwatch.step("log in"):
            botwatch.ui_lookup(screen="login", found=True)
        return result

    @botwatch.bot("invoice-recon")
    async def breaks():
        botwatch.fail(reason="ui_drift")
        raise error

    assert works() is result
    with pytest.raises(SelectorNotFoundException) as raised:
        asyncio.run(breaks())
    assert raised.value is error
    botwatch.fail(reason="data", bot="invoice-recon")
    spool_warnings = [m for m in sdk_warnings(caplog) if "spool" in m]
    assert len(spool_warnings) == 1 and "plain-file" in spool_warnings[0] and "the bot goes on" in spool_warnings[0]


# -- delivery ----------------------------------------------------------------------------------

@pytest.fixture
def kicks(spool, monkeypatch):
    """Delivery on, with the deliverer's start and the rate limit's clock replaced."""
    started: list[str] = []
    clock = [1000.0]
    monkeypatch.delenv("BOTWATCH_NO_DELIVERY")
    monkeypatch.setattr(sdk_transport, "_kicks", sdk_transport._Kicks())
    monkeypatch.setattr(sdk_transport, "_start_deliverer", started.append)
    monkeypatch.setattr(sdk_transport, "_monotonic", lambda: clock[0])
    return started, clock


def test_a_run_starts_a_deliverer_at_its_start_and_end_but_not_for_every_ui_lookup(spool, kicks):
    started, clock = kicks
    with botwatch.run("invoice-recon"):
        for _ in range(50):
            botwatch.ui_lookup(screen="invoices", found=True)
            with botwatch.step("one"):
                pass
    assert started == [str(spool), str(spool)]
    assert len(events(spool)) == 102


def test_events_outside_runs_start_a_deliverer_at_most_once_per_interval_and_once_more_at_exit(spool, kicks):
    started, clock = kicks
    for _ in range(10):
        botwatch.ui_lookup(screen="login", found=True, bot="invoice-recon")
    assert started == [str(spool)]
    clock[0] += sdk_transport.KICK_INTERVAL
    for _ in range(10):
        botwatch.ui_lookup(screen="login", found=True, bot="invoice-recon")
    assert started == [str(spool)] * 2
    sdk_transport._kick_leftovers()  # what the process does when it exits: the last nine wait for no one
    assert started == [str(spool)] * 3
    sdk_transport._kick_leftovers()
    assert started == [str(spool)] * 3


def test_no_deliverer_is_started_when_delivery_is_switched_off(spool, kicks, monkeypatch):
    started, _clock = kicks
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")
    with botwatch.run("invoice-recon"):
        botwatch.ui_lookup(screen="invoices", found=True)
    sdk_transport._kick_leftovers()
    assert started == [] and len(events(spool)) == 3


def test_events_carry_the_agent_url_and_the_estate_file_for_the_deliverer(spool, tmp_path, monkeypatch):
    (tmp_path / "botwatch.yaml").write_text("bots:\n  - name: invoice-recon\n")
    monkeypatch.setenv("BOTWATCH_AGENT_URL", "http://127.0.0.1:1")
    with botwatch.run("invoice-recon"):
        botwatch.ui_lookup(screen="invoices", found=True)
    with botwatch.run("invoice-recon", agent_url="http://agent.example:9464"):
        botwatch.fail(reason="data")
    assert [(r["agent_url"], r["config"]) for r in rows(spool)] == (
        [("http://127.0.0.1:1", str(tmp_path / "botwatch.yaml"))] * 3
        + [("http://agent.example:9464", str(tmp_path / "botwatch.yaml"))] * 3)


# -- with a real agent ----------------------------------------------------------------------------

ESTATE_BOTS = """\
- name: invoice-recon
  team: finance
"""

BOT_SCRIPT = '''\
import sys
import botwatch


class SelectorNotFoundException(Exception):
    pass


@botwatch.bot("invoice-recon")
def recon(attempt):
    with botwatch.step("open invoices"):
        botwatch.ui_lookup(screen="invoices", selector="<webctrl id='grid' />", found=True, wait=0.4)
    if attempt == "drift":
        botwatch.ui_lookup(screen="invoices", selector="<webctrl id='post' />", found=False, kind="not_found")
        raise SelectorNotFoundException("Could not find the UI element for selector <webctrl id='post' />")
    if attempt == "duplicate":
        botwatch.fail(reason="business", message="Invoice already booked: INV-1")
        botwatch.items(processed=2)
    if attempt == "clean":
        botwatch.items(processed=3)
        botwatch.items(processed=2, failed=1)
    return attempt


for attempt in sys.argv[1:]:
    try:
        recon(attempt)
    except SelectorNotFoundException:
        pass
'''


@pytest.fixture
def bot_env(run_env, tmp_path):
    """A bot script's environment: delivery on, a private spool."""
    env = {k: v for k, v in run_env.items() if k not in SDK_ENV}
    (tmp_path / "bot.py").write_text(BOT_SCRIPT)
    return env


def run_script(tmp_path, env, *attempts):
    r = subprocess.run([PY, str(tmp_path / "bot.py"), *attempts], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_a_python_bots_runs_steps_failures_and_ui_lookups_reach_a_real_agent(tmp_path, agents, bot_env):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", ESTATE_BOTS, port)
    agent = agents(config, port).start()
    bot_env["BOTWATCH_AGENT_URL"] = agent.url
    r = run_script(tmp_path, bot_env, "clean", "drift", "duplicate")
    assert r.stderr == ""  # nothing for the SDK to warn about
    runs = 'botwatch_runs_total{bot="invoice-recon"}'
    m = metrics_when(agent, lambda m: m.get(runs) == 3, "the three runs delivered")
    assert m['botwatch_run_failures_total{bot="invoice-recon",reason="ui_drift"}'] == 1
    assert m['botwatch_run_failures_total{bot="invoice-recon",reason="business"}'] == 1
    assert m['botwatch_consecutive_failures{bot="invoice-recon"}'] == 2
    assert m['botwatch_run_in_progress{bot="invoice-recon"}'] == 0
    # the items of the clean run (two calls) and of the duplicate one, added up by the agent
    assert m['botwatch_bot_items_total{bot="invoice-recon",status="processed"}'] == 5 + 2
    assert m['botwatch_bot_items_total{bot="invoice-recon",status="failed"}'] == 1
    # every event (starts, steps, look-ups, the declared failure) was delivered, none refused
    assert wait_for(lambda: outbox_and_dead(bot_env["BOTWATCH_SPOOL"])[0] == 0, what="an empty outbox")
    assert outbox_and_dead(bot_env["BOTWATCH_SPOOL"])[1] == []
    assert agent.metrics()['botwatch_agent_events_total{source="sdk"}'] >= 3 + 3 + 3 + 4 + 1


def test_a_run_made_while_no_agent_is_running_is_delivered_once_the_agent_starts(tmp_path, agents, bot_env):
    port = free_port()
    config = write_estate(tmp_path / "botwatch.yaml", ESTATE_BOTS, port)
    bot_env["BOTWATCH_AGENT_URL"] = f"http://127.0.0.1:{port}"
    run_script(tmp_path, bot_env, "drift")
    db = sqlite3.connect(bot_env["BOTWATCH_SPOOL"])
    try:
        finished = [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox WHERE kind = 'finish'")]
    finally:
        db.close()
    assert [(e["bot"], e["outcome"], e["reason"]) for e in finished] == [("invoice-recon", "failure", "ui_drift")]
    agent = agents(config, port).start()
    m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="invoice-recon"}') == 1,
                     "the spooled run delivered by the waiting deliverer", timeout=120)
    assert m['botwatch_run_failures_total{bot="invoice-recon",reason="ui_drift"}'] == 1
    assert m['botwatch_last_run_end_timestamp_seconds{bot="invoice-recon"}'] == pytest.approx(finished[0]["ended"])
