"""Optional capabilities: without its extra, whatever needs one says so in one line naming the
extra and its `pip install` command, and the agent runs on without it.

In-process tests switch an extra off by monkeypatching botwatch.core.extras.available; the
agent test blocks the extras' packages from being imported at all in its own process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from botwatch.commands.group import cli
from botwatch.config.estate import ConfigError, load_estate, parse_estate_text
from botwatch.core import extras
from botwatch.core.extras import MissingExtra, require
from conftest import free_port, http_get, wait_for

DRIFT_HINT = "pip install 'botwatch[drift]'"


@pytest.fixture
def without(monkeypatch):
    """without(name, ...): those extras count as not installed for the rest of the test."""
    real = extras.available

    def switch_off(*names: str) -> None:
        monkeypatch.setattr(extras, "available", lambda extra: extra not in names and real(extra))

    return switch_off


# -- the helper --------------------------------------------------------------------------------

def test_the_test_environment_has_every_extra_the_suite_tests():
    assert extras.missing() == []  # the lock installs them all (grafana: the extra `make test` adds)
    for name in extras.EXTRAS:
        require(name)  # no exception


def test_a_missing_extra_names_the_capability_the_extra_and_the_install_command(without):
    without("drift")
    with pytest.raises(MissingExtra) as exc:
        require("drift", "screenshot comparison")
    assert str(exc.value) == "screenshot comparison needs the drift extra: pip install 'botwatch[drift]'"
    assert exc.value.extra == "drift"
    assert [e.name for e in extras.missing()][:1] == ["drift"]
    assert "UI drift comparison (pages and screenshots) (pip install 'botwatch[drift]')" in extras.capabilities_off()


def test_an_extra_is_missing_when_one_of_its_packages_cannot_be_found(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "drift", extras.Extra("drift", "UI drift", ("lxml", "no_such_package_x")))
    assert not extras.available("drift")
    monkeypatch.setitem(extras.EXTRAS, "drift", extras.Extra("drift", "UI drift", ("no_such_parent_x.child",)))
    assert not extras.available("drift")


# -- UI drift ----------------------------------------------------------------------------------

def test_drift_commands_without_the_extra_print_the_install_line_and_exit_2(without, tmp_path):
    without("drift")
    page = tmp_path / "page.html"
    page.write_text("<html><body><button id='b'>Go</button></body></html>")
    for command in ("check", "baseline", "accept"):
        result = CliRunner().invoke(cli, ["drift", command, "invoices", "invoice", str(page)])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"botwatch drift {command}: UI drift comparison needs the drift extra: "
                                         f"{DRIFT_HINT}")


def test_the_probe_refuses_to_compare_without_the_extra(without):
    from botwatch.ui.probe import DriftProbe

    without("drift")
    probe = DriftProbe(parse_estate_text("bots:\n  - name: invoices\n"), None)
    with pytest.raises(MissingExtra, match=r"UI drift comparison needs the drift extra"):
        probe.check("invoices", "invoice", "html", b"<html><body><p>x</p></body></html>")


def test_declared_selectors_are_not_checked_without_the_extra_and_check_config_says_so(without, tmp_path):
    estate = "bots:\n  - name: invoices\n    ui:\n      screens:\n        invoice:\n          selectors: {submit: '#a[['}\n"
    with pytest.raises(ConfigError, match="invalid CSS selector"):
        parse_estate_text(estate)
    without("drift")
    loaded = parse_estate_text(estate)  # loads: the agent runs, and says UI drift is off
    assert loaded.bot("invoices").ui.screens["invoice"].selectors == {"submit": "#a[["}
    path = tmp_path / "botwatch.yaml"
    path.write_text(estate)
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0
    assert f"the ui selectors are not checked: checking them needs the drift extra: {DRIFT_HINT}" in result.output


def test_the_api_answers_a_snapshot_with_501_naming_the_extra_and_counts_it_dropped(without, caplog):
    from fastapi.testclient import TestClient

    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import create_app
    from botwatch.state.runtime import EstateState

    without("drift")
    state = EstateState(parse_estate_text("bots:\n  - name: invoices\n"), None)
    client = TestClient(create_app(state, estate_registry(state)))
    with caplog.at_level(logging.WARNING, logger="botwatch.agent"):
        for _ in range(2):
            answer = client.post("/api/v1/snapshots/invoices/invoice", content=b"<html><p>x</p></html>",
                                 headers={"Content-Type": "text/html"})
            assert answer.status_code == 501
            assert answer.json() == {"error": "UI drift is off",
                                     "detail": f"UI drift comparison needs the drift extra: {DRIFT_HINT}"}
    assert [r.getMessage() for r in caplog.records] == [  # once, whatever the number of snapshots
        f"UI snapshots are refused (HTTP 501): UI drift comparison needs the drift extra: {DRIFT_HINT}"]
    assert state.self_metrics()["dropped"]["snapshot"] == 2
    status = client.get("/api/v1/status").json()
    assert {"extra": "drift", "capability": "UI drift comparison (pages and screenshots)",
            "install": DRIFT_HINT} in status["capabilities_off"]


def test_the_snapshot_folder_is_not_watched_without_the_extra_and_says_so_in_one_line(without, tmp_path, caplog):
    from botwatch.server.daemon import build_sources
    from botwatch.state.journal import Journal
    from botwatch.state.runtime import EstateState

    path = tmp_path / "botwatch.yaml"
    path.write_text(f"agent:\n  journal: {tmp_path / 'j.db'}\n  snapshots: ./snaps\nbots:\n  - name: invoices\n")
    loaded = load_estate(path)
    without("drift")
    journal = Journal(loaded.journal_path)
    try:
        with caplog.at_level(logging.WARNING, logger="botwatch.agent"):
            sources = build_sources(loaded, EstateState(loaded.estate, journal), journal)
    finally:
        journal.close()
    assert "snapshots" not in {type(s).name for s in sources}
    assert "processes" in {type(s).name for s in sources}  # the others start
    [record] = [r for r in caplog.records if "snapshots" in r.getMessage()]
    assert record.getMessage() == (f"source snapshots is off: UI drift comparison of the snapshot folder "
                                   f"{tmp_path / 'snaps'} needs the drift extra: {DRIFT_HINT}")
    assert record.exc_info is None  # one line, no traceback


# -- OTLP ---------------------------------------------------------------------------------------

def test_otlp_asked_for_without_the_extra_is_one_warning_and_nothing_starts(without, caplog):
    from botwatch.exporters import otlp
    from botwatch.exporters.otlp_settings import resolve
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.state.runtime import EstateState

    estate = parse_estate_text("agent:\n  otlp:\n    endpoint: http://127.0.0.1:9\n    traces: true\nbots: []\n")
    state = EstateState(estate, None)
    without("otlp")
    with caplog.at_level(logging.INFO, logger="botwatch.exporters.otlp"):
        exports = otlp.start(resolve(estate, {}), state, estate_registry(state))
    assert (exports.metrics, exports.traces, exports.tracer) == (None, None, None)
    assert state.listeners == []
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "OTLP export of metrics and run traces needs the otlp extra: pip install 'botwatch[otlp]'; "
                    "the agent goes on without it", None)]


# -- governance ---------------------------------------------------------------------------------

def test_without_secret_scanning_the_finding_says_nothing_was_scanned_and_own_rules_still_apply(without, tmp_path,
                                                                                                caplog):
    from botwatch.governance import Governance

    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "main.py").write_text('PASSWORD = "Winter2024!Secure"\n')
    path = tmp_path / "botwatch.yaml"
    path.write_text(textwrap.dedent(f"""\
        agent:
          journal: {tmp_path / 'j.db'}
        bots:
          - name: scanned
            source: bot
          - name: keyed
            ping_key: literal-key-123
        """))
    without("governance")
    governance = Governance(load_estate(path))
    with caplog.at_level(logging.WARNING, logger="botwatch.governance"):
        governance.refresh()
        found = governance.refresh()
    [scanned] = [f for f in found["scanned"] if f.check == "plaintext_secret"]
    assert scanned.ok  # nothing found, and the detail says why
    assert scanned.detail == ("not scanned: secret scanning needs the governance extra: "
                              "pip install 'botwatch[governance]' (only literal ping keys and credentials in "
                              "command lines were looked for)")
    [keyed] = [f for f in found["keyed"] if f.check == "plaintext_secret"]
    assert not keyed.ok and "literal ping_key" in keyed.detail  # botwatch's own rule, no scanner needed
    assert governance.scanner.files_scanned == 0
    assert [r.getMessage() for r in caplog.records] == [  # once, not at every refresh
        "governance: plaintext_secret checks no file: secret scanning needs the governance extra: "
        "pip install 'botwatch[governance]'"]


# -- Grafana ------------------------------------------------------------------------------------

def test_grafana_push_without_the_extra_prints_the_install_line_and_exits_2(without, tmp_path):
    without("grafana")
    token = tmp_path / "token"
    token.write_text("glsa_x\n")
    result = CliRunner().invoke(cli, ["grafana", "push", "--url", "http://127.0.0.1:9", "--token-file", str(token)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "botwatch grafana push: pushing dashboards to Grafana needs the grafana extra: "
        "pip install 'botwatch[grafana]' (or import the dashboards by hand, see dashboards/README.md)")


# -- an agent whose extras cannot be imported at all ----------------------------------------------

# the packages of the extras (opentelemetry-api is not one: FastAPI needs it)
BLOCKED = ("lxml", "cssselect", "PIL", "opentelemetry.sdk", "opentelemetry.exporter", "detect_secrets",
           "grafana_client")
WITHOUT_EXTRAS = textwrap.dedent(f"""\
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in {BLOCKED!r}):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Blocked())
    from botwatch.commands.cli import main
    sys.argv[0] = "botwatch"
    sys.exit(main())
    """)


def test_an_agent_without_any_extra_starts_says_what_is_off_and_serves(tmp_path):
    port = free_port()
    (tmp_path / "snaps").mkdir()
    config = tmp_path / "botwatch.yaml"
    config.write_text(textwrap.dedent(f"""\
        agent:
          listen: 127.0.0.1:{port}
          journal: {tmp_path / 'journal.db'}
          snapshots: ./snaps
          otlp: {{endpoint: "http://127.0.0.1:{free_port()}"}}
        bots:
          - name: invoices
            source: .
            ui:
              screens:
                invoice: {{selectors: {{submit: "#btnSubmit"}}}}
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen([sys.executable, "-c", WITHOUT_EXTRAS, "agent", "--config", str(config)],
                                 stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            def healthy():
                assert agent.poll() is None, log.read_text()
                try:
                    return http_get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
                except OSError:
                    return False

            wait_for(healthy, what="the agent without extras")
            assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
            status, body = _post(f"http://127.0.0.1:{port}/api/v1/snapshots/invoices/invoice", b"<p>x</p>")
            assert status == 501 and DRIFT_HINT in json.loads(body)["detail"]
            status, body = http_get(f"http://127.0.0.1:{port}/api/v1/status")
            assert [c["extra"] for c in json.loads(body)["capabilities_off"]] == ["drift", "otlp", "governance",
                                                                                   "grafana"]
            wait_for(lambda: "plaintext_secret checks no file" in log.read_text(), what="the governance refresh")
        finally:
            agent.terminate()
            agent.wait(timeout=30)
    text = log.read_text()
    assert agent.returncode == 0, text
    assert "Traceback" not in text
    lines = text.splitlines()
    [off] = [line for line in lines if "capabilities off" in line]
    assert off == ("botwatch agent: capabilities off (extras not installed): UI drift comparison (pages and "
                   "screenshots) (pip install 'botwatch[drift]'); OTLP export (pip install 'botwatch[otlp]'); "
                   "secret scanning (pip install 'botwatch[governance]'); pushing dashboards to Grafana "
                   "(pip install 'botwatch[grafana]')")
    assert any("OTLP export of metrics needs the otlp extra" in line for line in lines)
    assert any("source snapshots is off" in line and DRIFT_HINT in line for line in lines)


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/html"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_drift_check_without_the_extra_in_a_process_that_cannot_import_it(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html></html>")
    result = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, "drift", "check", "invoices", "invoice", str(page)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"botwatch drift check: UI drift comparison needs the drift extra: {DRIFT_HINT}"
    assert "Traceback" not in result.stderr + result.stdout
