"""`botwatch demo`: the agent on the bundled demo estate, with its sample bots run by the demo
itself on their `every:` intervals through `botwatch run`, as cron would; beside it, when they
are installed, Prometheus with the shipped alert rules and Alertmanager with the shipped routing
(receivers that send nothing), both on loopback, their data in the demo's state folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from .stack import Server

# Prometheus and Alertmanager listen on their usual ports, or on free ones when those are taken.
DEFAULT_PROMETHEUS = "127.0.0.1:9090"
DEFAULT_ALERTMANAGER = "127.0.0.1:9093"
SCRAPE_INTERVAL = "5s"  # scrape and rule evaluation; the demo bots run every 15 to 30 seconds


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


def _note(text: str) -> None:
    print(f"botwatch demo: {text}", file=sys.stderr, flush=True)


def _start_server(make, name: str, package: str, names: tuple[str, ...], preferred: str, state_dir: Path,
                  write_config) -> Server | None:
    """One optional server: None, with a one-line note, when it is not installed or does not start."""
    from .stack import StackError, find_binary, pick_listen

    binary = find_binary(names)
    if binary is None:
        _note(f"{name} is not installed (Debian: apt install {package}); running without it.")
        return None
    listen = pick_listen(preferred)
    if listen != preferred:
        _note(f"{preferred} is taken; {name} listens on {listen} instead.")
    slug = name.lower()
    config = write_config(state_dir / f"{slug}.yml")
    server = make(binary, config, state_dir / slug, listen, state_dir / f"{slug}.log")
    try:
        return server.start().wait_ready()
    except (OSError, StackError) as exc:
        server.stop()
        _note(f"{name} did not start, running without it: {str(exc).splitlines()[0]}")
        return None
    except BaseException:  # Ctrl-C while it starts
        server.stop()
        raise


def start_monitoring(state_dir: Path, agent_listen: str, prometheus_listen: str,
                     alertmanager_listen: str) -> tuple[Server | None, Server | None]:
    """Alertmanager (the shipped routing, receivers that send nothing), then Prometheus (the
    shipped rules, scraping the agent); either is None when it is missing or did not start."""
    from . import stack

    am = _start_server(stack.alertmanager, "Alertmanager", "prometheus-alertmanager", stack.ALERTMANAGER,
                       alertmanager_listen, state_dir, lambda path: stack.write_alertmanager_config(path))
    try:
        prom = _start_server(stack.prometheus, "Prometheus", "prometheus", stack.PROMETHEUS, prometheus_listen,
                             state_dir, lambda path: stack.write_prometheus_config(
                                 path, [agent_listen], alertmanager=am.listen if am else None,
                                 scrape_interval=SCRAPE_INTERVAL))
    except BaseException:
        if am:
            am.stop()
        raise
    return prom, am


def monitoring_help(prom: Server | None, am: Server | None) -> str:
    """How to open Prometheus and Alertmanager, and how to get the dashboards into a Grafana."""
    from .stack import dashboards_dir

    lines = []
    if prom:
        lines.append(f"  prometheus:    {prom.url}  (alerts: {prom.url}/alerts, rules: {prom.url}/rules)")
    if am:
        lines.append(f"  alertmanager:  {am.url}  (routes of alerts/alertmanager.yml; its receivers send nothing)")
    if prom:
        lines += [
            f"  dashboards:    in Grafana, add a Prometheus data source with URL {prom.url}, then import",
            f"                 {dashboards_dir()}/*.json (Dashboards > New > Import),",
            "                 or run: botwatch grafana push --url GRAFANA_URL --token-file TOKEN_FILE",
        ]
    return "\n".join(lines) + "\n" if lines else ""


def run_demo(listen: str, state_dir: str, duration: float | None, prometheus_listen: str = DEFAULT_PROMETHEUS,
             alertmanager_listen: str = DEFAULT_ALERTMANAGER) -> int:
    from ..config.estate import load_estate

    sd = Path(state_dir).resolve()
    estate_path = prepare(sd, listen)
    loaded = load_estate(estate_path)
    url = f"http://{listen}"
    env = dict(os.environ, BOTWATCH_CONFIG=str(estate_path), BOTWATCH_AGENT_URL=url,
               BOTWATCH_SPOOL=str(sd / "spool.db"), PYTHONUNBUFFERED="1",
               BOTWATCH_DELIVERY_PATIENCE="30")
    botwatch = [sys.executable, "-m", "botwatch"]
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    agent = subprocess.Popen([*botwatch, "agent", "--config", str(estate_path)], env=env)
    if not _wait_healthy(url, agent):
        print("botwatch demo: the agent did not start (is the port in use? try --listen 127.0.0.1:9465)",
              file=sys.stderr)
        agent.terminate()
        return 1
    bots_dir = _demo_dir() / "bots"
    schedule = {b.name: 0.0 for b in loaded.estate.bots if b.every}
    logs = open(sd / "bots.log", "ab")
    running: list[subprocess.Popen] = []
    servers = []
    try:
        prom, am = start_monitoring(sd, listen, prometheus_listen, alertmanager_listen)
        servers = [s for s in (prom, am) if s]
        print(f"""
botwatch demo is running with {len(loaded.estate.bots)} bots (state in {sd}).

  metrics:       {url}/metrics
  status:        botwatch status --agent {url}
  or watch:      watch -n 2 botwatch status --agent {url}
{monitoring_help(prom, am)}
Press Ctrl-C to stop.
""", flush=True)
        started = time.time()
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
        for server in servers:
            server.stop()
        agent.terminate()
        try:
            agent.wait(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
        logs.close()
    return 0
