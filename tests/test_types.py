"""The modules pyproject.toml names under [tool.mypy] pass strict type checking (as `make lint` runs it)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_strict_type_checking_finds_nothing_in_the_checked_modules(tmp_path):
    # a cache of its own: a parallel `make lint` or test run must not share one being written
    p = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
