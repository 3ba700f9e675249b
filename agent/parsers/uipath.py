"""UiPath Robot execution logs: runs and their errors from the log the Robot writes.

Two shapes of line are read:

- the Robot's own file, `%LOCALAPPDATA%\\UiPath\\Logs\\<yyyy-MM-dd>_Execution.log`, NLog layout
  `${time} ${level} ${message}`: `HH:mm:ss.ffff <Info|Warn|Error|...> {json}`, CRLF or LF;
- bare JSON lines, one log entry per line, as log shippers and exports hold them (Elastic's
  `_source`, Splunk's `result._raw` and Orchestrator's `RawMessage` are unwrapped).

JSON keys are matched case-insensitively (`message`, `level`, `timeStamp`, `processName`,
`jobId`, `robotName`, `machineName`, `logType`, `totalExecutionTimeInSeconds`, ...).

A run is bounded by the Robot's `<process> execution started` and `<process> execution ended`
lines (logType Default; a workflow's own Log Message lines, logType User, never bound a run),
and identified by its `jobId`. It starts and ends at the entries' `timeStamp`s; a run whose
start was not seen (the agent began mid-run, or the log was already rotated) starts at its end
minus `totalExecutionTimeInSeconds`. Every Error or Fatal line belongs to its job: a run with
one fails, with the reason the failure taxonomy gives its error messages (earliest match
first), else `crash` when the Robot itself reported the error (logType Default: an exception
that faulted the job), else `unknown`. The failed run's output tail is its redacted error
messages. Without an error the run succeeded. The agent did not start the process, so no
exit status is recorded: the outcome comes from the log.

Selector health: an error whose message the taxonomy reads as a UI failure (the ui_drift
patterns: SelectorNotFoundException, "Cannot find the UI element corresponding to this
selector", ...) is also a failed UI look-up (`kind` from the pattern), and a line of the Healing
Agent or of self-healing ("Healing Agent ... healed/recovered/applied", "self-healed",
"selector was healed") a healed one; the screen is the `title` of the selector's window
(`<html app='chrome.exe' title='Invoices' />`), else "unknown", the selector the one quoted.

In a log shared by several processes, `process_name` (exact, case-insensitive; `*` and `?`
wildcards allowed) selects the bot's lines; the other lines are skipped without complaint.
A line in neither shape (a Studio trace log, a stack trace, a truncated entry) is a parse
error: counted under `source="log:uipath"` and skipped.

Sample config::

    bots:
      - name: invoice-recon
        platform: uipath
        watch:
          logs:
            - path: C:/Users/robot/AppData/Local/UiPath/Logs/*_Execution.log
              format: uipath
              process_name: InvoiceRecon_Prod   # only this process's lines of the shared log
"""

from __future__ import annotations

import fnmatch
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..core.classify import clip
from ..core.events import Event, RunStarted, StepFinished, UiLookup
from .base import (MAX_OPEN_RUNS, Fed, LineParser, ParseError, finished_run, keep_error, parse_time, redacted_head,
                   stable_id)

SOURCE = "log:uipath"
MAX_OPEN_TRANSACTIONS = 1000  # per run: transactions whose end has not been logged yet
MAX_SELECTOR_CHARS = 1024  # of a selector kept with a failed look-up

_NLOG = re.compile(r"^\s*(?P<time>\d{1,2}:\d{2}:\d{2}(?:[.,:]\d{1,7})?)\s+(?P<level>[A-Za-z]+)\s+(?P<json>\{.*\})\s*$",
                   re.S)
# (`\s*\.?\s*` would be the same words, but tries every split of a run of spaces: quadratic)
_STARTED = re.compile(r"\bexecution started\s*(?:\.\s*)?$", re.I)
_ENDED = re.compile(r"\bexecution ended\s*(?:\.\s*)?$", re.I)
_ERROR_LEVELS = frozenset({"error", "fatal", "critical"})
# An ordinary progress line (most of any log): Robot layout, a quiet level, a JSON object.
_QUIET = re.compile(r"\s*\d{1,2}:\d{2}:\d{2}(?:[.,:]\d{1,7})?\s+(?:Info|Warn|Trace|Debug)\s+\{")
# Healing Agent (and Unified Target self-healing) lines: a look-up whose selector missed and that
# was healed. The Robot logs them at Info or Warn level, so they are looked at besides the errors.
_HEALED = re.compile(r"\bHealing Agent\b.{0,200}?\b(?:heal|recover|fix|appl)|\bself-heal(?:ed|ing)\b|"
                     r"\bselector (?:was )?(?:healed|recovered)\b", re.I)
_SELECTOR_START = re.compile(r"<(?:html|wnd|webctrl|ctrl|uia|java|sap)\b", re.I)
_NEXT_ELEMENT = re.compile(r"\s*<")
_TITLE = re.compile(r"\btitle=(['\"])(.*?)\1")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Record:
    """One UiPath log entry, with the fields a run needs."""

    message: str
    level: str | None  # the entry's own level (Information, Warning, Error, Fatal, ...)
    nlog_level: str | None  # the NLog layout's level (Info, Warn, Error, ...), file lines only
    time_text: str | None
    job: str | None
    process: str | None
    machine: str | None
    robot: str | None
    log_type: str | None
    total_seconds: float | None
    # queue transactions (the Robot's Transaction Start / Transaction End entries)
    transaction_id: str | None = None
    transaction_state: str | None = None
    queue: str | None = None

    @property
    def is_error(self) -> bool:
        return any(lv is not None and lv.lower() in _ERROR_LEVELS for lv in (self.level, self.nlog_level))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    return s if s.strip() else None


def _seconds(d: dict, in_seconds: str = "totalexecutiontimeinseconds",
             as_span: str = "totalexecutiontime") -> float | None:
    v = d.get(in_seconds)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    span = d.get(as_span)
    if isinstance(span, str):
        m = _TIMESPAN.match(span.strip())
        if m:
            days, h, mi, s = m.groups()
            return int(days or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + float(s)
    return None


# The keys of the Robot's log entries, spelled as it writes them (the three generations in the
# corpus, and the ones the parser reads under other names).
_ROBOT_KEYS = frozenset({
    "message", "level", "logType", "timeStamp", "fingerprint", "windowsIdentity", "machineName", "machineId",
    "processName", "processVersion", "fileName", "jobId", "jobKey", "robotName", "organizationUnitId",
    "initiatedBy", "totalExecutionTime", "totalExecutionTimeInSeconds", "hostMachineName", "transactionId",
    "transactionState", "queueName", "activityInfo", "tenantKey",
})


def _lower_keys(d: dict) -> dict:
    return {k.lower(): v for k, v in d.items()}  # JSON keys are always strings


def _unwrap(d: dict, depth: int) -> dict:
    """The log entry inside an export envelope (Elastic `_source`, Splunk `result`/`_raw`,
    Orchestrator `RawMessage`), keys lower-cased."""
    d = _lower_keys(d)
    for envelope in ("_source", "result"):
        inner = d.get(envelope)
        if isinstance(inner, dict) and "message" not in d:
            d = _lower_keys(inner)
    if "message" not in d and isinstance(d.get("_raw"), str) and depth < 2:
        rec = _parse(d["_raw"], depth + 1)
        return {"__record__": rec}
    raw = d.get("rawmessage")
    if isinstance(raw, str) and raw.lstrip().startswith("{") and depth < 2:
        try:
            inner = json.loads(raw)
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            merged = _lower_keys(inner)
            merged.update({k: v for k, v in d.items() if v is not None and k != "rawmessage"})
            d = merged
    return d


def _parse(line: str, depth: int = 0) -> Record:
    nlog_level = None
    level_end = line.find(" {", 13, 24)
    if (level_end > 14 and line[13] == " " and line[2] == ":" and line.endswith("}")
            and line[14:level_end].isalpha()):
        # the Robot's own layout exactly as it writes it: `HH:mm:ss.ffff Level {json}`
        s, nlog_level, payload = line, line[14:level_end], line[level_end + 1:]
    elif (m := _NLOG.match(s := line.strip().lstrip("\ufeff"))) is not None:
        nlog_level, payload = m.group("level"), m.group("json")
    elif s.startswith("{"):
        payload = s
    else:
        raise ParseError("not a UiPath Robot log line (neither `HH:mm:ss.ffff Level {json}` nor a JSON entry)")
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ParseError(f"not a UiPath Robot log line: the JSON does not parse ({exc})") from None
    if not isinstance(data, dict):
        raise ParseError("not a UiPath Robot log line: the JSON is not an object")
    if _ROBOT_KEYS.issuperset(data) and isinstance(data.get("message"), str):
        # keys as the Robot spells them, and no other spelling of any: read without lower-casing
        get = data.get
        return Record(
            message=data["message"], level=_text(get("level")), nlog_level=nlog_level,
            time_text=_text(get("timeStamp")), job=_text(get("jobId") or get("jobKey")),
            process=_text(get("processName")), machine=_text(get("machineName") or get("hostMachineName")),
            robot=_text(get("robotName")), log_type=_text(get("logType")),
            total_seconds=_seconds(data, "totalExecutionTimeInSeconds", "totalExecutionTime"),
            transaction_id=_text(get("transactionId")), transaction_state=_text(get("transactionState")),
            queue=_text(get("queueName")))
    d = _unwrap(data, depth)
    if "__record__" in d:
        return d["__record__"]
    message = d.get("message")
    if not isinstance(message, str):
        raise ParseError("not a UiPath Robot log entry: no `message`")
    return Record(
        message=message,
        level=_text(d.get("level")),
        nlog_level=nlog_level,
        time_text=_text(d.get("timestamp") or d.get("@timestamp") or d.get("_time")),
        job=_text(d.get("jobid") or d.get("jobkey")),
        process=_text(d.get("processname")),
        machine=_text(d.get("machinename") or d.get("hostmachinename")),
        robot=_text(d.get("robotname")),
        log_type=_text(d.get("logtype")),
        total_seconds=_seconds(d),
        transaction_id=_text(d.get("transactionid")),
        transaction_state=_text(d.get("transactionstate") or d.get("transactionstatus")),
        queue=_text(d.get("queuename")),
    )


def parse_record(line: str) -> Record:
    """One line as a UiPath log entry; ParseError if it is not one."""
    return _parse(line)


# Most lines of a Robot log are progress: `HH:mm:ss.ffff Info {"message":"...","level":
# "Information",...}` (or Warn / Warning) with no run boundary in the message. They give no
# event, so they are set aside in one pass, without decoding their JSON and looking only at the
# message (a raw `","level":"` cannot be inside a JSON string: it ends the message); every other
# line goes through `feed`, which looks again.
_PROGRESS_STR = (' Info {"message":"', ' Warn {"message":"', '","level":"', 'Information"', 'Warning"', "xecution",
                 "XECUTION", ("}",), "eal", '"transactionId"')
# the Robot's `HH:mm:ss.ffff` at the start of a line (\d as feed's own patterns read digits)
_CLOCK = re.compile(r"\d\d:\d\d:\d\d[.,:]\d{4}").match
_CLOCK_BYTES = re.compile(rb"\d\d:\d\d:\d\d[.,:]\d{4}").match
# the same in bytes, for lines split at LF alone (a CRLF line keeps its CR)
_PROGRESS_BYTES = tuple((b"}", b"}\r") if isinstance(s, tuple) else s.encode() for s in _PROGRESS_STR)


def _not_progress(lines, clock, info, warn, level, information, warning, x1, x2, brace, heal, transaction):
    """The lines that are not plain progress (str or bytes, with the markers of the same type).
    A message with `eal` in it (Healing Agent, self-healed) is looked at too, and so is an entry
    with a transactionId (a queue transaction's start or end). Progress starts with the Robot's
    `HH:mm:ss.ffff` (`clock`: _CLOCK or _CLOCK_BYTES), so that junk before a progress-like tail
    is counted as an error. `feed` sets aside the same lines first, so that a batch and
    line-by-line feeding agree on events and errors. Only the message is searched for words:
    scanning whole lines cost 5 us each."""
    return [line for line in lines
            if not ((line.startswith(info, 13) and line.startswith(information, (end := line.find(level, 31)) + 11)
                     or line.startswith(warn, 13) and line.startswith(warning, (end := line.find(level, 31)) + 11))
                    and end > 0 and line.find(x1, 31, end) < 0 and line.find(x2, 31, end) < 0
                    and line.find(heal, 31, end) < 0 and line.endswith(brace) and line.find(transaction, end) < 0
                    and clock(line))]


def selector_in(text: str) -> str | None:
    """The first UiPath selector in `text`: an element `<html ...`, `<wnd ...`, `<webctrl ...`,
    `<ctrl ...`, `<uia ...`, `<java ...` or `<sap ...` closed by `/>` on its own line, and the
    elements that follow it (`<webctrl id='btnSend' />`). Linear in the text: a regex search
    would scan to the end of the line from every `<html` of a line of them; here an element
    without a `/>` on its line rules out every later one on that line."""
    pos, close = 0, -1  # close: the first `/>` at or after the element's name
    while True:
        first = _SELECTOR_START.search(text, pos)
        if first is None:
            return None
        if close < first.end():
            close = text.find("/>", first.end())
            if close < 0:
                return None
        newline = text.find("\n", first.end(), close)
        if newline < 0:
            break
        pos = newline + 1
    end = close + 2
    while (m := _NEXT_ELEMENT.match(text, end)) is not None:
        close = text.find("/>", m.end())
        if close < 0 or text.find("\n", m.end(), close) >= 0:
            break
        end = close + 2
    return text[first.start():end]


def _norm(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


class UiPathParser(LineParser):
    source = SOURCE

    def __init__(self, bot, spec, classifier):
        self.bot = bot.name
        self.tz = bot.tz
        self.classifier = classifier
        self.process = _norm(spec.process_name) if spec.process_name else None
        self.process_glob = bool(self.process and any(c in self.process for c in "*?["))
        # job key -> {"run_id", "start", "host", "process", "errors", "more", "unhandled"}
        self.jobs: dict[str, dict] = {}
        self._ui = None  # the classifier's ui_drift patterns (failed look-ups)

    # -- the interface ---------------------------------------------------------------------
    def feed_lines(self, lines: list[str]) -> Fed:
        rest = _not_progress(lines, _CLOCK, *_PROGRESS_STR)
        out = super().feed_lines(rest)
        out.lines += len(lines) - len(rest)
        return out

    def feed_raw_lines(self, lines: list[bytes]) -> Fed:
        """`feed_lines` for UTF-8 lines not yet decoded, split at LF (what the log watcher reads):
        only the lines that may matter are decoded."""
        rest = [(line[:-1] if line.endswith(b"\r") else line).decode("utf-8", "replace")
                for line in _not_progress(lines, _CLOCK_BYTES, *_PROGRESS_BYTES)]
        out = super().feed_lines(rest)
        out.lines += len(lines) - len(rest)
        return out

    def feed(self, line: str) -> list[Event]:
        # Fast paths: a progress line neither bounds a run nor fails it, so its JSON need not be
        # decoded: first what the batch filter sets aside, then any quiet line without a word
        # that might matter (an error level anywhere, "execution", a transaction).
        if not _not_progress((line,), _CLOCK, *_PROGRESS_STR):
            return []
        if ("xecution" not in line and "XECUTION" not in line and "rror" not in line and "atal" not in line
                and "ERROR" not in line and "FATAL" not in line and "eal" not in line and "EAL" not in line
                and '"transactionId"' not in line and '"transactionID"' not in line
                and _QUIET.match(line)
                and line.rstrip().endswith("}")):
            return []
        rec = _parse(line)
        if not self._mine(rec):
            return []
        robot_line = (rec.log_type or "default").lower() != "user"
        message = clip(rec.message)
        if robot_line and ("xecution" in message or "XECUTION" in message):
            if _STARTED.search(message):
                return self._started(rec)
            if _ENDED.search(message):
                return self._ended(rec)
        if rec.transaction_id and robot_line:
            return self._transaction(rec) + (self._error(rec, robot_line) if rec.is_error else [])
        if rec.is_error:
            return self._error(rec, robot_line)
        if _HEALED.search(message):
            return self._lookup(rec, self._run_of(rec), healed=True)
        return []

    def is_complete(self, text: str) -> bool:
        try:
            _parse(text)
        except ParseError:
            return False
        return True

    def snapshot(self) -> dict:
        return {"jobs": self.jobs}

    def restore(self, data: dict) -> None:
        jobs = data.get("jobs") if isinstance(data, dict) else None
        self.jobs = {k: dict(v) for k, v in jobs.items()} if isinstance(jobs, dict) else {}

    def open_runs(self) -> list[Event]:
        return [RunStarted(self.bot, j["run_id"], j["start"], host=j.get("host"), source=SOURCE)
                for j in self.jobs.values() if j.get("start") is not None and j.get("run_id")]

    # -- runs ------------------------------------------------------------------------------
    def _mine(self, rec: Record) -> bool:
        if self.process is None:
            return True
        if rec.process is None:
            return False
        name = _norm(rec.process)
        return fnmatch.fnmatchcase(name, self.process) if self.process_glob else name == self.process

    def _time(self, rec: Record, what: str) -> float:
        t = parse_time(rec.time_text, self.tz) if rec.time_text else None
        if t is None:
            raise ParseError(f"an '{what}' entry without a readable timeStamp")
        return t

    @staticmethod
    def _key(rec: Record) -> str:
        return rec.job or f"process:{rec.process or ''}"

    def _job(self, key: str) -> dict:
        j = self.jobs.get(key)
        if j is None:
            while len(self.jobs) >= MAX_OPEN_RUNS:
                del self.jobs[next(iter(self.jobs))]
            j = self.jobs[key] = {"run_id": None, "start": None, "host": None, "process": None,
                                  "errors": [], "more": 0, "unhandled": False}
        return j

    def _started(self, rec: Record) -> list[Event]:
        t = self._time(rec, "execution started")
        key = self._key(rec)
        out: list[Event] = []
        j = self.jobs.get(key)
        if j is not None and j.get("start") is not None:
            if rec.job:
                return []  # the same job announced twice
            # no job id: the previous run of this process never logged its end
            out += self._finish(self.jobs.pop(key), t, rec.machine, abandoned=True)
        j = self._job(key)
        j["run_id"] = j["run_id"] or rec.job or stable_id("uipath", rec.process, rec.time_text)
        j.update(start=t, host=rec.machine, process=rec.process)
        out.append(RunStarted(self.bot, j["run_id"], t, host=rec.machine, source=SOURCE))
        return out

    def _error(self, rec: Record, robot_line: bool) -> list[Event]:
        key = self._key(rec)
        if key not in self.jobs and not rec.job and not rec.process:
            started = [k for k, j in self.jobs.items() if j.get("start") is not None]
            if len(started) != 1:
                return self._lookup(rec, None)  # cannot tell which run it belongs to
            key = started[0]
        j = self._job(key)
        j["more"] += keep_error(j["errors"], rec.message)
        j["unhandled"] = j["unhandled"] or robot_line
        return self._lookup(rec, j.get("run_id") or rec.job)

    def _transaction(self, rec: Record) -> list[Event]:
        """A queue transaction of the run, as a step (for the run's trace): from its first entry
        to the next entry with the same transactionId; failed when that entry's state says so."""
        j = self.jobs.get(self._key(rec))
        t = parse_time(rec.time_text, self.tz) if rec.time_text else None
        if j is None or j.get("run_id") is None or t is None:
            return []
        open_tx = j.setdefault("tx", {})
        began = open_tx.pop(rec.transaction_id, None)
        if began is None:
            if len(open_tx) < MAX_OPEN_TRANSACTIONS:
                open_tx[rec.transaction_id] = t
            return []
        state = (rec.transaction_state or "").lower()
        status = "fail" if any(w in state for w in ("fail", "exception", "abandon")) else "pass"
        name = f"{rec.queue or 'transaction'} {rec.transaction_id}"[:200]
        return [StepFinished(self.bot, j["run_id"], name, ended=max(t, began), status=status, started=began,
                             message=rec.transaction_state if status == "fail" else None, source=SOURCE)]

    def _run_of(self, rec: Record) -> str | None:
        j = self.jobs.get(self._key(rec))
        return (j.get("run_id") if j else None) or rec.job

    def _lookup(self, rec: Record, run_id: str | None, healed: bool = False) -> list[Event]:
        """Selector health from the log: a UI error (the taxonomy's ui_drift patterns) is a failed
        look-up, a Healing Agent or self-healing line a healed one. The screen is the title of the
        selector's window (`<html title='Invoices' />`), else "unknown"."""
        kind = None
        if not healed:
            found = self._ui_patterns().match(rec.message)
            if found is None:
                return []
            kind = found.kind or "not_found"
        t = parse_time(rec.time_text, self.tz) if rec.time_text else None
        if t is None:
            return []
        found_selector = selector_in(clip(rec.message))
        selector = redacted_head(found_selector, MAX_SELECTOR_CHARS) if found_selector else None
        title = _TITLE.search(found_selector) if found_selector else None
        screen = (title.group(2).strip() or "unknown")[:64] if title else "unknown"
        return [UiLookup(self.bot, t, screen, found=healed, run_id=run_id, selector=selector, kind=kind,
                         healed=healed, source=SOURCE)]

    def _ui_patterns(self):
        if self._ui is None:
            from ..core.classify import Classifier

            ui = Classifier(include_defaults=False)
            ui.patterns = [p for p in self.classifier.patterns if p.reason == "ui_drift"]
            self._ui = ui
        return self._ui

    def _ended(self, rec: Record) -> list[Event]:
        t = self._time(rec, "execution ended")
        j = self.jobs.pop(self._key(rec), None)
        if j is None:
            j = {"run_id": None, "start": None, "errors": [], "more": 0, "unhandled": False}
        if j.get("run_id") is None:
            j["run_id"] = rec.job or stable_id("uipath", rec.process, rec.time_text, "ended")
        if j.get("start") is None and rec.total_seconds is not None:
            j["start"] = t - rec.total_seconds
        return self._finish(j, t, rec.machine or j.get("host"))

    def _finish(self, j: dict, ended: float, host: str | None, abandoned: bool = False) -> list[Event]:
        return [finished_run(self.bot, j["run_id"], ended=ended, started=j.get("start"), errors=j.get("errors") or [],
                             more=j.get("more", 0), classifier=self.classifier, source=SOURCE,
                             unhandled=j.get("unhandled", False), abandoned=abandoned, host=host)]
