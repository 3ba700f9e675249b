"""The parser interface shared by every log format, and the registry of formats.

A parser is made per (bot, `LogSpec`) by the factory registered under the spec's `format`:
`PARSERS[format](bot, spec, classifier)`, where `bot` is the `BotConfig` and `classifier` the
estate's `Classifier` (failure reasons). There are two kinds:

- `LineParser` (uipath, regex, python): the log watcher feeds it every complete line of the
  bot's files, in order, and applies the events it returns. A line that is not in the
  format raises `ParseError`; the watcher counts it in
  `botwatch_agent_parse_errors_total{source}` and goes on with the next line. Runs in
  progress live in the parser; `snapshot()` and `restore()` let the watcher keep them in the
  journal together with the file offsets, so a restarted agent neither loses a run's errors
  nor counts a line twice.
- `FileParser` (robot): the file is read whole (Robot Framework's output.xml) when it changed.
  `parse_file()` raises `IncompleteFile` while the file is still being written; the watcher
  tries again on the next change.

Events carry the times written in the log, never the time the line was read, whenever the
log has them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.classify import MAX_MATCHED_CHARS
from ..core.events import Event, RunFinished
from ..core.redact import redact
from ..client.runrecord import error_tail

if TYPE_CHECKING:  # pragma: no cover
    from ..core.classify import Classifier
    from ..config.estate import BotConfig, LogSpec


class ParseError(ValueError):
    """This line (or file) is not in the parser's format: counted and skipped."""


class IncompleteFile(Exception):
    """A whole-file log is still being written: try again when it changes."""


@dataclass(slots=True)
class Fed:
    """What a batch of lines gave: events, and counts for the watcher's self-monitoring."""

    events: list[Event] = field(default_factory=list)
    lines: int = 0  # lines read (blank ones are not counted)
    errors: int = 0  # lines not in the format (counted, skipped)
    failure: Exception | None = None  # the first unexpected parser failure, to log


class LineParser:
    """Turns the lines of a log into events. Subclasses set `source` (e.g. "log:uipath")."""

    source: str = "log"

    def feed(self, line: str) -> list[Event]:
        """Events for one line (without its line ending); raise ParseError if it is not in the format."""
        raise NotImplementedError

    def feed_lines(self, lines: list[str]) -> Fed:
        """`feed` every line in order, skipping blank ones. A parser overrides it to read the lines
        that cannot matter (most of a log) without a call each; the events must be the same."""
        out = Fed()
        events, feed = out.events, self.feed
        for line in lines:
            if not line or line.isspace():
                continue
            out.lines += 1
            try:
                events += feed(line)
            except ParseError:
                out.errors += 1
            except Exception as exc:  # a parser bug costs the line, never the watcher
                out.errors += 1
                out.failure = out.failure or exc
        return out

    def is_complete(self, text: str) -> bool:
        """Whether `text`, a last line without its line ending yet, is certainly whole (e.g. a
        complete JSON object). Only then is it read before the writer ends it; else it waits."""
        return False

    def snapshot(self) -> dict[str, Any]:
        """What the parser holds between lines (runs in progress), as JSON-able data."""
        return {}

    def restore(self, data: dict[str, Any]) -> None:
        """Take back a `snapshot()` (after an agent restart, or a batch that was not stored)."""

    def open_runs(self) -> list[Event]:
        """`RunStarted` for the runs in progress, to re-announce them after a restore."""
        return []


class FileParser:
    """Reads a whole file into events (formats written as one document, e.g. output.xml)."""

    source: str = "log"

    def parse_file(self, path: Path) -> list[Event]:
        """Events for the file; raise IncompleteFile while it is being written, ParseError if
        it is not in the format."""
        raise NotImplementedError


ParserFactory = Callable[["BotConfig", "LogSpec", "Classifier"], "LineParser | FileParser"]


def _uipath(bot, spec, classifier):
    from .uipath import UiPathParser

    return UiPathParser(bot, spec, classifier)


def _regex(bot, spec, classifier):
    from .lines import RegexParser

    return RegexParser(bot, spec, classifier)


def _python(bot, spec, classifier):
    from .lines import PythonLogParser

    return PythonLogParser(bot, spec, classifier)


def _robot(bot, spec, classifier):
    from .robot_output import RobotOutputParser

    return RobotOutputParser(bot, spec, classifier)


PARSERS: dict[str, ParserFactory] = {
    "uipath": _uipath,
    "regex": _regex,
    "python": _python,
    "robot": _robot,
}


def make_parser(bot: "BotConfig", spec: "LogSpec", classifier: "Classifier") -> "LineParser | FileParser":
    """The parser for one log of one bot; KeyError if its format is not available."""
    return PARSERS[spec.format](bot, spec, classifier)


# --- helpers shared by the parsers ---------------------------------------------------------

MAX_KEPT_ERRORS = 10  # error messages kept per run (the first ones: the root cause comes first)
MAX_MESSAGE_CHARS = 1000  # of each kept message
MAX_OPEN_RUNS = 256  # runs in progress held per parser (a run whose end never comes is dropped oldest first)

_EPOCH_S = re.compile(r"\d{9,10}(?:\.\d+)?")
_EPOCH_MS = re.compile(r"\d{12,13}")
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
_FORMATS = ("%Y%m%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M:%S.%f", "%d/%b/%Y:%H:%M:%S %z",
            "%d.%m.%Y %H:%M:%S", "%b %d %Y %H:%M:%S")


def parse_time(text: str, tz: tzinfo | None = None) -> float | None:
    """Epoch seconds of a timestamp as logs write them (ISO 8601 with any number of fractional
    digits, `,` before milliseconds as Python's asctime has it, epoch seconds or milliseconds,
    a few other common layouts); a time without a zone is in `tz` (UTC if None). None if it
    cannot be read."""
    s = text.strip()
    if not s:
        return None
    if _EPOCH_S.fullmatch(s):
        return float(s)
    if _EPOCH_MS.fullmatch(s):
        return int(s) / 1000.0
    try:  # most logs write ISO 8601, which Python 3.11 reads whole (any fraction, Z, comma)
        dt = datetime.fromisoformat(s)
    except ValueError:
        pass
    else:
        return (dt if dt.tzinfo is not None else dt.replace(tzinfo=tz or timezone.utc)).timestamp()
    iso = s.replace(",", ".", 1) if re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2},\d", s) else s
    if iso[-1:] in ("Z", "z"):
        iso = iso[:-1] + "+00:00"
    iso = _LONG_FRACTION.sub(r"\1", iso)
    dt = None
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        for fmt in _FORMATS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz or timezone.utc)
    return dt.timestamp()


def stable_id(prefix: str, *parts: object) -> str:
    """A run id derived from what identifies the run in the log (same input, same id)."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8", "replace")).hexdigest()
    return f"{prefix}-{h[:16]}"


def redacted_head(text: str, limit: int) -> str:
    """The first `limit` characters of `text`, redacted. The rules read its first
    MAX_MATCHED_CHARS only: far more than a secret that starts in the part kept needs, and a
    line of megabytes costs no more than that."""
    return redact(text[:MAX_MATCHED_CHARS])[:limit]


def keep_error(errors: list[str], message: str) -> int:
    """Add an error message to a run's list, bounded; returns 1 if it was dropped (counted)."""
    if len(errors) >= MAX_KEPT_ERRORS:
        return 1
    text = message.strip()
    cut = len(text) > MAX_MATCHED_CHARS
    text = redact(text[:MAX_MATCHED_CHARS])
    if cut or len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + " [...]"
    errors.append(text)
    return 0


def finished_run(bot: str, run_id: str, *, ended: float, started: float | None, errors: list[str], more: int,
                 classifier: "Classifier", source: str, failed: bool = False, unhandled: bool = False,
                 abandoned: bool = False, host: str | None = None) -> RunFinished:
    """The end of a run read from a log: failed when it logged errors (or its end said so), with
    the reason its errors give; `unknown` when it was abandoned (its end never logged); else a
    success. A start after the end (clock steps in the log) is taken as the end."""
    if errors or failed:
        outcome, reason = "failure", reason_for(classifier, errors, unhandled=unhandled)
    elif abandoned:
        outcome, reason = "unknown", None
    else:
        outcome, reason = "success", None
    if started is not None and started > ended:
        started = ended
    return RunFinished(bot, run_id, ended=ended, outcome=outcome, started=started, reason=reason, host=host,
                       output_tail=error_tail(errors, more), source=source)


def reason_for(classifier: "Classifier", errors: list[str], *, unhandled: bool = False) -> str:
    """The failure reason of a run from its error messages: the taxonomy's earliest match (the
    first error is usually the root cause), else `crash` if the platform reported an unhandled
    exception (or the text shows a traceback), else `unknown`."""
    text = "\n".join(errors)
    found = classifier.match(text)
    if found is not None:
        return found.reason
    if unhandled:
        return "crash"
    return classifier.classify(output=text).reason
