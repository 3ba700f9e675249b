"""A client classifying a failed run reads the estate file's `failure_patterns` alone: the same
patterns the full validation gives, the same patterns refused (FILE:LINE named), and none of
the config models loaded on the wrapper's path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from botwatch.client.estate_patterns import PatternsError, read_failure_patterns
from botwatch.config.estate import ConfigError, load_estate
from botwatch.core.classify import Classifier

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

PATTERNS = """\
agent:
  listen: 127.0.0.1:9464
bots:
  - name: invoice-recon
    schedule: "0 7 * * 1-5"
failure_patterns:
  - {reason: business, contains: "Invoice already booked"}
  - reason: ui_drift
    regex: 'Cannot find the UI element .* \\(selector\\)'
    kind: not_found
    ignore_case: true
  - {reason: credentials, regex: "(?i)password (has )?expired"}
  - {reason: business, contains: "Vendor on hold", ignore_case: "no"}
  - {reason: business, contains: "vendor blocked", ignore_case: "on"}
"""


def signature(c: Classifier) -> list[tuple]:
    return [(p.reason, p.regex.pattern, p.regex.flags, p.kind, p.literal, p.ignore_case) for p in c.patterns]


@pytest.mark.parametrize("estate", [*sorted((ROOT / "examples").glob("*/botwatch.yaml")), "inline"])
def test_the_patterns_read_alone_are_those_of_the_full_validation(tmp_path, estate):
    if estate == "inline":
        estate = tmp_path / "botwatch.yaml"
        estate.write_text(PATTERNS)
    alone = Classifier(read_failure_patterns(str(estate)))
    full = Classifier.for_estate(load_estate(estate).estate)
    assert signature(alone) == signature(full)


BAD = [
    ("{reason: business, contains: x, colour: red}", "unknown key 'colour'"),
    ("{reason: bad_luck, contains: x}", "reason must be one of"),
    ("{reason: business, contains: x, regex: y}", "exactly one of"),
    ("{reason: business}", "exactly one of"),
    ("{reason: business, regex: '(unclosed'}", "invalid regex"),
    ("{reason: ui_drift, contains: x, kind: vanished}", "kind must be one of"),
    ("{reason: business, contains: x, ignore_case: 'maybe'}", "ignore_case"),
    ("{reason: business, contains: x, ignore_case: 2}", "ignore_case"),
    ("{reason: business, contains: 42}", "contains must be text"),
    ("just text", "is a mapping"),
]


@pytest.mark.parametrize("item,problem", BAD)
def test_a_pattern_the_validation_refuses_is_refused_alone_with_its_line(tmp_path, item, problem):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(f"bots: []\nfailure_patterns:\n  - {{reason: business, contains: ok}}\n  - {item}\n")
    with pytest.raises(ConfigError):
        load_estate(estate)
    with pytest.raises(PatternsError) as err:
        read_failure_patterns(str(estate))
    assert str(err.value).startswith(f"{estate}:4: failure_patterns[1]: ")
    assert problem in str(err.value)


@pytest.mark.parametrize("text,expected", [("", []), ("bots: []\n", []), ("failure_patterns:\n", [])])
def test_a_file_without_patterns_gives_none(tmp_path, text, expected):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(text)
    assert read_failure_patterns(str(estate)) == expected


@pytest.mark.parametrize("text,line", [("bots: [\n", 2), ("- a list\n", 1), ("failure_patterns: {a: 1}\n", 1)])
def test_an_unusable_file_is_an_error_naming_its_line(tmp_path, text, line):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(text)
    with pytest.raises(PatternsError, match=rf"^{estate}:{line}: "):
        read_failure_patterns(str(estate))


def test_a_failed_run_is_classified_without_loading_the_config_models(tmp_path, run_env):
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(PATTERNS + "  - {reason: business, contains: 'Vendor blocked'}\n")
    r = subprocess.run([PY, "-X", "importtime", "-m", "botwatch", "run", "--bot", "invoice-recon", "--config",
                        str(estate), "--", PY, "-c", "print('Vendor blocked: V-1'); raise SystemExit(3)"],
                       env={**run_env, "BOTWATCH_NO_DELIVERY": "1"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "botwatch.core.classify" in imported  # the run was classified in this process
    assert not {"pydantic", "botwatch.config.estate", "botwatch.config"} & imported
    import sqlite3

    db = sqlite3.connect(run_env["BOTWATCH_SPOOL"])
    try:
        (event,) = db.execute("SELECT event FROM outbox WHERE kind = 'finish'").fetchone()
    finally:
        db.close()
    assert '"reason":"business"' in event.replace(" ", "")


def test_patterns_are_used_when_another_part_of_the_estate_is_invalid(tmp_path, run_env):
    # the agent refuses this file (an unknown key in a bot), but its patterns are sound: a
    # failed run is still classified with them, as the estate's owner meant
    estate = tmp_path / "botwatch.yaml"
    estate.write_text(PATTERNS.replace("    schedule:", "    shedule:"))
    with pytest.raises(ConfigError):
        load_estate(estate)
    assert len(read_failure_patterns(str(estate))) == 5
