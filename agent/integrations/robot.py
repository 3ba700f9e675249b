"""Robot Framework listener: reports a robot run to botwatch as it happens.

    robot --listener botwatch.integrations.robot:bot=invoice-portal tasks.robot
    robot --rpa --listener botwatch.integrations.robot tasks/        # bot named after the suite

One execution (one `robot` invocation) is one run of the bot: `run_started` when the top-level
suite starts, a `step` for every task (test) when it ends, a `failure` as soon as a keyword
fails a task (or a suite setup or teardown), classified from its message, and `run_finished`
when the top-level suite ends: a failure when a task failed, with the first failing task's
message as the reason's evidence. Without `bot=`, the top-level suite's name is the bot's
name, lowercased with spaces as `-` ("Invoice Portal" -> `invoice-portal`).

Events go through the SDK's machinery: committed to the local spool first, then posted to the
agent by a detached deliverer, so robot runs made while the agent is down are delivered when
it is back. `$BOTWATCH_AGENT_URL` says where the agent is (the default is the estate's
`agent.listen`), `$BOTWATCH_CONFIG` which estate file's `failure_patterns` classify failures,
`$BOTWATCH_SPOOL` where the spool is. Python keyword libraries that call `botwatch.ui_lookup()`,
`botwatch.step()` or `botwatch.fail()` during the run report into this run.

With Robot Framework 7, SeleniumLibrary and Browser library keywords that look up elements are
reported as `ui_lookup` events (found, not found, healed by a fallback locator, the wait), a
task that fails on a look-up names its screen and selector in the failure and the run's
excerpt, and `snapshots=html|png|both` sends the page at each screen to the agent's drift check:
see _robot_ui and docs/robot.md.

The run id is the one botwatch.parsers.robot_output gives the same execution's output.xml, so
watching output.xml as well records the run once. The listener never makes a robot run fail:
every problem is logged once on the `botwatch.client.sdk` logger and the run goes on.

Listener API version 3. With Robot Framework 7 keyword failures are reported when the
keyword ends; Robot Framework 6 has no keyword calls in this API version, so a failed task is
reported when it ends.
"""

from __future__ import annotations

import functools
import os
import time
from datetime import datetime, timedelta

from .._platform.interrupts import break_as_interrupt
from ..client import runrecord
from ..client import sdk
from ..client import sdk_args
from ..client import sdk_log
from ..client import sdk_transport
from ..parsers.robot_output import (STATUSES, bot_name_for_suite, parse_robot_time, run_id_for, step_message,
                                    step_name)
from ._robot_ui import UiCapture, snapshot_kinds

__all__ = ["Listener", "robot", "ROBOT_LISTENER_API_VERSION"]

ROBOT_LISTENER_API_VERSION = 3
SOURCE = "robot"
MAX_FAILURES_PER_RUN = 50  # failure events of one run; the run's own result is never capped
_PARENT_SETUP = "Parent suite setup failed:"


def _guarded(method):
    """A listener method that never raises into Robot Framework."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            sdk_log.internal_error(f"the Robot Framework listener ({method.__name__})", exc)

    return call


def _start_of(result) -> datetime | None:
    value = getattr(result, "start_time", None)  # RF 7: a datetime
    if isinstance(value, datetime):
        return value
    value = getattr(result, "starttime", None)  # RF 6: "20231116 17:35:01.759"
    return parse_robot_time(value) if isinstance(value, str) else None


def _end_of(result) -> datetime | None:
    value = getattr(result, "end_time", None)
    if isinstance(value, datetime):
        return value
    value = getattr(result, "endtime", None)
    if isinstance(value, str):
        return parse_robot_time(value)
    start, elapsed = _start_of(result), getattr(result, "elapsed_time", None)
    if start is not None and isinstance(elapsed, timedelta):
        return start + elapsed
    return None


_ROOTS = {"IF/ELSE ROOT": "IF", "TRY/EXCEPT ROOT": "TRY"}  # control structures as output.xml names them


def _seconds(dt: datetime | None, default: float) -> float:
    try:
        return dt.timestamp() if dt is not None else default
    except (OverflowError, OSError, ValueError):
        return default


def _first_failed_test(suite):
    """The first failed test of a result suite, in execution order (child suites, then tests)."""
    for child in getattr(suite, "suites", ()):
        found = _first_failed_test(child)
        if found is not None:
            return found
    for test in getattr(suite, "tests", ()):
        if getattr(test, "status", None) == "FAIL":
            return test
    return None


class _Run:
    __slots__ = ("bot", "run_id", "started", "agent_url", "config", "active", "token", "failures_sent",
                 "first_failure", "named")

    def __init__(self, bot, run_id, started, agent_url, config):
        self.bot, self.run_id, self.started = bot, run_id, started
        self.agent_url, self.config = agent_url, config
        self.active = self.token = None
        self.failures_sent = 0
        self.first_failure: tuple | None = None  # the first task that failed: (message, screen, selector)
        # failed task's id -> (its message naming the screen and selector, the screen, the selector)
        self.named: dict[str, tuple[str, str, str]] = {}


_OPTIONS = ("bot", "agent_url", "screen", "snapshots")


class Listener:
    """`--listener botwatch.integrations.robot[:bot=NAME][:agent_url=URL][:screen=NAME][:snapshots=KIND]`
    (Robot Framework passes `bot=NAME` as a named argument). A URL holds colons: give it as
    `$BOTWATCH_AGENT_URL`, or separate the arguments with `;` instead of `:`.

    screen: the screen of UI look-ups that name none (see _robot_ui); snapshots: `html`, `png`
    or `both` to send the page at each screen and at a UI failure to the agent (default none).
    """

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, bot=None, agent_url=None, screen=None, snapshots=None):
        options = _split_options(bot=bot, agent_url=agent_url, screen=screen, snapshots=snapshots)
        self._bot_arg = options["bot"] or None
        self._agent_url_arg = options["agent_url"] or None
        self._screen_arg = options["screen"] or None
        kinds = snapshot_kinds(options["snapshots"])
        if kinds is None:
            sdk_log.warn(("robot-snapshots", str(options["snapshots"])[:50]), "botwatch: snapshots=%r is not one "
                         "of html, png, both, none; no snapshots are taken", options["snapshots"])
            kinds = ()
        self._snapshot_kinds = kinds
        self._suites = 0  # depth of the suite being run; 1 is the top-level suite
        self._run: _Run | None = None
        self._ui: UiCapture | None = None  # the run's UI look-ups and snapshots
        self._depth = 0  # body items open in the current test, or in a suite setup or teardown
        self._test_start: float | None = None
        self._test_name: str | None = None  # the task being run: its keywords are steps beneath it
        self._test_reported = False  # a failure event was sent during the current test

    # -- suites: the run ----------------------------------------------------------------------
    @_guarded
    def start_suite(self, data, result):
        self._suites += 1
        self._depth = 0
        if self._suites != 1:
            self._ui_call("enter", "suite", getattr(result, "name", "") or "")
            return
        self._run = self._ui = None
        # Robot Framework stops gracefully on SIGINT/SIGTERM only; Ctrl-Break (Windows) would end
        # it at once, without output.xml or this run's end: route it to Robot's SIGINT handler
        break_as_interrupt()
        name = self._bot_name(getattr(result, "name", None) or getattr(data, "name", ""))
        if name is None:
            return
        start_dt = _start_of(result)
        started = _seconds(start_dt, time.time())
        run_id = run_id_for(name, getattr(result, "name", "") or "", start_dt) if start_dt else runrecord.new_run_id()
        run = _Run(name, run_id, started, sdk_args.agent_url(self._agent_url_arg), runrecord.estate_file())
        # Python keyword libraries calling botwatch.ui_lookup()/step()/fail() report into this run.
        run.active = sdk._Active(name, run_id, started, run.agent_url, run.config, sdk._current.get())
        run.token = sdk._current.set(run.active)
        self._run = run
        self._ui = UiCapture(functools.partial(self._ui_event, run), functools.partial(self._ui_match, run),
                             screen=self._screen_arg, kinds=self._snapshot_kinds)
        self._ui.enter("suite", getattr(result, "name", "") or "")
        sdk_transport.record("start", name, run_id, {
            "type": "run_started", "bot": name, "run_id": run_id, "time": started, "host": runrecord.host(),
            "source": SOURCE}, run.agent_url, run.config, kick=True)

    @_guarded
    def end_suite(self, data, result):
        self._suites = max(0, self._suites - 1)
        self._depth = 0
        self._ui_call("leave", "suite", getattr(result, "status", None))
        if self._suites != 0 or self._run is None:
            return
        run, self._run, self._ui = self._run, None, None
        self._leave_context(run)
        ended = max(run.started, _seconds(_end_of(result), time.time()))
        outcome, message = "success", None
        failed = _first_failed_test(result)
        named = None
        if failed is not None:
            outcome, message = "failure", getattr(failed, "message", "") or ""
            named = run.named.get(getattr(failed, "id", None))
        elif run.first_failure is not None:
            outcome, message = "failure", run.first_failure[0]
            named = run.first_failure if run.first_failure[1] else None
        elif getattr(result, "status", None) == "FAIL":
            outcome, message = "failure", getattr(result, "message", "") or ""
        if named is not None:
            message = named[0]
        declared = run.active is not None and run.active.declared
        if declared:
            outcome = "failure"
        event = {"type": "run_finished", "bot": run.bot, "run_id": run.run_id, "started": run.started,
                 "ended": ended, "outcome": outcome, "host": runrecord.host(), "source": SOURCE}
        if outcome == "failure":
            reason = run.active.reason if declared and run.active.reason else None
            event["reason"] = reason or sdk._classify(run.config, message, None)
            tail = runrecord.output_tail(message or (run.active.message if declared else None))
            if tail:
                event["output_tail"] = tail
            if named is not None and event["reason"] == "ui_drift":
                event["screen"] = sdk_args.screen(named[1])
                event["selector"] = sdk_args.text(named[2], sdk_args.MAX_SELECTOR, redacted=True)
        sdk_transport.record("finish", run.bot, run.run_id, event, run.agent_url, run.config, kick=True)

    # -- tests: the steps ---------------------------------------------------------------------
    @_guarded
    def start_test(self, data, result):
        self._depth = 0
        self._test_reported = False
        self._test_start = _seconds(_start_of(result), time.time())
        self._test_name = step_name(getattr(result, "name", ""))
        self._ui_call("enter", "test", getattr(result, "name", "") or "", getattr(result, "tags", ()))

    @_guarded
    def end_test(self, data, result):
        self._depth = 0
        self._ui_call("leave", "test", getattr(result, "status", None))
        run = self._run
        if run is None:
            return
        status = STATUSES.get(getattr(result, "status", None), "skip")
        message = getattr(result, "message", "") or ""
        named = self._ui_call("name_failure", message) if status == "fail" else None
        if named and getattr(result, "id", None):
            run.named[result.id] = named
        started = self._test_start
        ended = _seconds(_end_of(result), time.time())
        event = {"type": "step", "bot": run.bot, "run_id": run.run_id, "name": step_name(getattr(result, "name", "")),
                 "ended": ended, "status": status, "source": SOURCE}
        if started is not None:
            event["started"] = min(started, ended)
        text = step_message(message)
        if text:
            event["message"] = text
        sdk_transport.record("step", run.bot, run.run_id, event, run.agent_url, run.config)
        if status == "fail":
            if run.first_failure is None:
                run.first_failure = named or (message, None, None)
            # not reported by a keyword (RF 6, a test timeout, ...); a parent suite setup's
            # failure was reported when the setup failed
            if not self._test_reported and not (message.startswith(_PARENT_SETUP) and run.failures_sent):
                self._failure(run, named[0] if named else message)
        self._test_start = self._test_name = None

    # -- keywords and control structures (RF 7): failures as they happen ----------------------
    @_guarded
    def start_library_keyword(self, data, implementation, result):
        self._depth += 1
        self._ui_call("library_start", data, implementation, result)

    @_guarded
    def end_library_keyword(self, data, implementation, result):
        self._ui_call("library_end", result)
        self._leave(result)

    @_guarded
    def start_user_keyword(self, data, implementation, result):
        self._depth += 1
        self._ui_call("enter", "user", getattr(result, "name", "") or "", getattr(result, "tags", ()))

    @_guarded
    def end_user_keyword(self, data, implementation, result):
        self._ui_call("leave", "user", getattr(result, "status", None))
        self._leave(result)

    @_guarded
    def start_keyword(self, data, result):  # keywords that are neither (not found, invalid)
        self._depth += 1
        self._ui_call("enter", "other")

    @_guarded
    def end_keyword(self, data, result):
        self._ui_call("leave", "other", getattr(result, "status", None))
        self._leave(result)

    @_guarded
    def start_body_item(self, data, result):
        self._depth += 1
        self._ui_call("enter_body_item", getattr(result, "type", None))

    @_guarded
    def end_body_item(self, data, result):
        self._ui_call("leave", "other", getattr(result, "status", None))
        self._leave(result)

    def _leave(self, result) -> None:
        depth, self._depth = self._depth, max(0, self._depth - 1)
        # Only what fails the task (or the suite setup or teardown) itself: a failure caught
        # inside (Run Keyword And Ignore Error, TRY/EXCEPT, Wait Until ... Succeeds) is not one.
        if depth == 1 and self._run is not None and getattr(result, "status", None) == "FAIL":
            message = getattr(result, "message", "") or ""
            named = self._ui_call("name_failure", message)
            self._failure(self._run, named[0] if named else message)
            self._test_reported = True
        if depth == 1 and self._run is not None and self._test_name is not None:
            self._keyword_step(self._run, self._test_name, result)

    @staticmethod
    def _keyword_step(run: _Run, task: str, result) -> None:
        """A keyword (or FOR, IF, TRY) of the task's own body: a step beneath the task, for the
        run's trace. Deeper keywords are not sent: the trace stays readable and the spool small."""
        ended = _seconds(_end_of(result), time.time())
        kind = str(getattr(result, "type", "") or "KEYWORD")
        # a keyword by its name, a control structure (FOR, IF, TRY, ...) by its type, as in output.xml
        name = ((getattr(result, "name", "") or kind) if kind in ("KEYWORD", "SETUP", "TEARDOWN")
                else _ROOTS.get(kind, kind))
        event = {"type": "step", "bot": run.bot, "run_id": run.run_id, "name": step_name(name), "ended": ended,
                 "status": STATUSES.get(getattr(result, "status", None), "skip"), "parent": task, "source": SOURCE}
        started = _seconds(_start_of(result), None)
        if started is not None:
            event["started"] = min(started, ended)
        text = step_message(getattr(result, "message", "") or "")
        if text:
            event["message"] = text
        sdk_transport.record("step", run.bot, run.run_id, event, run.agent_url, run.config)

    # -- UI look-ups and snapshots --------------------------------------------------------------
    def _ui_call(self, method: str, *args, **kwargs):
        """A call into the run's UI capture; its problems never stop the listener's own work."""
        if self._ui is None:
            return None
        try:
            return getattr(self._ui, method)(*args, **kwargs)
        except Exception as exc:
            sdk_log.internal_error(f"the Robot Framework listener's UI capture ({method})", exc)
            return None

    @staticmethod
    def _ui_event(run: _Run, event: dict) -> None:
        event.update(bot=run.bot, run_id=run.run_id, source=SOURCE)
        sdk_transport.record("ui_lookup", run.bot, run.run_id, event, run.agent_url, run.config)

    @staticmethod
    def _ui_match(run: _Run, message: str):
        return runrecord.classifier_for(run.config, sdk_log.warn_once).match(message or "")

    # -- helpers ------------------------------------------------------------------------------
    def _failure(self, run: _Run, message: str) -> None:
        if run.failures_sent >= MAX_FAILURES_PER_RUN:
            return
        run.failures_sent += 1
        event = {"type": "failure", "bot": run.bot, "run_id": run.run_id, "time": time.time(),
                 "reason": sdk._classify(run.config, message, None), "source": SOURCE}
        text = step_message(message)
        if text:
            event["message"] = text
        sdk_transport.record("failure", run.bot, run.run_id, event, run.agent_url, run.config, kick=True)

    def _bot_name(self, suite_name: str) -> str | None:
        if self._bot_arg is not None:
            return sdk_args.bot_name(self._bot_arg)  # coerced with a warning when it is not a bot name
        name = os.environ.get("BOTWATCH_BOT") or bot_name_for_suite(suite_name)
        if name is None:
            sdk_log.warn(("robot-suite", suite_name), "botwatch: the suite name %r gives no bot name; this run is "
                         "not recorded (use --listener botwatch.integrations.robot:bot=NAME)", suite_name)
            return None
        return sdk_args.bot_name(name)

    @staticmethod
    def _leave_context(run: _Run) -> None:
        if run.token is None:
            return
        try:
            sdk._current.reset(run.token)
        except (ValueError, RuntimeError):  # ended in another context than it started in
            sdk._current.set(run.active.parent if run.active else None)


def _split_options(**given) -> dict:
    """The listener's options. Robot Framework splits `--listener NAME:a=1:b=2` (or `NAME;a=1;b=2`)
    at the first separator it finds, so `NAME:bot=x;snapshots=html` gives bot="x;snapshots=html":
    such a value is split again at `;` where what follows is one of the listener's options."""
    options = dict(given)
    for name, value in given.items():
        if not isinstance(value, str) or ";" not in value:
            continue
        head, *rest = value.split(";")
        if rest and all(part.partition("=")[0].strip() in _OPTIONS and "=" in part for part in rest):
            options[name] = head
            for part in rest:
                key, _, val = part.partition("=")
                options[key.strip()] = val
    return options


robot = Listener  # `--listener botwatch.integrations.robot`: the class named after its module
