"""Bad log lines and bad output.xml files, fuzzed: events or a ParseError, never another
exception and never a hang; batches give what line-by-line feeding gives; through the real log
watcher the good runs are all recorded and the bad lines counted.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import example, given, settings, strategies as st

from botwatch.core.classify import Classifier
from botwatch.config.estate import BotConfig, Estate, LoadedEstate, LogSpec, WatchConfig
from botwatch.core.events import EVENT_TYPES, RunFinished, RunStarted
from botwatch.state.journal import Journal
from botwatch.parsers.base import ParseError, make_parser
from botwatch.parsers.robot_output import IncompleteOutputError, parse_output_xml
from botwatch.sources.logs import LogWatcher
from botwatch.state.runtime import EstateState
from fuzzing import bounded

CORPUS = Path(__file__).parent / "corpus"
UIPATH_LINES = [line.rstrip("\r") for p in sorted((CORPUS / "uipath").glob("*.log"))
                for line in p.read_bytes().decode("utf-8").split("\n") if line.strip()]
ROBOT_FILES = {p.name: p.read_bytes() for p in sorted((CORPUS / "robot").glob("*.xml"))}
EVENT_CLASSES = tuple(EVENT_TYPES.values())

SPECS = {
    "uipath": {"format": "uipath"},
    "uipath-shared": {"format": "uipath", "process_name": "Test*"},
    "regex": {"format": "regex", "start": r"(?P<time>\S+) start (?P<run_id>\w+)",
              "end": r"end (?P<run_id>\w+)(?: (?P<status>\w+))?", "error": r"ERROR (?P<message>.*)",
              "run_id": r"\[(?P<run_id>\w+)\]"},
    "regex-anonymous": {"format": "regex", "start": "start", "end": "end", "error": "(?i)error"},
    "python": {"format": "python", "start": r"^Run started (?P<run_id>\d+)",
               "end": r"^Run finished (?P<run_id>\d+) (?P<status>\w+)"},
}




def parser(name: str):
    p = make_parser(BotConfig(name="b", timezone="Europe/Amsterdam"), LogSpec(path="x.log", **SPECS[name]),
                    Classifier())
    if hasattr(p, "clock"):
        p.clock = lambda: 1_800_000_000.0  # lines without a time are taken at a fixed moment
    return p


def feed_one_by_one(p, lines: list[str]) -> tuple[list, int]:
    """`feed` each non-blank line: only events or ParseError may come out."""
    events, errors = [], 0
    for line in lines:
        if not line or line.isspace():
            continue
        with bounded(f"feed({line[:300]!r})"):
            try:
                got = p.feed(line)
            except ParseError:
                errors += 1
                continue
        assert isinstance(got, list) and all(isinstance(e, EVENT_CLASSES) for e in got), (line, got)
        events += got
    return events, errors


# -- lines --------------------------------------------------------------------------------------

NO_NL = st.characters(blacklist_characters="\n")
WORDS = ["execution started", "execution ended", "Error", "Fatal", "Info", "Warn", "ERROR", "Healing Agent healed",
         "self-healed", "transactionId", "start 1", "end 1 ok", "end 1 failed", "[1]", "ValueError: x",
         "Traceback (most recent call last)", "Run started 1", "Run finished 1 ok", "<html title='Invoices' />",
         "SelectorNotFoundException"]
UIPATH_KEYS = ["message", "level", "logType", "timeStamp", "processName", "jobId", "jobKey", "robotName",
               "machineName", "totalExecutionTimeInSeconds", "totalExecutionTime", "transactionId",
               "transactionState", "queueName", "_source", "result", "_raw", "RawMessage", "MESSAGE", "fileName"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(NO_NL, max_size=20) | st.sampled_from(
        ["Test execution started", "Test execution ended", "Error", "Information", "Default", "User",
         "2018-08-28T14:28:55.6427211-07:00", "not a time", "00:02:14", "1.00:00:00", "-5", "Test", "job-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(UIPATH_KEYS), inner, max_size=4),
    max_leaves=12)
entries = st.dictionaries(st.sampled_from(UIPATH_KEYS) | st.text(max_size=6), json_values, max_size=8)


@st.composite
def json_lines(draw) -> str:
    body = json.dumps(draw(entries), ensure_ascii=draw(st.booleans()))
    prefix = draw(st.sampled_from(["", "14:28:55.8810 Info ", "14:28:58.4636 Error ", "9:0:0 Fatal ", "  ",
                                   "14:28:55.8810 Warn ", "\ufeff"]))
    return (prefix + body).replace("\n", " ")


@st.composite
def corpus_lines(draw) -> str:
    """A real UiPath line, cut short, with bytes flipped, or with a word swapped in."""
    line = draw(st.sampled_from(UIPATH_LINES))
    op = draw(st.sampled_from(["cut", "flip", "word", "whole"]))
    if op == "cut":
        line = line[:draw(st.integers(0, len(line)))]
    elif op == "flip":
        raw = bytearray(line.encode("utf-8"))
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        line = raw.decode("utf-8", "replace")
    elif op == "word":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(WORDS)) + line[at:]
    return line.replace("\n", " ")


lines = (st.text(NO_NL, max_size=200)
         | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace").replace("\n", " "))
         | json_lines() | corpus_lines()
         | st.lists(st.sampled_from(WORDS) | st.text(NO_NL, max_size=10), max_size=6).map(" ".join))
line_lists = st.lists(lines, max_size=25)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(SPECS)), batch=line_lists)
def test_each_line_parser_gives_events_or_a_parse_error_and_batches_equal_single_lines(name, batch):
    expected, errors = feed_one_by_one(parser(name), batch)
    with bounded(f"{name} feed_lines({batch!r})"[:2000]):
        fed = parser(name).feed_lines(batch)
    assert fed.failure is None, f"{name}: unexpected {fed.failure!r} for {batch!r}"
    assert (fed.events, fed.errors) == (expected, errors), (name, batch)
    assert fed.lines == len([line for line in batch if line and not line.isspace()])


# found by tests/fuzz/fuzz_uipath_line.py: junk where the time belongs, a progress line after it
PROGRESS = next(line for line in UIPATH_LINES if line[13:].startswith(' Info {"message":"') and "xecution" not in line)
JUNK_TIME = b"!" + b"\x00" * 10 + b"97" + PROGRESS[13:].encode()


@settings(max_examples=120, deadline=None, derandomize=True)
@example(name="uipath", raw=[JUNK_TIME])
@given(name=st.sampled_from(["uipath", "uipath-shared"]),
       raw=st.lists(st.binary(max_size=120) | lines.map(lambda s: s.encode("utf-8", "surrogatepass"))
                    | corpus_lines().map(lambda s: (s + "\r").encode("utf-8")), max_size=25))
def test_uipath_raw_lines_give_what_the_decoded_lines_give(name, raw):
    raw = [b.replace(b"\n", b" ") for b in raw]  # the watcher splits at LF: no LF inside a line
    decoded = [(b[:-1] if b.endswith(b"\r") else b).decode("utf-8", "replace") for b in raw]
    expected, errors = feed_one_by_one(parser(name), decoded)
    with bounded(f"feed_raw_lines({raw!r})"[:2000]):
        fed = parser(name).feed_raw_lines(raw)
    assert fed.failure is None, f"unexpected {fed.failure!r} for {raw!r}"
    assert (fed.events, fed.errors) == (expected, errors), raw
    assert fed.lines == len(raw) - sum(1 for d in decoded if not d or d.isspace())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(SPECS)), batch=line_lists, cut=st.integers(0, 25))
def test_a_parser_restored_from_its_snapshot_goes_on_as_if_never_stopped(name, batch, cut):
    whole, _ = feed_one_by_one(parser(name), batch)
    first = parser(name)
    before, _ = feed_one_by_one(first, batch[:cut])
    second = parser(name)
    second.restore(json.loads(json.dumps(first.snapshot())))  # as the journal keeps it
    after, _ = feed_one_by_one(second, batch[cut:])
    assert before + after == whole, (name, batch, cut)


# -- through the real log watcher ----------------------------------------------------------------

def uipath_entry(level: str, message: str, job: str, clock: str, **extra) -> str:
    entry = {"message": message, "level": "Error" if level == "Error" else "Information", "logType": "Default",
             "timeStamp": f"2024-05-01T07:{clock}.0000000+00:00", "processName": "Invoices", "jobId": job,
             "machineName": "VM", "robotName": "bot", **extra}
    return f"07:{clock}.0000 {level} " + json.dumps(entry, separators=(",", ":"))


def uipath_run(i: int, failed: bool) -> list[str]:
    job, m = f"job-{i}", f"{i // 60:02d}:{i % 60:02d}"
    out = [uipath_entry("Info", "Invoices execution started", job, m),
           uipath_entry("Info", "Posting invoice", job, m)]
    if failed:
        out.append(uipath_entry("Error", "Logon failed for user 'svc'", job, m))
    return out + [uipath_entry("Info", "Invoices execution ended", job, m, totalExecutionTimeInSeconds=1)]


def python_run(i: int, failed: bool) -> list[str]:
    t = f"2024-05-01 07:{i // 60:02d}:{i % 60:02d}"
    out = [f"{t},100 - bot - INFO - Run started {i}", f"{t},200 - bot - INFO - working"]
    if failed:
        out += [f"{t},300 - bot - ERROR - Logon failed for user 'svc'", "Traceback (most recent call last):",
                '  File "bot.py", line 1, in <module>', "PermissionError: denied"]
    return out + [f"{t},400 - bot - INFO - Run finished {i} {'failed' if failed else 'ok'}"]


RUNS = {"uipath": (uipath_run, lambda i: f"job-{i}"), "python": (python_run, str)}


@st.composite
def garbage(draw, good: list[str]) -> bytes:
    """A line no parser of these formats reads: junk after '#', or a good line cut short."""
    if draw(st.booleans()):
        junk = draw(st.binary(max_size=80)).replace(b"\n", b" ").replace(b"\r", b" ")
        return b"# " + junk
    line = draw(st.sampled_from(good))
    cut = line[:draw(st.integers(1, len(line) - 2))].rstrip("}")
    return ("#" + cut if not cut.startswith(("{", "0")) else cut).encode("utf-8")


@settings(max_examples=20, deadline=None, derandomize=True)
@given(fmt=st.sampled_from(sorted(RUNS)), outcomes=st.lists(st.booleans(), min_size=1, max_size=6),
       data=st.data())
def test_the_log_watcher_records_every_good_run_and_counts_every_bad_line(fmt, outcomes, data):
    make_run, run_id = RUNS[fmt]
    good = [line for i, failed in enumerate(outcomes) for line in make_run(i, failed)]
    content: list[bytes] = []
    bad = 0
    for line in good:
        for _ in range(data.draw(st.integers(0, 2), label="garbage before")):
            content.append(data.draw(garbage(good), label="garbage"))
            bad += 1
        content.append(line.encode("utf-8"))
    crlf = data.draw(st.booleans(), label="crlf")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "bot.log").write_bytes(b"".join(c + (b"\r\n" if crlf else b"\n") for c in content))
        spec = {**SPECS[fmt], "path": "bot.log"}
        loaded = LoadedEstate(Estate(bots=[BotConfig(name="b", watch=WatchConfig(logs=[LogSpec(**spec)]))]),
                              tmp / "botwatch.yaml")
        journal = Journal(tmp / "journal.db")
        try:
            state = EstateState(loaded.estate, journal)
            watcher = LogWatcher(loaded, state, journal, use_watchdog=False)
            with bounded(f"the log watcher on {content!r}"[:2000]):
                watcher.poll_once()
            runs = {r.run_id: r.outcome for r in journal.iter_runs() if r.bot == "b"}
            errors = state.self_metrics()["parse_errors"].get(f"log:{fmt}", 0)
        finally:
            journal.close()
    assert runs == {run_id(i): "failure" if failed else "success" for i, failed in enumerate(outcomes)}, content
    assert errors == bad, content


# -- output.xml ---------------------------------------------------------------------------------

def outcome_of(data: bytes, what: str) -> list | Exception:
    """parse_output_xml under the guard: events, or the ParseError / IncompleteOutputError raised."""
    with bounded(what):
        try:
            events = parse_output_xml(data, "b")
        except (ParseError, IncompleteOutputError) as exc:
            assert str(exc).startswith("not a Robot Framework output.xml"), (str(exc), what)
            return exc
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished), what
    assert all(isinstance(e, EVENT_CLASSES) for e in events), what
    return events


_ATTR = re.compile(rb'(\w+)="[^"]*"')
_TAG = re.compile(rb"</?\w+[^>]*>")
ATTR_VALUES = [b"", b"N/A", b"PASS", b"FAIL", b"SKIP", b"NOT RUN", b"-1", b"1e999", b"nan", b"inf",
               b"99999999 99:99:99.999", b"20231116 17:35:01.759", b"0001-01-01T00:00:00",
               b"9999-12-31T23:59:59.999999",
               b"2023-11-16T17:35:01.759+05:00", b"&amp;", b"&#0;", b"&#x110000;", b"&undefined;", b"\xff\xfe",
               b"x" * 5000, b"teardown", b"for", b"<", b'"']


@st.composite
def mutated_output(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(ROBOT_FILES)))
    data = ROBOT_FILES[name]
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "attribute", "delete", "duplicate"]))
        ops.append(op)
        if op == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif op == "flip" and data:
            raw = bytearray(data)
            for _ in range(draw(st.integers(1, 8))):
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            data = bytes(raw)
        elif op == "attribute":
            attrs = list(_ATTR.finditer(data))
            if attrs:
                m = draw(st.sampled_from(attrs))
                value = draw(st.sampled_from(ATTR_VALUES) | st.binary(max_size=20).map(lambda b: b.replace(b'"', b"")))
                data = data[:m.start()] + m.group(1) + b'="' + value + b'"' + data[m.end():]
        elif op in ("delete", "duplicate"):
            tags = list(_TAG.finditer(data))
            if tags:
                m = draw(st.sampled_from(tags))
                data = data[:m.start()] + (m.group(0) * 2 if op == "duplicate" else b"") + data[m.end():]
    return f"{name} after {ops}", data


TAGS = ["robot", "suite", "test", "kw", "status", "for", "if", "msg", "doc", "arg", "iter", "branch", "errors"]
ATTRS = ["name", "status", "starttime", "endtime", "start", "elapsed", "type", "generated", "schemaversion"]


def xml_of(tree) -> str:
    tag, attrs, children = tree
    inner = "".join(xml_of(c) if isinstance(c, tuple) else c for c in children)
    a = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f"<{tag}{a}>{inner}</{tag}>"


xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<>&\x00"), max_size=20)
xml_trees = st.recursive(
    st.tuples(st.sampled_from(TAGS), st.dictionaries(st.sampled_from(ATTRS), xml_text.map(lambda s: s.replace('"', "")),
                                                     max_size=3), st.just([])),
    lambda inner: st.tuples(st.sampled_from(TAGS), st.dictionaries(st.sampled_from(ATTRS),
                                                                   st.sampled_from(["PASS", "FAIL", "SKIP",
                                                                                    "20240501 07:00:00.000",
                                                                                    "2024-05-01T07:00:00", "1.5", "x"]),
                                                                   max_size=3),
                            st.lists(inner | xml_text, max_size=4)),
    max_leaves=20)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(mutated_output())
def test_a_mutated_output_xml_gives_events_or_a_parse_error(case):
    what, data = case
    outcome_of(data, what)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(tree=xml_trees, prolog=st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n', "\ufeff", "  "]),
       root=st.booleans())
def test_generated_xml_gives_events_or_a_parse_error(tree, prolog, root):
    if root:  # under a <robot> root, so that the parser gets past its first check
        tree = ("robot", {"generated": "20240501 07:00:00.000"}, [tree])
    text = prolog + xml_of(tree)
    outcome_of(text.encode("utf-8"), text[:500])


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_not_an_output_xml(data):
    got = outcome_of(data, repr(data))
    assert isinstance(got, Exception), data


def test_every_cut_of_a_real_output_xml_is_incomplete_or_malformed_never_a_run():
    data = ROBOT_FILES["rf-7.0.1_schema5_pabot_first.xml"]
    end = data.rindex(b"</robot>")
    for cut in range(0, end):
        got = outcome_of(data[:cut], f"cut at {cut}")
        assert isinstance(got, Exception), cut
    assert isinstance(outcome_of(data, "whole"), list)


def test_entity_expansion_and_external_entities_stay_refused():
    laughs = (b'<?xml version="1.0"?><!DOCTYPE robot [<!ENTITY a "aaaaaaaaaa">'
              + b"".join(b'<!ENTITY a%d "%s">' % (i, (b"&a%d;" % (i - 1) if i > 1 else b"&a;") * 10)
                         for i in range(1, 10))
              + b']><robot generated="20240501 07:00:00.000"><suite name="s"><status status="PASS" '
                b'starttime="20240501 07:00:00.000" endtime="20240501 07:00:01.000">&a9;</status></suite></robot>')
    external = (b'<?xml version="1.0"?><!DOCTYPE robot [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<robot><suite name="s"><status status="FAIL">&x;</status></suite></robot>')
    parameter = (b'<?xml version="1.0"?><!DOCTYPE robot [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'
                 b"<robot/>")
    for data in (laughs, external, parameter):
        got = outcome_of(data, data[:80].decode())
        assert isinstance(got, ParseError) and "DOCTYPE" in str(got), got
