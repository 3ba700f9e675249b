"""The coverage-guided harnesses of tests/fuzz/ (atheris) run a short, fixed number of inputs:
each must end with status 0 (a crash, a failed check or a hang makes libFuzzer stop non-zero).
Longer sessions: `python tests/fuzz/fuzz_X.py -atheris_runs=1000000`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.posix_only("atheris, the coverage-guided fuzzer, is installed on Linux only (its wheels "
                                    "are built for Linux)")

FUZZ = Path(__file__).parent / "fuzz"
RUNS = {"fuzz_uipath_line.py": 2000, "fuzz_estate.py": 2000, "fuzz_output_xml.py": 600}


def test_every_harness_is_listed():
    assert sorted(p.name for p in FUZZ.glob("fuzz_*.py")) == sorted(RUNS)


@pytest.mark.parametrize("harness", sorted(RUNS))
def test_a_fuzz_harness_runs_clean(harness, tmp_path):
    r = subprocess.run([sys.executable, str(FUZZ / harness), f"-atheris_runs={RUNS[harness]}", "-seed=1",
                        "-timeout=30", "-max_len=4096", f"-artifact_prefix={tmp_path}/"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"Done {RUNS[harness]} " in r.stderr, r.stderr[-2000:]
