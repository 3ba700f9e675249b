"""Generic line logs: runs from configurable regexes, and a preset for Python's logging.

`format: regex` searches each line with the spec's regexes (Python `re` syntax):

- `start`: a run starts. Named group `run_id` optional.
- `end`: a run ends. Named groups `run_id` and `status` optional: a `status` such as ok,
  pass, success, done or 0 means success; fail, error, aborted, crashed or a non-zero number
  means failure; without one the run fails if an error line was seen in it, else succeeds.
- `error`: an error line; it fails its run and its text is classified with the failure
  taxonomy (named group `message` optional: the text kept, else the whole line).
- `run_id`: named group `run_id`, searched in every line, tells which run a line belongs to
  when several runs write to one log.

Any of them may have a named group `time`; without it a timestamp at the start of the line
(ISO 8601, or `2024-05-01 07:00:00,123` as Python writes it) is used, and a line with no time
at all is taken at the moment it is read. A time without a zone is in the bot's `timezone`.
Lines that match none of the regexes are ordinary output. Without `run_id`s, runs follow each
other: an error or end line belongs to the latest run started, and a start while a run is
still open ends that one with outcome `unknown` (it never logged its end).

`format: python` reads the records of Python's `logging`: its default format
`LEVEL:logger:message` (`logging.basicConfig()`) and the common
`%(asctime)s - %(name)s - %(levelname)s - %(message)s`. ERROR and CRITICAL records are error
lines (as is any message matching `error`), a traceback following a record belongs to it (so
`ValueError: could not convert ...` classifies the failure), and `start`, `end` and `run_id`
are searched in the message. A line that is neither a record nor part of a traceback is a
parse error (counted under `source="log:python"`, skipped).

Sample configs::

    bots:
      - name: nightly-export
        watch:
          logs:
            - path: /var/log/bots/export.log
              format: regex
              start: 'Export (?P<run_id>\\d+) started'
              end: 'Export (?P<run_id>\\d+) finished: (?P<status>\\w+)'
              error: '\\bERROR\\b (?P<message>.*)'
      - name: stock-sync
        watch:
          logs:
            - path: logs/stock-sync-*.log
              format: python
              start: '^Run started'
              end: '^Run finished'
"""

from __future__ import annotations

import re
import time
from typing import Callable

from ..core.classify import clip
from ..core.events import Event, RunStarted
from .base import (MAX_MESSAGE_CHARS, MAX_OPEN_RUNS, LineParser, ParseError, finished_run, keep_error, parse_time,
                   redacted_head, stable_id)

_LEADING_TIME = re.compile(
    r"^\W{0,2}(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)(?!\d)")
_SUCCESS = frozenset({"ok", "pass", "passed", "success", "succeeded", "successful", "successfully", "done",
                      "completed", "complete", "finished", "true", "0"})
_FAILURE = frozenset({"fail", "failed", "failure", "error", "errored", "errors", "ko", "aborted", "crashed",
                      "faulted", "false", "fatal", "exception", "killed", "timeout", "timedout"})


def _group(m: re.Match | None, name: str) -> str | None:
    if m is None or name not in m.re.groupindex:
        return None
    v = m.group(name)
    return v if v else None


def _status(text: str | None) -> str | None:
    """success / failure for a `status` group, None when it says neither."""
    if text is None:
        return None
    s = text.strip().lower()
    if s in _SUCCESS:
        return "success"
    if s in _FAILURE:
        return "failure"
    if re.fullmatch(r"-?\d+", s):
        return "failure"  # a non-zero exit status
    return None


class RegexParser(LineParser):
    source = "log:regex"

    def __init__(self, bot, spec, classifier, *, clock: Callable[[], float] = time.time):
        self.bot = bot.name
        self.tz = bot.tz
        self.classifier = classifier
        self.clock = clock
        self.start = re.compile(spec.start) if spec.start else None
        self.end = re.compile(spec.end) if spec.end else None
        self.error = re.compile(spec.error) if spec.error else None
        self.run_id = re.compile(spec.run_id) if spec.run_id else None
        # run id -> {"start": float | None, "errors": [...], "more": int, "anon": bool}
        self.runs: dict[str, dict] = {}
        self.last_error: list | None = None  # [run id, index in its errors]: a traceback's home
        self.seq = 0  # runs numbered, for ids of runs the log gives none

    # -- the interface ---------------------------------------------------------------------
    def feed(self, line: str) -> list[Event]:
        return self._line(line, line, error_level=False, time_text=None)

    def snapshot(self) -> dict:
        return {"runs": self.runs, "last_error": self.last_error, "seq": self.seq}

    def restore(self, data: dict) -> None:
        runs = data.get("runs") if isinstance(data, dict) else None
        self.runs = {k: dict(v) for k, v in runs.items()} if isinstance(runs, dict) else {}
        last = data.get("last_error") if isinstance(data, dict) else None
        self.last_error = list(last) if isinstance(last, list) and len(last) == 2 else None
        seq = data.get("seq") if isinstance(data, dict) else None
        self.seq = seq if isinstance(seq, int) else 0

    def open_runs(self) -> list[Event]:
        return [RunStarted(self.bot, rid, r["start"], source=self.source)
                for rid, r in self.runs.items() if r.get("start") is not None]

    # -- one line --------------------------------------------------------------------------
    def _line(self, line: str, text: str, *, error_level: bool, time_text: str | None,
              message: str | None = None) -> list[Event]:
        """`text` is where the regexes are searched (the whole line, or a record's message), as
        `clip` leaves it: the estate's own regexes, slow ones too, see 64 KiB of a line at most."""
        text = clip(text)
        m_id = self.run_id.search(text) if self.run_id else None
        m_start = self.start.search(text) if self.start else None
        m_end = self.end.search(text) if self.end and not m_start else None
        m_err = self.error.search(text) if self.error and not m_start else None
        if not (m_start or m_end or m_err or error_level):
            self.last_error = None
            return []
        for m in (m_start, m_end, m_err, m_id):
            time_text = time_text or _group(m, "time")
        if time_text is None:
            lead = _LEADING_TIME.match(line)
            time_text = lead.group(1) if lead else None
        t = parse_time(time_text, self.tz) if time_text else None
        if t is None:
            t = self.clock()
        rid = _group(m_id, "run_id")
        if m_start:
            self.last_error = None
            return self._started(_group(m_start, "run_id") or rid, t, line)
        out: list[Event] = []
        if m_err or error_level:
            self._error(_group(m_err, "run_id") or rid, _group(m_err, "message") or message or line)
        else:
            self.last_error = None
        if m_end:
            out += self._ended(_group(m_end, "run_id") or rid, t, _group(m_end, "status"), line)
        return out

    # -- runs ------------------------------------------------------------------------------
    def _latest_open(self) -> str | None:
        for rid in reversed(self.runs):
            if self.runs[rid].get("start") is not None:
                return rid
        return None

    def _new_id(self, t: float, line: str) -> str:
        self.seq += 1
        return stable_id("run", self.bot, t, line, self.seq)

    def _run(self, rid: str, **fields) -> dict:
        r = self.runs.get(rid)
        if r is None:
            while len(self.runs) >= MAX_OPEN_RUNS:
                del self.runs[next(iter(self.runs))]
            r = self.runs[rid] = {"start": None, "errors": [], "more": 0, "anon": False}
        r.update(fields)
        return r

    def _started(self, rid: str | None, t: float, line: str) -> list[Event]:
        out: list[Event] = []
        if rid is None:
            for other in [k for k, r in self.runs.items() if r.get("anon") and r.get("start") is not None]:
                out += self._finish(other, self.runs.pop(other), t, None, abandoned=True)
            rid = self._new_id(t, line)
            self._run(rid, start=t, anon=True)
        elif self.runs.get(rid, {}).get("start") is not None:
            return []  # announced twice
        else:
            self._run(rid, start=t)
        out.append(RunStarted(self.bot, rid, t, source=self.source))
        return out

    def _error(self, rid: str | None, message: str) -> None:
        rid = rid or self._latest_open()
        if rid is None:
            self.last_error = None
            return  # an error outside any run: no run to fail
        r = self._run(rid)
        dropped = keep_error(r["errors"], message)
        r["more"] += dropped
        self.last_error = None if dropped else [rid, len(r["errors"]) - 1]

    def _ended(self, rid: str | None, t: float, status: str | None, line: str) -> list[Event]:
        rid = rid or self._latest_open()
        r = self.runs.pop(rid, None) if rid else None
        if rid is None:
            rid = self._new_id(t, line)
        if self.last_error and self.last_error[0] == rid:
            self.last_error = None
        return self._finish(rid, r or {"start": None, "errors": [], "more": 0}, t, _status(status), end_line=line)

    def _finish(self, rid: str, r: dict, ended: float, status: str | None, *, abandoned: bool = False,
                end_line: str | None = None) -> list[Event]:
        errors = list(r.get("errors") or [])
        if not errors and status == "failure" and end_line:
            keep_error(errors, end_line)  # the end line is the only word on why it failed
        return [finished_run(self.bot, rid, ended=ended, started=r.get("start"), errors=errors, more=r.get("more", 0),
                             classifier=self.classifier, source=self.source, failed=status == "failure",
                             abandoned=abandoned)]


_LEVELS = "CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG|NOTSET|Level \\d+"
_PY_RECORDS = (
    # logging.basicConfig(): "%(levelname)s:%(name)s:%(message)s"
    re.compile(rf"^(?P<level>{_LEVELS}):(?P<logger>[^:\s]*):(?P<message>.*)$"),
    # "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    re.compile(rf"^(?P<time>\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}}(?:,\d+)?) - (?P<logger>.*?) - "
               rf"(?P<level>{_LEVELS}) - (?P<message>.*)$"),
)
_ERROR_LEVELS = frozenset({"ERROR", "CRITICAL", "FATAL"})
_CONTINUATION = re.compile(
    r"^(?:\s|Traceback \(most recent call last\)|During handling of the above exception|"
    r"The above exception was the direct cause|[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)\b)")


class PythonLogParser(RegexParser):
    source = "log:python"

    def feed(self, line: str) -> list[Event]:
        for rx in _PY_RECORDS:
            m = rx.match(line)
            if m:
                msg = m.group("message")
                return self._line(line, msg, error_level=m.group("level") in _ERROR_LEVELS,
                                  time_text=m.groupdict().get("time"), message=msg)
        if _CONTINUATION.match(line):
            self._continue(line)
            return []
        raise ParseError("not a Python logging record (LEVEL:logger:message or "
                         "asctime - name - levelname - message) nor part of a traceback")

    def _continue(self, line: str) -> None:
        """A traceback line: appended to the error record it follows (head and end kept)."""
        if not self.last_error:
            return
        rid, i = self.last_error
        r = self.runs.get(rid)
        if r is None or i >= len(r["errors"]):
            self.last_error = None
            return
        text = r["errors"][i] + "\n" + keep_line(line)
        if len(text) > 2 * MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS // 2] + "\n[...]\n" + text[-MAX_MESSAGE_CHARS:]
        r["errors"][i] = text


def keep_line(line: str) -> str:
    return redacted_head(line.rstrip(), MAX_MESSAGE_CHARS)
