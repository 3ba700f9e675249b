"""Shared fixtures: real agent processes on free 127.0.0.1 ports, estate files, spools."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import NoReturn

import psutil
import pytest

from botwatch.commands import stack

BOTWATCH = [sys.executable, "-m", "botwatch"]


# -- platforms --------------------------------------------------------------------------------
# `@pytest.mark.posix_only("why")` and `@pytest.mark.windows_only("why")` (declared in
# pyproject.toml): the test runs where it applies and is reported elsewhere as skipped,
# "not applicable on <platform>: why".
PLATFORM_MARKS = {"posix_only": os.name == "posix", "windows_only": sys.platform == "win32"}


def not_applicable(why: str) -> NoReturn:
    pytest.skip(f"not applicable on {sys.platform}: {why}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name, applies in PLATFORM_MARKS.items():
            mark = item.get_closest_marker(name)
            if mark is None:
                continue
            reason = mark.args[0] if mark.args else mark.kwargs.get("reason")
            if not reason:  # checked on every platform, so that a mark without one is seen at once
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} needs the reason the test cannot "
                                        "run elsewhere")
            if not applies:
                item.add_marker(pytest.mark.skip(reason=f"not applicable on {sys.platform}: {reason}"))


def console_script(name: str) -> str:
    """A console script installed beside this interpreter (`botwatch`), as a shell finds it: on
    Windows that is NAME.exe, which CreateProcess does not complete from a path without it."""
    folder = os.path.dirname(sys.executable)
    return shutil.which(name, path=folder) or os.path.join(folder, name)


def kill_session(proc: subprocess.Popen) -> None:
    """End a process started with `start_new_session=True` and all it started (a browser, its
    driver): its whole session on POSIX; Windows has none, there its process tree goes."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        try:
            top = psutil.Process(proc.pid)
            tree = [*top.children(recursive=True), top]
        except psutil.NoSuchProcess:
            tree = []
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
    proc.wait()


def python_bot(code: str = "") -> list[str]:
    """The command of a bot in Python: a wrapped command that runs wherever the tests do (a
    `sh -c` line does not on Windows). python_bot() succeeds and prints nothing, as `true` does."""
    return [sys.executable, "-c", code]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll until predicate() is truthy; the deadline only bounds a hang, it asserts no speed."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, payload, timeout: float = 10.0, headers: dict | None = None) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def require(names: str | tuple[str, ...], package: str) -> str:
    """The path of a program the tests need, found by name on PATH (else where Debian puts it).
    `make test` installs its Debian package, so on Linux a missing program fails the test with the
    package's name; other systems have no such package: there the test does not apply."""
    names = (names,) if isinstance(names, str) else names
    found = stack.find_binary(names)
    if found:
        return found
    if sys.platform.startswith("linux"):
        pytest.fail(f"{names[0]} is missing: install the Debian package {package} "
                    "(`make test` does it with scripts/system-deps.sh)", pytrace=False)
    not_applicable(f"{names[0]} is not installed, and it comes from the Debian package {package}")


def parse_metrics(text: str) -> dict[str, float]:
    """{'name{labels}': value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def write_estate(path: Path, bots_yaml: str, port: int, journal: Path | None = None, extra: str = "") -> Path:
    journal = journal or path.parent / "journal.db"
    path.write_text(textwrap.dedent(f"""\
        agent:
          listen: 127.0.0.1:{port}
          journal: {journal}
          sweep_interval: 1s
        {extra}
        bots:
        """) + textwrap.indent(textwrap.dedent(bots_yaml), "  "), encoding="utf-8")
    return path


class AgentProcess:
    """A real `botwatch agent` child process."""

    def __init__(self, config: Path, port: int, env: dict | None = None):
        self.config, self.port = config, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = config.parent / f"agent-{port}.log"

    def start(self) -> "AgentProcess":
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([*BOTWATCH, "agent", "--config", str(self.config)], env=self.env,
                                     stdout=self._logf, stderr=subprocess.STDOUT)
        wait_for(self._healthy, what=f"agent on {self.url} (log {self.log})")
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            return http_get(self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        status, body = http_get(self.url + "/metrics")
        assert status == 200
        return parse_metrics(body.decode())

    def kill(self, sig: int | None = None) -> int:
        """Stop the agent with `sig`, by default at once (SIGKILL; on Windows, TerminateProcess)."""
        if sig is None:
            self.proc.kill()
        else:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self._logf.close()
        return rc

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._logf.close()


@pytest.fixture
def agents():
    """Factory for agent processes; all are stopped at the end of the test."""
    started: list[AgentProcess] = []

    def make(config: Path, port: int, env: dict | None = None) -> AgentProcess:
        a = AgentProcess(config, port, env)
        started.append(a)
        return a

    yield make
    for a in started:
        a.stop()


@pytest.fixture
def run_env(tmp_path, monkeypatch):
    """Environment for `botwatch run` children: a private spool, quick delivery give-up."""
    env = {**os.environ, "BOTWATCH_SPOOL": str(tmp_path / "spool.db"), "BOTWATCH_DELIVERY_PATIENCE": "60"}
    env.pop("BOTWATCH_CONFIG", None)
    env.pop("BOTWATCH_AGENT_URL", None)
    return env


@pytest.fixture
def fake_robot(tmp_path):
    """An executable named `robot` (a script that sleeps), as `pip install robotframework` makes one:
    what a Robot Framework run looks like to a process sweep."""
    if os.name == "nt":
        not_applicable("a script executable named robot needs a #! line")
    path = tmp_path / "bin" / "robot"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    path.chmod(0o755)
    return path


# What tells the SDK where to deliver and which run it is in: tests that need a clean SDK drop these.
SDK_ENV = ("BOTWATCH_AGENT_URL", "BOTWATCH_CONFIG", "BOTWATCH_BOT", "BOTWATCH_RUN_ID", "BOTWATCH_NO_DELIVERY",
           "BOTWATCH_ITEMS_FILE")


@pytest.fixture
def sdk_events(tmp_path, monkeypatch):
    """A private spool, the agent away: what the SDK records waits there, read back by
    `sdk_events(kind=None)` as a list of event dicts, oldest first."""
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWATCH_SPOOL", str(tmp_path / "spool.db"))
    monkeypatch.setenv("BOTWATCH_NO_DELIVERY", "1")
    monkeypatch.chdir(tmp_path)

    def events(kind: str | None = None) -> list[dict]:
        db = sqlite3.connect(tmp_path / "spool.db")
        try:
            got = [json.loads(e) for (e,) in db.execute("SELECT event FROM outbox ORDER BY seq")]
        finally:
            db.close()
        return [e for e in got if kind is None or e["type"] == kind]

    return events


@pytest.fixture(scope="module")
def portal():
    """The drifting invoice portal of tests/drift_app.py (versions v1 to v4) on 127.0.0.1."""
    from drift_app import DriftApp

    app = DriftApp().start()
    yield app
    app.stop()


class LocalHTTPServer:
    """An http.server handler served on a free 127.0.0.1 port from a thread of the test process:
    `with LocalHTTPServer(Handler) as server: ... server.url ...` (or start() and stop())."""

    def __init__(self, handler, *, tls=None, path: str = ""):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:  # an ssl.SSLContext
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls is not None else 'http'}://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "LocalHTTPServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "LocalHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def outbox_and_dead(spool: str) -> tuple[int, list]:
    """A spool's undelivered event count and its dead letters (event, error)."""
    db = sqlite3.connect(spool)
    try:
        return (db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
                db.execute("SELECT event, error FROM dead").fetchall())
    finally:
        db.close()


def metrics_when(agent, predicate, what, timeout=60):
    """The agent's metrics once `predicate(metrics)` holds."""
    return wait_for(lambda: (lambda m: m if predicate(m) else None)(agent.metrics()), timeout=timeout, what=what)
