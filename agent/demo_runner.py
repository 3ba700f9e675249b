"""`botwatch demo`: the agent on the bundled demo estate, with its sample bots run by the demo
itself on their `every:` intervals through `botwatch run`, as cron would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

import yaml


def _demo_dir() -> Path:
    return Path(str(resources.files("botwatch.demo")))


def prepare(state_dir: Path, listen: str) -> Path:
    """Write the demo estate into state_dir, with its journal there, and return its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((_demo_dir() / "botwatch.yaml").read_text(encoding="utf-8"))
    data.setdefault("agent", {})
    data["agent"]["listen"] = listen
    data["agent"]["journal"] = str(state_dir.resolve() / "journal.db")
    estate = state_dir / "botwatch.yaml"
    estate.write_text("# written by `botwatch demo` from the bundled demo estate\n"
                      + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return estate


def _wait_healthy(url: str, proc: subprocess.Popen, limit: float = 30.0) -> bool:
    end = time.time() + limit
    while time.time() < end and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def run_demo(listen: str, state_dir: str, duration: float | None) -> int:
    from .config import load_estate

    sd = Path(state_dir).resolve()
    estate_path = prepare(sd, listen)
    loaded = load_estate(estate_path)
    url = f"http://{listen}"
    env = dict(os.environ, BOTWATCH_CONFIG=str(estate_path), BOTWATCH_AGENT_URL=url,
               BOTWATCH_SPOOL=str(sd / "spool.db"), PYTHONUNBUFFERED="1",
               BOTWATCH_DELIVERY_PATIENCE="30")
    botwatch = [sys.executable, "-m", "botwatch"]
    agent = subprocess.Popen([*botwatch, "agent", "--config", str(estate_path)], env=env)
    if not _wait_healthy(url, agent):
        print("botwatch demo: the agent did not start (is the port in use? try --listen 127.0.0.1:9465)",
              file=sys.stderr)
        agent.terminate()
        return 1
    print(f"""
botwatch demo is running with {len(loaded.estate.bots)} bots (state in {sd}).

  metrics:   {url}/metrics
  status:    botwatch status --agent {url}
  or watch:  watch -n 2 botwatch status --agent {url}

Press Ctrl-C to stop.
""", flush=True)
    bots_dir = _demo_dir() / "bots"
    schedule = {b.name: 0.0 for b in loaded.estate.bots if b.every}
    logs = open(sd / "bots.log", "ab")
    running: list[subprocess.Popen] = []
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    started = time.time()
    try:
        while not stop["now"] and (duration is None or time.time() - started < duration):
            now = time.time()
            for bot in loaded.estate.bots:
                if bot.name in schedule and now >= schedule[bot.name]:
                    schedule[bot.name] = now + bot.every
                    script = bots_dir / f"{bot.name.replace('-', '_')}.py"
                    cmd = [*botwatch, "run", "--bot", bot.name]
                    if bot.max_runtime:
                        cmd += ["--timeout", f"{bot.max_runtime * 2:g}s"]
                    running.append(subprocess.Popen([*cmd, "--", sys.executable, str(script)], env=env,
                                                    stdout=logs, stderr=logs))
            running = [p for p in running if p.poll() is None]
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for p in running:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.terminate()
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
        logs.close()
    return 0
