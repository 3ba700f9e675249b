"""Generic line logs: runs from regexes with named groups, and the Python logging preset."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from botwatch.core.classify import Classifier
from botwatch.config.estate import BotConfig, Estate, LoadedEstate, LogSpec, WatchConfig
from botwatch.core.events import RunFinished, RunStarted
from botwatch.state.journal import Journal
from botwatch.parsers.base import ParseError, make_parser, parse_time
from botwatch.sources.logs import LogWatcher
from botwatch.state.runtime import EstateState

NOW = 1_800_000_000.0


def make(fmt: str = "regex", timezone: str = "UTC", **spec):
    p = make_parser(BotConfig(name="b", timezone=timezone), LogSpec(path="x.log", format=fmt, **spec), Classifier())
    p.clock = lambda: NOW
    return p


def feed(p, text: str) -> list:
    out = []
    for line in text.strip("\n").split("\n"):
        out += p.feed(line)
    return out


def finished(events) -> dict[str, RunFinished]:
    return {e.run_id: e for e in events if isinstance(e, RunFinished)}


AMS = ZoneInfo("Europe/Amsterdam")


# -- regex ------------------------------------------------------------------------------------


def test_named_groups_give_run_ids_statuses_times_and_messages():
    p = make(timezone="Europe/Amsterdam",
             start=r"^(?P<time>\S+ \S+) export (?P<run_id>\d+) started",
             end=r"^(?P<time>\S+ \S+) export (?P<run_id>\d+) finished: (?P<status>\w+)",
             error=r"^\S+ \S+ ERROR \[(?P<run_id>\d+)\] (?P<message>.*)")
    events = feed(p, """
2024-05-01 07:00:00 export 41 started
2024-05-01 07:00:01 export 42 started
2024-05-01 07:00:02 INFO [41] 120 rows
2024-05-01 07:00:03 ERROR [42] Could not find an asset with this name: SAP
2024-05-01 07:00:04 export 41 finished: ok
2024-05-01 07:00:05 export 42 finished: failed
2024-05-01 07:00:06 export 43 started
2024-05-01 07:00:09 export 43 finished: FAILED
""")
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert [(e.run_id, e.time) for e in starts] == [
        ("41", datetime(2024, 5, 1, 7, 0, 0, tzinfo=AMS).timestamp()),
        ("42", datetime(2024, 5, 1, 7, 0, 1, tzinfo=AMS).timestamp()),
        ("43", datetime(2024, 5, 1, 7, 0, 6, tzinfo=AMS).timestamp())]
    runs = finished(events)
    assert (runs["41"].outcome, runs["41"].duration, runs["41"].output_tail) == ("success", 4.0, None)
    assert (runs["42"].outcome, runs["42"].reason) == ("failure", "credentials")
    assert runs["42"].output_tail == "Could not find an asset with this name: SAP"
    # a failing status without an error line: the end line is the evidence
    assert (runs["43"].outcome, runs["43"].reason) == ("failure", "unknown")
    assert runs["43"].output_tail == "2024-05-01 07:00:09 export 43 finished: FAILED"
    assert all(e.source == "log:regex" for e in events)


def test_a_run_id_regex_ties_lines_to_concurrent_runs():
    p = make(start=r"job started", end=r"job done", error=r"Traceback|NoSuchElementException",
             run_id=r"\[(?P<run_id>w\d)\]")
    events = feed(p, """
2024-05-01T07:00:00Z [w1] job started
2024-05-01T07:00:00Z [w2] job started
2024-05-01T07:00:01Z [w2] selenium NoSuchElementException: #submit
2024-05-01T07:00:02Z [w1] job done
2024-05-01T07:00:03Z [w2] job done
""")
    runs = finished(events)
    assert runs["w1"].outcome == "success"
    assert (runs["w2"].outcome, runs["w2"].reason) == ("failure", "ui_drift")
    assert runs["w2"].started == parse_time("2024-05-01T07:00:00Z")  # the leading timestamp


def test_without_run_ids_runs_follow_each_other():
    p = make(start=r"^=== run", end=r"^=== end", error=r"^ERROR")
    events = feed(p, """
=== run
ERROR something broke
=== end
=== run
=== run
=== end
""")
    runs = [e for e in events if isinstance(e, RunFinished)]
    assert [r.outcome for r in runs] == ["failure", "unknown", "success"]  # the 2nd never logged its end
    assert runs[0].started == runs[0].ended == NOW  # no time in the log: when it was read
    assert len({r.run_id for r in runs}) == 3


def test_lines_matching_nothing_are_output_not_errors_and_errors_outside_runs_are_ignored():
    p = make(start=r"begin", end=r"end of run", error=r"ERROR")
    assert feed(p, "ERROR before any run\nplain output\n\u00e9\u00e8 other bytes") == []
    assert p.snapshot()["runs"] == {}


def test_an_end_without_a_start_is_a_run_of_unknown_start():
    p = make(end=r"finished (?P<status>\w+)")
    (run,) = p.feed("2024-05-01 07:00:00 finished ok")
    assert run.started is None and run.outcome == "success"
    assert run.ended == parse_time("2024-05-01 07:00:00")


def test_a_regex_parser_snapshot_restores_its_runs():
    p = make(start=r"start (?P<run_id>\d+)", end=r"end (?P<run_id>\d+)", error=r"ERROR (?P<message>.*)")
    feed(p, "2024-05-01T07:00:00Z start 1\n2024-05-01T07:00:01Z ERROR invalid input file orders.csv")
    q = make(start=r"start (?P<run_id>\d+)", end=r"end (?P<run_id>\d+)", error=r"ERROR (?P<message>.*)")
    q.restore(json.loads(json.dumps(p.snapshot())))
    assert [e.run_id for e in q.open_runs()] == ["1"]
    (run,) = q.feed("2024-05-01T07:00:05Z end 1")
    assert (run.outcome, run.reason, run.duration) == ("failure", "data", 5.0)


# -- python ---------------------------------------------------------------------------------


def test_the_python_preset_reads_the_default_logging_format():
    p = make("python", start=r"^Run started", end=r"^Run finished")
    events = feed(p, """
INFO:root:Run started
INFO:stock.sync:Fetched 120 items
WARNING:urllib3.connectionpool:Retrying
ERROR:stock.sync:Could not find an asset with this name: ERP
INFO:root:Run finished
INFO:root:Run started
DEBUG:root:nothing to do
INFO:root:Run finished
""")
    runs = [e for e in events if isinstance(e, RunFinished)]
    assert [(r.outcome, r.reason) for r in runs] == [("failure", "credentials"), ("success", None)]
    assert runs[0].output_tail == "Could not find an asset with this name: ERP"
    assert all(e.source == "log:python" for e in events)


def test_the_python_preset_reads_asctime_records_and_their_tracebacks():
    p = make("python", timezone="Europe/Amsterdam", start=r"starting run (?P<run_id>\S+)",
             end=r"run (?P<run_id>\S+) done")
    events = feed(p, """
2024-05-01 07:00:00,125 - stock - INFO - starting run r-17
2024-05-01 07:00:02,500 - stock - ERROR - price import failed
Traceback (most recent call last):
  File "/srv/bots/stock.py", line 12, in <module>
    price = float(cell)
ValueError: could not convert string to float: 'n/a'
2024-05-01 07:00:03,000 - stock - INFO - run r-17 done
""")
    start, run = events
    assert start.time == datetime(2024, 5, 1, 7, 0, 0, 125000, tzinfo=AMS).timestamp()
    assert run.run_id == "r-17" and run.duration == pytest.approx(2.875)
    assert run.outcome == "failure" and run.reason == "data"  # from the traceback's last line
    assert run.output_tail.splitlines()[0] == "price import failed"
    assert run.output_tail.splitlines()[-1] == "ValueError: could not convert string to float: 'n/a'"


def test_the_python_preset_counts_lines_that_are_not_records():
    p = make("python", start=r"go")
    for bad in ["<html>", "14:00:01 not python", "INFO root message"]:
        with pytest.raises(ParseError):
            p.feed(bad)
    # tracebacks and exception lines are not errors, even outside a record
    assert p.feed("Traceback (most recent call last):") == []
    assert p.feed("KeyError: 'x'") == []
    assert p.feed("    raise KeyError") == []


def test_a_python_error_record_classified_as_a_crash_by_its_traceback():
    p = make("python", start=r"^start$", end=r"^end$")
    events = feed(p, "INFO:b:start\nCRITICAL:b:unhandled\nTraceback (most recent call last):\n  File \"x\"\n"
                     "ZeroDivisionError: division by zero\nINFO:b:end")
    (run,) = finished(events).values()
    assert (run.outcome, run.reason) == ("failure", "crash")


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("2024-05-01T07:00:00Z", datetime(2024, 5, 1, 7, tzinfo=ZoneInfo("UTC")).timestamp()),
    ("2024-05-01 09:00:00,250", datetime(2024, 5, 1, 9, 0, 0, 250000, tzinfo=AMS).timestamp()),
    ("2018-08-28T14:28:55.6427211-07:00", datetime.fromisoformat("2018-08-28T14:28:55.642721-07:00").timestamp()),
    ("1714546800", 1714546800.0),
    ("1714546800123", 1714546800.123),
    ("20240501 09:00:00.000", datetime(2024, 5, 1, 9, tzinfo=AMS).timestamp()),
    ("not a time", None),
])
def test_times_as_logs_write_them(text, expected):
    assert parse_time(text, AMS) == pytest.approx(expected) if expected else parse_time(text, AMS) is None


# -- through the watcher --------------------------------------------------------------------


def test_a_python_log_file_through_the_watcher(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "sync.log").write_text(
        "2024-05-01 07:00:00,000 - sync - INFO - Run started\n"
        "2024-05-01 07:00:01,000 - sync - ERROR - Element with locator 'id=submit' not found.\n"
        "<garbage line>\n"
        "2024-05-01 07:00:02,000 - sync - INFO - Run finished\n", encoding="utf-8")
    bot = BotConfig(name="sync", watch=WatchConfig(logs=[
        LogSpec(path="logs/*.log", format="python", start="^Run started", end="^Run finished")]))
    loaded = LoadedEstate(Estate(bots=[bot]), tmp_path / "botwatch.yaml")
    journal = Journal(tmp_path / "journal.db")
    state = EstateState(loaded.estate, journal)
    LogWatcher(loaded, state, journal, use_watchdog=False).poll_once()
    (run,) = journal.iter_runs()
    assert (run.outcome, run.reason, run.duration) == ("failure", "ui_drift", 2.0)
    assert state.self_metrics()["parse_errors"] == {"log:python": 1}
