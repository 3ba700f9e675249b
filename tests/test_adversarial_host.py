"""A hostile bot host: symlink loops under watched log folders, processes named with terminal
escapes and spreadsheet formulas, an agent answering with them, other users of the machine
reading botwatch's data files, and a password in an agent URL. Real agents, real processes,
real files."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from botwatch.core.events import RunFinished
from botwatch.state.journal import Journal
from conftest import BOTWATCH, LocalHTTPServer, free_port, http_get, http_post_json, wait_for

REGEX_LOG = "format: regex, start: 'start (?P<run_id>\\d+)', end: 'end (?P<run_id>\\d+) (?P<status>\\w+)'"
# what a terminal obeys: CSI (clear the screen, colours), OSC (the window title, ended by BEL), the C1 CSI
ESCAPES = "\x1b[2J\x1b[31m\x9b7m\x1b]0;owned\x07"
FORMULA = '=HYPERLINK("evil.example","click")'


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    return {**env, **extra}


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTWATCH, *args], capture_output=True, env=clean_env(**env), timeout=120)


def controls(data: bytes) -> set[str]:
    """The terminal controls in an output: C0 (but the line ends and tabs a table may use), DEL, C1."""
    text = data.decode("utf-8", "replace")
    return {c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f}


def estate(tmp_path: Path, port: int, bots_yaml: str, agent_yaml: str = "", journal: Path | None = None) -> Path:
    """An estate file: the agent on `port`, its journal (in tmp_path by default), `agent_yaml` lines added."""
    path = tmp_path / "botwatch.yaml"
    path.write_text(f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {journal or tmp_path / 'journal.db'}\n"
                    + textwrap.indent(textwrap.dedent(agent_yaml), "  ")
                    + "bots:\n" + textwrap.indent(textwrap.dedent(bots_yaml), "  "), encoding="utf-8")
    return path


def metric(agent, key: str) -> float | None:
    return agent.metrics().get(key)


@pytest.fixture
def programs(tmp_path):
    """Copies of `sleep` started under hostile names from a bot folder: each is a shadow bot of
    platform `other` to the agent. Killed at the end."""
    folder = tmp_path / "bots"
    folder.mkdir()
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        exe = folder / name
        shutil.copy(shutil.which("sleep"), exe)
        p = subprocess.Popen([str(exe), "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        started.append(p)
        return p

    start.folder = folder
    yield start
    for p in started:
        with contextlib.suppress(OSError):
            p.kill()
        p.wait(timeout=30)


def listed(agent, *pids: int) -> bool:
    status, body = http_get(agent.url + "/api/v1/unregistered")
    return status == 200 and set(pids) <= {p["pid"] for p in json.loads(body)["processes"]}


# -- 7: a symlink loop under a `**` log glob ----------------------------------------------------

def test_a_symlink_loop_under_a_log_glob_stops_no_bots_log_watching(tmp_path, agents):
    logs = tmp_path / "logs"
    for sub in ("a", "b"):
        (logs / sub).mkdir(parents=True)
        os.symlink("..", logs / sub / "loop")  # logs/a/loop/b/loop/a/loop/... without end
    (logs / "a" / "run.log").write_text("start 1\nend 1 ok\n")
    other = tmp_path / "other.log"
    other.write_text("")
    port = free_port()
    config = estate(tmp_path, port, f"""\
        - name: looped
          watch:
            logs:
              - {{path: "logs/**/*.log", {REGEX_LOG}}}
              - {{path: "logs/{'x' * 300}/*.log", {REGEX_LOG}}}
        - name: other
          watch:
            logs:
              - {{path: "other.log", {REGEX_LOG}}}
        """)
    agent = agents(config, port).start()
    for i in range(10):
        with open(other, "a") as fh:
            fh.write(f"start {i}\nend {i} ok\n")
    wait_for(lambda: metric(agent, 'botwatch_runs_total{bot="other"}') == 10, what="the other bot's 10 runs")
    assert http_get(agent.url + "/healthz", timeout=15)[0] == 200
    m = agent.metrics()
    assert m['botwatch_runs_total{bot="looped"}'] == 1
    # each line read once: logs/a/run.log is not read again as logs/a/loop/a/run.log, ...
    assert m['botwatch_agent_events_total{source="log:regex"}'] == 2 + 20
    # the folder the second glob cannot look into (its name is too long) is said and counted once,
    # however many polls meet it
    with open(other, "a") as fh:
        fh.write("start 10\nend 10 ok\n")
    wait_for(lambda: metric(agent, 'botwatch_runs_total{bot="other"}') == 11, what="one more run, polls later")
    assert agent.metrics()['botwatch_agent_parse_errors_total{source="log:regex"}'] == 1
    assert agent.log.read_text(errors="replace").count("cannot look into") == 1


# -- 10: terminal escapes -----------------------------------------------------------------------

@pytest.mark.posix_only("programs named with control characters and quotes, which Windows file names cannot hold")
def test_status_unregistered_prints_no_escape_of_a_process_named_with_them(tmp_path, agents, programs):
    port = free_port()
    config = estate(tmp_path, port, "- name: registered\n",
                    f"process_interval: 0.2s\nbot_folders: ['{programs.folder}']\n")
    agent = agents(config, port).start()
    p = programs(f"evil{ESCAPES}name")
    wait_for(lambda: listed(agent, p.pid), what="the process in the agent's list")

    r = cli("status", "--unregistered", "--agent", agent.url, COLUMNS="400")
    assert r.returncode == 0, r.stderr
    assert controls(r.stdout) == set() and controls(r.stderr) == set()
    out = r.stdout.decode()
    assert str(p.pid) in out and "other" in out
    assert "evil\\x1b[2J\\x1b[31m\\x9b7m\\x1b]0;owned\\x07name" in out  # shown, as escapes

    j = cli("inventory", "--config", str(config), "--format", "csv")
    assert j.returncode == 0, j.stderr
    assert controls(j.stdout) == set() and controls(j.stderr) == set()
    (row,) = [row for row in csv.DictReader(io.StringIO(j.stdout.decode())) if row["pid"] == str(p.pid)]
    assert row["bot"].startswith("evil\\x1b[2J\\x1b[31m")  # the name as the kernel keeps it: 15 bytes


def hostile_agent(answers: dict[str, dict]) -> LocalHTTPServer:
    """An HTTP server answering GET paths with the given JSON (what a compromised agent may say)."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(answers.get(self.path, {})).encode()
            self.send_response(200 if self.path in answers else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return LocalHTTPServer(Handler)


def test_status_prints_no_escape_or_markup_an_agent_answers_with():
    now = time.time()
    answers = {
        "/api/v1/status": {"time": now, "bots": [
            {"bot": f"bot{ESCAPES}", "team": "[bold red]team[/] \x1b]8;;http://evil.example\x07link",
             "state": f"up{ESCAPES}", "last_run_end": now - 60, "last_outcome": "failure\r\x1b[K",
             "last_reason": f"crash{ESCAPES}", "consecutive_failures": f"3{ESCAPES}", "hung": True}]},
        "/api/v1/unregistered": {"time": now, "swept_at": now, "counts": {f"other{ESCAPES}": 1},
                                 "processes": [{"pid": f"1{ESCAPES}", "platform": f"p{ESCAPES}",
                                                "user": f"u{ESCAPES}", "cmdline": f"c{ESCAPES}", "started": now}]},
    }
    with hostile_agent(answers) as server:
        outs = {}
        for args in (("status",), ("status", "--unregistered")):
            r = cli(*args, "--agent", server.url, COLUMNS="400")
            assert r.returncode == 0, r.stderr
            assert controls(r.stdout) == set() and controls(r.stderr) == set(), args
            outs[args] = r.stdout.decode()
            assert "\\x1b[31m" in outs[args], args  # shown, as escapes
    assert "[bold red]team[/]" in outs[("status",)]  # as text, not as rich markup


def test_an_unreachable_agent_url_is_printed_without_its_password_or_escapes(tmp_path):
    url = f"http://botuser:pw-{uuid.uuid4().hex}@127.0.0.1:{free_port()}/{ESCAPES}"
    r = cli("status", "--unregistered", "--agent", url)
    assert r.returncode == 1 and b"not reachable" in r.stderr
    assert b"pw-" not in r.stderr and b"***@127.0.0.1" in r.stderr
    assert controls(r.stderr) == set()


# -- 11: CSV formula injection ------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_START):
                float(cell)  # only a number may start so (a negative one)


@pytest.mark.posix_only("programs named with control characters and quotes, which Windows file names cannot hold")
def test_inventory_csv_quotes_formulas_of_program_and_team_names(tmp_path, agents, programs):
    port = free_port()
    config = estate(tmp_path, port, f"""\
        - name: formula-team
          team: '{FORMULA.replace("'", "''")}'
          owner: '@SUM(1+1)*cmd|" /C calc"!A0'
        - name: dash-team
          team: "-2+3+cmd|' /C calc'!A0"
        """, f"process_interval: 0.2s\nbot_folders: ['{programs.folder}']\n")
    agent = agents(config, port).start()
    p = programs(FORMULA)
    wait_for(lambda: listed(agent, p.pid), what="the process in the agent's list")

    r = cli("inventory", "--config", str(config), "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode())))
    assert_no_formula(rows)
    by = {row["bot"]: row for row in csv.DictReader(io.StringIO(r.stdout.decode()))}
    assert by["formula-team"]["team"] == "'" + FORMULA  # shown as the text it is
    assert by["formula-team"]["owner"] == "'@SUM(1+1)*cmd|\" /C calc\"!A0"
    assert by["dash-team"]["team"] == "'-2+3+cmd|' /C calc'!A0"
    shadow = by["'" + FORMULA]
    assert shadow["pid"] == str(p.pid) and shadow["command"].startswith(str(programs.folder))
    assert by["formula-team"]["fragility"] == "0.000"  # numbers stay numbers


def test_report_csv_quotes_formulas_and_keeps_negative_numbers(tmp_path):
    end = time.time()
    (tmp_path / "botwatch.yaml").write_text(
        f"agent:\n  journal: {tmp_path / 'journal.db'}\nbots:\n"
        f"  - name: formula-team\n    team: '{FORMULA.replace(chr(39), chr(39) * 2)}'\n    every: 1h\n"
        "  - name: at-team\n    team: '@SUM(1+1)'\n    every: 1h\n")
    journal = Journal(tmp_path / "journal.db")
    with journal.transaction():
        for bot in ("formula-team", "at-team"):
            for n in range(4):  # 1 success in 4: far below the SLO, the error budget is spent
                journal.insert_run(RunFinished(bot=bot, run_id=f"r{n}", started=end - 3600 * (n + 1),
                                               ended=end - 3600 * (n + 1) + 10,
                                               outcome="success" if n == 0 else "failure", reason="data"),
                                   received=end)
    journal.close()
    r = cli("report", "--config", str(tmp_path / "botwatch.yaml"), "--since", "1d", "--format", "csv", "--out", "-")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode())))
    assert_no_formula(rows)
    by = {(row["scope"], row["name"]): row for row in csv.DictReader(io.StringIO(r.stdout.decode()))}
    assert by[("bot", "formula-team")]["team"] == "'" + FORMULA
    assert by[("bot", "at-team")]["team"] == "'@SUM(1+1)"
    assert ("team", "'" + FORMULA) in by and ("team", "'@SUM(1+1)") in by  # the team's own row too
    budget = by[("bot", "at-team")]["error_budget_left"]
    assert budget.startswith("-") and float(budget) < 0  # a negative number, not a quoted formula


def test_csv_cells_keep_numbers_and_quote_every_formula_start():
    from botwatch.core.safe_output import csv_cell

    assert [csv_cell(v) for v in (-3, -0.25, 0, 1.5, None, "-0.25", "+1", "1e-3")] == \
        [-3, -0.25, 0, 1.5, "", "-0.25", "+1", "1e-3"]
    for text in ("=1+1", "+1+cmd", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "-", "=HYPERLINK(\"x\")"):
        assert csv_cell(text).startswith("'"), text
    assert csv_cell("finance") == "finance" and csv_cell("a=b") == "a=b"


# -- 13: private data files, no password in a log ------------------------------------------------

@pytest.fixture
def permissive_umask():
    """A umask that leaves new files readable by everyone (022, the common default)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.posix_only("POSIX file modes (umask, 0600 and 0700); Windows keeps access in ACLs")
def test_the_agents_journal_and_its_wal_and_shm_are_private_in_folders_it_created(tmp_path, agents,
                                                                               permissive_umask):
    tmp_path.chmod(0o755)  # the user's own folder: botwatch leaves its mode alone
    journal = tmp_path / "state" / "botwatch" / "journal.db"
    port = free_port()
    config = estate(tmp_path, port, "- name: alpha\n", journal=journal)
    agent = agents(config, port).start()
    now = time.time()
    event = {"type": "run_finished", "bot": "alpha", "run_id": "r1", "started": now - 5, "ended": now,
             "outcome": "success"}
    assert http_post_json(agent.url + "/api/v1/events", {"events": [event]})[1]["accepted"] == 1
    wal, shm = Path(f"{journal}-wal"), Path(f"{journal}-shm")
    assert wal.exists() and shm.exists()  # the running agent holds them
    assert {p.name: mode(p) for p in (journal, wal, shm)} == {p.name: 0o600 for p in (journal, wal, shm)}
    assert mode(journal.parent) == mode(journal.parent.parent) == 0o700
    assert mode(tmp_path) == 0o755


@pytest.mark.posix_only("POSIX file modes (umask, 0600 and 0700); Windows keeps access in ACLs")
def test_a_journal_made_world_readable_before_is_narrowed_to_its_owner(tmp_path, permissive_umask):
    path = tmp_path / "journal.db"
    Journal(path).close()
    path.chmod(0o644)  # as botwatch made it before its data files were private
    Journal(path).close()
    assert mode(path) == 0o600


@pytest.mark.posix_only("POSIX file modes (umask, 0600 and 0700); Windows keeps access in ACLs")
def test_the_spool_its_log_and_lock_are_private_and_the_log_holds_no_agent_password(tmp_path, run_env,
                                                                                   permissive_umask):
    spool = tmp_path / "home" / ".local" / "state" / "botwatch" / "spool.db"
    password = f"pw-{uuid.uuid4().hex}"
    agent_url = f"http://botuser:{password}@127.0.0.1:{free_port()}"
    env = {**run_env, "BOTWATCH_SPOOL": str(spool), "BOTWATCH_DELIVERY_PATIENCE": "60"}
    r = subprocess.run([*BOTWATCH, "run", "--bot", "alpha", "--agent", agent_url, "--", "true"], env=env,
                       capture_output=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and password.encode() not in r.stderr
    log = spool.with_suffix(".log")
    text = wait_for(lambda: log.exists() and "did not take the events" in log.read_text() and log.read_text(),
                    what="the deliverer to log the unreachable agent")
    deliverer = int(re.search(r"^\S+ \S+ (\d+) WARNING", text, re.M).group(1))
    try:
        assert password not in text and "http://***@127.0.0.1" in text
        files = [spool, Path(f"{spool}-wal"), Path(f"{spool}-shm"), log, Path(f"{spool}.lock")]
        assert all(p.exists() for p in files)  # the deliverer still holds the spool open
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        home = tmp_path / "home"
        assert {str(d): mode(d) for d in (home, home / ".local", home / ".local" / "state", spool.parent)} == \
            {str(d): 0o700 for d in (home, home / ".local", home / ".local" / "state", spool.parent)}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(deliverer, signal.SIGTERM)


def test_urls_in_messages_lose_their_user_information():
    from botwatch.core.redact import redact_url

    assert redact_url("http://user:s3cret@agent:9464") == "http://***@agent:9464"
    assert redact_url("agent https://u:p@ss@h/x did not answer") == "agent https://***@h/x did not answer"
    assert redact_url("pushgateway:http://token@pgw:9091") == "pushgateway:http://***@pgw:9091"
    assert redact_url("http://agent:9464/api/v1/events") == "http://agent:9464/api/v1/events"
    assert redact_url("mailto:ana@example.com") == "mailto:ana@example.com"
