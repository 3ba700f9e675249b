"""UiPath Robot execution logs: the real logs of the corpus, bare JSON entries, shared logs."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from botwatch.core.classify import Classifier
from botwatch.config.estate import BotConfig, Estate, LoadedEstate, LogSpec, WatchConfig
from botwatch.core.events import RunFinished, RunStarted
from botwatch.state.journal import Journal
from botwatch.parsers.base import MAX_KEPT_ERRORS, ParseError, make_parser
from botwatch.parsers.uipath import UiPathParser, parse_record
from botwatch.sources.logs import LogWatcher
from botwatch.state.runtime import EstateState

CORPUS = Path(__file__).parent / "corpus" / "uipath"
RUNEFAR = CORPUS / "runefar1_Execution2.log"
HINOKISU = CORPUS / "hinokisu_test-logs.log"
SPEC_LINES = CORPUS / "hinokisu_spec_extracted_lines.log"
STUDIO = CORPUS / "runefar1_studio1_NOT_robot_format.log"
BROWSER = "The browser was not specified for this activity"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def parser(process_name: str | None = None, **bot) -> UiPathParser:
    return make_parser(BotConfig(name="b", **bot), LogSpec(path="x.log", format="uipath", process_name=process_name),
                       Classifier())


def feed_all(p, lines) -> tuple[list, int]:
    events, errors = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            events += p.feed(line)
        except ParseError:
            errors += 1
    return events, errors


def corpus_lines(path: Path) -> list[str]:
    return [line.rstrip("\r") for line in path.read_bytes().decode("utf-8").split("\n")]


class Watched:
    """A bot watching logs, with a real journal, read by explicit polls."""

    def __init__(self, tmp_path: Path, *specs: dict, bots: list[BotConfig] | None = None):
        self.tmp = tmp_path
        if bots is None:
            bots = [BotConfig(name="b", watch=WatchConfig(logs=[LogSpec(**s) for s in specs]))]
        self.loaded = LoadedEstate(Estate(bots=bots), tmp_path / "botwatch.yaml")
        self.journal = Journal(tmp_path / "journal.db")
        self.state = EstateState(self.loaded.estate, self.journal)
        self.watcher = LogWatcher(self.loaded, self.state, self.journal, use_watchdog=False)

    def poll(self) -> int:
        return self.watcher.poll_once()

    def runs(self, bot: str = "b") -> dict[str, RunFinished]:
        return {r.run_id: r for r in self.journal.iter_runs() if r.bot == bot}

    def active(self, bot: str = "b") -> dict[str, float]:
        return dict(self.state.bots[bot].active)

    def parse_errors(self, source: str = "log:uipath") -> int:
        return self.state.self_metrics()["parse_errors"].get(source, 0)


# -- the real logs of the corpus ---------------------------------------------------------------


RUNEFAR_FAILED = ["b94a94c4-0506-4b9a-a19d-bdfbe815d415", "f16e2c0b-45ec-464f-a688-2e582741143b",
                  "d61ea1c0-125b-48ec-b134-001056d89d33", "ed3668ac-d6e4-4300-acc8-964dd36d6589"]
RUNEFAR_OK = ["9e24b97a-8618-46f1-b63c-2cd983296f3d", "164b9edb-2286-40c0-be8e-b6966f02821b",
              "f57e7c5d-bebb-47d5-9f69-67bb1da945bc", "3f6ecd1f-6f53-4e59-b47f-c79f234dd0c6",
              "8efbad72-25a8-4b23-9046-fe11f308591d", "f33461dc-b02b-4abd-821e-846838a27485",
              "aa1b77a0-c127-495c-a167-db581a5edf49"]


def test_the_runefar1_execution_log_is_eleven_runs_of_which_four_failed_on_the_browser(tmp_path):
    shutil.copyfile(RUNEFAR, tmp_path / "2018-08-28_Execution.log")
    w = Watched(tmp_path, {"path": "*_Execution.log", "format": "uipath"})
    assert w.poll() == 26
    runs = w.runs()
    assert sorted(runs) == sorted(RUNEFAR_FAILED + RUNEFAR_OK)
    assert {r for r in runs if runs[r].outcome == "failure"} == set(RUNEFAR_FAILED)
    assert all(runs[r].outcome == "success" and runs[r].output_tail is None for r in RUNEFAR_OK)
    for rid in RUNEFAR_FAILED:
        run = runs[rid]
        # The message names no selector, credential or data problem: the taxonomy has no pattern
        # for it. The Robot itself logged it (logType Default, "<activity> : <exception message>")
        # right before the job ended: an unhandled exception faulted the workflow, a bot defect
        # (the Navigate To activity is used outside a browser scope). That is a crash.
        assert Classifier().match(run.output_tail) is None
        assert run.reason == "crash"
        assert run.output_tail.startswith("Navigate to : " + BROWSER)
        assert run.output_tail.count(BROWSER) == 1
        assert run.source == "log:uipath" and run.exit_status is None and run.host == "LAPTOP-1FRT6EN1"
    # times are the log's, not the time it was read
    first = runs["b94a94c4-0506-4b9a-a19d-bdfbe815d415"]
    assert first.started == pytest.approx(ts("2018-08-28T14:28:55.642721-07:00"))
    assert first.ended == pytest.approx(ts("2018-08-28T14:28:58.478313-07:00"))
    long_run = runs["9e24b97a-8618-46f1-b63c-2cd983296f3d"]
    assert long_run.duration == pytest.approx(134.31, abs=0.01)  # totalExecutionTime 00:02:14
    assert w.active() == {}
    assert w.parse_errors() == 0
    view = w.state.views()[0]
    assert view.runs_total == 11 and view.failures["crash"] == 4
    assert view.last_run_end == pytest.approx(ts("2018-08-28T15:31:02.2042278-07:00"))


def test_the_hinokisu_log_non_ascii_and_without_a_final_newline(tmp_path):
    log = tmp_path / "2022-11-11_Execution.log"
    shutil.copyfile(HINOKISU, log)
    assert not log.read_bytes().endswith(b"\n")
    w = Watched(tmp_path, {"path": log.name, "format": "uipath", "process_name": "订单发货推进_RPA"})
    assert w.poll() == 4
    # one run started (and still going), no run ended; the last line, an Error without a line
    # ending, is a whole JSON entry: read now, not left waiting
    assert w.runs() == {}
    assert w.active() == {"61983fc9-ddf3-4d54-abaa-af960a2c4314": pytest.approx(ts("2022-11-11T09:38:39.492401+08:00"))}
    assert w.journal.offset(f"b:{_key(log)}")[1] == log.stat().st_size
    assert w.parse_errors() == 0
    # The Robot later ends both jobs: the one whose Error line was read fails with it
    with open(log, "a", encoding="utf-8", newline="") as fh:
        fh.write("\n" + _line("Info", "订单发货推进_RPA execution ended", "2022-11-10T16:30:04.1+08:00",
                              "84fbe2e9-b6b0-4b33-96cb-5545991758ea", "订单发货推进_RPA", totalExecutionTimeInSeconds=12))
        fh.write(_line("Info", "订单发货推进_RPA execution ended", "2022-11-11T09:40:00.5+08:00",
                       "61983fc9-ddf3-4d54-abaa-af960a2c4314", "订单发货推进_RPA", totalExecutionTimeInSeconds=81))
    assert w.poll() == 2
    runs = w.runs()
    failed = runs["84fbe2e9-b6b0-4b33-96cb-5545991758ea"]
    assert failed.outcome == "failure" and failed.reason == "crash"
    assert failed.output_tail == "Add Data Column: A column named '是否延期' already belongs to this DataTable."
    assert failed.started == pytest.approx(ts("2022-11-10T16:30:04.1+08:00") - 12)
    ok = runs["61983fc9-ddf3-4d54-abaa-af960a2c4314"]
    assert ok.outcome == "success" and ok.started == pytest.approx(ts("2022-11-11T09:38:39.492401+08:00"))
    assert w.active() == {} and w.parse_errors() == 0


def test_lines_of_old_and_new_robot_versions(tmp_path):
    events, errors = feed_all(parser(), corpus_lines(SPEC_LINES))
    assert errors == 0
    started = [e for e in events if isinstance(e, RunStarted)]
    finished = {e.run_id: e for e in events if isinstance(e, RunFinished)}
    # Robot <= 2019.10: machineId 0, fileName last, a non-ASCII file name
    assert [(e.run_id, e.host) for e in started] == [("e3804333-367b-4760-8601-f00d1584014c", "HAH17-3301L")]
    assert started[0].time == pytest.approx(ts("2023-02-07T09:47:08.326369+08:00"))
    # ends whose start is not in the log start at the end minus the total execution time
    google = finished["4d06014e-e14a-4406-a015-3e2eac6fca86"]
    assert google.outcome == "success" and google.duration == pytest.approx(5)
    assert google.ended == pytest.approx(ts("2022-12-28T09:46:36.853246+08:00"))
    retail = finished["4d0e64b9-069e-4671-8d48-af0d8991a258"]
    assert retail.duration == pytest.approx(25) and retail.host == "HAH17-3301L"
    assert len(finished) == 2  # "Downloads run..." and "19340767" are ordinary lines


def test_the_studio_trace_log_is_not_a_robot_log_counted_and_never_fatal(tmp_path):
    shutil.copyfile(STUDIO, tmp_path / "studio_Execution.log")
    shutil.copyfile(RUNEFAR, tmp_path / "robot_Execution.log")
    w = Watched(tmp_path, {"path": "*_Execution.log", "format": "uipath"})
    w.poll()
    lines = [line for line in STUDIO.read_text(encoding="utf-8").split("\n") if line.strip()]
    assert w.parse_errors() == len(lines)  # every line of it: header lines and stack frames
    assert len(w.runs()) == 11  # the real Robot log next to it is read all the same
    w.poll()
    assert w.parse_errors() == len(lines)  # counted once


def test_crlf_lf_and_a_bom_give_the_same_runs(tmp_path):
    text = RUNEFAR.read_bytes().decode("utf-8")
    assert "\r\n" in text
    lf = text.replace("\r\n", "\n")
    (tmp_path / "crlf.log").write_bytes(text.encode())
    (tmp_path / "lf.log").write_bytes(lf.encode())
    (tmp_path / "bom.log").write_bytes(b"\xef\xbb\xbf" + text.encode())  # NLog's writeBom
    bots = [BotConfig(name=n, watch=WatchConfig(logs=[LogSpec(path=f"{n}.log", format="uipath")]))
            for n in ("crlf", "lf", "bom")]
    w = Watched(tmp_path, bots=bots)
    w.poll()
    shapes = [{(r.run_id, r.started, r.ended, r.outcome, r.reason, r.output_tail) for r in w.runs(n).values()}
              for n in ("crlf", "lf", "bom")]
    assert len(shapes[0]) == 11 and shapes[0] == shapes[1] == shapes[2]
    assert w.parse_errors() == 0


# -- bare JSON entries ------------------------------------------------------------------------


def _entry(message, level, stamp, job, process, **more) -> dict:
    return {"message": message, "level": level, "logType": "Default", "timeStamp": stamp, "processName": process,
            "jobId": job, "robotName": "ROBOT1", "machineName": "VM-01", **more}


def _line(nlog_level, message, stamp, job, process, **more) -> str:
    level = {"Info": "Information", "Warn": "Warning"}.get(nlog_level, nlog_level)
    body = json.dumps(_entry(message, level, stamp, job, process, **more), ensure_ascii=False)
    clock = datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%H:%M:%S.%f")[:13]
    return f"{clock} {nlog_level} {body}\r\n"


def test_bare_json_entries_as_exports_hold_them_with_keys_in_any_case():
    job = "7b1e0c0e-0000-4000-8000-000000000001"
    lines = [
        # plain JSON line, keys as the Robot writes them
        json.dumps(_entry("Invoices execution started", "Information", "2024-03-01T07:00:00.1234567+01:00", job,
                          "Invoices")),
        # Elastic: the entry under _source, keys in another case
        json.dumps({"_index": "uipath-2024.03", "_source": {
            "MESSAGE": "Click 'Submit': Cannot find the UI element corresponding to this selector",
            "LEVEL": "Error", "TIMESTAMP": "2024-03-01T07:00:05+01:00", "JobID": job, "ProcessName": "Invoices"}}),
        # Orchestrator-style PascalCase with the Robot's entry in RawMessage
        json.dumps({"Level": "Error", "TimeStamp": "2024-03-01T06:00:06Z", "ProcessName": "Invoices",
                    "JobKey": job, "Message": "Second error", "RawMessage": json.dumps(
                        {"message": "Second error", "logType": "Default", "machineName": "VM-01"})}),
        # Splunk: the original line in result._raw
        json.dumps({"preview": False, "result": {"_raw": _line(
            "Info", "Invoices execution ended", "2024-03-01T07:00:09.000+01:00", job, "Invoices",
            totalExecutionTimeInSeconds=9).strip()}}),
    ]
    events, errors = feed_all(parser(), lines)
    assert errors == 0
    # the UI error is also a failed look-up of the run (selector health)
    assert [type(e).__name__ for e in events] == ["RunStarted", "UiLookup", "RunFinished"]
    lookup, run = events[1], events[2]
    assert (lookup.found, lookup.kind, lookup.run_id, lookup.screen) == (False, "not_found", job, "unknown")
    assert run.run_id == job and run.outcome == "failure" and run.reason == "ui_drift"
    assert run.output_tail.splitlines() == [
        "Click 'Submit': Cannot find the UI element corresponding to this selector", "Second error"]
    assert run.started == pytest.approx(ts("2024-03-01T07:00:00.123456+01:00"))
    assert run.ended == pytest.approx(ts("2024-03-01T07:00:09+01:00"))


def test_json_lines_that_are_not_robot_entries_are_parse_errors():
    p = parser()
    for bad in ['{"msg": "no message key"}', "[1, 2]", '{"message": "cut in the mid', "12:00:00.0000 Info not json",
                "15:40:00:845 => [ERROR] [UiPath.Workflow.Logging.StudioTraceListener] [4] boom",
                "   at System.IO.__Error.WinIOError(Int32 errorCode, String maybeFullPath)"]:
        with pytest.raises(ParseError):
            p.feed(bad)
    assert not p.is_complete('12:00:00.0000 Info {"message":"x","level":"Information","timeSt')
    assert p.is_complete('12:00:00.0000 Info {"message":"x","level":"Information"}')
    assert parse_record('{"Message": "x", "LogType": "User"}').log_type == "User"


# -- several processes in one log -------------------------------------------------------------


def test_process_name_selects_the_bots_lines_in_a_shared_log(tmp_path):
    a, b, c = ("aaaa-1", "bbbb-1", "cccc-1")
    lines = [
        _line("Info", "Invoices execution started", "2024-03-01T07:00:00+01:00", a, "Invoices"),
        _line("Info", "Réconciliation execution started", "2024-03-01T07:00:01+01:00", b, "Réconciliation"),
        _line("Info", "Other execution started", "2024-03-01T07:00:01+01:00", c, "Other"),
        _line("Error", "Logon failed for user 'svc_recon'", "2024-03-01T07:00:02+01:00", b, "Réconciliation"),
        _line("Error", "Other's problem", "2024-03-01T07:00:02+01:00", c, "Other"),
        _line("Info", "Invoices execution ended", "2024-03-01T07:00:03+01:00", a, "Invoices"),
        _line("Info", "Réconciliation execution ended", "2024-03-01T07:00:04+01:00", b, "Réconciliation"),
        _line("Info", "Other execution ended", "2024-03-01T07:00:05+01:00", c, "Other"),
    ]
    (tmp_path / "shared.log").write_text("".join(lines), encoding="utf-8")
    bots = [BotConfig(name="invoices", watch=WatchConfig(logs=[
                LogSpec(path="shared.log", format="uipath", process_name="invoices")])),
            BotConfig(name="recon", watch=WatchConfig(logs=[
                LogSpec(path="shared.log", format="uipath", process_name="RÉCONCILIATION")]))]
    w = Watched(tmp_path, bots=bots)
    w.poll()
    assert {r: (v.outcome, v.reason) for r, v in w.runs("invoices").items()} == {a: ("success", None)}
    recon = w.runs("recon")
    assert list(recon) == [b] and recon[b].reason == "credentials"
    assert recon[b].output_tail == "Logon failed for user 'svc_recon'"
    assert w.parse_errors() == 0  # other processes' lines are not errors


def test_a_process_name_pattern_with_wildcards():
    p = parser(process_name="Invoices_*")
    prod = _line("Info", "Invoices_Prod execution started", "2024-03-01T07:00:00Z", "j1", "Invoices_Prod")
    other = _line("Info", "Payroll execution started", "2024-03-01T07:00:00Z", "j2", "Payroll")
    assert len(p.feed(prod.strip())) == 1 and p.feed(other.strip()) == []


# -- runs and reasons -------------------------------------------------------------------------


@pytest.mark.parametrize("errors,reason", [
    (["Click 'Login': SelectorNotFoundException: Could not find the user-interface (UI) element"], "ui_drift"),
    (["Get Credential: Could not find an asset with this name."], "credentials"),
    (["Throw: Invoice 4711 already booked BusinessRuleException"], "business"),
    (["Add Data Column: A column named 'x' already belongs to this DataTable."], "crash"),
    # the earliest known cause wins over a later consequence
    (["Type Into: 0x00000532 password expired", "Click: SelectorNotFoundException"], "credentials"),
])
def test_error_lines_fail_their_run_with_the_reason_of_the_taxonomy(errors, reason):
    p = parser()
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:00Z", "j", "P").strip())
    for i, msg in enumerate(errors):
        p.feed(_line("Error", msg, f"2024-03-01T07:00:0{i + 1}Z", "j", "P").strip())
    (run,) = p.feed(_line("Info", "P execution ended", "2024-03-01T07:00:09Z", "j", "P").strip())
    assert run.outcome == "failure" and run.reason == reason
    assert run.output_tail.splitlines() == errors


def test_a_workflow_logging_an_error_itself_is_unknown_unless_a_pattern_matches():
    p = parser()
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:00Z", "j", "P").strip())
    p.feed(_line("Error", "Something odd happened", "2024-03-01T07:00:01Z", "j", "P", logType="User").strip())
    (run,) = p.feed(_line("Info", "P execution ended", "2024-03-01T07:00:09Z", "j", "P").strip())
    assert (run.outcome, run.reason) == ("failure", "unknown")


def test_fatal_lines_fail_and_warnings_do_not():
    p = parser()
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:00Z", "j1", "P").strip())
    p.feed(_line("Warn", "Retrying", "2024-03-01T07:00:01Z", "j1", "P").strip())
    (ok,) = p.feed(_line("Info", "P execution ended", "2024-03-01T07:00:02Z", "j1", "P").strip())
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:03Z", "j2", "P").strip())
    p.feed(_line("Fatal", "Robot crashed", "2024-03-01T07:00:04Z", "j2", "P").strip())
    (bad,) = p.feed(_line("Info", "P execution ended", "2024-03-01T07:00:05Z", "j2", "P").strip())
    assert ok.outcome == "success" and bad.outcome == "failure"


def test_a_workflow_message_saying_execution_ended_does_not_end_the_run():
    p = parser()
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:00Z", "j", "P").strip())
    assert p.feed(_line("Info", "Step execution ended", "2024-03-01T07:00:01Z", "j", "P", logType="User").strip()) == []
    assert [e.run_id for e in p.open_runs()] == ["j"]


def test_runs_in_progress_and_their_errors_survive_a_snapshot():
    p = parser()
    p.feed(_line("Info", "P execution started", "2024-03-01T07:00:00Z", "j", "P").strip())
    for i in range(MAX_KEPT_ERRORS + 3):
        p.feed(_line("Error", f"Error {i}: password=hunter2", "2024-03-01T07:00:01Z", "j", "P").strip())
    saved = json.loads(json.dumps(p.snapshot()))
    assert "hunter2" not in json.dumps(saved)  # what the journal keeps is redacted
    q = parser()
    q.restore(saved)
    assert [(e.run_id, e.time) for e in q.open_runs()] == [("j", ts("2024-03-01T07:00:00+00:00"))]
    (run,) = q.feed(_line("Info", "P execution ended", "2024-03-01T07:00:09Z", "j", "P").strip())
    tail = run.output_tail.splitlines()
    assert tail[0] == "Error 0: password=[REDACTED]" and len(tail) == MAX_KEPT_ERRORS + 1
    assert tail[-1] == "[... 3 more error line(s)]"


def test_without_a_job_id_the_run_id_is_stable():
    lines = [json.dumps({"message": "P execution started", "level": "Information", "timeStamp": "2024-03-01T07:00:00Z",
                         "processName": "P"}),
             json.dumps({"message": "P execution ended", "level": "Information", "timeStamp": "2024-03-01T07:00:05Z",
                         "processName": "P"})]
    first, _ = feed_all(parser(), lines)
    again, _ = feed_all(parser(), lines)
    assert first[0].run_id == first[1].run_id == again[1].run_id and first[0].run_id.startswith("uipath-")


def test_a_start_or_end_without_a_timestamp_is_a_parse_error():
    p = parser()
    with pytest.raises(ParseError):
        p.feed(json.dumps({"message": "P execution started", "jobId": "j", "processName": "P"}))
    assert p.feed(json.dumps({"message": "an ordinary line", "jobId": "j"})) == []


def _key(path: Path) -> str:
    import os

    return os.path.normcase(os.path.abspath(path))


def _robot_line(nlog: str, entry: str) -> str:
    return f"08:00:00.1234 {nlog} {entry}"


TRICKY = [
    # progress: set aside without decoding
    _robot_line("Info", '{"message":"Processing 1","level":"Information","logType":"User","timeStamp":'
                        '"2024-05-01T08:00:00.1+01:00","processName":"P","jobId":"j1"}'),
    _robot_line("Warn", '{"message":"Retrying","level":"Warning","logType":"User","processName":"P","jobId":"j1"}'),
    # run boundaries are Info lines: they must reach `feed`
    _robot_line("Info", '{"message":"P execution started","level":"Information","logType":"Default",'
                        '"timeStamp":"2024-05-01T08:00:00.1+01:00","processName":"P","jobId":"j1"}'),
    _robot_line("Info", '{"message":"P EXECUTION STARTED","level":"Information","logType":"Default",'
                        '"timeStamp":"2024-05-01T08:00:00.2+01:00","processName":"Q","jobId":"j2"}'),
    # the layout says Info but the entry says Error: an error
    _robot_line("Info", '{"message":"Logon failed for user svc","level":"Error","logType":"User",'
                        '"processName":"P","jobId":"j1"}'),
    # a message quoting what looks like the next key, escaped as JSON has it
    _robot_line("Info", '{"message":"says \\",\\"level\\":\\"Information\\" and execution ended","level":"Error",'
                        '"logType":"User","processName":"Q","jobId":"j2"}'),
    # a Healing Agent line at Info level: a healed look-up, so it must reach `feed` too
    _robot_line("Info", '{"message":"Healing Agent recovered the target of Click \'Submit\': <html app=\'chrome.exe\' '
                        'title=\'Invoices\' /><webctrl id=\'btnSend\' tag=\'BUTTON\' />","level":"Information",'
                        '"logType":"Default","timeStamp":"2024-05-01T08:00:05+01:00","processName":"P","jobId":"j1"}'),
    # keys in another order, spaces after the colons: read the slow way, same result
    _robot_line("Info", '{"level": "Information", "message": "P execution ended", "logType": "Default", '
                        '"timeStamp": "2024-05-01T08:00:09+01:00", "processName": "P", "jobId": "j1"}'),
    _robot_line("Info", '{"message":"Q execution ended","level":"Information","logType":"Default",'
                        '"timeStamp":"2024-05-01T08:00:09+01:00","processName":"Q","jobId":"j2"}'),
    # not Robot lines at all: parse errors either way
    "08:00:00.1234 Info {\"message\":\"cut off",
    "   ",
    "",
    "Exception in thread main",
]


def test_batches_of_lines_give_what_line_by_line_feeding_gives():
    expected, errors = feed_all(parser(), TRICKY)
    assert [type(e).__name__ for e in expected] == ["RunStarted", "RunStarted", "UiLookup", "RunFinished",
                                                    "RunFinished"]
    healed = expected[2]
    assert (healed.found, healed.healed, healed.screen, healed.run_id) == (True, True, "Invoices", "j1")
    assert healed.selector == "<html app='chrome.exe' title='Invoices' /><webctrl id='btnSend' tag='BUTTON' />"
    assert {e.run_id: e.reason for e in expected if isinstance(e, RunFinished)} == {"j1": "credentials", "j2": "unknown"}
    assert errors == 2
    for fed in (parser().feed_lines(TRICKY), parser().feed_raw_lines([line.encode() for line in TRICKY]),
                parser().feed_raw_lines([(line + "\r").encode() for line in TRICKY])):  # CRLF split at LF
        assert fed.events == expected
        assert (fed.errors, fed.lines) == (errors, len([line for line in TRICKY if line.strip()]))


def test_batches_of_the_corpus_logs_give_what_line_by_line_feeding_gives():
    for path in (RUNEFAR, HINOKISU, SPEC_LINES, STUDIO):
        lines = corpus_lines(path)
        expected, errors = feed_all(parser(), lines)
        fed = parser().feed_raw_lines(path.read_bytes().split(b"\n"))  # as the watcher splits: CRs kept
        assert (fed.events, fed.errors) == (expected, errors), path.name


# -- queue transactions: steps of the run (run traces) ---------------------------------------------

def transaction_log() -> list[str]:
    """A run that works two queue items, as the Robot logs its Transaction Start and End entries
    (queueName, transactionId, transactionState), amid progress lines."""
    def line(clock: str, message: str, **fields) -> str:
        entry = {"message": message, "level": "Information", "logType": "Default",
                 "timeStamp": f"2026-11-24T07:{clock}.0000000+00:00", "fingerprint": "f", "windowsIdentity": "VM\\bot",
                 "machineName": "VM", "processName": "Invoices", "processVersion": "1.0.0", "jobId": "job-7",
                 "robotName": "bot", "fileName": "Main", **fields}
        return f"07:{clock}.0000 Info " + json.dumps(entry, separators=(",", ":"))
    return [
        line("00:00", "Invoices execution started"),
        line("00:02", "Transaction start", queueName="Invoices", transactionId="q-1", transactionState="Started"),
        line("00:03", "Posting invoice INV-1"),
        line("00:05", "Transaction end", queueName="Invoices", transactionId="q-1", transactionState="Successful"),
        line("00:06", "Transaction start", queueName="Invoices", transactionId="q-2", transactionState="Started"),
        line("00:09", "Transaction end", queueName="Invoices", transactionId="q-2", transactionState="Failed"),
        line("00:10", "Invoices execution ended", totalExecutionTimeInSeconds=10),
    ]


@pytest.mark.parametrize("raw", [False, True], ids=["lines", "raw-bytes"])
def test_queue_transactions_are_steps_of_their_run_from_start_to_end(raw):
    from botwatch.core.events import StepFinished

    p = parser()
    lines = transaction_log()
    fed = p.feed_raw_lines([ln.encode() for ln in lines]) if raw else p.feed_lines(lines)
    steps = [e for e in fed.events if isinstance(e, StepFinished)]
    assert [(s.name, s.status, s.run_id) for s in steps] == [
        ("Invoices q-1", "pass", "job-7"), ("Invoices q-2", "fail", "job-7")]
    assert (steps[0].started, steps[0].ended) == (ts("2026-11-24T07:00:02+00:00"), ts("2026-11-24T07:00:05+00:00"))
    assert steps[1].message == "Failed"
    assert [type(e).__name__ for e in fed.events] == ["RunStarted", "StepFinished", "StepFinished", "RunFinished"]
