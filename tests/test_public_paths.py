"""The import paths and entry points users write into their bots, listeners and scripts keep
working whatever folder their code lives in inside the package (docs/architecture.md)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import botwatch.exporters

EXPORTER_MODULES = sorted(m.name for m in pkgutil.iter_modules(botwatch.exporters.__path__))


def test_it_keeps_botwatch_sdk_as_the_one_sdk_module():
    import botwatch
    import botwatch.client.sdk
    import botwatch.sdk

    assert botwatch.sdk is botwatch.client.sdk  # one module: its settings and state are shared
    for name in ("run", "bot", "fail", "ui_lookup", "snapshot", "step"):
        assert getattr(botwatch, name) is getattr(botwatch.sdk, name)


def test_it_keeps_the_robot_framework_listener_path():
    robot = importlib.import_module("botwatch.integrations.robot")

    assert robot.ROBOT_LISTENER_API_VERSION == 3
    assert callable(robot.Listener)


def test_it_keeps_python_m_botwatch_deliver(tmp_path):
    """The deliverer's public entry point runs: on an empty spool it has nothing to do and says so
    with exit status 0."""
    spool = tmp_path / "spool.db"
    p = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool), "--patience", "1"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    bad = subprocess.run([sys.executable, "-m", "botwatch.deliver", "--spool", str(spool), "--no-such-option", "x"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "python -m botwatch.deliver" in bad.stderr


def test_it_keeps_python_m_botwatch_and_the_console_script():
    p = subprocess.run([sys.executable, "-m", "botwatch", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "botwatch" in p.stdout
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "botwatch"]
    assert callable(script.load())


@pytest.mark.parametrize("name", EXPORTER_MODULES)
def test_it_keeps_every_exporter_module_under_botwatch_exporters(name):
    assert importlib.import_module(f"botwatch.exporters.{name}").__name__ == f"botwatch.exporters.{name}"
