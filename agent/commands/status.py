"""`botwatch status`: the estate as a terminal table (rich), from the agent or its journal.

Everything shown comes from outside (an agent's answer, process names and command lines, error
messages): it goes into the table as rich Text, never as markup, with its control characters
escaped (botwatch.core.safe_output), and URLs lose their user:password@.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from http.client import HTTPException  # a malformed URL (control characters in it)

from ..core.durations import format_duration
from ..core.redact import redact_url
from ..core.safe_output import for_terminal

STATE_STYLE = {"up": "green", "new": "cyan", "late": "yellow", "down": "bold red", "failing": "red", "paused": "dim"}


def _agent_url(explicit: str | None, config: str | None) -> str:
    from ..client.delivery import agent_url_for
    from ..config.estate import config_path

    path = config_path(config)
    return agent_url_for(explicit, str(path) if path.exists() else None)


def fetch_status(agent_url: str | None, config: str | None) -> tuple[dict, str]:
    """Ask the agent; if it cannot be reached, compute the same view from the local journal."""
    url = _agent_url(agent_url, config)
    try:
        with urllib.request.urlopen(url + "/api/v1/status", timeout=5) as resp:
            return json.loads(resp.read()), f"agent {redact_url(url)}"
    except (OSError, ValueError, HTTPException) as exc:
        reason = exc
    from ..config.estate import ConfigError, config_path, load_estate
    from ..state.journal import Journal, JournalError
    from ..state.runtime import EstateState

    path = config_path(config)
    try:
        loaded = load_estate(path)
        journal = Journal(loaded.journal_path, readonly=True)
    except (ConfigError, JournalError) as exc:
        _say(f"botwatch status: agent {url} not reachable ({reason}) and no journal to read: "
             f"{str(exc).splitlines()[0]}")
        sys.exit(1)
    state = EstateState(loaded.estate, journal)
    now = time.time()
    return {"time": now, "bots": [v.to_json() for v in state.views(now)]}, \
        f"journal {loaded.journal_path} (agent {redact_url(url)} not reachable)"


def _say(message: str) -> None:
    """A message on stderr: URLs without their password, no control characters."""
    print(for_terminal(redact_url(message)), file=sys.stderr)


def _text(value, style: str = ""):
    """A table cell from outside data: plain text (never rich markup), control characters escaped."""
    from rich.text import Text

    return Text(for_terminal("" if value is None else value), style=style)


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    d = now - ts
    return f"{format_duration(d)} ago" if d >= 0 else f"in {format_duration(-d)}"


def render_status(data: dict, source: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else max(130, int(os.environ.get("COLUMNS") or 0)))
    now = data.get("time") or time.time()
    table = Table(title=_text(f"botwatch estate ({source})"), title_justify="left")
    for col in ("bot", "team", "state", "last run", "last success", "fails in a row", "next due"):
        table.add_column(col, no_wrap=col in ("bot", "state"))
    for b in sorted(data["bots"], key=lambda b: (str(b.get("team") or ""), str(b["bot"]))):
        last = "never"
        if b.get("last_run_end"):
            outcome = str(b.get("last_outcome") or "")
            if outcome == "failure" and b.get("last_reason"):
                outcome += f" ({b['last_reason']})"
            elif b.get("last_empty"):  # a success that processed fewer items than min_items
                outcome += " (empty)"
            last = f"{_ago(b['last_run_end'], now)}, {outcome}"
        due = "-"
        if b.get("next_due"):
            due = _ago(b["next_due"], now)
            if b["next_due"] < now:
                due = f"overdue {format_duration(now - b['next_due'])}"
        state = _text(b["state"], STATE_STYLE.get(str(b["state"]), ""))
        if b.get("hung"):
            state.append(" (hung)", style="bold red")
        table.add_row(_text(b["bot"]), _text(b.get("team") or "-"), state, _text(last),
                      _ago(b.get("last_success"), now), _text(b.get("consecutive_failures", 0)), due)
    console.print(table)


def fetch_unregistered(agent_url: str | None, config: str | None) -> tuple[dict, str]:
    """Shadow bots as the running agent last saw them (only a running agent sweeps processes)."""
    url = _agent_url(agent_url, config)
    try:
        with urllib.request.urlopen(url + "/api/v1/unregistered", timeout=5) as resp:
            return json.loads(resp.read()), f"agent {redact_url(url)}"
    except (OSError, ValueError, HTTPException) as exc:
        _say(f"botwatch status: agent {url} not reachable ({exc}); unregistered processes are known "
             "to a running agent only")
        sys.exit(1)


def render_unregistered(data: dict, source: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else max(130, int(os.environ.get("COLUMNS") or 0)))
    now = data.get("time") or time.time()
    procs = data.get("processes") or []
    counts = {k: v for k, v in (data.get("counts") or {}).items() if v}
    title = f"unregistered bot processes ({source})"
    _render_control_plane(data.get("control_plane") or [], source, now, console)
    if data.get("swept_at") is None:
        console.print(_text(f"{title}: the agent has not swept processes yet"))
        return
    table = Table(title=_text(title), title_justify="left")
    for col in ("pid", "platform", "user", "started", "command line"):
        table.add_column(col, no_wrap=col in ("pid", "platform"), overflow="fold")
    for p in procs:
        table.add_row(_text(p.get("pid")), _text(p.get("platform") or "-"), _text(p.get("user") or "-"),
                      _ago(p.get("started"), now), _text(p.get("cmdline") or p.get("name") or ""))
    console.print(table)
    total = sum(v for v in counts.values() if isinstance(v, (int, float)))
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    console.print(_text(f"{total} unregistered bot process(es): {summary}"))


def _render_control_plane(procs: list, source: str, now: float, console) -> None:
    """Processes a control plane runs (an Orchestrator's) that no bot claims: their runs are not recorded."""
    from rich.table import Table

    if not procs:
        return
    table = Table(title=_text(f"unregistered control-plane processes ({source})"), title_justify="left")
    for col in ("platform", "connection", "folder", "process", "runs seen", "last seen"):
        table.add_column(col, overflow="fold")
    for p in procs:
        table.add_row(_text(p.get("platform") or "-"), _text(p.get("connection") or "-"), _text(p.get("folder") or "-"),
                      _text(p.get("process") or "?"), _text(p.get("runs")), _ago(p.get("last_seen"), now))
    console.print(table)
