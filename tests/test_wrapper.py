"""Integration tests of `botwatch run`, the command wrapper: real bot processes started through
the real `botwatch` console script, each test with its own spool.

The wrapper's promise: the bot's output and exit status pass through untouched, signals reach
the bot's whole process tree, a timeout leaves no process of the tree behind, and the finished
run is in the spool (classified, with a redacted output tail) before the wrapper exits.
Monitoring problems are warnings; they never change the bot's result.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from botwatch.core.host import hostname
from conftest import console_script, not_applicable

pytestmark = pytest.mark.integration

BOTS = Path(__file__).parent / "bots"
BOTWATCH = console_script("botwatch")
PY = sys.executable
WAIT = 20.0  # generous deadline for anything we poll for; never an assertion of speed


# -- helpers ----------------------------------------------------------------------------------

def wrapper_env(spool: Path | str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL", "BOTWATCH_DELIVERY_PATIENCE")}
    env["BOTWATCH_SPOOL"] = str(spool)
    env["BOTWATCH_NO_DELIVERY"] = "1"
    env.update(extra)
    return env


def default_signals() -> None:
    """In the child, before exec: the signals a terminal sends, at their defaults. A test runner
    started in the background (nohup, `&` in a script) passes them on ignored, and a shell cannot
    undo that: a bot that kills itself with SIGINT would not die."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def botwatch_run(tmp_path: Path, args: list[str], *, spool: Path | str | None = None,
                 env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`botwatch run ARGS` with the bot's output captured as bytes."""
    return subprocess.run(
        [str(BOTWATCH), "run", *args], cwd=tmp_path, capture_output=True, timeout=timeout,
        env=env or wrapper_env(spool or tmp_path / "spool.db"),
        preexec_fn=default_signals if os.name == "posix" else None)


def run_bot(tmp_path: Path, cmd: list[str], *, bot: str = "b", options: list[str] = (), **kw):
    return botwatch_run(tmp_path, ["--bot", bot, *options, "--", *cmd], **kw)


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def talking(out: bytes, err: bytes = b"", status: int = 0) -> list[str]:
    """A bot that writes exactly these bytes (no newline translation) and exits with `status`."""
    return py(f"import os, sys; os.write(1, {out!r}); os.write(2, {err!r}); sys.exit({status})")


SH_BOT = "its bot is a sh command line"


def spool_rows(spool: Path, kind: str = "finish") -> list[dict]:
    db = sqlite3.connect(spool)
    try:
        rows = db.execute(
            "SELECT bot, run_id, agent_url, config, event, attempts, last_error FROM outbox "
            "WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        db.close()
    return [{"bot": r[0], "run_id": r[1], "agent_url": r[2], "config": r[3], "event": json.loads(r[4]),
             "attempts": r[5], "last_error": r[6]} for r in rows]


def finished_run(spool: Path) -> dict:
    """The event of the only finished run in the spool."""
    rows = spool_rows(spool)
    assert len(rows) == 1, f"expected exactly one finished run, found {rows}"
    event = rows[0]["event"]
    assert event["type"] == "run_finished" and event["source"] == "wrapper"
    assert event["run_id"] == rows[0]["run_id"] and event["bot"] == rows[0]["bot"]
    return event


def spool_bytes(spool: Path) -> bytes:
    """The raw bytes of the spool database and its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in (spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")) if p.exists())


def wait_for(condition, what: str, timeout: float = WAIT, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(interval)


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- exit status ------------------------------------------------------------------------------

@pytest.mark.posix_only(SH_BOT)
def test_exit_status_passes_through_for_every_value_and_only_zero_is_a_success(tmp_path):
    spool = tmp_path / "spool.db"

    def one(status: int) -> tuple[int, int]:
        return status, run_bot(tmp_path, ["sh", "-c", f"exit {status}"], bot=f"exit-{status}", spool=spool).returncode

    with ThreadPoolExecutor(4) as pool:
        results = dict(pool.map(one, range(256)))
    assert results == {status: status for status in range(256)}

    rows = spool_rows(spool)
    assert sorted(r["bot"] for r in rows) == sorted(f"exit-{s}" for s in range(256))
    for row in rows:
        status, event = int(row["bot"].removeprefix("exit-")), row["event"]
        assert event["exit_status"] == status, row
        assert "signal" not in event, row  # `exit 139` is a status, not a death by SIGSEGV
        assert event["timed_out"] == 0
        if status == 0:
            assert event["outcome"] == "success" and "reason" not in event, row
        else:
            assert event["outcome"] == "failure" and event["reason"] == "unknown", row


def test_exit_status_passes_through_when_started_as_python_module(tmp_path):
    proc = subprocess.run([PY, "-m", "botwatch", "run", "--bot", "b", "--", *py("import sys; sys.exit(5)")],
                          cwd=tmp_path, capture_output=True, timeout=60, env=wrapper_env(tmp_path / "spool.db"))
    assert finished_run(tmp_path / "spool.db")["exit_status"] == 5
    assert proc.returncode == 5, proc.stderr


def test_successful_run_is_recorded_once_with_its_output_and_host(tmp_path):
    proc = run_bot(tmp_path, talking(b"all good\n"))
    assert proc.returncode == 0
    assert proc.stdout == b"all good\n" and proc.stderr == b""
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "success" and event["exit_status"] == 0
    assert event["output_tail"] == "all good\n"
    assert event["host"] == hostname()
    assert event["started"] <= event["ended"]
    assert spool_rows(tmp_path / "spool.db", "start") == []  # a short run is reported once, at its end


def test_failure_text_in_a_successful_run_does_not_make_it_a_failure(tmp_path):
    proc = run_bot(tmp_path, py("print('Logon failed for user svc_bot (retrying: ok)')"))
    assert proc.returncode == 0
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "success" and "reason" not in event


# -- death by signal --------------------------------------------------------------------------

@pytest.mark.posix_only("a bot dies by a POSIX signal it sends itself with sh's kill")
@pytest.mark.parametrize("name, reason", [
    ("SIGKILL", "killed"),
    ("SIGTERM", "killed"),
    ("SIGINT", "killed"),
    ("SIGHUP", "killed"),
    ("SIGUSR1", "killed"),
    ("SIGSEGV", "crash"),
    ("SIGABRT", "crash"),
])
def test_bot_killed_by_a_signal_makes_the_wrapper_exit_128_plus_the_signal(tmp_path, name, reason):
    sig = getattr(signal, name)
    proc = run_bot(tmp_path, ["sh", "-c", f"ulimit -c 0; echo before; kill -{int(sig)} $$; echo after"])
    assert proc.returncode == 128 + sig
    assert proc.stdout == b"before\n"
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "failure"
    assert event["exit_status"] == 128 + sig
    assert event["signal"] == sig
    assert event["reason"] == reason


# -- signal forwarding ------------------------------------------------------------------------

@pytest.mark.posix_only("a POSIX signal sent to the wrapper is forwarded to the bot's process group")
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_sent_to_the_wrapper_reaches_the_bot_and_its_child(tmp_path, name):
    sig = getattr(signal, name)
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen([str(BOTWATCH), "run", "--bot", "b", "--", PY, str(BOTS / "sigbot.py"), str(marks)],
                            cwd=tmp_path, env=wrapper_env(tmp_path / "spool.db"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (marks / "ready").exists() or proc.poll() is not None, "the bot to be ready")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 64 + sig, err  # the status the bot chose, not a death of the wrapper
    got = sorted(p.name for p in marks.iterdir() if not p.name.startswith("."))
    assert got == sorted(["ready", "child-ready", f"bot-{sig.name}", f"child-{sig.name}"])
    bot_pid = int((marks / "ready").read_text())
    child_pid = int((marks / f"child-{sig.name}").read_text())
    assert int((marks / f"bot-{sig.name}").read_text()) == bot_pid
    assert child_pid != bot_pid and child_pid != proc.pid
    event = finished_run(tmp_path / "spool.db")
    assert event["exit_status"] == 64 + sig and "signal" not in event
    assert event["outcome"] == "failure"


@pytest.mark.posix_only("SIGTERM sent to the wrapper, a sh bot")
def test_signal_sent_to_the_wrapper_ends_a_bot_that_does_not_trap_it(tmp_path):
    proc = subprocess.Popen([str(BOTWATCH), "run", "--bot", "b", "--", "sh", "-c", "touch ready; exec sleep 60"],
                            cwd=tmp_path, env=wrapper_env(tmp_path / "spool.db"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, "the bot to be ready")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM
    event = finished_run(tmp_path / "spool.db")
    assert event["signal"] == signal.SIGTERM and event["reason"] == "killed"


# -- timeout ----------------------------------------------------------------------------------

@pytest.mark.posix_only("process groups, sessions (setsid) and a SIGTERM the grandchild ignores")
@pytest.mark.parametrize("grandchild", ["in_the_bots_process_group", "in_a_session_its_parent_started"])
def test_timeout_ends_the_whole_process_tree_including_a_grandchild_that_ignores_sigterm(tmp_path, grandchild):
    """In the second case the bot's child has left the bot's session (setsid) and ignores SIGTERM
    too: the bot is then the only process of its group, and the rest of the tree can only be
    reached through the descendants the wrapper saw."""
    pids = tmp_path / "pids"
    pids.mkdir()
    setsid = grandchild == "in_a_session_its_parent_started"
    cmd = [PY, str(BOTS / "treebot.py"), str(pids), *(["--setsid"] if setsid else [])]
    proc = subprocess.Popen([str(BOTWATCH), "run", "--bot", "b", "--timeout", "2s", "--kill-grace", "1s", "--", *cmd],
                            cwd=tmp_path, env=wrapper_env(tmp_path / "spool.db"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tree: dict[str, int] = {}
    try:
        wait_for(lambda: all((pids / f"{r}.pid").exists() for r in ("bot", "child", "grandchild"))
                 or proc.poll() is not None, "the bot's process tree to start")
        assert proc.poll() is None, proc.communicate()
        tree = {r: int((pids / f"{r}.pid").read_text()) for r in ("bot", "child", "grandchild")}
        assert len(set(tree.values())) == 3
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 124, err
        assert b"timeout" in err

        event = finished_run(tmp_path / "spool.db")
        assert event["reason"] == "timeout"
        assert event["timed_out"] == 1
        assert event["outcome"] == "failure"
        # a run that outlives the first second is also reported when it starts
        assert [r["run_id"] for r in spool_rows(tmp_path / "spool.db", "start")] == [event["run_id"]]

        deadline = time.monotonic() + 5
        while any(running(pid) for pid in tree.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = {role: pid for role, pid in tree.items() if running(pid)}
        assert survivors == {}, f"left alive after the timeout: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in tree.values():  # never leave a stray process behind, whatever the outcome
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_bot_that_ends_before_its_timeout_keeps_its_own_exit_status(tmp_path):
    proc = run_bot(tmp_path, py("import sys; sys.exit(3)"), options=["--timeout", "30s"])
    assert proc.returncode == 3
    event = finished_run(tmp_path / "spool.db")
    assert event["timed_out"] == 0 and event["reason"] == "unknown"


# -- output passthrough -----------------------------------------------------------------------

def test_binary_output_passes_through_byte_for_byte_on_each_stream(tmp_path):
    special = b"\x00\r\n\r\xff\xfe\xc3\x28\xa0\xa1\xe2\x82\xf0\x28\x8c\xbc\xed\xa0\x80\x1b[31m\x00"
    out = special + random.Random(1).randbytes(300_000) + special + b"\r"
    err = special[::-1] + random.Random(2).randbytes(290_000) + b"\x00"
    (tmp_path / "out.bin").write_bytes(out)
    (tmp_path / "err.bin").write_bytes(err)
    proc = run_bot(tmp_path, [PY, str(BOTS / "outbot.py"), "bytes", str(tmp_path / "out.bin"),
                              str(tmp_path / "err.bin")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout) == len(out) and proc.stdout == out
    assert len(proc.stderr) == len(err) and proc.stderr == err
    assert finished_run(tmp_path / "spool.db")["outcome"] == "success"


@pytest.mark.posix_only(SH_BOT + " that leaves a process in the background with `&`")
def test_background_process_holding_the_output_open_does_not_hold_up_the_wrapper(tmp_path):
    bg = tmp_path / "bg.pid"
    try:
        # deadline well below the background process's 60 s: the wrapper must not wait for it
        proc = run_bot(tmp_path, ["sh", "-c", f"sleep 60 & echo $! > {bg}; echo done; exit 6"], timeout=WAIT)
        assert proc.returncode == 6
        assert proc.stdout == b"done\n"
        assert finished_run(tmp_path / "spool.db")["exit_status"] == 6
    finally:
        if bg.exists():
            try:
                os.kill(int(bg.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def test_interleaved_lines_arrive_in_order_within_each_stream(tmp_path):
    n = 2000
    proc = run_bot(tmp_path, [PY, str(BOTS / "outbot.py"), "lines", str(n)])
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [f"out {i}" for i in range(n)]
    assert proc.stderr.decode().splitlines() == [f"err {i}" for i in range(n)]


# -- output tail and redaction ----------------------------------------------------------------

def test_output_tail_holds_the_last_4096_characters_of_the_output(tmp_path):
    code = "import sys\nfor i in range(3000): sys.stdout.write(f'line {i:05d}\\n')\nprint('the end'); sys.exit(2)"
    proc = run_bot(tmp_path, py(code))
    assert proc.returncode == 2
    full = proc.stdout.decode()
    tail = finished_run(tmp_path / "spool.db")["output_tail"]
    assert len(tail) == 4096
    assert tail == full[-4096:]
    assert tail.endswith("line 02999\nthe end\n")
    assert "line 00000" not in tail


def test_output_tail_of_undecodable_bytes_is_still_recorded(tmp_path):
    proc = run_bot(tmp_path, py("import os, sys; os.write(1, b'bad \\xff\\xfe bytes\\n'); sys.exit(1)"))
    assert proc.returncode == 1
    assert proc.stdout == b"bad \xff\xfe bytes\n"
    assert finished_run(tmp_path / "spool.db")["output_tail"] == "bad \ufffd\ufffd bytes\n"


def test_secrets_in_the_output_are_redacted_and_never_reach_the_spool_file(tmp_path):
    code = (
        "import sys\n"
        "sys.stderr.write('connecting with api_key=sk-live-7f3a9c2e1d\\n'); sys.stderr.flush()\n"
        "print('login: user=bot password=hunter2')\n"
        "print('GET /invoices Authorization: Bearer abcdef123456789')\n"
        "print('proxy https://svc:pr0xyPa55@proxy.example:8080')\n"
        "print('tail-marker-7b1e'); sys.exit(1)\n"
    )
    proc = run_bot(tmp_path, py(code))
    assert proc.returncode == 1
    # the bot's own output is never altered
    assert b"password=hunter2" in proc.stdout and b"Bearer abcdef123456789" in proc.stdout
    assert b"api_key=sk-live-7f3a9c2e1d" in proc.stderr

    spool = tmp_path / "spool.db"
    raw = spool_bytes(spool)
    assert b"tail-marker-7b1e" in raw  # the tail is in these bytes ...
    for secret in (b"hunter2", b"abcdef123456789", b"sk-live-7f3a9c2e1d", b"pr0xyPa55"):
        assert secret not in raw, secret  # ... and the secrets are not
    tail = finished_run(spool)["output_tail"]
    assert "password=[REDACTED]" in tail
    assert "Authorization: Bearer [REDACTED]" in tail
    assert "api_key=[REDACTED]" in tail
    assert "https://svc:[REDACTED]@proxy.example:8080" in tail
    assert "tail-marker-7b1e\n" in tail


@pytest.mark.posix_only(SH_BOT)
def test_long_bearer_tokens_in_a_verbose_log_never_reach_the_spool_file(tmp_path):
    """A debug log full of long tokens (JWTs run to kilobytes): every one of them is a secret,
    including the one the tail window happens to cut through."""
    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tokens = ["eyJ" + "".join(rng.choice(alphabet) for _ in range(1500)) for _ in range(12)]
    (tmp_path / "log.txt").write_text("".join(f"GET /api/items Authorization: Bearer {t}\n" for t in tokens))
    proc = run_bot(tmp_path, ["sh", "-c", "cat log.txt; exit 1"])
    assert proc.returncode == 1
    assert proc.stdout == (tmp_path / "log.txt").read_bytes()

    raw = spool_bytes(tmp_path / "spool.db").decode("latin-1")
    tail = finished_run(tmp_path / "spool.db")["output_tail"]
    assert tail.endswith("Authorization: Bearer [REDACTED]\n")
    for token in tokens:
        pieces = {token[i:i + 24] for i in range(0, len(token) - 24, 12)}
        leaked = [p for p in pieces if p in raw]
        assert not leaked, f"{len(leaked)} piece(s) of a token are in the spool file, e.g. {leaked[0]!r}"


# -- classification ---------------------------------------------------------------------------

@pytest.mark.parametrize("reason, code", [
    ("ui_drift", "print('UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element "
                 "corresponding to this selector: <wnd app=\\'erp.exe\\' />')"),
    ("credentials", "print(\"Logon failed for user 'svc_invoices'.\", file=sys.stderr)"),
    ("crash", "raise RuntimeError('the invoice portal went away')"),
    ("data", "print('could not parse the input: JSONDecodeError at line 3')"),
    ("unknown", "print('step 4 of 7 did not complete')"),
])
def test_failed_run_is_classified_from_its_output(tmp_path, reason, code):
    proc = run_bot(tmp_path, py(f"import sys\n{code}\nsys.exit(1)"))
    assert proc.returncode == 1
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "failure"
    assert event["reason"] == reason, event["output_tail"]


def test_python_traceback_is_a_crash_with_the_traceback_in_the_tail(tmp_path):
    proc = run_bot(tmp_path, py("def step():\n    raise KeyError('vendor')\nstep()"))
    assert proc.returncode == 1
    assert b"Traceback (most recent call last):" in proc.stderr
    event = finished_run(tmp_path / "spool.db")
    assert event["reason"] == "crash"
    assert "KeyError: 'vendor'" in event["output_tail"]


def test_estate_failure_patterns_given_with_config_classify_the_run(tmp_path):
    estate = tmp_path / "estate.yaml"
    estate.write_text('bots: [{name: b}]\n'
                      'failure_patterns: [{reason: business, contains: "Invoice already booked"}]\n')
    cmd = py("import sys; print('Invoice already booked: INV-2291'); sys.exit(1)")

    plain = tmp_path / "plain"
    plain.mkdir()
    assert run_bot(plain, cmd).returncode == 1
    assert finished_run(plain / "spool.db")["reason"] == "unknown"

    proc = run_bot(tmp_path, cmd, options=["--config", str(estate)])
    assert proc.returncode == 1
    assert proc.stderr == b""
    rows = spool_rows(tmp_path / "spool.db")
    assert rows[0]["config"] == os.path.abspath(estate)
    assert finished_run(tmp_path / "spool.db")["reason"] == "business"


def test_estate_file_from_botwatch_config_env_is_used_too(tmp_path):
    estate = tmp_path / "estate.yaml"
    estate.write_text('bots: [{name: b}]\n'
                      'failure_patterns: [{reason: business, regex: "Invoice \\\\d+ already booked"}]\n')
    env = wrapper_env(tmp_path / "spool.db", BOTWATCH_CONFIG=str(estate))
    proc = run_bot(tmp_path, py("import sys; print('Invoice 2291 already booked'); sys.exit(1)"), env=env)
    assert proc.returncode == 1
    assert finished_run(tmp_path / "spool.db")["reason"] == "business"


# -- monitoring problems never change the bot's result ----------------------------------------

BOT_OUT, BOT_ERR, BOT_STATUS = b"report written\n", b"2 rows skipped\n", 4
TALKING_BOT = talking(BOT_OUT, BOT_ERR, BOT_STATUS)


@pytest.mark.parametrize("where", ["under_a_regular_file", "in_a_read_only_filesystem", "in_a_file_that_is_not_a_database"])
def test_unusable_spool_leaves_the_bots_output_and_exit_status_unchanged(tmp_path, where):
    if where == "under_a_regular_file":
        (tmp_path / "plain-file").write_text("not a directory\n")
        spool = tmp_path / "plain-file" / "botwatch" / "spool.db"
    elif where == "in_a_read_only_filesystem":
        if not os.path.isdir("/proc/self"):
            not_applicable("needs procfs, a file system where nobody (root included) can create a file")
        spool = Path(f"/proc/botwatch-test-{os.getpid()}.db")
    else:
        spool = tmp_path / "spool.db"
        spool.write_bytes(b"this is no SQLite database\n" * 200)
    proc = run_bot(tmp_path, TALKING_BOT, spool=spool)
    assert proc.returncode == BOT_STATUS
    assert proc.stdout == BOT_OUT
    assert proc.stderr.startswith(BOT_ERR)
    warning = proc.stderr[len(BOT_ERR):].decode()
    assert warning.startswith("botwatch: warning:")
    assert "spool" in warning and str(spool) in warning


@pytest.mark.parametrize("content,warned", [
    ("bots: [\n", True),
    ("failure_patterns: [{reason: business}]\nbots: []\n", True),
    # the wrapper reads the estate's failure_patterns only (its hot path): the rest of the file is
    # the agent's and `botwatch check-config`'s to judge
    ("bots: [{name: 'Not A Valid Name!'}]\n", False),
    ("agent: {listen: 7}\nbots: []\n", False),
], ids=["yaml_syntax_error", "invalid_pattern", "invalid_bot_name", "invalid_listen"])
def test_invalid_estate_file_leaves_the_bots_exit_status_and_the_built_in_patterns(tmp_path, content, warned):
    estate = tmp_path / "estate.yaml"
    estate.write_text(content)
    cmd = talking(b"Logon failed for user svc\n", status=9)
    proc = run_bot(tmp_path, cmd, options=["--config", str(estate)])
    assert proc.returncode == 9
    assert proc.stdout == b"Logon failed for user svc\n"
    assert (b"botwatch: warning:" in proc.stderr and f"{estate}:".encode() in proc.stderr) is warned
    event = finished_run(tmp_path / "spool.db")
    assert event["exit_status"] == 9
    assert event["reason"] == "credentials"  # the built-in patterns still apply


def test_estate_file_that_does_not_exist_is_ignored(tmp_path):
    proc = run_bot(tmp_path, TALKING_BOT, options=["--config", str(tmp_path / "missing.yaml")])
    assert (proc.returncode, proc.stdout, proc.stderr) == (BOT_STATUS, BOT_OUT, BOT_ERR)
    assert finished_run(tmp_path / "spool.db")["exit_status"] == BOT_STATUS


@pytest.mark.posix_only("waits for the deliverer's flock(2) on the spool's lock file")
def test_agent_on_a_closed_port_leaves_the_exit_status_unchanged_and_the_run_spooled(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    spool = tmp_path / "spool.db"
    env = wrapper_env(spool, BOTWATCH_DELIVERY_PATIENCE="0")
    del env["BOTWATCH_NO_DELIVERY"]  # let the wrapper start its deliverer against the dead agent
    proc = run_bot(tmp_path, TALKING_BOT, options=["--agent", url], env=env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (BOT_STATUS, BOT_OUT, BOT_ERR)

    # the deliverer tries the agent, fails, and leaves the run in the spool for later
    row = wait_for(lambda: next((r for r in spool_rows(spool) if r["last_error"]), None),
                   "the deliverer to try the closed port")
    assert row["agent_url"] == url
    assert row["attempts"] >= 1
    assert row["event"]["exit_status"] == BOT_STATUS

    import fcntl

    def deliverer_done() -> bool:  # it holds the spool's lock while it runs
        with open(f"{spool}.lock", "a+b") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            return True

    wait_for(deliverer_done, "the deliverer to give up")
    assert len(spool_rows(spool)) == 1


# -- commands that cannot run, usage errors ---------------------------------------------------

def test_command_that_does_not_exist_exits_127_and_is_recorded_as_a_failed_run(tmp_path):
    proc = run_bot(tmp_path, ["no-such-bot-command-5f1c", "--flag"])
    assert proc.returncode == 127
    assert proc.stdout == b""
    assert b"no-such-bot-command-5f1c" in proc.stderr
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "failure"
    assert event["exit_status"] == 127
    assert "no-such-bot-command-5f1c" in event["output_tail"]


@pytest.mark.posix_only("a script without the execute bit; Windows runs files by their extension")
def test_command_that_is_not_executable_exits_126_and_is_recorded_as_a_failed_run(tmp_path):
    script = tmp_path / "bot.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    proc = run_bot(tmp_path, [str(script)])
    assert proc.returncode == 126
    assert proc.stdout == b""
    event = finished_run(tmp_path / "spool.db")
    assert event["outcome"] == "failure" and event["exit_status"] == 126


@pytest.mark.parametrize("args, message", [
    (["--", "touch", "ran"], b"--bot"),
    (["--bot", "b"], b"no command given"),
    (["--bot", "b", "--"], b"no command given"),
    (["--bot", "b", "--timeout", "soon", "--", "touch", "ran"], b"--timeout"),
    (["--bot", "b", "--kill-grace", "-1", "--", "touch", "ran"], b"--kill-grace"),
    (["--bot", "b", "--retries", "3", "--", "touch", "ran"], b"--retries"),
    (["--bot"], b"--bot"),
    (["--bot", "b", "--agent", "http://127.0.0.1:1", "--pushgateway", "http://127.0.0.1:2", "--", "touch", "ran"],
     b"--agent and --pushgateway exclude each other"),
    (["--bot", "b", "--pushgateway", "http://127.0.0.1:2", "--textfile-dir", ".", "--", "touch", "ran"],
     b"--pushgateway and --textfile-dir exclude each other"),
    (["--bot", "b", "--textfile-dir=.", "--agent=http://127.0.0.1:1", "--", "touch", "ran"],
     b"--agent and --textfile-dir exclude each other"),
    (["--bot", "b", "--pushgateway=", "--", "touch", "ran"], b"--pushgateway needs a value"),
], ids=["missing_bot", "no_command", "nothing_after_dashes", "bad_timeout", "bad_kill_grace", "unknown_option",
        "bot_without_value", "agent_and_pushgateway", "pushgateway_and_textfile", "textfile_and_agent",
        "empty_pushgateway"])
def test_usage_error_exits_2_with_a_message_and_runs_nothing(tmp_path, args, message):
    proc = botwatch_run(tmp_path, args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == b""
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "spool.db").exists()


def test_run_help_prints_help_and_exits_0(tmp_path):
    proc = botwatch_run(tmp_path, ["--help"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "Usage: botwatch run" in out
    for option in ("--bot", "--timeout", "--kill-grace", "--config", "--agent", "--pushgateway", "--textfile-dir"):
        assert option in out
    assert not (tmp_path / "spool.db").exists()


@pytest.mark.parametrize("options, target", [
    ([], "agent"),
    (["--agent", "http://127.0.0.1:1"], "agent"),
    (["--pushgateway", "http://127.0.0.1:9091/"], "pushgateway:http://127.0.0.1:9091"),
    (["--textfile-dir", "metrics"], "textfile:{metrics}"),
], ids=["default", "agent", "pushgateway", "textfile_dir"])
def test_run_is_spooled_with_its_target(tmp_path, options, target):
    (tmp_path / "metrics").mkdir()
    proc = run_bot(tmp_path, py("import sys, time; time.sleep(1.2); sys.exit(3)"), options=options,
                   env=wrapper_env(tmp_path / "spool.db", BOTWATCH_AGENT_URL="http://127.0.0.1:2"))
    assert proc.returncode == 3 and proc.stderr == b""
    db = sqlite3.connect(tmp_path / "spool.db")
    try:
        rows = db.execute("SELECT kind, target, agent_url FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    target = target.format(metrics=tmp_path / "metrics")
    if target == "agent":
        agent_url = options[1] if options else "http://127.0.0.1:2"
        assert rows == [("start", "agent", agent_url), ("finish", "agent", agent_url)]
    elif target.startswith("textfile:"):  # a local write: folded into the bot's totals and written at once
        assert rows == []
        db = sqlite3.connect(tmp_path / "spool.db")
        try:
            totals = db.execute("SELECT runs_total, failures, pending FROM totals WHERE target = ? AND bot = 'b'",
                                (target,)).fetchone()
        finally:
            db.close()
        assert totals[0] == 1 and json.loads(totals[1])["unknown"] == 1 and totals[2] == 0
        assert (tmp_path / "metrics" / "botwatch_b.prom").exists()
        return
    else:  # only the finished run: nothing shows runs in progress without an agent
        assert rows == [("finish", target, None)]
    assert finished_run(tmp_path / "spool.db")["reason"] == "unknown"


def test_run_path_imports_no_http_and_no_prometheus_client(tmp_path):
    code = ("import sys\nfrom botwatch.client.wrapper import main\n"
            "status = main(['--bot', 'b', '--pushgateway', 'http://127.0.0.1:1', '--', sys.executable, '-c', ''])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'http', 'click', "
            "'pydantic') or m in ('urllib.request', 'json'))\n"
            "print(status, heavy)\n")
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, timeout=60,
                          env=wrapper_env(tmp_path / "spool.db"))
    assert proc.stdout == b"0 []\n", proc.stderr
    assert finished_run(tmp_path / "spool.db")["outcome"] == "success"


def test_help_flag_after_the_dashes_belongs_to_the_bot(tmp_path):
    echo_first_argument = py("import os, sys; os.write(1, b'bot got ' + sys.argv[1].encode() + b'\\n')")
    proc = run_bot(tmp_path, [*echo_first_argument, "--help"])
    assert proc.returncode == 0
    assert proc.stdout == b"bot got --help\n"
    assert finished_run(tmp_path / "spool.db")["outcome"] == "success"


def test_cpu_and_peak_memory_of_the_whole_tree_are_sampled_and_recorded(tmp_path):
    # the bot's child holds 80 MB and burns CPU; the bot itself idles: only a tree sample sees both
    child = ("import time\nblock = bytearray(80 * 1024 * 1024)\nfor i in range(0, len(block), 4096): block[i] = 1\n"
             "end = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n")
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}])\n"
    result = run_bot(tmp_path, py(code))
    assert result.returncode == 0, result.stderr
    event = finished_run(tmp_path / "spool.db")
    assert event["peak_rss_bytes"] >= 80 * 1024 * 1024
    assert event["cpu_seconds"] >= 1.0
    # a run of more than a second announces itself, so the agent can show it in progress
    assert [r["event"]["run_id"] for r in spool_rows(tmp_path / "spool.db", "start")] == [event["run_id"]]
