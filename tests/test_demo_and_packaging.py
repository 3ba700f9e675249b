"""The README's promises: `botwatch demo` shows real runs; `pip install .` installs one package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import BOTWATCH, free_port, parse_metrics, wait_for, http_get

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_its_bots_through_the_agent(tmp_path):
    port = free_port()
    env = {**os.environ}
    for k in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL", "BOTWATCH_SPOOL"):
        env.pop(k, None)
    proc = subprocess.Popen([*BOTWATCH, "demo", "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "d"),
                             "--duration", "120"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def enough_runs():
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            except OSError:
                return None
            m = parse_metrics(body.decode())
            bots = ("healthy-invoices", "flaky-portal", "slow-report")
            return m if all(m.get(f'botwatch_runs_total{{bot="{b}"}}', 0) >= 1 for b in bots) else None

        m = wait_for(enough_runs, timeout=90, interval=0.5, what="a run of every demo bot")
        assert m['botwatch_bot_state{bot="healthy-invoices",state="up"}'] == 1
        assert m['botwatch_bot_info{bot="nightly-ledger",bot_owner="ana.diaz@example.com",criticality="high",'
                 'lifecycle="production",platform="robotframework",team="finance"}'] == 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert f"http://127.0.0.1:{port}/metrics" in text and "botwatch status --agent" in text
    assert proc.returncode == 0, text


def test_pip_install_puts_one_package_named_botwatch_with_its_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("botwatch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"botwatch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for expected in ("botwatch/exporters/prometheus.py", "botwatch/failure_patterns.yaml",
                     "botwatch/dashboards/__init__.py", "botwatch/alerts/__init__.py",
                     "botwatch/demo/botwatch.yaml", "botwatch/demo/bots/flaky_portal.py",
                     "botwatch/_platform/posix.py", "botwatch/_platform/windows.py"):
        assert expected in names, expected
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "botwatch = botwatch.cli:main" in entry
