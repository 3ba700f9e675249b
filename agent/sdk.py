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

Every event is committed to the local spool first (the same spool `botwatch run` uses), then a
detached deliverer posts it to the agent; so a bot needs no agent running, and a run made while
the agent is away is delivered when it is back. The SDK never raises into the bot: a monitoring
problem (unwritable spool, full disk, a bad argument) is logged once on the `botwatch.sdk`
logger and the bot goes on. The bot's own exceptions pass through unchanged.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import inspect
import json
import logging
import math
import os
import re
import sys
import threading
import time
import traceback

from . import _platform
from .classify import REASONS
from .spool import Spool, default_spool_path
from .vocabulary import BOT_NAME as _BOT_NAME
from .vocabulary import LOOKUP_KINDS, hostname
from .vocabulary import RUN_ID as _RUN_ID
from .wrapper import new_run_id

__all__ = ["run", "bot", "fail", "ui_lookup", "snapshot", "step", "Run", "Step", "REASONS"]

log = logging.getLogger("botwatch.sdk")

SOURCE = "sdk"
KICK_INTERVAL = 5.0  # outside run start and end, start a deliverer at most this often
CLASSIFY_CHARS = 64 * 1024  # as much of a traceback as the wrapper keeps of a bot's output
STORED_TAIL_CHARS = 4096  # the redacted excerpt stored with a failed run, as the wrapper's
MAX_STEP_NAME = 200
MAX_SCREEN = 64
MAX_SELECTOR = 1024
MAX_MESSAGE = 4096
SNAPSHOT_TIMEOUT = 5.0  # seconds a snapshot may take to post and check; then the bot goes on
SNAPSHOT_RETRY_AFTER = 60  # seconds without snapshot posts to an agent that did not answer
_unreachable: dict[str, float] = {}  # agent URL -> monotonic time until which it is not tried
SNAPSHOT_KINDS = {"html": "text/html; charset=utf-8", "a11y": "application/json", "png": "image/png"}

_monotonic = time.monotonic  # the delivery kick's clock (a test replaces it)


class _Active:
    """One entered run: what its events carry, and what the bot declared about it."""

    __slots__ = ("bot", "run_id", "started", "agent_url", "config", "declared", "reason", "message", "token",
                 "parent")

    def __init__(self, bot, run_id, started, agent_url, config, parent):
        self.bot, self.run_id, self.started = bot, run_id, started
        self.agent_url, self.config, self.parent = agent_url, config, parent
        self.declared = False  # botwatch.fail() was called in this run
        self.reason = None  # the first reason declared
        self.message = None
        self.token = None


_current: contextvars.ContextVar[_Active | None] = contextvars.ContextVar("botwatch_run", default=None)
# the innermost open step: a step opened inside it is recorded with it as `parent` (run traces)
_open_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("botwatch_step", default=None)


# -- the SDK ---------------------------------------------------------------------------------

class Run:
    """A run of a bot, as a context manager (`with` or `async with`).

    Entering records `run_started`; leaving records `run_finished`: a success, or a failure when
    the block raised (the exception passes through unchanged), exited with a non-zero status or
    called `botwatch.fail()`. `run_id` and `bot` are readable inside the block and after it.
    """

    def __init__(self, bot, *, agent_url=None, run_id=None):
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
            _internal_error("starting a run", exc)
            active = None
        self._stack.append(active)
        self._last = active
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            active = self._stack.pop() if self._stack else None
            if active is not None:
                _finish_run(active, exc)
        except Exception as err:
            _internal_error("finishing a run", err)
        return False  # never swallow the bot's exception

    async def __aenter__(self) -> "Run":
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)


def run(bot=None, *, agent_url=None, run_id=None, **unknown) -> Run:
    """`with botwatch.run("invoice-recon"):` measures the block as one run of the bot.

    agent_url: where the deliverer posts this run's events (else $BOTWATCH_AGENT_URL, else the
    estate file's `agent.listen`, else http://127.0.0.1:9464). run_id: your own id for the run
    (e.g. the orchestrator's job id, [A-Za-z0-9._:-]{1,128}); a fresh one by default.
    """
    _ignore_unknown("run", unknown)
    return Run(bot, agent_url=agent_url, run_id=run_id)


def bot(name=None, *, agent_url=None, **unknown):
    """`@botwatch.bot("invoice-recon")`: every call of the decorated function (sync or async) is a
    run of the bot. Bare `@botwatch.bot` names the bot after the function."""
    _ignore_unknown("bot", unknown)
    if callable(name) and not isinstance(name, str):
        fn = name
        return bot(getattr(fn, "__name__", None), agent_url=agent_url)(fn)

    def decorate(fn):
        try:
            if not callable(fn):
                _warn(("not-callable", type(fn).__name__), "botwatch.bot(%r) decorates %r, which is not callable; "
                      "left as it is", name, fn)
                return fn
            if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
                @functools.wraps(fn)
                async def run_async(*args, **kwargs):
                    async with Run(name, agent_url=agent_url):
                        return await fn(*args, **kwargs)

                return run_async

            @functools.wraps(fn)
            def run_sync(*args, **kwargs):
                with Run(name, agent_url=agent_url):
                    return fn(*args, **kwargs)

            return run_sync
        except Exception as exc:
            _internal_error("decorating a bot function", exc)
            return fn

    return decorate


def fail(reason=None, message=None, *, bot=None, **unknown) -> None:
    """The bot declares its current run failed, with a reason from the taxonomy (`ui_drift`,
    `credentials`, `business`, `data`, `timeout`, `crash`, `killed`, `unknown`) and a message.

    The run goes on; when it ends it is a failure with the first reason declared, even if the
    block ends normally. Outside any run the failure is recorded for `bot` (or $BOTWATCH_BOT)
    and logged as a warning.
    """
    try:
        _ignore_unknown("fail", unknown)
        declared = _reason(reason) if reason is not None else None
        text = _message(message)
        active = _current.get()
        if active is not None:
            if active.bot is None:
                return  # a run whose bot name was unusable: nothing of it is recorded
            if not active.declared:
                active.declared, active.message = True, text
            if active.reason is None:
                active.reason = declared
            target_bot, run_id, agent_url, config = active.bot, active.run_id, active.agent_url, active.config
        else:
            target_bot = _outside_bot(bot)
            if target_bot is None:
                _warn("fail-no-bot", "botwatch.fail(%r) outside any run records nothing without a bot: pass "
                      "bot=NAME or set BOTWATCH_BOT", declared or "unknown")
                return
            log.warning("botwatch.fail() outside any run: bot %s failed (%s)%s", target_bot, declared or "unknown",
                        f": {text}" if text else "")
            run_id = _outside_run_id() or new_run_id()
            agent_url, config = _agent_url(None), _config_path()
        event = {"type": "failure", "bot": target_bot, "run_id": run_id, "time": time.time(),
                 "reason": declared or "unknown", "source": SOURCE}
        if text:
            event["message"] = text
        _record("failure", target_bot, run_id, event, agent_url, config)
    except Exception as exc:
        _internal_error("botwatch.fail()", exc)


def ui_lookup(screen=None, selector=None, found=True, *, kind=None, wait=None, healed=False, bot=None,
              **unknown) -> None:
    """One look-up of a UI element: on which screen, with which selector, whether it was found
    (`kind` of failure: not_found, the default, ambiguous or wrong_app), how long it took to
    appear (`wait`, seconds) and whether a self-healing selector stepped in (`healed`).

    It belongs to the innermost current run; outside any run it is recorded for `bot` (or
    $BOTWATCH_BOT) without a run id.
    """
    try:
        _ignore_unknown("ui_lookup", unknown)
        target = _target("ui_lookup", bot)
        if target is None:
            return
        target_bot, run_id, agent_url, config = target
        found = _flag("found", found, True)
        event = {"type": "ui_lookup", "bot": target_bot, "time": time.time(), "screen": _screen(screen),
                 "found": found, "healed": _flag("healed", healed, False), "source": SOURCE}
        if run_id:
            event["run_id"] = run_id
        if selector is not None:
            event["selector"] = _text(selector, MAX_SELECTOR, redacted=True)
        if not found:
            if kind is not None and kind not in LOOKUP_KINDS:
                _warn(("lookup-kind", str(kind)[:50]), "botwatch.ui_lookup(kind=%r): not one of %s; recorded as "
                      "not_found", kind, ", ".join(LOOKUP_KINDS))
                kind = None
            event["kind"] = kind or "not_found"
        elif kind is not None:
            _warn("lookup-kind-found", "botwatch.ui_lookup(kind=...) is for elements not found; ignored "
                  "with found=True")
        seconds = _seconds(wait)
        if seconds is not None:
            event["wait"] = seconds
        _record("ui_lookup", target_bot, run_id or "", event, agent_url, config)
    except Exception as exc:
        _internal_error("botwatch.ui_lookup()", exc)


def snapshot(screen=None, content=None, *, path=None, kind=None, bot=None, **unknown) -> dict | None:
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
        _ignore_unknown("snapshot", unknown)
        target = _target("snapshot", bot)
        if target is None:
            return None
        target_bot, run_id, agent_url, config = target
        body, snap_kind = _snapshot_body(content, path, kind)
        if body is None:
            return None
        if screen is None or screen == "":
            _warn("snapshot-screen", "botwatch.snapshot() without a screen name: not checked")
            return None
        name = _text(screen, MAX_SCREEN).replace("/", "-")
        return _post_snapshot(target_bot, name, snap_kind, body, run_id, agent_url, config)
    except Exception as exc:
        _internal_error("botwatch.snapshot()", exc)
        return None


def _snapshot_body(content, path, kind) -> tuple[bytes | None, str | None]:
    if kind is not None and kind not in SNAPSHOT_KINDS:
        _warn(("snapshot-kind", str(kind)[:20]), "botwatch.snapshot(kind=%r): not one of html, a11y, png; guessed "
              "from the content instead", kind)
        kind = None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                body = fh.read()
        except OSError as exc:
            _warn(("snapshot-path", str(path)[:200]), "botwatch.snapshot(path=%r): cannot read it (%s)", path, exc)
            return None, None
        if kind is None:
            ext = os.path.splitext(str(path))[1].lower()
            kind = {".html": "html", ".htm": "html", ".json": "a11y", ".png": "png"}.get(ext)
    elif content is None:
        _warn("snapshot-empty", "botwatch.snapshot() without content or path: nothing to check")
        return None, None
    elif isinstance(content, (bytes, bytearray, memoryview)):
        body = bytes(content)
    elif isinstance(content, str):
        body = content.encode("utf-8")
        if kind is None and content.lstrip()[:1] in ("{", "["):
            kind = "a11y"
    elif isinstance(content, (dict, list)):
        body, kind = json.dumps(content, default=str).encode("utf-8"), kind or "a11y"
    elif hasattr(content, "save"):  # a Pillow image
        import io

        buf = io.BytesIO()
        content.save(buf, format="PNG")
        body, kind = buf.getvalue(), kind or "png"
    else:
        _warn(("snapshot-type", type(content).__name__), "botwatch.snapshot(): cannot send a %s (give HTML text, "
              "PNG bytes, an accessibility tree dict, or path=)", type(content).__name__)
        return None, None
    if kind is None:
        head = body[:64].lstrip()
        kind = "png" if head.startswith(b"\x89PNG") else "a11y" if head[:1] in (b"{", b"[") else "html"
    return body, kind


def _post_snapshot(bot_name, screen, kind, body, run_id, agent_url, config) -> dict | None:
    import urllib.error
    import urllib.parse
    import urllib.request

    from .delivery import agent_key_for, agent_url_for

    base = agent_url_for(agent_url, config)
    if time.monotonic() < _unreachable.get(base, 0.0):
        return None  # the agent did not answer a moment ago: the bot is not held up again
    query = urllib.parse.urlencode({"kind": kind, **({"run_id": run_id} if run_id else {})})
    url = f"{base}/api/v1/snapshots/{urllib.parse.quote(bot_name, safe='')}/{urllib.parse.quote(screen, safe='')}" \
          f"?{query}"
    headers = {"Content-Type": SNAPSHOT_KINDS[kind]}
    key = agent_key_for(config, bot_name)
    if key:
        headers["X-Botwatch-Key"] = key
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    from .redact import redact_url  # for the warnings: the agent URL may carry user:password@

    try:
        with urllib.request.urlopen(req, timeout=SNAPSHOT_TIMEOUT) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        _warn(("snapshot-http", exc.code), "botwatch.snapshot(): the agent at %s refused the snapshot of %s/%s "
              "(HTTP %s: %s)", redact_url(base), bot_name, screen, exc.code, detail)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError):  # no answer (refused, timed out): skip snapshots to it for a while
            _unreachable[base] = time.monotonic() + SNAPSHOT_RETRY_AFTER
        _warn(("snapshot-agent", base), "botwatch.snapshot(): cannot reach the agent at %s (%s); the snapshot of "
              "%s/%s is not checked (snapshots to it are skipped for %ds)", redact_url(base), redact_url(exc),
              bot_name, screen, SNAPSHOT_RETRY_AFTER)
    return None


class Step:
    """A step of the current run, as a context manager: `with botwatch.step("login"):`.

    It passes when the block ends normally and fails when it raises (the exception passes
    through unchanged). Inside the block, `skip(message)` or `fail(message)` set its status
    (`fail` here marks only the step, not the run: that is `botwatch.fail()`).
    """

    def __init__(self, name, *, bot=None):
        self._name, self._bot = name, bot
        self._stack: list[tuple] = []

    def skip(self, message=None) -> None:
        self._mark("skip", message)

    def fail(self, message=None) -> None:
        self._mark("fail", message)

    def _mark(self, status, message) -> None:
        try:
            if self._stack:
                self._stack[-1][2:4] = [status, _message(message)]
        except Exception as exc:
            _internal_error("marking a step", exc)

    def __enter__(self) -> "Step":
        try:
            parent = _open_step.get()
            token = _open_step.set(_step_name(self._name))
            self._stack.append([_current.get(), time.time(), None, None, parent, token])
        except Exception as exc:
            _internal_error("starting a step", exc)
            self._stack.append([None, time.time(), None, None, None, None])
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            active, started, status, message, parent, token = self._stack.pop()
            if token is not None:
                _open_step.reset(token)
            self._record(active, started, status, message, exc, parent)
        except Exception as err:
            _internal_error("finishing a step", err)
        return False

    async def __aenter__(self) -> "Step":
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def _record(self, active, started, status, message, exc, parent=None) -> None:
        if active is not None:
            if active.bot is None:
                return
            target_bot, run_id, agent_url, config = active.bot, active.run_id, active.agent_url, active.config
        else:
            target_bot, run_id = _outside_bot(self._bot), _outside_run_id()
            if target_bot is None or run_id is None:
                _warn("step-outside", "botwatch.step() outside any run is not recorded (steps belong to a run: "
                      "use botwatch.run() or @botwatch.bot())")
                return
            agent_url, config = _agent_url(None), _config_path()
        if exc is not None and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            status = "fail"
            message = message or _message(_exception_line(exc))
        event = {"type": "step", "bot": target_bot, "run_id": run_id, "name": _step_name(self._name),
                 "started": started, "ended": time.time(), "status": status or "pass", "source": SOURCE}
        if message:
            event["message"] = message
        if parent:
            event["parent"] = parent
        _record("step", target_bot, run_id, event, agent_url, config)


def step(name=None, *, bot=None, **unknown) -> Step:
    """`with botwatch.step("post invoices") as s:` records a step of the innermost current run."""
    _ignore_unknown("step", unknown)
    return Step(name, bot=bot)


# -- runs ------------------------------------------------------------------------------------

def _start_run(name, agent_url, run_id) -> _Active:
    bot_name = _bot_name(name)
    if run_id is not None and not (isinstance(run_id, str) and _RUN_ID.match(run_id)):
        _warn(("run-id", str(run_id)[:50]), "botwatch.run(run_id=%r): a run id is 1-128 of A-Z a-z 0-9 . _ : -; "
              "using a generated one", run_id)
        run_id = None
    parent = _current.get()
    active = _Active(bot_name, run_id or new_run_id(), time.time(), _agent_url(agent_url), _config_path(), parent)
    active.token = _current.set(active)
    if bot_name is not None:
        _record("start", bot_name, active.run_id, {
            "type": "run_started", "bot": bot_name, "run_id": active.run_id, "time": active.started,
            "host": _host(), "source": SOURCE}, active.agent_url, active.config, kick=True)
    return active


def _finish_run(active: _Active, exc: BaseException | None) -> None:
    ended = time.time()
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
            exit_status = (code & 0xFF) if isinstance(code, int) else 1  # sys.exit("message") exits 1
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
             "ended": ended, "outcome": outcome, "host": _host(), "source": SOURCE}
    if exit_status is not None:
        event["exit_status"] = exit_status
    if outcome == "failure":
        event["reason"] = reason
    tail = _stored_tail(output)
    if tail:
        event["output_tail"] = tail
    _record("finish", active.bot, active.run_id, event, active.agent_url, active.config, kick=True)


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


def _stored_tail(output: str | None) -> str | None:
    """The redacted excerpt stored with the run: the last lines only, never a cut line (a cut
    line could hold a secret the redaction rules no longer recognise)."""
    if not output:
        return None
    from .redact import redact

    window = output[-STORED_TAIL_CHARS * 2:]
    if len(output) > len(window):
        window = window.partition("\n")[2]
    return redact(window)[-STORED_TAIL_CHARS:] or None


_classifiers: dict = {}  # (estate file, mtime) -> its Classifier; None -> the built-in patterns only
_classifiers_lock = threading.Lock()


def _classify(config: str | None, output: str | None, exit_status: int | None) -> str:
    """The failure reason, with the estate's `failure_patterns` when its file is readable."""
    try:
        return _classifier(config).classify(exit_status=exit_status, output=(output or "")[-CLASSIFY_CHARS:]).reason
    except Exception as exc:
        _internal_error("classifying a failure", exc)
        return "unknown"


def _classifier(config: str | None):
    from .classify import Classifier

    key = None
    if config:
        try:
            key = (config, os.stat(config).st_mtime_ns)
        except OSError:
            pass
    with _classifiers_lock:
        found = _classifiers.get(key)
    if found is not None:
        return found
    if key is not None:
        try:
            from .config import load_estate

            found = Classifier.for_estate(load_estate(config).estate)
        except Exception as exc:
            _warn(("estate", key), "botwatch: estate file %s not usable for classification (%s); using the "
                  "built-in failure patterns", config, (str(exc).splitlines() or [type(exc).__name__])[0])
    if found is None:
        with _classifiers_lock:
            found = _classifiers.get(None)
        found = found or Classifier()
    with _classifiers_lock:
        if len(_classifiers) > 16:
            _classifiers.clear()
        _classifiers[key] = found
    return found


# -- arguments -------------------------------------------------------------------------------

def _bot_name(name) -> str | None:
    if isinstance(name, str) and _BOT_NAME.match(name):
        return name
    coerced = re.sub(r"[^a-z0-9_-]+", "-", str(name).strip().lower()).strip("-")[:64] if name is not None else ""
    if not coerced:
        _warn(("bot-name", repr(name)[:80]), "botwatch: %r is not a bot name ([a-z0-9_-], 1-64 characters); "
              "this run is not recorded", name)
        return None
    _warn(("bot-name", repr(name)[:80]), "botwatch: %r is not a bot name ([a-z0-9_-], 1-64 characters); "
          "recorded as %r", name, coerced)
    return coerced


def _reason(reason) -> str:
    if reason in REASONS:
        return reason
    if isinstance(reason, str) and reason.strip().lower().replace("-", "_") in REASONS:
        return reason.strip().lower().replace("-", "_")
    _warn(("reason", repr(reason)[:80]), "botwatch.fail(reason=%r): not one of %s; recorded as unknown",
          reason, ", ".join(REASONS))
    return "unknown"


def _text(value, limit: int, *, redacted: bool = False) -> str:
    text = value if isinstance(value, str) else str(value)
    if redacted:
        from .redact import redact

        text = redact(text)
    return text[:limit]


def _message(message) -> str | None:
    if message is None:
        return None
    return _text(message, MAX_MESSAGE, redacted=True) or None


def _screen(screen) -> str:
    if screen is None or screen == "":
        _warn("lookup-screen", "botwatch.ui_lookup() without a screen: recorded as screen 'unknown'")
        return "unknown"
    return _text(screen, MAX_SCREEN)


def _step_name(name) -> str:
    if name is None or name == "":
        _warn("step-name", "botwatch.step() without a name: recorded as 'step'")
        return "step"
    return _text(name, MAX_STEP_NAME)


def _flag(what: str, value, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    _warn(("flag", what), "botwatch.ui_lookup(%s=%r): not True or False; taken as %s", what, value, bool(value))
    return bool(value)


def _seconds(wait) -> float | None:
    if wait is None:
        return None
    try:
        seconds = float(wait.total_seconds() if hasattr(wait, "total_seconds") else wait)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        _warn(("wait", repr(wait)[:50]), "botwatch.ui_lookup(wait=%r): not a number of seconds >= 0; dropped", wait)
        return None
    return seconds


def _ignore_unknown(where: str, unknown: dict) -> None:
    if unknown:
        _warn(("unknown-args", where, tuple(sorted(unknown))), "botwatch.%s(): unknown argument(s) %s ignored",
              where, ", ".join(sorted(unknown)))


def _target(what: str, bot) -> tuple[str, str | None, str | None, str | None] | None:
    """(bot, run id, agent URL, estate file) that a look-up or snapshot belongs to: the innermost
    current run's, else `bot` (or $BOTWATCH_BOT) outside any run; None when there is no bot."""
    active = _current.get()
    if active is not None:
        if active.bot is None:
            return None  # a run whose bot name was unusable: nothing of it is recorded
        return active.bot, active.run_id, active.agent_url, active.config
    target_bot = _outside_bot(bot)
    if target_bot is None:
        _warn(f"{what}-no-bot", f"botwatch.{what}() outside any run records nothing without a bot: "
              "pass bot=NAME or set BOTWATCH_BOT")
        return None
    return target_bot, _outside_run_id(), _agent_url(None), _config_path()


def _outside_bot(explicit) -> str | None:
    name = explicit if explicit is not None else os.environ.get("BOTWATCH_BOT")
    return _bot_name(name) if name else None


def _outside_run_id() -> str | None:
    run_id = os.environ.get("BOTWATCH_RUN_ID")
    return run_id if run_id and _RUN_ID.match(run_id) else None


def _agent_url(explicit) -> str | None:
    if explicit is not None and not isinstance(explicit, str):
        _warn(("agent-url", type(explicit).__name__), "botwatch: agent_url=%r is not a URL; ignored", explicit)
        explicit = None
    return explicit or os.environ.get("BOTWATCH_AGENT_URL") or None


def _config_path() -> str | None:
    """The estate file, as the wrapper finds it: $BOTWATCH_CONFIG, else ./botwatch.yaml if any."""
    try:
        config = os.environ.get("BOTWATCH_CONFIG") or ("botwatch.yaml" if os.path.exists("botwatch.yaml") else None)
        return os.path.abspath(config) if config else None
    except OSError:  # the working directory is gone
        return None


_hostname: str | None = None


def _host() -> str:
    global _hostname
    if _hostname is None:
        _hostname = hostname()
    return _hostname


# -- the spool and the deliverer -------------------------------------------------------------

_local = threading.local()  # each thread its own SQLite connection to the spool


def _spool(path: str) -> Spool:
    cached = getattr(_local, "spool", None)
    if cached is not None and cached[0] == os.getpid() and cached[1] == path:
        return cached[2]
    _drop_spool()
    spool = Spool(path)
    _local.spool = (os.getpid(), path, spool)
    return spool


def _drop_spool() -> None:
    cached = getattr(_local, "spool", None)
    _local.spool = None
    if cached is not None and cached[0] == os.getpid():
        try:
            cached[2].close()
        except Exception:
            pass


def _record(kind: str, bot_name: str, run_id: str, event: dict, agent_url, config, *, kick: bool = False) -> None:
    """Commit one event to the spool, then see that a deliverer is at work. Never raises."""
    path = None
    try:
        path = default_spool_path()
        text = json.dumps(event, allow_nan=False, separators=(",", ":"))
        try:
            _spool(path).add_event(kind, bot_name, run_id, text, agent_url=agent_url, config=config)
        except Exception:
            _drop_spool()  # reopen next time: the file may have been moved, the disk freed
            raise
    except Exception as exc:
        _warn(("spool", path), "botwatch: cannot record a %s event of bot %r in the spool %s (%s: %s); "
              "the bot goes on", event.get("type"), bot_name, path, type(exc).__name__, exc)
        return
    _kick(path, force=kick)


class _Kicks:
    def __init__(self):
        self.lock = threading.Lock()
        self.pid = None
        self.last: dict[str, float] = {}
        self.pending: set[str] = set()  # spools with events no deliverer was started for
        self.children: list = []
        self.exit_hook = False


_kicks = _Kicks()


def _kick(path: str, *, force: bool) -> None:
    """Start a detached deliverer for the spool: at run start and end, otherwise at most every
    KICK_INTERVAL seconds (and once more when the process exits, for what is left)."""
    if os.environ.get("BOTWATCH_NO_DELIVERY") == "1":
        return
    now = _monotonic()
    with _kicks.lock:
        if _kicks.pid != os.getpid():  # a forked child starts afresh
            _kicks.pid, _kicks.last, _kicks.pending, _kicks.children = os.getpid(), {}, set(), []
        if not _kicks.exit_hook:
            _kicks.exit_hook = True
            atexit.register(_kick_leftovers)
        last = _kicks.last.get(path)
        if not force and last is not None and now - last < KICK_INTERVAL:
            _kicks.pending.add(path)
            return
        _kicks.last[path] = now
        _kicks.pending.discard(path)
        _kicks.children = [c for c in _kicks.children if c.poll() is None]  # reap the finished ones
    _start_deliverer(path)


def _kick_leftovers() -> None:
    try:
        with _kicks.lock:
            paths = sorted(_kicks.pending) if _kicks.pid == os.getpid() else []
            _kicks.pending = set()
        for path in paths:
            if os.environ.get("BOTWATCH_NO_DELIVERY") != "1":
                _start_deliverer(path)
    except Exception:
        pass


def _start_deliverer(path: str) -> None:
    exe = sys.executable or ""
    if not os.path.basename(exe).lower().startswith(("python", "pypy")):
        _warn("no-python", "botwatch: cannot start the deliverer from this interpreter (%r); events wait in %s "
              "until the next `botwatch run` or `python -m botwatch.deliver`", exe, path)
        return
    argv = [exe, "-m", "botwatch.deliver", "--spool", path]
    try:
        if os.name == "nt":
            _platform.spawn_detached(argv)
            return
        # As _platform.spawn_detached, but keeping the handle: a long-lived bot process reaps its
        # finished deliverers instead of collecting zombies.
        import subprocess

        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        with _kicks.lock:
            _kicks.children.append(child)
    except Exception as exc:
        _warn(("deliver", path), "botwatch: cannot start delivery to the agent (%s); events wait in %s", exc, path)


# -- logging ---------------------------------------------------------------------------------

_warned: set = set()
_warned_lock = threading.Lock()


def _warn(key, msg: str, *args) -> None:
    """A warning the first time, debug after: a problem repeated on every event is logged once."""
    with _warned_lock:
        first = key not in _warned
        if first and len(_warned) < 1024:
            _warned.add(key)
    try:
        log.log(logging.WARNING if first else logging.DEBUG, msg, *args)
    except Exception:
        pass


def _internal_error(where: str, exc: BaseException) -> None:
    with _warned_lock:
        first = ("internal", where, type(exc).__name__) not in _warned
        _warned.add(("internal", where, type(exc).__name__))
    try:
        log.log(logging.WARNING if first else logging.DEBUG, "botwatch: %s failed (%s: %s); the bot goes on",
                where, type(exc).__name__, exc, exc_info=exc if first else None)
    except Exception:
        pass
