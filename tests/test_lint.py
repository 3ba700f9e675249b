"""The source tree stays free of unused imports, undefined names and similar slips (pyflakes)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyflakes_finds_nothing_in_the_source_tree():
    dirs = ["agent", "exporters", "dashboards", "alerts", "examples", "benchmarks", "tests"]
    p = subprocess.run([sys.executable, "-m", "pyflakes", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert p.stdout == "" and p.returncode == 0, p.stdout + p.stderr
