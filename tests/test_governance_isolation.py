"""Secret scanning in a long-lived agent runs in a short-lived subprocess, one per refresh of the
whole estate: detect-secrets never stays in the agent's memory, a refresh of many bots pays one
scanner start, and a scanner that fails is said so and tried again, never taken for a clean scan."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from botwatch.config.estate import load_estate
from botwatch.governance import Governance
from test_governance import PASSWORD, SCRIPT, SCRIPT_LINE, estate_file, failed

PY = sys.executable


def estate_of(tmp_path, bots: int, script: str = "print('hello')\n"):
    entries = ""
    for i in range(bots):
        folder = tmp_path / "bots" / f"bot{i}"
        folder.mkdir(parents=True)
        (folder / "main.py").write_text(script if i == 0 else "print('hello')\n", encoding="utf-8")
        entries += f"  - name: bot-{i}\n    team: finance\n    source: bots/bot{i}\n"
    return load_estate(estate_file(tmp_path, entries))


def test_a_refresh_of_the_whole_estate_starts_the_scanner_once(tmp_path):
    gov = Governance(estate_of(tmp_path, 12, SCRIPT))
    found = gov.refresh()
    assert gov.scanner.isolated and gov.scanner.batches == 1
    assert gov.scanner.files_scanned == 12 + 12  # each bot's source file and estate entry
    assert "plaintext_secret" in failed(found["bot-0"]) and "plaintext_secret" not in failed(found["bot-1"])
    hit = next(f for f in found["bot-0"] if f.check == "plaintext_secret" and not f.ok)
    assert hit.file.endswith("main.py") and hit.line == SCRIPT_LINE
    gov.refresh()
    assert gov.scanner.batches == 1  # nothing changed: nothing scanned


def test_the_process_that_refreshes_never_loads_the_scanner(tmp_path):
    path = estate_file(tmp_path, "  - name: bot-0\n    team: finance\n    source: bots/bot0\n")
    (tmp_path / "bots" / "bot0").mkdir(parents=True)
    (tmp_path / "bots" / "bot0" / "main.py").write_text(SCRIPT, encoding="utf-8")
    probe = textwrap.dedent(f"""
        import sys
        from botwatch.config.estate import load_estate
        from botwatch.governance import Governance
        found = Governance(load_estate({str(path)!r})).refresh()["bot-0"]
        print("plaintext_secret" in {{f.check for f in found if not f.ok}})
        print("detect_secrets" in sys.modules)
        """)
    done = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "False"]  # found, and not by this process
    assert PASSWORD not in done.stdout + done.stderr


def test_a_failed_scanner_is_said_and_tried_again_not_taken_for_a_clean_scan(tmp_path, monkeypatch, caplog):
    gov = Governance(estate_of(tmp_path, 2, SCRIPT))
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-such-python"))  # the scanner cannot start
    found = gov.refresh()
    ok = next(f for f in found["bot-0"] if f.check == "plaintext_secret")
    assert ok.ok and "1 file(s) not scanned: the secret scanner failed" in ok.detail
    failures = [r for r in caplog.records if "secret scanning of" in r.getMessage()]
    assert len(failures) == 1  # one attempt for the estate, not one per bot
    monkeypatch.undo()
    found = gov.refresh()  # the scanner is back: what failed is scanned now
    assert "plaintext_secret" in failed(found["bot-0"])
