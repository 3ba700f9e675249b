"""The Python SDK, for bots written in Python.

    import botwatch

    @botwatch.bot("invoice-recon")
    def main():
        with botwatch.step("login"):
            ...
        botwatch.ui_lookup(screen="invoices", selector="#grid", found=True, wait=0.8)
        botwatch.snapshot("invoices", driver.page_source)   # UI drift: compared with its baseline
        if duplicate:
            botwatch.fail(reason="business", message="Invoice already booked")
        botwatch.items(processed=len(booked), failed=len(rejected))   # work items: calls add up

Every event is committed to the local spool first (the same spool `botwatch run` uses), then a
detached deliverer posts it to the agent; so a bot needs no agent running, and a run made while
the agent is away is delivered when it is back. The SDK never raises into the bot: a monitoring
problem (unwritable spool, full disk, a bad argument) is logged once on the `botwatch.client.sdk`
logger and the bot goes on. The bot's own exceptions pass through unchanged.

This module is the API and the runs it keeps; the arguments are checked in sdk_args, events
leave through sdk_transport, snapshots are made and posted in sdk_snapshots, problems are
logged by sdk_log, and what every client records of a run the same way is in runrecord.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from . import runrecord
from . import sdk_args
from . import sdk_log
from . import sdk_snapshots
from . import sdk_transport
from .._platform.interrupts import break_as_interrupt
from ..core import exitcodes
from ..core import items as run_items
from ..core import vocabulary
from ..core.classify import REASONS

if TYPE_CHECKING:
    from contextvars import Token
    from datetime import timedelta
    from types import TracebackType

__all__ = ["run", "bot", "fail", "items", "ui_lookup", "snapshot", "step", "Run", "Step", "REASONS"]

SOURCE = "sdk"

# Read as botwatch.client.sdk.<name> by the integrations' UI look-ups (integrations/_lookups.py, _robot_ui.py).
log = sdk_log.log
_warn, _internal_error = sdk_log.warn, sdk_log.internal_error
_screen, _text = sdk_args.screen, sdk_args.text
MAX_SELECTOR, LOOKUP_KINDS = sdk_args.MAX_SELECTOR, vocabulary.LOOKUP_KINDS

_BotFunction = TypeVar("_BotFunction", bound=Callable[..., Any])


class _Active:
    """One entered run: what its events carry, and what the bot declared about it."""

    __slots__ = ("bot", "run_id", "started", "agent_url", "config", "declared", "reason", "message", "token",
                 "parent", "items")

    def __init__(self, bot: str | None, run_id: str, started: float, agent_url: str | None, config: str | None,
                 parent: _Active | None) -> None:
        self.bot, self.run_id, self.started = bot, run_id, started
        self.agent_url, self.config, self.parent = agent_url, config, parent
        self.declared = False  # botwatch.fail() was called in this run
        self.reason: str | None = None  # the first reason declared
        self.message: str | None = None
        self.token: Token[_Active | None] | None = None
        self.items: tuple[int, int] | None = None  # (processed, failed) reported with botwatch.items()


_items_lock = threading.Lock()  # a run's items may be reported from several threads (copy_context)
_current: contextvars.ContextVar[_Active | None] = contextvars.ContextVar("botwatch_run", default=None)
# the innermost open step: a step opened inside it is recorded with it as `parent` (run traces)
_open_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("botwatch_step", default=None)


class _OpenStep:
    """One entered step until it is left: what its event records, and the open step to restore."""

    __slots__ = ("active", "started", "status", "message", "parent", "token")

    def __init__(self, active: _Active | None, started: float, parent: str | None,
                 token: Token[str | None] | None) -> None:
        self.active, self.started, self.parent, self.token = active, started, parent, token
        self.status: str | None = None  # skip() or fail() inside the block
        self.message: str | None = None


# -- the SDK ---------------------------------------------------------------------------------

class Run:
    """A run of a bot, as a context manager (`with` or `async with`).

    Entering records `run_started`; leaving records `run_finished`: a success, or a failure when
    the block raised (the exception passes through unchanged), exited with a non-zero status or
    called `botwatch.fail()`. `run_id` and `bot` are readable inside the block and after it.
    """

    def __init__(self, bot: str | None, *, agent_url: str | None = None, run_id: str | None = None) -> None:
        self._bot, self._agent_url, self._run_id = bot, agent_url, run_id
        self._stack: list[_Active | None] = []
        self._last: _Active | None = None  # the latest run entered, still readable after it ended

    @property
    def run_id(self) -> str | None:
        return self._last.run_id if self._last else None

    @property
    def bot(self) -> str | None:
        """The bot name recorded (None when the name given was unusable)."""
        return self._last.bot if self._last else None

    def __enter__(self) -> "Run":
        try:
            active = _start_run(self._bot, self._agent_url, self._run_id)
        except Exception as exc:
            sdk_log.internal_error("starting a run", exc)
            active = None
        self._stack.append(active)
        self._last = active
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        try:
            active = self._stack.pop() if self._stack else None
            if active is not None:
                _finish_run(active, exc)
        except Exception as err:
            sdk_log.internal_error("finishing a run", err)
        return False  # never swallow the bot's exception

    async def __aenter__(self) -> "Run":
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


def run(bot: str | None = None, *, agent_url: str | None = None, run_id: str | None = None,
        **unknown: object) -> Run:
    """`with botwatch.run("invoice-recon"):` measures the block as one run of the bot.

    agent_url: where the deliverer posts this run's events (else $BOTWATCH_AGENT_URL, else the
    estate file's `agent.listen`, else http://127.0.0.1:9464). run_id: your own id for the run
    (e.g. the orchestrator's job id, [A-Za-z0-9._:-]{1,128}); a fresh one by default.
    """
    sdk_args.ignore_unknown("run", unknown)
    return Run(bot, agent_url=agent_url, run_id=run_id)


@overload
def bot(name: _BotFunction, *, agent_url: str | None = None, **unknown: object) -> _BotFunction: ...


@overload
def bot(name: str | None = None, *, agent_url: str | None = None,
        **unknown: object) -> Callable[[_BotFunction], _BotFunction]: ...


def bot(name: str | Callable[..., Any] | None = None, *, agent_url: str | None = None,
        **unknown: object) -> Callable[..., Any]:
    """`@botwatch.bot("invoice-recon")`: every call of the decorated function (sync or async) is a
    run of the bot. Bare `@botwatch.bot` names the bot after the function."""
    sdk_args.ignore_unknown("bot", unknown)
    if callable(name) and not isinstance(name, str):
        fn = name
        return bot(getattr(fn, "__name__", None), agent_url=agent_url)(fn)

    def decorate(fn: _BotFunction) -> _BotFunction:
        try:
            if not callable(fn):
                sdk_log.warn(("not-callable", type(fn).__name__), "botwatch.bot(%r) decorates %r, which is not "
                             "callable; left as it is", name, fn)
                return fn
            if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    async with Run(name, agent_url=agent_url):
                        return await fn(*args, **kwargs)

                return cast("_BotFunction", run_async)  # functools.wraps kept fn's signature

            @functools.wraps(fn)
            def run_sync(*args: Any, **kwargs: Any) -> Any:
                with Run(name, agent_url=agent_url):
                    return fn(*args, **kwargs)

            return cast("_BotFunction", run_sync)
        except Exception as exc:
            sdk_log.internal_error("decorating a bot function", exc)
            return fn

    return decorate


def fail(reason: str | None = None, message: object = None, *, bot: str | None = None, **unknown: object) -> None:
    """The bot declares its current run failed, with a reason from the taxonomy (`ui_drift`,
    `credentials`, `business`, `data`, `timeout`, `crash`, `killed`, `unknown`) and a message.

    The run goes on; when it ends it is a failure with the first reason declared, even if the
    block ends normally. Outside any run the failure is recorded for `bot` (or $BOTWATCH_BOT)
    and logged as a warning.
    """
    try:
        sdk_args.ignore_unknown("fail", unknown)
        declared = sdk_args.reason(reason) if reason is not None else None
        text = sdk_args.message(message)
        active = _current.get()
        target_bot: str | None
        if active is not None:
            if active.bot is None:
                return  # a run whose bot name was unusable: nothing of it is recorded
            if not active.declared:
                active.declared, active.message = True, text
            if active.reason is None:
                active.reason = declared
            target_bot, run_id, agent_url, config = active.bot, active.run_id, active.agent_url, active.config
        else:
            target_bot = sdk_args.outside_bot(bot)
            if target_bot is None:
                sdk_log.warn("fail-no-bot", "botwatch.fail(%r) outside any run records nothing without a bot: "
                             "pass bot=NAME or set BOTWATCH_BOT", declared or "unknown")
                return
            sdk_log.log.warning("botwatch.fail() outside any run: bot %s failed (%s)%s", target_bot,
                                declared or "unknown", f": {text}" if text else "")
            run_id = sdk_args.outside_run_id() or runrecord.new_run_id()
            agent_url, config = sdk_args.agent_url(None), runrecord.estate_file()
        event = {"type": "failure", "bot": target_bot, "run_id": run_id, "time": time.time(),
                 "reason": declared or "unknown", "source": SOURCE}
        if text:
            event["message"] = text
        sdk_transport.record("failure", target_bot, run_id, event, agent_url, config)
    except Exception as exc:
        sdk_log.internal_error("botwatch.fail()", exc)


def items(processed: int = 0, failed: int = 0, **unknown: object) -> None:
    """The current run's work items (queue items, invoices, rows): how many it processed and how
    many failed. Calls add up; the totals are recorded with the run's end. A bot whose estate entry
    sets `min_items` has a successful run that processed fewer flagged as an *empty* run.

    Outside any SDK run, in a command started by `botwatch run`, the items belong to that
    wrapped run; otherwise they are not recorded (a warning says so).
    """
    try:
        sdk_args.ignore_unknown("items", unknown)
        counts = sdk_args.count("processed", processed), sdk_args.count("failed", failed)
        active = _current.get()
        if active is not None:
            if active.bot is None:
                return  # a run whose bot name was unusable: nothing of it is recorded
            with _items_lock:
                before = active.items or (0, 0)
                active.items = (min(before[0] + counts[0], run_items.MAX_ITEMS),
                                min(before[1] + counts[1], run_items.MAX_ITEMS))
            return
        path = os.environ.get(run_items.ITEMS_FILE_ENV)
        if not path:
            sdk_log.warn("items-outside", "botwatch.items() outside any run is not recorded (items belong to a "
                         "run: use botwatch.run(), @botwatch.bot() or `botwatch run`)")
            return
        _hand_off(path, *counts)
    except Exception as exc:
        sdk_log.internal_error("botwatch.items()", exc)


def _hand_off(path: str, processed: int, failed: int) -> None:
    """Items for the run of `botwatch run` that started this process: one line appended to its
    hand-off file (core/items.py), which it adds up when the command has ended."""
    try:
        from .._platform import private_dir

        private_dir(os.path.dirname(path) or ".")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, run_items.line(processed, failed))
        finally:
            os.close(fd)
    except OSError as exc:
        sdk_log.warn(("items-file", path), "botwatch.items(): cannot write %s (%s); these items are not "
                     "recorded, the bot goes on", path, exc)


def ui_lookup(screen: str | None = None, selector: str | None = None, found: bool = True, *, kind: str | None = None,
              wait: float | timedelta | None = None, healed: bool = False, bot: str | None = None,
              **unknown: object) -> None:
    """One look-up of a UI element: on which screen, with which selector, whether it was found
    (`kind` of failure: not_found, the default, ambiguous or wrong_app), how long it took to
    appear (`wait`, seconds) and whether a self-healing selector stepped in (`healed`).

    It belongs to the innermost current run; outside any run it is recorded for `bot` (or
    $BOTWATCH_BOT) without a run id.
    """
    try:
        sdk_args.ignore_unknown("ui_lookup", unknown)
        target = _target("ui_lookup", bot)
        if target is None:
            return
        target_bot, run_id, agent_url, config = target
        found = sdk_args.flag("found", found, True)
        event = {"type": "ui_lookup", "bot": target_bot, "time": time.time(), "screen": sdk_args.screen(screen),
                 "found": found, "healed": sdk_args.flag("healed", healed, False), "source": SOURCE}
        if run_id:
            event["run_id"] = run_id
        if selector is not None:
            event["selector"] = sdk_args.text(selector, sdk_args.MAX_SELECTOR, redacted=True)
        lookup_kind = sdk_args.lookup_kind(kind, found)
        if lookup_kind is not None:
            event["kind"] = lookup_kind
        seconds = sdk_args.seconds(wait)
        if seconds is not None:
            event["wait"] = seconds
        sdk_transport.record("ui_lookup", target_bot, run_id or "", event, agent_url, config)
    except Exception as exc:
        sdk_log.internal_error("botwatch.ui_lookup()", exc)


def snapshot(screen: str | None = None, content: object = None, *, path: str | os.PathLike[str] | None = None,
             kind: str | None = None, bot: str | None = None, **unknown: object) -> dict[str, Any] | None:
    """A snapshot of a screen the bot acts on, checked at once against the screen's baseline:
    `content` is the page's HTML (`driver.page_source`, `page.content()`), an accessibility tree
    (`botwatch.integrations.playwright.accessibility_tree(page)`, a dict or its JSON) or a PNG screenshot
    (`driver.get_screenshot_as_png()`, `page.screenshot()`); or give `path=` to a saved file.
    `kind` (html, a11y, png) is guessed from the file extension or the content when not given.

    It is posted to the agent (`POST /api/v1/snapshots/<bot>/<screen>`) with a short timeout,
    belonging to the innermost current run (outside any run: `bot`, or $BOTWATCH_BOT). Returns
    the agent's drift report (a dict with `score`, `warning`, `selectors`, `changes`), or None
    when it could not be had: a monitoring problem is logged once, never raised into the bot.
    """
    try:
        sdk_args.ignore_unknown("snapshot", unknown)
        target = _target("snapshot", bot)
        if target is None:
            return None
        target_bot, run_id, agent_url, config = target
        body, snap_kind = sdk_snapshots.snapshot_body(content, path, kind)
        if body is None:
            return None
        assert snap_kind is not None  # snapshot_body gives every body its kind
        if screen is None or screen == "":
            sdk_log.warn("snapshot-screen", "botwatch.snapshot() without a screen name: not checked")
            return None
        name = sdk_args.text(screen, sdk_args.MAX_SCREEN).replace("/", "-")
        return sdk_snapshots.post_snapshot(target_bot, name, snap_kind, body, run_id, agent_url, config)
    except Exception as exc:
        sdk_log.internal_error("botwatch.snapshot()", exc)
        return None


class Step:
    """A step of the current run, as a context manager: `with botwatch.step("login"):`.

    It passes when the block ends normally and fails when it raises (the exception passes
    through unchanged). Inside the block, `skip(message)` or `fail(message)` set its status
    (`fail` here marks only the step, not the run: that is `botwatch.fail()`).
    """

    def __init__(self, name: str | None, *, bot: str | None = None) -> None:
        self._name, self._bot = name, bot
        self._stack: list[_OpenStep] = []

    def skip(self, message: object = None) -> None:
        self._mark("skip", message)

    def fail(self, message: object = None) -> None:
        self._mark("fail", message)

    def _mark(self, status: str, message: object) -> None:
        try:
            if self._stack:
                self._stack[-1].status, self._stack[-1].message = status, sdk_args.message(message)
        except Exception as exc:
            sdk_log.internal_error("marking a step", exc)

    def __enter__(self) -> "Step":
        try:
            parent = _open_step.get()
            token = _open_step.set(sdk_args.step_name(self._name))
            self._stack.append(_OpenStep(_current.get(), time.time(), parent, token))
        except Exception as exc:
            sdk_log.internal_error("starting a step", exc)
            self._stack.append(_OpenStep(None, time.time(), None, None))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        try:
            entered = self._stack.pop()
            if entered.token is not None:
                _open_step.reset(entered.token)
            self._record(entered.active, entered.started, entered.status, entered.message, exc, entered.parent)
        except Exception as err:
            sdk_log.internal_error("finishing a step", err)
        return False

    async def __aenter__(self) -> "Step":
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def _record(self, active: _Active | None, started: float, status: str | None, message: str | None,
                exc: BaseException | None, parent: str | None = None) -> None:
        target_bot: str | None
        run_id: str | None
        if active is not None:
            if active.bot is None:
                return
            target_bot, run_id, agent_url, config = active.bot, active.run_id, active.agent_url, active.config
        else:
            target_bot, run_id = sdk_args.outside_bot(self._bot), sdk_args.outside_run_id()
            if target_bot is None or run_id is None:
                sdk_log.warn("step-outside", "botwatch.step() outside any run is not recorded (steps belong to a "
                             "run: use botwatch.run() or @botwatch.bot())")
                return
            agent_url, config = sdk_args.agent_url(None), runrecord.estate_file()
        if exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            status = "fail"
            message = message or sdk_args.message(_exception_line(exc))
        event = {"type": "step", "bot": target_bot, "run_id": run_id, "name": sdk_args.step_name(self._name),
                 "started": started, "ended": time.time(), "status": status or "pass", "source": SOURCE}
        if message:
            event["message"] = message
        if parent:
            event["parent"] = parent
        sdk_transport.record("step", target_bot, run_id, event, agent_url, config)


def step(name: str | None = None, *, bot: str | None = None, **unknown: object) -> Step:
    """`with botwatch.step("post invoices") as s:` records a step of the innermost current run."""
    sdk_args.ignore_unknown("step", unknown)
    return Step(name, bot=bot)


# -- runs ------------------------------------------------------------------------------------

def _start_run(name: str | None, agent_url: str | None, run_id: str | None) -> _Active:
    bot_name = sdk_args.bot_name(name)
    run_id = sdk_args.run_id(run_id)
    parent = _current.get()
    active = _Active(bot_name, run_id or runrecord.new_run_id(), time.time(), sdk_args.agent_url(agent_url),
                     runrecord.estate_file(), parent)
    active.token = _current.set(active)
    # Ctrl-Break (Windows) would end the bot at once, without this run's end: make it a Ctrl-C
    break_as_interrupt()
    if bot_name is not None:
        sdk_transport.record("start", bot_name, active.run_id, {
            "type": "run_started", "bot": bot_name, "run_id": active.run_id, "time": active.started,
            "host": runrecord.host(), "source": SOURCE}, active.agent_url, active.config, kick=True)
    return active


def _finish_run(active: _Active, exc: BaseException | None) -> None:
    ended = time.time()
    assert active.token is not None  # set as the run was entered (_start_run)
    try:
        _current.reset(active.token)
    except (ValueError, RuntimeError):  # left in another context than it was entered in
        _current.set(active.parent)
    if active.bot is None:
        return
    outcome, exit_status, reason, output = "success", None, None, None
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or (isinstance(code, int) and code == 0):
            exit_status = 0
        else:
            outcome = "failure"
            # the status the process exits with: the low byte on POSIX, 32 bits on Windows;
            # sys.exit("message") exits 1
            exit_status = exitcodes.of_sys_exit(code, os.name == "nt") if isinstance(code, int) else 1
            if exc.__context__ is not None:  # sys.exit(n) while handling an error: that error is the cause
                output = _format(exc)
            elif not isinstance(code, int):
                output = str(code)
            reason = _classify(active.config, output, exit_status)
    elif exc is not None:
        outcome = "failure"
        output = _format(exc)
        reason = "killed" if _is_interruption(exc) else _classify(active.config, output, None)
    if active.declared:
        outcome = "failure"
    if outcome == "failure":
        reason = active.reason or reason or "unknown"
        if output is None:
            output = active.message
    event = {"type": "run_finished", "bot": active.bot, "run_id": active.run_id, "started": active.started,
             "ended": ended, "outcome": outcome, "host": runrecord.host(), "source": SOURCE}
    if exit_status is not None:
        event["exit_status"] = exit_status
    if outcome == "failure":
        event["reason"] = reason
    if active.items is not None:
        event["items"] = {"processed": active.items[0], "failed": active.items[1]}
    tail = runrecord.output_tail(output)
    if tail:
        event["output_tail"] = tail
    sdk_transport.record("finish", active.bot, active.run_id, event, active.agent_url, active.config, kick=True)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _exception_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def _is_interruption(exc: BaseException) -> bool:
    """Stopped from outside: Ctrl-C / SIGINT, or an asyncio task cancelled."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.CancelledError)


def _classify(config: str | None, output: str | None, exit_status: int | None) -> str:
    """The failure reason (runrecord.failure_reason); a failure of the classifier is logged, and
    the run is recorded as `unknown`."""
    try:
        return runrecord.failure_reason(config, output, sdk_log.warn_once, exit_status=exit_status)
    except Exception as exc:
        sdk_log.internal_error("classifying a failure", exc)
        return "unknown"


def _target(what: str, bot: str | None) -> tuple[str, str | None, str | None, str | None] | None:
    """(bot, run id, agent URL, estate file) that a look-up or snapshot belongs to: the innermost
    current run's, else `bot` (or $BOTWATCH_BOT) outside any run; None when there is no bot."""
    active = _current.get()
    if active is not None:
        if active.bot is None:
            return None  # a run whose bot name was unusable: nothing of it is recorded
        return active.bot, active.run_id, active.agent_url, active.config
    target_bot = sdk_args.outside_bot(bot)
    if target_bot is None:
        sdk_log.warn(f"{what}-no-bot", f"botwatch.{what}() outside any run records nothing without a bot: "
                     "pass bot=NAME or set BOTWATCH_BOT")
        return None
    return target_bot, sdk_args.outside_run_id(), sdk_args.agent_url(None), runrecord.estate_file()
