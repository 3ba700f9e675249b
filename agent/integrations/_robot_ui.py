"""The Robot Framework listener's UI part: element look-ups and screen snapshots.

A *look-up* is a call of a SeleniumLibrary or Browser library keyword that takes a `locator`
(SeleniumLibrary) or `selector` (Browser) argument and looks for an element with it: `Click
Button`, `Input Text`, `Wait Until Page Contains Element`, `Get Text`, `Fill Text`, ... Keywords
that check that an element is *absent* (`... Should Not ...`, `... Does Not Contain ...`,
`... Is Not Visible`, `... Disappear`) and keywords that count or list elements are not look-ups.

- found: the keyword passed;
- not found (kind `not_found`, `ambiguous` or `wrong_app`): the keyword failed with a message
  the failure patterns classify as `ui_drift` (the estate's own patterns first);
- nothing: the keyword failed with another message (a wrong text, no browser open), which says
  nothing about the element;
- wait: the keyword's elapsed time, for `Wait Until ...` and `Wait For ...` keywords.

Healing. A look-up that misses while something catches its failure (`Run Keyword And Return
Status`, `Run Keyword And Ignore Error`, `Run Keyword And Expect Error`, `Run Keyword And Warn On
Failure`, `Wait Until Keyword Succeeds`, a TRY/EXCEPT that handles it) is held back as a *miss*.
The next look-up made by the same keyword (`Click Button`, say) on the same screen, in the same
user keyword or task or in one it calls, settles it:

- it finds its element with another locator, running in a branch entered after the miss (an
  IF/ELSE or EXCEPT branch, a later FOR/WHILE round, `Run Keyword If`/`Unless`): a fallback.
  One look-up, found and **healed**, recorded with the locator that found it, its wait the sum
  of the attempts' waits;
- it finds it with the same locator: a retry. One look-up, found, not healed;
- it misses too and fails the task: one look-up, not found, naming the locators tried;
- it finds it with another locator outside such a branch: the miss was a probe for an optional
  element (a cookie banner that was not shown), not recorded. So is a miss that nothing settles
  before its user keyword or task ends.

Screens. A look-up's screen is, in this order: a `screen:NAME` tag of the running user keyword
(the innermost one that has one), the RF variable `${BOTWATCH_SCREEN}` (set with `Set Test
Variable` or `VAR ... scope=TEST` when the bot reaches a screen), a `screen:NAME` tag of the task,
the listener's `screen=` option, the task's name (the suite's in a suite setup or teardown).

Snapshots (`snapshots=html|png|both`). When the bot reaches a screen (a look-up on another screen
than the previous one), the page is captured: before the look-up for an action (so a click that
navigates does not capture the next page), after it for a `Wait ...` keyword (so the page has
loaded). A look-up that fails the task captures the page as it is at the failure. The page
source comes from the browser (SeleniumLibrary's WebDriver `page_source`, the Browser library's
`Get Page Source`); the PNG from SeleniumLibrary's WebDriver. They go to the agent with
`botwatch.snapshot()`, at most MAX_SNAPSHOTS per run. When the agent answers that the screen
has drifted past the bot's `drift_warning`, the robot's log gets a warning saying so (once per
screen and kind of snapshot in a run), before any look-up fails.

Nothing here ever raises into Robot Framework: the listener guards every call.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

from ..client import sdk

# Library (its name as imported, before any alias) -> how to reach its page
UI_LIBRARIES = {
    "SeleniumLibrary": "selenium",
    "RPA.Browser.Selenium": "selenium",
    "RPA.Browser": "selenium",
    "Browser": "browser",
    "RPA.Browser.Playwright": "browser",
}
LOCATOR_ARGS = ("locator", "selector")
CATCHING_KEYWORDS = frozenset({
    "run keyword and return status", "run keyword and ignore error", "run keyword and expect error",
    "run keyword and warn on failure", "wait until keyword succeeds",
})
BRANCH_KEYWORDS = frozenset({"run keyword if", "run keyword unless"})
BRANCH_TYPES = frozenset({"IF", "ELSE IF", "ELSE", "EXCEPT", "ITERATION"})  # RF's body item types
NOT_LOOKUPS = frozenset({"get element count", "get webelements", "get elements", "get element states"})
ABSENCE_STATES = ("detached", "hidden")  # Browser's Wait For Elements State: passes without the element
_ABSENCE = re.compile(r"\b(?:not|disappear|disappears)\b")
SNAPSHOT_OPTIONS = {"none": (), "html": ("html",), "png": ("png",), "both": ("html", "png")}
MAX_SNAPSHOTS = 50  # per run
MAX_TRIED = 5  # other locators named in a failure


def norm(name) -> str:
    return " ".join(str(name or "").lower().replace("_", " ").split())


def snapshot_kinds(option) -> tuple[str, ...] | None:
    """The kinds the `snapshots=` option asks for; None when it is not one of the options."""
    return SNAPSHOT_OPTIONS.get(norm(option) or "none")


class _Lookup:
    __slots__ = ("screen", "keyword", "locator", "library", "flavour", "waits", "seq", "branch", "started",
                 "snap_after", "snapped")

    def __init__(self, screen, keyword, locator, library, flavour, waits, seq, branch):
        self.screen, self.keyword, self.locator = screen, keyword, locator
        self.library, self.flavour, self.waits = library, flavour, waits
        self.seq = seq  # when its keyword started (frames are numbered as they start)
        self.branch = branch  # when the innermost branch it runs in started (-1: none)
        self.started = time.monotonic()
        self.snap_after = False  # take the screen's snapshot when the keyword has ended
        self.snapped = False  # the screen's snapshot was taken as the keyword started


class _Miss:
    __slots__ = ("screen", "keyword", "locator", "message", "kind", "wait", "library", "flavour", "seq", "branch")

    def __init__(self, lookup: _Lookup, message, kind, wait):
        self.screen, self.keyword, self.locator = lookup.screen, lookup.keyword, lookup.locator
        self.library, self.flavour = lookup.library, lookup.flavour
        self.seq, self.branch = lookup.seq, lookup.branch
        self.message, self.kind, self.wait = message, kind, wait


class _Frame:
    __slots__ = ("kind", "name", "tags", "catching", "branch", "seq", "misses", "pending", "lookup")

    def __init__(self, kind, name, tags, catching, branch, seq):
        self.kind, self.name, self.tags, self.catching = kind, name, tuple(tags or ()), catching
        self.branch, self.seq = branch, seq  # branch: an IF/ELSE or EXCEPT branch, a loop round, Run Keyword If
        self.misses: list[_Miss] = []  # catching frames: misses under it, caught if it passes
        self.pending: list[_Miss] = []  # group frames (suite, task, user keyword): caught misses
        self.lookup: _Lookup | None = None

    @property
    def group(self) -> bool:
        return self.kind in ("suite", "test", "user")


class UiCapture:
    """Look-ups and snapshots of one run; `emit(event)` records a ui_lookup event of the run,
    `classify(message)` is the run's classifier's match (a Classification or None)."""

    def __init__(self, emit, classify, *, screen=None, kinds=()):
        self._emit, self._classify = emit, classify
        self._screen_option = screen or None
        self._kinds = tuple(kinds)
        self._frames: list[_Frame] = []
        self._seq = 0
        self._last_screen: str | None = None
        self._snapshots = 0
        self._warned: set[tuple[str, str]] = set()  # (screen, kind) whose drift the robot's log was told
        self._failed: tuple[str, str, str] | None = None  # the last UI failure: (message, screen, selector)
        self._tried: list[str] = []  # the other locators that failure tried

    # -- the structure: suites, tasks, keywords -------------------------------------------------
    def enter(self, kind, name="", tags=(), catching=False, branch=False) -> _Frame:
        self._seq += 1
        frame = _Frame(kind, name, tags, catching, branch, self._seq)
        self._frames.append(frame)
        return frame

    def enter_body_item(self, item_type) -> _Frame:
        # a TRY/EXCEPT that passes has handled the failures inside it
        return self.enter("other", catching=item_type == "TRY/EXCEPT ROOT", branch=item_type in BRANCH_TYPES)

    def leave(self, kind, status=None) -> None:
        """Close the innermost frame of `kind` (and any left open inside it)."""
        for i in range(len(self._frames) - 1, -1, -1):
            if self._frames[i].kind == kind:
                while len(self._frames) > i:
                    self._close(self._frames.pop(), status if len(self._frames) == i else None)
                return

    def _close(self, frame: _Frame, status) -> None:
        if frame.catching and frame.misses:
            if status in ("PASS", "SKIP", "NOT RUN"):
                group = self._group()
                if group is not None:
                    group.pending.extend(frame.misses)
            else:  # not handled there: the failure goes on up
                catcher = self._catcher()
                if catcher is not None:
                    catcher.misses.extend(frame.misses)
                else:
                    self._uncaught(frame.misses, None)
        # a group's unsettled misses were probes of optional elements: dropped

    # -- library keywords: the look-ups ---------------------------------------------------------
    def library_start(self, data, implementation, result) -> None:
        owner = getattr(implementation, "owner", None)
        real = getattr(owner, "real_name", None) or getattr(owner, "name", None) or getattr(result, "owner", "")
        keyword = norm(getattr(implementation, "name", None) or getattr(result, "name", ""))
        builtin = real == "BuiltIn"
        frame = self.enter("library", keyword, catching=builtin and keyword in CATCHING_KEYWORDS,
                           branch=builtin and keyword in BRANCH_KEYWORDS)
        flavour = UI_LIBRARIES.get(real)
        if flavour is None or keyword in NOT_LOOKUPS or _ABSENCE.search(keyword):
            return
        args = _arguments(data, implementation)
        if args is None:
            return
        locator = next((args[n] for n in LOCATOR_ARGS if n in args), None)
        if not isinstance(locator, str) or not locator.strip():
            return  # no locator given, or a WebElement found earlier
        state = args.get("state")
        if state is not None and any(s in str(state).lower() for s in ABSENCE_STATES):
            return
        library = getattr(owner, "name", None) or real  # the name it is imported as: its instance's
        waits = keyword.startswith(("wait until", "wait for"))
        branch = max((f.seq for f in self._frames if f.branch), default=-1)
        lookup = frame.lookup = _Lookup(self._screen(), keyword, locator, library, flavour, waits, frame.seq, branch)
        if lookup.screen != self._last_screen:
            self._last_screen = lookup.screen
            if waits:
                lookup.snap_after = True
            else:
                lookup.snapped = True
                self._snapshot(lookup.screen, library, flavour)

    def library_end(self, result) -> None:
        frame = self._frames[-1] if self._frames and self._frames[-1].kind == "library" else None
        status = getattr(result, "status", None)
        self.leave("library", status)
        lookup = frame.lookup if frame is not None else None
        if lookup is None:
            return
        if lookup.snap_after:
            self._snapshot(lookup.screen, lookup.library, lookup.flavour)
        wait = _elapsed(result, lookup.started) if lookup.waits else None
        if status == "PASS":
            self._found(lookup, wait)
        elif status == "FAIL":
            message = getattr(result, "message", "") or ""
            found = self._classify(message)
            if found is None or found.reason != "ui_drift":
                return  # failed for another reason: nothing is known about the element
            miss = _Miss(lookup, message, found.kind or "not_found", wait)
            catcher = self._catcher()
            if catcher is not None:
                catcher.misses.append(miss)
            else:
                self._uncaught([miss], lookup)

    # -- failures: naming the screen and the selector -------------------------------------------
    def name_failure(self, message: str | None) -> tuple[str, str, str] | None:
        """(`message` prefixed with the screen and selector of the UI failure that caused it, the
        screen, the selector); None when no UI failure of the task caused it."""
        if not message or self._failed is None:
            return None
        failed, screen, selector = self._failed
        if not failed or failed not in message:
            return None
        also = f" (also tried {', '.join(self._tried[:MAX_TRIED])})" if self._tried else ""
        return f"screen {screen}, selector {selector}{also}: {message}", screen, selector

    # -- helpers ---------------------------------------------------------------------------------
    def _found(self, lookup: _Lookup, wait) -> None:
        settled = self._attempts(self._settle(lookup.screen, lookup.keyword), lookup.locator, lookup.branch)
        healed = any(m.locator != lookup.locator for m in settled)
        self._lookup(lookup.screen, lookup.locator, True, healed=healed, wait=_sum([m.wait for m in settled] + [wait]))

    @staticmethod
    def _attempts(settled: list[_Miss], locator: str, branch: int) -> list[_Miss]:
        """The misses that were earlier attempts of this look-up: all of them when it runs in a
        branch started after them (a fallback) or uses the same locator (a retry); else none
        (they were probes of optional elements)."""
        if not settled:
            return []
        if branch > max(m.seq for m in settled) or all(m.locator == locator for m in settled):
            return settled
        return []

    def _uncaught(self, misses: list[_Miss], lookup: _Lookup | None) -> None:
        last = misses[-1]
        chain = self._attempts(self._settle(last.screen, last.keyword), last.locator, last.branch) + misses[:-1]
        tried = []
        for m in chain:
            if m.locator != last.locator and m.locator not in tried:
                tried.append(m.locator)
        self._lookup(last.screen, last.locator, False, kind=last.kind,
                     wait=_sum([m.wait for m in chain] + [last.wait]))
        self._failed, self._tried = (last.message, last.screen, last.locator), tried
        if lookup is None or not (lookup.snapped or lookup.snap_after):
            self._snapshot(last.screen, last.library, last.flavour)  # the page as it is at the failure

    def _settle(self, screen: str, keyword: str) -> list[_Miss]:
        """The misses (in flight or caught) of the same keyword on the screen, taken off the
        innermost frame that holds any."""
        for frame in reversed(self._frames):
            for attr in ("misses", "pending"):
                held = getattr(frame, attr)
                same = [m for m in held if m.screen == screen and m.keyword == keyword]
                if same:
                    setattr(frame, attr, [m for m in held if not (m.screen == screen and m.keyword == keyword)])
                    return same
        return []

    def _catcher(self) -> _Frame | None:
        for frame in reversed(self._frames):
            if frame.catching:
                return frame
        return None

    def _group(self) -> _Frame | None:
        for frame in reversed(self._frames):
            if frame.group:
                return frame
        return None

    def _screen(self) -> str:
        try:
            from robot.libraries.BuiltIn import BuiltIn

            value = BuiltIn().get_variable_value("${BOTWATCH_SCREEN}")
        except Exception:
            value = None
        for frame in reversed(self._frames):
            if frame.kind == "user" and _screen_tag(frame.tags):
                return _screen_tag(frame.tags)
        if value not in (None, ""):
            return str(value)
        for frame in reversed(self._frames):
            if _screen_tag(frame.tags):
                return _screen_tag(frame.tags)
        if self._screen_option:
            return self._screen_option
        for frame in reversed(self._frames):
            if frame.kind in ("test", "suite") and frame.name:
                return frame.name
        return "unknown"

    def _lookup(self, screen, selector, found, *, healed=False, kind=None, wait=None) -> None:
        event = {"type": "ui_lookup", "time": time.time(), "screen": sdk._screen(screen), "found": found,
                 "healed": healed, "selector": sdk._text(selector, sdk.MAX_SELECTOR, redacted=True)}
        if not found:
            event["kind"] = kind if kind in sdk.LOOKUP_KINDS else "not_found"
        if wait is not None:
            event["wait"] = wait
        self._emit(event)

    def _snapshot(self, screen: str, library_name: str, flavour: str) -> None:
        if not self._kinds or self._snapshots >= MAX_SNAPSHOTS:
            return
        self._snapshots += 1
        try:
            from robot.libraries.BuiltIn import BuiltIn

            library = BuiltIn().get_library_instance(library_name)
        except Exception as exc:
            sdk._warn(("robot-snapshot-lib", library_name), "botwatch: no snapshot of screen %r: library %s not "
                      "reachable (%s)", screen, library_name, exc)
            return
        for kind in self._kinds:
            try:
                content = _capture(library, flavour, kind)
            except Exception as exc:  # no browser open, a closed window, ...
                sdk._warn(("robot-snapshot", kind, type(exc).__name__), "botwatch: no %s snapshot of screen %r "
                          "(%s: %s)", kind, screen, type(exc).__name__, str(exc).strip()[:200])
                continue
            if content is not None:
                self._told(screen, kind, sdk.snapshot(screen, content, kind=kind))

    def _told(self, screen: str, kind: str, report) -> None:
        """Say in the robot's own log, once per screen and kind in a run, that the screen drifts."""
        if not isinstance(report, dict) or not report.get("warning") or (screen, kind) in self._warned:
            return
        self._warned.add((screen, kind))
        changes = "; ".join(str(c) for c in (report.get("changes") or [])[:3])
        sdk.log.warning("botwatch: screen %s has drifted from its baseline (%s snapshot, score %.2f, warning at "
                        "%.2f)%s", screen, kind, float(report.get("score") or 0.0),
                        float(report.get("drift_warning") or 0.0), f": {changes}" if changes else "")


def _screen_tag(tags) -> str | None:
    for tag in tags:
        if tag[:7].lower() == "screen:" and tag[7:].strip():
            return tag[7:].strip()
    return None


def _capture(library, flavour: str, kind: str):
    if flavour == "selenium":
        driver = library.driver  # raises when no browser is open
        return driver.page_source if kind == "html" else driver.get_screenshot_as_png()
    if kind == "html":
        return library.get_page_source()
    return None  # Browser library screenshots are not captured


def _arguments(data, implementation) -> dict | None:
    """The keyword's arguments by name, resolved as Robot Framework resolves them for the call."""
    spec = getattr(implementation, "args", None)
    names = list(getattr(spec, "positional", ()) or ())
    named_only = list(getattr(spec, "named_only", ()) or ())
    if not any(n in names or n in named_only for n in LOCATOR_ARGS):
        return None
    try:
        from robot.running.context import EXECUTION_CONTEXTS

        positional, named = implementation.resolve_arguments(
            data.args, getattr(data, "named_args", None), EXECUTION_CONTEXTS.current.variables)
    except Exception:
        positional, named = [], []
        for arg in getattr(data, "args", ()):
            key, sep, value = arg.partition("=") if isinstance(arg, str) else ("", "", arg)
            if sep and key in names + named_only:
                named.append((key, value))
            elif not named:
                positional.append(arg)
    args = dict(zip(names, positional))
    args.update((str(k), v) for k, v in named)
    return args


def _elapsed(result, started: float) -> float:
    elapsed = getattr(result, "elapsed_time", None)
    if isinstance(elapsed, timedelta):
        return max(0.0, elapsed.total_seconds())
    return max(0.0, time.monotonic() - started)


def _sum(waits) -> float | None:
    known = [w for w in waits if w is not None]
    return sum(known) if known else None
