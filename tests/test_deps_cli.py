"""`botwatch deps BOT` and `botwatch impact TEXT` over an estate of real projects (the corpus of
tests/corpus/deps): what a bot depends on, exactly as its hand-checked list says, and which bots
a change to an application, site or screen would hit, with owners and criticality."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import BOTWATCH

CORPUS = Path(__file__).resolve().parent / "corpus" / "deps"
BOTS = {  # bot -> (project, team, criticality)
    "web-orders": ("robot/robocorp__example-web-store-order-processor", "sales", "high"),
    "calculator": ("robot/robocorp__example-windows-calculator", "finance", "low"),
    "rpa-challenge": ("robot/robocorp__example-shared-rpachallenge", "coe", "medium"),
    "rbc-banking": ("uipath/yashbrahmbhatt__uipath", "treasury", "high"),
    "reframework": ("uipath/UiPath-Services__StudioTemplates", "coe", "medium"),
}


@pytest.fixture(scope="module")
def estate(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("deps") / "botwatch.yaml"
    entries = "".join(f"  - name: {bot}\n    owner: {bot}@example.com\n    team: {team}\n    criticality: {crit}\n"
                      f"    source: {CORPUS / project}\n" for bot, (project, team, crit) in BOTS.items())
    path.write_text(f"bots:\n{entries}  - name: no-source\n", encoding="utf-8")
    return path


def botwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTWATCH, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("bot", ["web-orders", "rbc-banking"])
def test_deps_lists_exactly_what_the_hand_checked_list_holds(estate, bot):
    done = botwatch("deps", bot, "--config", str(estate), "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    expected = json.loads((CORPUS / f"{BOTS[bot][0]}.expected.json").read_text(encoding="utf-8"))
    root = str(CORPUS / BOTS[bot][0]).replace("\\", "/")
    assert {(d["kind"], d["value"], d["file"].removeprefix(root + "/"), d["line"]) for d in got["dependencies"]} == \
        {(e["kind"], e["value"], e["file"], e["line"]) for e in expected}
    assert got["problems"] == []


def test_deps_prints_each_dependency_with_its_file_and_line(estate):
    done = botwatch("deps", "calculator", "--config", str(estate))
    assert done.returncode == 0, done.stderr
    assert "application" in done.stdout and "calc.exe" in done.stdout
    assert ".robot:" in done.stdout  # FILE:LINE of each


def test_a_bot_without_a_source_has_nothing_to_read_and_an_unknown_bot_is_an_error(estate):
    done = botwatch("deps", "no-source", "--config", str(estate))
    assert done.returncode == 0 and "no `source:`" in done.stdout
    done = botwatch("deps", "nobody", "--config", str(estate))
    assert done.returncode == 2 and "no bot 'nobody'" in done.stderr


@pytest.mark.parametrize("text,kinds,bots", [
    ("saucedemo.com", (), ["web-orders"]),
    ("rpachallenge.com", ("url",), ["rpa-challenge"]),
    ("calc.exe", ("application",), ["calculator"]),
    ("rbcroyalbank.com", (), ["rbc-banking"]),
])
def test_impact_names_the_bots_a_change_would_hit(estate, text, kinds, bots):
    args = [a for k in kinds for a in ("--kind", k)]
    done = botwatch("impact", text, *args, "--config", str(estate), "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [b["bot"] for b in got["bots"]] == bots
    hit = got["bots"][0]
    assert hit["owner"] == f"{bots[0]}@example.com" and hit["criticality"] == BOTS[bots[0]][2]
    assert all(text.lower() in d["value"].lower() for d in hit["dependencies"])
    assert all(not kinds or d["kind"] in kinds for d in hit["dependencies"])


def test_impact_lists_the_most_critical_bots_first_and_exits_1_when_none_is_hit(estate):
    done = botwatch("impact", "http", "--kind", "url", "--config", str(estate), "--json")
    assert done.returncode == 0, done.stderr
    assert [b["bot"] for b in json.loads(done.stdout)["bots"]] == ["rbc-banking", "web-orders", "rpa-challenge"]
    done = botwatch("impact", "no-such-application-anywhere", "--config", str(estate))
    assert done.returncode == 1 and "no bot of the 5" in done.stdout
