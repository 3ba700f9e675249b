"""The suite can be collected on Windows, checked without Windows: no test module uses a POSIX-only
name while it is imported (tests/import_time.py says what counts), and the platform marks skip a
test where it does not apply, saying so."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fuzzing import Hung, _by_timer_thread
from import_time import findings_in_source, findings_in_tree

TESTS = Path(__file__).resolve().parent


def findings(source: str) -> list[str]:
    return [f.what for f in findings_in_source(textwrap.dedent(source))]


def test_no_test_module_uses_a_posix_only_name_at_import_time():
    found = findings_in_tree(TESTS)
    assert not found, "\n".join(map(str, found))


@pytest.mark.parametrize("source, what", [
    ("import fcntl", "import fcntl"),
    ("import json, resource", "import resource"),
    ("from termios import tcgetattr", "from termios import ..."),
    ("import pwd as users", "import pwd"),
    ("if True:\n    import grp", "import grp"),
    ("try:\n    import fcntl\nfinally:\n    pass", "import fcntl"),
    ("try:\n    import fcntl\nexcept OSError:\n    pass", "import fcntl"),
    ("import signal\nSIG = signal.SIGKILL", "signal.SIGKILL"),
    ("import signal\ndef kill(sig=signal.SIGKILL):\n    pass", "signal.SIGKILL"),
    ("import signal\ndef kill(*, sig=signal.SIGHUP):\n    pass", "signal.SIGHUP"),
    ("import signal\n@pytest.mark.parametrize('s', [signal.SIGUSR1])\ndef test(s):\n    pass", "signal.SIGUSR1"),
    ("import signal\nclass Bot:\n    STOP = signal.SIGQUIT", "signal.SIGQUIT"),
    ("import signal\nclass Bot:\n    def stop(self, sig=signal.SIGCHLD):\n        pass", "signal.SIGCHLD"),
    ("import signal as s\nALARM = s.SIGALRM", "s.SIGALRM"),
    ("import signal\nsignal.alarm(1)", "signal.alarm"),
    ("import signal\nNAME = signal.Signals.SIGKILL.name", "signal.Signals.SIGKILL"),
    ("from signal import SIGKILL", "from signal import SIGKILL"),
    ("import os\nUID = os.getuid()", "os.getuid"),
    ("import os\nos.setsid()", "os.setsid"),
    ("import os\nend = lambda pid, kill=os.killpg: kill(pid, 9)", "os.killpg"),
    ("import os\nHOST = os.uname().nodename", "os.uname"),
    ("from os import killpg", "from os import killpg"),
    ("import os, signal\nIDS = [x for x in (signal.SIGKILL,)]", "signal.SIGKILL"),
    ("import signal\nif __name__ == 'x':\n    pass\nelse:\n    SIG = signal.SIGHUP", "signal.SIGHUP"),
])
def test_a_posix_only_name_used_at_import_time_is_found(source, what):
    assert findings(source) == [what]


@pytest.mark.parametrize("source", [
    "import signal\ndef kill(pid):\n    os.kill(pid, signal.SIGKILL)",
    "import signal\nSIG = getattr(signal, 'SIGKILL', signal.SIGTERM)",
    "import signal\n@pytest.mark.parametrize('s', [signal.SIGINT, signal.SIGTERM, signal.SIGABRT])\ndef t(s):\n    pass",
    "import signal\ndef on_int(sig=signal.SIGINT, handler=signal.SIG_DFL):\n    pass",
    "import sys\nif sys.platform != 'win32':\n    import fcntl",
    "import os\nif os.name == 'posix':\n    import resource\nelse:\n    import msvcrt",
    "import sys\nif sys.platform == 'win32':\n    pass\nelse:\n    import termios",
    "import os, signal\nSIG = signal.SIGKILL if os.name == 'posix' else signal.SIGTERM",
    "import signal\nHUP = hasattr(signal, 'SIGHUP') and signal.SIGHUP",
    "import signal\nif hasattr(signal, 'SIGALRM'):\n    ALARM = signal.SIGALRM",
    "import os\nPOSIX = os.name == 'posix'\nif POSIX:\n    UID = os.getuid()",
    "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None",
    "try:\n    import pwd\nexcept (ModuleNotFoundError, AttributeError):\n    pwd = None",
    "import os\nif __name__ == '__main__':\n    os.setsid()",
    "import os\nclass Bot:\n    def start(self):\n        os.setsid()",
    "import signal\nclass Bot:\n    def stop(self):\n        def later(sig=signal.SIGKILL):\n            pass",
    "import signal\nkill = lambda pid: os.kill(pid, signal.SIGKILL)",
    "import os\nHOST = os.environ.get('COMPUTERNAME') or os.getpid()",
    "import signal\nINT = signal.Signals.SIGINT",
    "from signal import SIGTERM, SIGINT, signal",
    "import mysignal as signal\nX = signal.SIGKILL",
])
def test_code_that_runs_later_or_behind_a_platform_check_is_not_a_finding(source):
    assert findings(source) == []


def test_findings_name_the_file_and_line(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_x.py").write_text("import json\n\nimport fcntl\n", encoding="utf-8")
    (tmp_path / "test_ok.py").write_text("def test():\n    import fcntl\n", encoding="utf-8")
    assert [str(f) for f in findings_in_tree(tmp_path)] == [
        "sub/test_x.py:3: import fcntl at import time, outside a platform check"]


# -- the platform marks ------------------------------------------------------------------------

MARKED = '''\
import pytest


@pytest.mark.posix_only("needs fork")
def test_posix():
    pass


@pytest.mark.windows_only("needs the registry")
def test_windows():
    pass
'''


def run_pytest(directory: Path) -> subprocess.CompletedProcess:
    """A pytest run of the tests in `directory` with the project's conftest (its hooks) as a plugin
    and the project's settings (its declared marks)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-n", "0", "-rs", "-W", "error::pytest.PytestUnknownMarkWarning",
                           "-c", str(TESTS.parent / "pyproject.toml"), "--rootdir", str(directory), str(directory)],
                          capture_output=True, text=True, timeout=300, cwd=directory, env=env)


def test_a_test_marked_for_another_platform_is_skipped_as_not_applicable_with_its_reason(tmp_path):
    (tmp_path / "test_marked.py").write_text(MARKED, encoding="utf-8")
    r = run_pytest(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    on_windows = sys.platform == "win32"
    skipped = "needs fork" if on_windows else "needs the registry"
    assert f"not applicable on {sys.platform}: {skipped}" in r.stdout, r.stdout
    assert "1 passed, 1 skipped" in r.stdout, r.stdout


def test_a_platform_mark_without_its_reason_stops_the_run(tmp_path):
    (tmp_path / "test_marked.py").write_text("import pytest\n\n@pytest.mark.windows_only\ndef test():\n    pass\n",
                                             encoding="utf-8")
    r = run_pytest(tmp_path)
    assert r.returncode != 0
    assert "test_marked.py::test: @pytest.mark.windows_only needs the reason" in r.stdout + r.stderr


# -- the hang guard where there is no SIGALRM ----------------------------------------------------

def test_the_hang_guard_without_sigalrm_stops_a_python_loop_and_leaves_nothing_behind():
    with pytest.raises(Hung, match="no answer in time for a spin"):
        with _by_timer_thread("no answer in time for a spin", 0.2):
            end = time.monotonic() + 120  # bounds the test should the guard not work
            while time.monotonic() < end:
                pass
            pytest.fail("the guard did not stop the loop")
    with _by_timer_thread("quick work", 0.2):
        pass
    time.sleep(0.5)  # past the bound of the finished block: nothing is raised here
    assert sum(range(100_000)) == 4_999_950_000
