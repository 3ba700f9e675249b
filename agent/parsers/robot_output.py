"""Robot Framework `output.xml`: one run per execution (one `robot` invocation), its tasks as steps.

Sample config (under the bot, in botwatch.yaml):

    bots:
      - name: invoice-portal
        platform: robotframework
        watch:
          logs:
            - {path: /srv/bots/invoice-portal/output.xml, format: robot}

Each complete `output.xml` gives a `run_started`, one `step` per task (`<test>` element; in RPA
mode tasks are still written as `<test>`) with PASS -> pass, FAIL -> fail, SKIP and NOT RUN ->
skip, and a `run_finished`. The run fails when a task failed; the first failing task's message
is classified for the reason (`Element with locator 'id:submit' not found.` -> `ui_drift`) and
kept, redacted, as the run's output excerpt. A failed suite teardown fails every task of its
suite, with Robot Framework's own messages ("Parent suite teardown failed: ..."), exactly as
`robot.api.ExecutionResult` reports them.

Both schema generations are read:

- up to RF 6 (schemaversion none, 2, 3, 4; also `--legacyoutput` of RF 7): `<status
  starttime= endtime=>` as `YYYYMMDD HH:MM:SS.mmm`;
- RF 7 (schemaversion 5): `<status start= elapsed=>`, ISO 8601 and seconds.

Robot Framework writes both in local time without a zone, so the times are read in the local
timezone of the host that parses the file: parse on the bot's host (or one in its timezone).

The run id is "robot-" + a hash of the bot, the root suite's name and its start time (to the
millisecond): the same file read again, the same run written in the other schema, and the
same run reported live by the listener (botwatch.integrations.robot) all get the same id, so
the journal records the run once.

The XML is read with the standard library's expat parser as a stream (large outputs are
fine) and any DOCTYPE is refused: Robot Framework never writes one, and entity declarations
are how "billion laughs" and external-entity files attack XML readers. Robot Framework itself
is not needed to read its files.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timedelta
from xml.parsers import expat

from .._platform.sharing import open_shared
from ..core.events import Event, RunFinished, RunStarted, StepFinished
from ..core.safexml import refuse_doctypes
from ..client.runrecord import CLASSIFIED_CHARS, output_tail
from .base import FileParser, IncompleteFile, ParseError

__all__ = ["RobotOutputParser", "parse_output_xml", "IncompleteOutputError", "run_id_for", "bot_name_for_suite",
           "parse_robot_time", "STATUSES", "SOURCE"]

SOURCE = "log:robot"
STATUSES = {"PASS": "pass", "FAIL": "fail", "SKIP": "skip", "NOT RUN": "skip"}  # anything else: skip
MAX_STEP_NAME = 200
MAX_MESSAGE = 4096  # a step's message, as the events API accepts it
MAX_COLLECTED = CLASSIFIED_CHARS  # of one status message: as much as the classifier reads of a bot's output
_CHUNK = 1 << 16
_NOT_ROBOT = "not a Robot Framework output.xml"
_LEGACY_TIME = re.compile(r"^\d{8} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?$")
_NO_ELEMENTS = expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS]
_INCOMPLETE = {_NO_ELEMENTS, expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
               expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR]}


class IncompleteOutputError(IncompleteFile, ValueError):
    """The file stops before the run's end: Robot Framework is still writing it (it writes
    output.xml as the run goes), or was killed. Read it again once it is complete."""


# -- shared with the listener ----------------------------------------------------------------

def parse_robot_time(value: str | None) -> datetime | None:
    """A Robot Framework timestamp of either generation (`20231116 17:35:01.759` or ISO 8601),
    as a datetime (naive: local time); None for none, "N/A" or an unreadable value."""
    if not value or value == "N/A":
        return None
    try:
        if _LEGACY_TIME.match(value):
            v = value.ljust(24, "0")
            return datetime(int(v[:4]), int(v[4:6]), int(v[6:8]), int(v[9:11]), int(v[12:14]), int(v[15:17]),
                            int(v[18:24]))
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def run_id_for(bot: str, suite_name: str, start: datetime | str) -> str:
    """The run id of one execution: the same from output.xml (either schema) and the listener."""
    key = start.isoformat(timespec="milliseconds") if isinstance(start, datetime) else str(start)
    digest = hashlib.sha256("\0".join((bot, suite_name, key)).encode("utf-8", "surrogatepass")).hexdigest()
    return "robot-" + digest[:32]


def bot_name_for_suite(suite_name: str) -> str | None:
    """The bot a suite stands for when none is named: lowercased, spaces (and anything outside
    [a-z0-9_-]) to `-`, e.g. "Invoice Portal" -> "invoice-portal"."""
    name = re.sub(r"[^a-z0-9_-]+", "-", (suite_name or "").strip().lower()).strip("-")[:64]
    return name or None


def timestamp(dt: datetime | None) -> float | None:
    """Seconds since the epoch; a naive datetime is local time. None if there is none (or it
    is outside what the platform's clock can represent)."""
    if dt is None:
        return None
    try:
        return dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def step_message(text: str | None) -> str | None:
    if not text:
        return None
    from ..core.redact import redact

    return redact(text[:MAX_COLLECTED])[:MAX_MESSAGE] or None


def step_name(name: str | None) -> str:
    return (name or "task")[:MAX_STEP_NAME]


# -- the model read from the file ------------------------------------------------------------

class _Status:
    __slots__ = ("status", "start", "end", "message")

    def __init__(self):
        self.status = "FAIL"  # as Robot Framework: an item without a status attribute failed
        self.start: datetime | None = None
        self.end: datetime | None = None
        self.message = ""


class _Test(_Status):
    __slots__ = ("name", "keywords")

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.keywords: list[_Keyword] = []  # the test's own body (not what those keywords call)


class _Keyword(_Status):
    __slots__ = ("name",)

    def __init__(self, name: str):
        super().__init__()
        self.name = name


# body items of a test that become steps beneath it (RF 4+ writes control structures as their
# own elements; older versions as <kw type="for">)
_BODY_ITEMS = {"kw", "for", "while", "if", "try", "group"}
_KEYWORD_TYPES = {"kw", "keyword", "setup", "teardown"}
MAX_KEYWORDS_PER_TEST = 200


class _Suite(_Status):
    __slots__ = ("name", "tests", "teardown", "has_status", "start_raw")

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.tests: list[_Test] = []  # every test of this suite and its child suites, in file order
        self.teardown: _Status | None = None
        self.has_status = False
        self.start_raw: str | None = None


class _Teardown(_Status):
    __slots__ = ()


class _StatusElement:
    __slots__ = ("owner", "attrs", "text", "size")

    def __init__(self, owner: _Status, attrs: dict):
        self.owner, self.attrs, self.text, self.size = owner, attrs, [], 0


_ROBOT = object()  # the <robot> root element's frame


class _Reader:
    """expat callbacks: keeps suites, tests and suite teardowns, skips everything else."""

    def __init__(self):
        self.stack: list = []
        self.robot_attrs: dict | None = None
        self.root: _Suite | None = None
        self.closed = False  # </robot> seen

    def start(self, tag: str, attrs: dict) -> None:
        parent = self.stack[-1] if self.stack else None
        frame = None
        if not self.stack:
            if tag != "robot":
                raise ParseError(f"{_NOT_ROBOT}: the root element is <{tag}>, not <robot>")
            self.robot_attrs = attrs
            frame = _ROBOT
        elif parent is _ROBOT:
            if tag == "suite":
                if self.root is not None:
                    raise ParseError(f"{_NOT_ROBOT}: more than one root <suite>")
                frame = self.root = _Suite(attrs.get("name", ""))
        elif isinstance(parent, _Suite):
            if tag == "suite":
                frame = _Suite(attrs.get("name", ""))
            elif tag == "test":
                frame = _Test(attrs.get("name", ""))
            elif tag == "status":
                frame = _StatusElement(parent, attrs)
            elif tag == "kw" and (attrs.get("type") or "").lower() == "teardown":
                frame = parent.teardown = _Teardown()
        elif isinstance(parent, _Test):
            if tag == "status":
                frame = _StatusElement(parent, attrs)
            elif tag in _BODY_ITEMS and len(parent.keywords) < MAX_KEYWORDS_PER_TEST:
                kind = (attrs.get("type") or "kw").lower() if tag == "kw" else tag
                # a keyword by its name; a control structure (RF 4+: its own element, older: <kw
                # type="for">) by its type, as Robot Framework's own model names them
                frame = _Keyword(attrs.get("name", "") if kind in _KEYWORD_TYPES else kind.upper())
        elif isinstance(parent, (_Teardown, _Keyword)):
            if tag == "status":
                frame = _StatusElement(parent, attrs)
        self.stack.append(frame)

    def text(self, data: str) -> None:
        frame = self.stack[-1] if self.stack else None
        if isinstance(frame, _StatusElement) and frame.size < MAX_COLLECTED:
            frame.text.append(data)
            frame.size += len(data)

    def end(self, tag: str) -> None:
        frame = self.stack.pop()
        if frame is None:
            return
        if frame is _ROBOT:
            self.closed = True
        elif isinstance(frame, _StatusElement):
            _set_status(frame)
        elif isinstance(frame, _Test):
            self.stack[-1].tests.append(frame)
        elif isinstance(frame, _Keyword):
            self.stack[-1].keywords.append(frame)
        elif isinstance(frame, _Suite):
            _suite_teardown(frame)
            parent = self.stack[-1]
            if isinstance(parent, _Suite):
                parent.tests.extend(frame.tests)


def _set_status(element: _StatusElement) -> None:
    owner, attrs = element.owner, element.attrs
    owner.status = attrs.get("status", "FAIL")
    if "elapsed" in attrs:  # RF >= 7
        owner.start = parse_robot_time(attrs.get("start"))
        try:
            elapsed = float(attrs["elapsed"])
        except ValueError:
            elapsed = None
        if owner.start is not None and elapsed is not None:
            try:
                owner.end = owner.start + timedelta(seconds=max(0.0, elapsed))
            except OverflowError:  # elapsed="inf" or past the year 9999: no end time
                owner.end = None
    else:  # RF < 7, and RF 7's --legacyoutput
        owner.start = parse_robot_time(attrs.get("starttime"))
        owner.end = parse_robot_time(attrs.get("endtime"))
    owner.message = "".join(element.text)[:MAX_COLLECTED]
    if isinstance(owner, _Suite):
        owner.has_status = True
        owner.start_raw = attrs.get("start") or attrs.get("starttime")


def _suite_teardown(suite: _Suite) -> None:
    """A failed (or skipped) suite teardown changes its tests as Robot Framework's result
    model does (robot.result.suiteteardownfailed)."""
    td = suite.teardown
    if td is None:
        return
    if td.status == "FAIL":
        for test in suite.tests:
            if test.status != "SKIP":
                test.status = "FAIL"
            if test.message:
                test.message += f"\n\nAlso parent suite teardown failed:\n{td.message}"
            else:
                test.message = f"Parent suite teardown failed:\n{td.message}"
    elif td.status == "SKIP":
        for test in suite.tests:
            test.status = "SKIP"
            if test.message:
                test.message = f"Skipped in parent suite teardown:\n{td.message}\n\nEarlier message:\n{test.message}"
            else:
                test.message = f"Skipped in parent suite teardown:\n{td.message}"


def _read(source: str | os.PathLike | bytes | bytearray) -> _Reader:
    reader = _Reader()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text

    def refuse(*_args):
        raise ParseError(f"{_NOT_ROBOT}: it has a DOCTYPE, which Robot Framework never writes; refused "
                         "(entity declarations can expand without bound or read other files)")

    refuse_doctypes(parser, refuse)
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            parser.Parse(bytes(source), True)
        else:
            with open_shared(source) as f:  # Robot may replace it meanwhile
                while chunk := f.read(_CHUNK):
                    parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        if exc.code in _INCOMPLETE:  # these only happen where the input ends
            if reader.robot_attrs is None and exc.code == _NO_ELEMENTS:
                raise IncompleteOutputError(f"{_NOT_ROBOT}: the file is empty") from None
            raise IncompleteOutputError(f"{_NOT_ROBOT}: incomplete, it ends before </robot> ({exc}); Robot "
                                        "Framework may still be writing it") from None
        raise ParseError(f"{_NOT_ROBOT}: malformed XML ({exc})") from None
    if not reader.closed:  # expat reports a missing end tag; this is only a safety net
        raise IncompleteOutputError(f"{_NOT_ROBOT}: incomplete, </robot> is missing")
    if reader.root is None:
        raise ParseError(f"{_NOT_ROBOT}: <robot> has no <suite>")
    if not reader.root.has_status:
        raise ParseError(f"{_NOT_ROBOT}: the root suite has no <status>")
    return reader


# -- events ------------------------------------------------------------------------------------

_default_classifier = None


def _classifier():
    global _default_classifier
    if _default_classifier is None:
        from ..core.classify import Classifier

        _default_classifier = Classifier()
    return _default_classifier


def parse_output_xml(source: str | os.PathLike | bytes | bytearray, bot: str, *, classifier=None,
                     source_name: str = SOURCE) -> list[Event]:
    """The events of the execution recorded in an output.xml (a path, or its bytes).

    Raises ParseError, a ValueError ("not a Robot Framework output.xml: ..."), for other XML,
    malformed or refused XML, and IncompleteOutputError (an IncompleteFile and a ValueError)
    for a file still being written.
    `classifier` (a botwatch.core.classify.Classifier, e.g. with the estate's failure_patterns)
    gives the failure reason; the built-in patterns by default.
    """
    reader = _read(source)
    root = reader.root
    generated = (reader.robot_attrs or {}).get("generated")
    started = timestamp(root.start) if root.start is not None else timestamp(parse_robot_time(generated))
    if started is None:
        raise ParseError(f"{_NOT_ROBOT}: the root suite has no start time, and <robot> no 'generated' time")
    tests = root.tests
    end = timestamp(root.end)
    if end is None:
        end = max((t for t in (timestamp(test.end) for test in tests) if t is not None), default=None)
    ended = max(started, end) if end is not None else started
    run_id = run_id_for(bot, root.name, root.start if root.start is not None else (generated or ""))

    events: list[Event] = [RunStarted(bot=bot, run_id=run_id, time=started, source=source_name)]
    first_failure = None
    for test in tests:
        status = STATUSES.get(test.status, "skip")
        if status == "fail" and first_failure is None:
            first_failure = test
        t_start = timestamp(test.start)
        t_end = timestamp(test.end)
        t_ended = t_end if t_end is not None else (t_start if t_start is not None else ended)
        events.append(StepFinished(bot=bot, run_id=run_id, name=step_name(test.name), ended=t_ended,
                                   status=status, started=t_start, message=step_message(test.message),
                                   source=source_name))
        for kw in test.keywords:  # steps beneath the task, for the run's trace
            k_start, k_end = timestamp(kw.start), timestamp(kw.end)
            events.append(StepFinished(bot=bot, run_id=run_id, name=step_name(kw.name),
                                       ended=k_end if k_end is not None else (k_start if k_start is not None else t_ended),
                                       status=STATUSES.get(kw.status, "skip"), started=k_start,
                                       message=step_message(kw.message), source=source_name,
                                       parent=step_name(test.name)))
    outcome, message = "success", None
    if first_failure is not None:
        outcome, message = "failure", first_failure.message
    elif not tests and root.status == "FAIL":
        outcome, message = "failure", root.message
    reason = None
    if outcome == "failure":
        reason = (classifier or _classifier()).classify(exit_status=None, output=message or "").reason
    events.append(RunFinished(bot=bot, run_id=run_id, ended=ended, outcome=outcome, started=started,
                              reason=reason, output_tail=output_tail(message) if outcome == "failure" else None,
                              source=source_name))
    return events


class RobotOutputParser(FileParser):
    """The `format: robot` parser of a watched log: the whole file is one execution, read again
    when it changes (Robot Framework rewrites output.xml on every run).

    `bot` is the bot's name or its BotConfig; `classifier` the estate's Classifier (the
    built-in failure patterns if None)."""

    source = SOURCE

    def __init__(self, bot, spec=None, classifier=None):
        self.bot: str = getattr(bot, "name", bot)
        self.spec, self.classifier = spec, classifier

    def parse_file(self, path: str | os.PathLike) -> list[Event]:
        """The run recorded in `path`. ParseError (a ValueError) for a file that is not an
        output.xml; IncompleteOutputError (an IncompleteFile, and a ValueError) while Robot
        Framework is still writing it."""
        return parse_output_xml(path, self.bot, classifier=self.classifier, source_name=self.source)
