"""Governance checks: owner, runbook, lifecycle, certification, alert routing and plaintext secrets,
as findings with FILE:LINE, as `botwatch governance` and as botwatch_bot_governance_findings."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from datetime import date
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from botwatch.config.estate import ConfigError, load_estate, parse_estate_text
from botwatch.exporters.prometheus import estate_registry
from botwatch.governance import (CHECKS, Governance, RoutingError, SecretScanner, check_bot, estate_entries,
                                 load_routing_teams, routing_teams_from)
from botwatch.state.runtime import EstateState
from conftest import BOTWATCH, free_port, parse_metrics, wait_for

PASSWORD = "Winter2024!Secure"  # the secret that must appear in no output

SCRIPT = f'''\
import requests

USER = "svc_invoices"
PASSWORD = "{PASSWORD}"


def main():
    requests.post("https://erp.example.com/login", auth=(USER, PASSWORD))
'''
SCRIPT_LINE = 4  # the line of PASSWORD = ... above

GOVERNED = """\
  - name: invoice-recon
    owner: ana.diaz@example.com
    team: finance
    platform: python
    lifecycle: production
    criticality: high
    runbook: https://wiki.example.com/bots/invoice-recon
    certified: {by: it-coe@example.com, date: 2024-05-01}
    source: bots/invoice
"""


def estate_file(tmp_path: Path, bots: str, agent: str = "") -> Path:
    path = tmp_path / "botwatch.yaml"
    path.write_text(f"agent:\n  journal: {tmp_path / 'journal.db'}\n{agent}bots:\n{bots}", encoding="utf-8")
    return path


def bot_folder(tmp_path: Path, script: str = SCRIPT) -> Path:
    folder = tmp_path / "bots" / "invoice"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recon.py").write_text(script, encoding="utf-8")
    (folder / "README.md").write_text("Books supplier invoices.\n", encoding="utf-8")
    return folder


def findings_of(path: Path, bot: str = "invoice-recon", **kw):
    loaded = load_estate(path)
    return Governance(loaded).refresh()[bot]


def failed(findings) -> set[str]:
    return {f.check for f in findings if not f.ok}


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    return subprocess.run([*BOTWATCH, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


# --- plaintext secrets ---------------------------------------------------------------------------

def test_a_bot_script_with_a_hard_coded_password_is_reported_at_its_file_and_line(tmp_path):
    folder = bot_folder(tmp_path)
    (secret,) = [f for f in findings_of(estate_file(tmp_path, GOVERNED)) if not f.ok]
    assert secret.check == "plaintext_secret"
    assert (secret.file, secret.line) == (str(folder / "recon.py"), SCRIPT_LINE)
    assert "Secret Keyword" in secret.detail and PASSWORD not in secret.detail


def test_botwatch_governance_names_the_file_and_line_and_never_prints_the_password(tmp_path):
    folder = bot_folder(tmp_path)
    config = estate_file(tmp_path, GOVERNED)
    r = run_cli("governance", "--config", str(config))
    assert r.returncode == 1, r.stderr
    assert f"{folder / 'recon.py'}:{SCRIPT_LINE}" in r.stdout
    j = run_cli("governance", "--config", str(config), "--json")
    assert j.returncode == 1
    (secret,) = [f for f in json.loads(j.stdout)["bots"]["invoice-recon"] if not f["ok"]]
    assert secret["line"] == SCRIPT_LINE and secret["file"].endswith("recon.py")
    for out in (r.stdout, r.stderr, j.stdout, j.stderr):
        assert PASSWORD not in out


def test_a_bot_whose_code_is_clean_passes_and_the_command_exits_0(tmp_path):
    bot_folder(tmp_path, script='import os\nPASSWORD = os.environ["ERP_PASSWORD"]\n')
    config = estate_file(tmp_path, GOVERNED)
    assert failed(findings_of(config)) == set()
    r = run_cli("governance", "--config", str(config))
    assert r.returncode == 0 and "invoice-recon: all 6 checks pass" in r.stdout, r.stdout + r.stderr


def test_a_password_on_the_watched_command_line_is_reported_at_its_estate_line(tmp_path):
    bot_folder(tmp_path, script="print('hello')\n")
    config = estate_file(tmp_path, GOVERNED + f"""\
    watch:
      process: {{cmdline: 'recon\\.py --password {PASSWORD}'}}
""")
    (secret,) = [f for f in findings_of(config) if not f.ok]
    assert secret.check == "plaintext_secret" and "command line" in secret.detail
    assert (secret.file, secret.line) == (str(config), 14)
    assert PASSWORD not in secret.detail


def test_credentials_in_other_values_of_the_estate_entry_are_found_by_detect_secrets_too(tmp_path):
    bot_folder(tmp_path, script="print('hello')\n")
    config = estate_file(tmp_path, GOVERNED + "    description: 'token ghp_abcdefghijklmnopqrstuvwxyz0123456789 for the API'\n")
    (secret,) = [f for f in findings_of(config) if not f.ok]
    assert secret.line == 13 and secret.detail == "GitHub Token in the estate entry"


def test_a_literal_ping_key_is_a_plaintext_secret_but_env_and_file_references_are_not(tmp_path):
    bot_folder(tmp_path, script="print('hello')\n")
    literal = estate_file(tmp_path, GOVERNED + "    ping_key: 0f3c9a7d1e2b4c5a\n")
    (secret,) = [f for f in findings_of(literal) if not f.ok]
    assert secret.line == 13 and "ping_key" in secret.detail and "0f3c9a7d1e2b4c5a" not in secret.detail
    referenced = estate_file(tmp_path, GOVERNED + "    ping_key: env:INVOICE_PING_KEY\n")
    assert failed(findings_of(referenced)) == set()


def test_a_line_marked_with_the_detect_secrets_allowlist_pragma_is_not_reported(tmp_path):
    bot_folder(tmp_path, script=f'PASSWORD = "{PASSWORD}"  # pragma: allowlist secret\n')
    assert failed(findings_of(estate_file(tmp_path, GOVERNED))) == set()


def test_source_takes_single_files_and_lists_relative_to_the_estate_file(tmp_path):
    folder = bot_folder(tmp_path)
    (tmp_path / "run.sh").write_text(f'#!/bin/sh\nexport password="{PASSWORD}"\n', encoding="utf-8")
    config = estate_file(tmp_path, GOVERNED.replace("source: bots/invoice", "source: [bots/invoice/recon.py, run.sh]"))
    secrets = sorted((f.file, f.line) for f in findings_of(config) if not f.ok)
    assert secrets == sorted([(str(folder / "recon.py"), SCRIPT_LINE), (str(tmp_path / "run.sh"), 2)])


def test_binary_and_oversized_files_are_skipped_and_said_so(tmp_path):
    folder = bot_folder(tmp_path, script="print('hello')\n")
    (folder / "robot.xlsm").write_bytes(b"PK\x03\x04\x00\x00" + f'password="{PASSWORD}"'.encode())
    scanner = SecretScanner(max_file_bytes=1024)
    (folder / "big.py").write_text(f'PASSWORD = "{PASSWORD}"\n' + "#\n" * 2000, encoding="utf-8")
    scan = scanner.scan_paths([folder])
    assert scan.hits == [] and scan.scanned == 2
    assert "1 binary file(s) not scanned" in scan.notes and "1 file(s) over 1 KiB not scanned" in scan.notes


def test_a_missing_source_is_noted_not_failed(tmp_path):
    config = estate_file(tmp_path, GOVERNED)
    (secret,) = [f for f in findings_of(config) if f.check == "plaintext_secret"]
    assert secret.ok and "not found" in secret.detail


def test_scans_are_cached_until_a_file_changes(tmp_path):
    folder = bot_folder(tmp_path, script="print('hello')\n")
    gov = Governance(load_estate(estate_file(tmp_path, GOVERNED)))
    gov.refresh()
    first = gov.scanner.files_scanned
    gov.refresh()
    assert gov.scanner.files_scanned == first  # nothing changed: nothing scanned again
    (folder / "recon.py").write_text(SCRIPT, encoding="utf-8")
    found = gov.refresh()["invoice-recon"]
    assert gov.scanner.files_scanned == first + 1 and failed(found) == {"plaintext_secret"}


# --- the other checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("remove, check", [
    ("    owner: ana.diaz@example.com\n", "owner"),
    ("    runbook: https://wiki.example.com/bots/invoice-recon\n", "runbook"),
    ("    lifecycle: production\n", "lifecycle"),
    ("    certified: {by: it-coe@example.com, date: 2024-05-01}\n", "certified"),
    ("    team: finance\n", "team_routed"),
])
def test_each_missing_declaration_fails_its_own_check_only(tmp_path, remove, check):
    bot_folder(tmp_path, script="print('hello')\n")
    assert GOVERNED.count(remove) == 1
    findings = findings_of(estate_file(tmp_path, GOVERNED.replace(remove, "")))
    assert failed(findings) == {check}
    (f,) = [f for f in findings if f.check == check]
    assert f.line == 4  # the bot's entry: where to add it


def test_every_check_is_reported_for_every_bot():
    loaded = load_estate_text("bots: [{name: a}]")
    assert [f.check for f in check_bot(loaded.estate.bots[0], loaded, load_routing_teams(None))] == list(CHECKS)


def load_estate_text(text: str):
    from botwatch.config.estate import LoadedEstate

    return LoadedEstate(parse_estate_text(text), None)


@pytest.mark.parametrize("bot, ok", [
    ("{name: a, lifecycle: prototype, criticality: medium}", True),
    ("{name: a, lifecycle: prototype, criticality: high}", False),
    ("{name: a, lifecycle: certified}", False),
    ("{name: a, lifecycle: production, criticality: low}", False),
    ("{name: a, lifecycle: production, certified: {by: coe, date: 2024-05-01}}", True),
    ("{name: a, lifecycle: production, certified: {by: coe, date: 2024-05-01, until: 2030-01-01}}", True),
    ("{name: a, lifecycle: production, certified: {by: coe, date: 2024-05-01, until: 2025-01-01}}", False),
    ("{name: a, lifecycle: prototype, certified: {by: coe, date: 2024-05-01, until: 2025-01-01}}", True),
])
def test_production_and_high_criticality_bots_need_a_certification_that_has_not_lapsed(bot, ok):
    loaded = load_estate_text(f"bots: [{bot}]")
    findings = check_bot(loaded.estate.bots[0], loaded, load_routing_teams(None), today=date(2026, 1, 1))
    (cert,) = [f for f in findings if f.check == "certified"]
    assert cert.ok is ok, cert.detail


def test_routing_teams_are_read_from_the_shipped_alertmanager_example():
    routing = load_routing_teams(None)
    assert routing.names == {"finance", "procurement", "controlling"}
    assert routing.routes("finance") and not routing.routes("marketing")


def test_routing_teams_come_from_matchers_regexes_and_the_old_match_keys():
    routing = routing_teams_from({"route": {"receiver": "x", "routes": [
        {"matchers": ['team = "finance"', 'severity="critical"']},
        {"matchers": ['{team=~"hr|payroll", severity="warning"}']},
        {"matchers": ['team!="ops"']},
        {"match": {"team": "procurement"}},
        {"match_re": {"team": "sales-.*"}, "routes": [{"matchers": ["team=legal"]}]},
    ]}}, "test")
    assert routing.names == {"finance", "procurement", "legal"}
    assert all(routing.routes(t) for t in ("hr", "payroll", "sales-emea"))
    assert not any(routing.routes(t) for t in ("ops", "hr-x", "xsales-emea"))


def test_a_team_missing_from_the_estates_own_alert_routing_fails(tmp_path):
    bot_folder(tmp_path, script="print('hello')\n")
    (tmp_path / "am.yml").write_text(textwrap.dedent("""\
        route:
          receiver: ops
          routes:
            - matchers: ['team="procurement"']
              receiver: p
        receivers: [{name: ops}, {name: p}]
        """), encoding="utf-8")
    config = estate_file(tmp_path, GOVERNED, agent="  alert_routing: am.yml\n")
    (f,) = [f for f in findings_of(config) if not f.ok]
    assert f.check == "team_routed" and str(tmp_path / "am.yml") in f.detail and f.line == 7


def test_an_unreadable_alert_routing_file_is_a_config_error_of_the_command(tmp_path):
    (tmp_path / "am.yml").write_text("route: [unclosed\n", encoding="utf-8")
    config = estate_file(tmp_path, GOVERNED, agent="  alert_routing: am.yml\n")
    with pytest.raises(RoutingError):
        load_routing_teams(tmp_path / "am.yml")
    r = run_cli("governance", "--config", str(config))
    assert r.returncode == 2 and f"{tmp_path / 'am.yml'}:" in r.stderr, r.stderr
    (f,) = [f for f in findings_of(config) if f.check == "team_routed"]  # the agent carries on
    assert not f.ok and "not readable" in f.detail


# --- the estate file ----------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("certified: true", "say who certified the bot and when"),
    ("certified: {by: coe}", "certified.date: missing required key 'date'"),
    ("certified: {by: coe, date: last-tuesday}", "certified.date: Input should be a valid date"),
    ("certified: {by: coe, date: 2024-05-01, until: 2024-01-01}", "certified.until is before certified.date"),
    ("certified: {by: coe, on: 2024-05-01}", "write the day as certified.date"),
    ("certified: {by: coe, date: 2024-05-01, when: x}", "unknown key 'when'"),
    ("source: 42", "'source' takes a path or a list of paths"),
    ("source: [bots/a, '']", "'source' takes a path or a list of paths"),
])
def test_bad_governance_values_are_errors_at_their_line(tmp_path, line, message):
    path = tmp_path / "botwatch.yaml"
    path.write_text(f"bots:\n  - name: a\n    owner: x\n    {line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_estate(path)
    assert any(p.startswith(f"{path}:4: bots[0].") and message in p for p in exc.value.problems), exc.value.problems
    r = run_cli("governance", "--config", str(path))
    assert r.returncode == 2 and f"{path}:4:" in r.stderr


def test_certified_false_means_not_certified_and_a_missing_owner_is_no_config_error():
    estate = parse_estate_text("bots: [{name: a, certified: false, source: bots/a}]")
    assert estate.bots[0].certified is None and estate.bots[0].source == ["bots/a"]


def test_each_bots_entry_is_located_in_the_estate_file(tmp_path):
    path = estate_file(tmp_path, "  - name: a\n    owner: x\n\n  - {name: b, team: t}\n  - name: c\n")
    entries = estate_entries(load_estate(path))
    assert [(n, e.first, e.last) for n, e in entries.items()] == [("a", 4, 5), ("b", 7, 7), ("c", 8, 8)]


# --- export ---------------------------------------------------------------------------------------

def test_the_metric_has_every_check_of_every_bot_as_1_for_failed_and_0_for_passed(tmp_path):
    bot_folder(tmp_path)
    loaded = load_estate(estate_file(tmp_path, GOVERNED + "  - name: shadowy\n"))
    state = EstateState(loaded.estate, None)
    from botwatch.governance import governance_for_state

    text = generate_latest(estate_registry(state, governance=governance_for_state(state, loaded))).decode()
    m = parse_metrics(text)
    for bot, bad in (("invoice-recon", {"plaintext_secret"}),
                     ("shadowy", {"owner", "runbook", "lifecycle", "team_routed"})):
        for check in CHECKS:
            assert m[f'botwatch_bot_governance_findings{{bot="{bot}",check="{check}"}}'] == (check in bad)
    assert PASSWORD not in text


def test_a_real_agent_exports_findings_and_never_logs_the_password(tmp_path, agents):
    bot_folder(tmp_path)
    port = free_port()
    config = estate_file(tmp_path, GOVERNED, agent=f"  listen: 127.0.0.1:{port}\n")
    agent = agents(config, port).start()
    key = 'botwatch_bot_governance_findings{bot="invoice-recon",check="plaintext_secret"}'
    wait_for(lambda: agent.metrics().get(key) == 1, what="the secret finding in /metrics")
    from conftest import http_get

    _, body = http_get(agent.url + "/metrics")
    agent.stop()
    assert PASSWORD not in body.decode()
    log = agent.log.read_text()
    assert "governance" in log and PASSWORD not in log
