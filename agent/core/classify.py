"""Failure reasons for failed runs, from the taxonomy in the design (patterns are data)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from . import exitcodes, vocabulary

if TYPE_CHECKING:
    from ..config.estate import Estate

REASONS = vocabulary.REASONS  # the failure taxonomy, also read from here

CONSECUTIVE_SYSTEM_EXCEPTIONS = "The maximum number of consecutive system exceptions was reached"
# Signals that mean the bot itself crashed, as opposed to being stopped by someone.
_CRASH_SIGNALS = {4, 6, 7, 8, 11}  # SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV
_CRASH = re.compile(
    r"Traceback \(most recent call last\):|Segmentation fault|core dumped|Unhandled exception|"
    r"Fatal Python error|panic: |Exception in thread \"main\"|System\.\w+Exception(?!: ?Business)"
)
# No regex, built in or from the estate file, sees more of one text than this: a longer text
# is read as its first and last halves (the exception a message starts with, the traceback an
# output ends with). As much as the wrapper keeps of a bot's output; it bounds the time any
# pattern takes, even an estate's own slow one, on a hostile line of megabytes.
MAX_MATCHED_CHARS = 64 * 1024


def clip(text: str) -> str:
    """`text` as the patterns see it: whole up to MAX_MATCHED_CHARS, else its first and last
    halves, on lines of their own (a pattern within one line cannot join them)."""
    if len(text) <= MAX_MATCHED_CHARS:
        return text
    half = MAX_MATCHED_CHARS // 2
    return text[:half] + "\n" + text[-half:]


@dataclass(frozen=True)
class Pattern:
    reason: str
    regex: re.Pattern[str]
    kind: str | None = None
    # text every match contains (lower-cased when the pattern ignores case): a plain substring
    # test rules most texts out several times faster than the regex's search
    literal: str | None = None
    ignore_case: bool = False


@dataclass(frozen=True)
class Classification:
    reason: str
    kind: str | None = None  # for ui_drift: not_found | ambiguous | wrong_app
    evidence: str | None = None  # the matched text, for the run record


def _required_text(regex: re.Pattern[str]) -> str | None:
    """The longest run of plain characters every match of `regex` contains (outside groups,
    alternatives and repeats), if at least 3 long: what a text must hold for a search to find
    anything. None when there is none or the pattern cannot be taken apart."""
    try:
        if TYPE_CHECKING:  # the stubs describe the parser under its older public names
            import sre_constants
            import sre_parse
        else:
            from re import _constants as sre_constants, _parser as sre_parse  # the standard library's own parser

        parsed = sre_parse.parse(regex.pattern, regex.flags)
        best = ""
        run: list[str] = []
        for op, arg in [*parsed.data, (None, None)]:  # the parsed items, as iterating `parsed` gives them
            if op is sre_constants.LITERAL:
                run.append(chr(cast(int, arg)))  # a literal's argument is its code point
                continue
            if len(run) > len(best):
                best = "".join(run)
            run = []
    except Exception:
        return None
    return best if len(best) >= 3 else None


def _compile(item: dict[str, Any]) -> Pattern:
    text = item.get("regex") or re.escape(item["contains"])
    regex = re.compile(text, re.IGNORECASE if item.get("ignore_case") else 0)
    ignore_case = bool(regex.flags & re.IGNORECASE)  # also set inline, as `(?i)...`
    literal = item["contains"] if not item.get("regex") else _required_text(regex)
    if literal is not None and ignore_case:
        # lower-cased text and literal agree with the regex's case folding for ASCII only
        literal = literal.lower() if literal.isascii() else None
    return Pattern(item["reason"], regex, item.get("kind"), literal, ignore_case)


PATTERN_KEYS = ("reason", "contains", "regex", "kind", "ignore_case")


def matcher_problem(contains: object, regex: object) -> str | None:
    """What is wrong with a pattern's matcher: it needs exactly one of `contains` and `regex`,
    and a regex that compiles (the estate's validation and a client's reading share this)."""
    if (contains is None) == (regex is None):
        return "a failure pattern needs exactly one of 'contains' or 'regex'"
    if isinstance(regex, str):
        try:
            re.compile(regex)
        except re.error as exc:
            return f"invalid regex {regex!r}: {exc}"
    return None


_FLAGS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False, "1": True, "0": False,
          "t": True, "f": False, "y": True, "n": False}


def flag(value: object) -> bool | None:
    """A yes/no setting as the estate's validation reads it (YAML booleans, 0/1, and the words
    it accepts: 'yes', 'off'...); None when it is none of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _FLAGS.get(value.strip().lower())
    return None


def pattern_problem(item: object) -> str | None:
    """What is wrong with one failure pattern as an estate file gives it (None: nothing): the
    checks the estate's full validation makes, for a client that reads the patterns alone."""
    if not isinstance(item, dict):
        return "a failure pattern is a mapping with 'reason' and 'contains' or 'regex'"
    for key in item:
        if key not in PATTERN_KEYS:
            return f"unknown key {key!r}"
    if item.get("reason") not in REASONS:
        return f"reason must be one of {', '.join(REASONS)} (got {item.get('reason')!r})"
    for key in ("contains", "regex"):
        if item.get(key) is not None and not isinstance(item[key], str):
            return f"{key} must be text"
    if item.get("kind") is not None and item["kind"] not in vocabulary.LOOKUP_KINDS:
        return f"kind must be one of {', '.join(vocabulary.LOOKUP_KINDS)} (got {item['kind']!r})"
    if flag(item.get("ignore_case", False)) is None:
        return "ignore_case must be true or false"
    return matcher_problem(item.get("contains"), item.get("regex"))


def default_patterns() -> list[Pattern]:
    import yaml

    raw = resources.files("botwatch.core").joinpath("failure_patterns.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: a failed run's path waits for this
    return [_compile(item) for item in yaml.load(raw, Loader=loader)]


class Classifier:
    def __init__(self, extra: list[dict[str, Any]] | None = None, *, include_defaults: bool = True) -> None:
        self.patterns = [_compile(p) for p in (extra or [])]
        if include_defaults:
            self.patterns += default_patterns()

    @classmethod
    def for_estate(cls, estate: Estate) -> Classifier:
        return cls([p.model_dump(exclude_none=True) for p in estate.failure_patterns])

    def classify(self, *, exit_status: int | None = None, signal: int | None = None,
                 timed_out: bool = False, output: str = "") -> Classification:
        if timed_out:
            return Classification("timeout")
        windows = exitcodes.reason(exit_status) if exit_status is not None and not 0 <= exit_status <= 255 else None
        if (signal is not None and signal not in _CRASH_SIGNALS) or windows == "killed":
            return Classification("killed")
        output = clip(output or "")
        found = self.match(output)
        if found:
            return found
        if signal is not None or windows == "crash" or _CRASH.search(output):
            return Classification("crash")
        return Classification("unknown")

    def match(self, output: str) -> Classification | None:
        """The earliest pattern match in `output` (as `clip` leaves it), with the REFramework
        drift rule applied."""
        if not output:
            return None
        output = clip(output)
        best: tuple[int, int, Pattern, str] | None = None
        has_ui = None
        lowered = None
        for order, pat in enumerate(self.patterns):
            if pat.literal is not None:
                if pat.ignore_case:
                    if lowered is None:
                        lowered = output.lower()
                    if pat.literal not in lowered:
                        continue
                elif pat.literal not in output:
                    continue
            m = pat.regex.search(output)
            if not m:
                continue
            if pat.reason == "ui_drift" and has_ui is None:
                has_ui = (pat, m.group(0))
            key = (m.start(), order)
            if best is None or key < best[:2]:
                best = (m.start(), order, pat, m.group(0))
        if best is None:
            return None
        # A run that gave up after repeated system exceptions, with UI errors among them,
        # is drift whatever came first: the UI kept failing until the framework stopped.
        if has_ui and CONSECUTIVE_SYSTEM_EXCEPTIONS in output and best[2].reason != "credentials":
            return Classification("ui_drift", has_ui[0].kind, has_ui[1][:200])
        return Classification(best[2].reason, best[2].kind, best[3][:200])
