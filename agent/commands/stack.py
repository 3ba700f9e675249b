"""Prometheus and Alertmanager beside an agent, with the rules and routing botwatch ships.

`botwatch demo` and the end-to-end tests share this module. It

- writes a prometheus.yml that scrapes agents as job `botwatch` (the job the rules expect),
  loads the shipped `alerts/*.rules.yml` and sends alerts to an Alertmanager;
- derives from the shipped `alerts/alertmanager.yml` a configuration with the same route tree,
  grouping and inhibitions whose receivers send nowhere, or each to one webhook
  (`<base>/<receiver name>`), optionally with shorter group and repeat intervals;
- starts the two servers (Debian's `prometheus` and `prometheus-alertmanager`) as child
  processes on loopback addresses, waits until they are ready, and stops them; likewise a
  VictoriaMetrics (Debian's `victoria-metrics`) for Prometheus to remote-write to.

Nothing here is needed by the agent itself: Prometheus and Alertmanager are optional.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import yaml

PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name
VICTORIA_METRICS = ("victoria-metrics",)  # Debian's single-node server (upstream: victoria-metrics-prod)
# Looked in after $PATH: where Debian puts them, for shells whose PATH lacks it (cron, sudo).
SEARCH_DIRS = ("/usr/bin", "/usr/local/bin")
JOB = "botwatch"
ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


class StackError(Exception):
    """A server that did not start; the message names it and ends with the tail of its log."""


# -- the shipped files --------------------------------------------------------------------------

def alerts_dir() -> Path:
    return Path(str(resources.files("botwatch.alerts")))


def dashboards_dir() -> Path:
    return Path(str(resources.files("botwatch.dashboards")))


def rule_files() -> list[Path]:
    """The shipped rule files (thresholds, recording rules, alerts), not the example overrides."""
    return sorted(alerts_dir().glob("*.rules.yml"))


def find_binary(names: tuple[str, ...]) -> str | None:
    """The first of `names` on $PATH, else in /usr/bin or /usr/local/bin; None if nowhere."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for folder in SEARCH_DIRS:
        for name in names:
            path = Path(folder) / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


# -- configuration --------------------------------------------------------------------------------

def prometheus_config(targets: list[str], *, alertmanager: str | None = None, rules: list[Path] | None = None,
                      scrape_interval: str = "15s", evaluation_interval: str | None = None) -> dict:
    """Scrape `targets` (HOST:PORT of agents) as job botwatch, load `rules` (default: the shipped
    rule files) and send alerts to the Alertmanager at HOST:PORT `alertmanager`, if any."""
    config: dict = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval or scrape_interval},
        "rule_files": [str(Path(p).resolve()) for p in (rule_files() if rules is None else rules)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def alertmanager_config(webhook_base: str | None = None, *, timings: dict[str, str] | None = None,
                        source: Path | None = None) -> dict:
    """The shipped alertmanager.yml (or `source`) with every receiver's integrations replaced.

    Route tree, grouping and inhibitions stay as they are. A receiver that sends somewhere
    (e-mail, Slack, webhooks, ...) posts to `<webhook_base>/<receiver name>` instead, with
    resolved notifications, or sends nothing when `webhook_base` is None; a receiver that sends
    nothing (`null`) stays so. `timings` ({"group_wait": "1s", ...}) replace those settings
    wherever the route tree has them, and on its root.
    """
    text = (source or alerts_dir() / "alertmanager.yml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    receivers = []
    for receiver in config.get("receivers", []):
        sends = any(key.endswith("_configs") for key in receiver)
        derived = {"name": receiver["name"]}
        if sends and webhook_base:
            derived["webhook_configs"] = [{"url": f"{webhook_base.rstrip('/')}/{quote(receiver['name'])}",
                                           "send_resolved": True}]
        receivers.append(derived)
    config["receivers"] = receivers
    if timings:
        unknown = set(timings) - set(ROUTE_TIMINGS)
        if unknown:
            raise ValueError(f"not a route timing: {', '.join(sorted(unknown))}")
        _retime(config["route"], timings, root=True)
    return config


def _retime(route: dict, timings: dict[str, str], root: bool) -> None:
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _retime(child, timings, root=False)


def write_yaml(path: Path, data: dict, header: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    path.write_text(lines + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_prometheus_config(path: Path, targets: list[str], **kw) -> Path:
    return write_yaml(path, prometheus_config(targets, **kw),
                      "Written by botwatch: scrapes the agents as job botwatch, with botwatch's alert rules.")


def write_alertmanager_config(path: Path, webhook_base: str | None = None, **kw) -> Path:
    where = f"each to {webhook_base.rstrip('/')}/<receiver>" if webhook_base else "nowhere"
    return write_yaml(path, alertmanager_config(webhook_base, **kw),
                      "Written by botwatch from its alerts/alertmanager.yml: the same routes, grouping and\n"
                      f"inhibitions; the receivers send {where}.")


# -- addresses --------------------------------------------------------------------------------------

def address_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (bound the way Go servers bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pick_listen(preferred: str) -> str:
    """`preferred` (HOST:PORT) if nothing listens there, else a free port on the same host."""
    from ..config.estate import parse_listen

    host, port = parse_listen(preferred)
    if address_free(host, port):
        return preferred
    return f"{host}:{free_port(host)}"


# -- the servers ----------------------------------------------------------------------------------

class Server:
    """A Prometheus, Alertmanager or VictoriaMetrics child process, its output in a log file;
    ready once `ready_path` answers 200."""

    def __init__(self, name: str, argv: list[str], listen: str, log: Path, ready_path: str = "/-/ready"):
        self.name, self.argv, self.listen, self.log = name, argv, listen, Path(log)
        self.ready_path = ready_path
        self.url = f"http://{listen}"
        self.proc: subprocess.Popen | None = None
        self._logf = None

    def start(self) -> "Server":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def wait_ready(self, timeout: float = 60.0) -> "Server":
        """Return once `ready_path` answers 200; StackError if the process ends or `timeout` passes."""
        end = time.monotonic() + timeout
        while not self.ready():
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise StackError(f"{self.name} exited with status {code} ({self.log}):\n{self.log_tail()}")
            if time.monotonic() > end:
                raise StackError(f"{self.name} was not ready on {self.url} after {timeout:g}s ({self.log}):\n"
                                 f"{self.log_tail()}")
            time.sleep(0.1)
        return self

    def get_json(self, path: str, timeout: float = 10.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the servers shut down cleanly on it), SIGKILL after `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._logf is not None:
            self._logf.close()
            self._logf = None


def prometheus(binary: str, config: Path, data_dir: Path, listen: str, log: Path) -> Server:
    """A Prometheus (not started yet) with its TSDB in data_dir, listening on HOST:PORT `listen`."""
    return Server("Prometheus", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir}", f"--web.listen-address={listen}",
        "--log.level=warn"], listen, log)


def alertmanager(binary: str, config: Path, data_dir: Path, listen: str, log: Path) -> Server:
    """An Alertmanager (not started yet), clustering off, its silences and notification log in data_dir."""
    return Server("Alertmanager", [
        binary, f"--config.file={config}", f"--storage.path={data_dir}", f"--web.listen-address={listen}",
        "--cluster.listen-address=", "--log.level=warn"], listen, log)


def victoria_metrics(binary: str, data_dir: Path, listen: str, log: Path, *, retention: str = "1d",
                     extra: tuple[str, ...] = ()) -> Server:
    """A single-node VictoriaMetrics (not started yet) with its data in data_dir, listening on
    HOST:PORT `listen`: Prometheus remote-writes to `<url>/api/v1/write`, PromQL (MetricsQL) is
    answered at `<url>/api/v1/query`. Fresh samples are searchable at once
    (`-search.latencyOffset=0s`; VictoriaMetrics' default hides the last 30 s)."""
    return Server("VictoriaMetrics", [
        binary, f"-httpListenAddr={listen}", f"-storageDataPath={data_dir}", f"-retentionPeriod={retention}",
        "-search.latencyOffset=0s", "-loggerLevel=WARN", *extra], listen, log, ready_path="/health")
