"""`botwatch inventory`: every registered and every discovered (unregistered) bot, as CSV or JSON.

Registered bots come from the estate file; their state and last success from the running agent
(`/api/v1/status`) or, when it cannot be reached, from its journal as `botwatch status` does.
Discovered bots are the shadow processes the running agent last saw (`/api/v1/unregistered`;
only a running agent sweeps processes). Fragility is computed locally from the journal
(botwatch.state.fragility says which components it can see); governance findings locally from the
estate file and the bots' sources (botwatch.governance).
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException  # a malformed URL (control characters in it)

from ..config.estate import BotConfig, LoadedEstate
from ..core.redact import redact_url
from ..core.safe_output import csv_cell

COLUMNS = ("bot", "registered", "owner", "team", "platform", "lifecycle", "criticality", "state", "last_run",
           "last_success", "success_ratio", "scheduled", "fragility", "governance_findings", "pid", "user", "command")


@dataclass
class Inventory:
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the data came from, what was missing


def iso(ts: float | None) -> str | None:
    return None if not ts else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def build_inventory(loaded: LoadedEstate, agent_url: str, now: float | None = None) -> Inventory:
    from ..state.fragility import estate_fragility
    from ..governance import CHECKS, Governance, failed_checks
    from ..state.journal import Journal, JournalError

    now = time.time() if now is None else now
    inv = Inventory()
    status: dict[str, dict] = {}
    unregistered: list[dict] | None = None
    control_plane: list[dict] = []  # processes an Orchestrator runs that no bot claims
    try:
        data = _get_json(agent_url + "/api/v1/status")
        status = {b["bot"]: b for b in data.get("bots", [])}
        now = data.get("time") or now
        inv.notes.append(f"state from agent {redact_url(agent_url)}")
        try:
            answer = _get_json(agent_url + "/api/v1/unregistered")
            unregistered = answer.get("processes") or []
            control_plane = answer.get("control_plane") or []
        except (OSError, ValueError, HTTPException) as exc:
            inv.notes.append(f"unregistered processes not listed: {redact_url(exc)}")
    except (OSError, ValueError, HTTPException) as exc:
        inv.notes.append(f"agent {redact_url(agent_url)} not reachable ({redact_url(exc)}): state from the journal, "
                         "no unregistered processes (only a running agent sweeps them)")

    journal = None
    try:
        journal = Journal(loaded.journal_path, readonly=True)
    except JournalError as exc:
        inv.notes.append(f"no journal to read ({str(exc).splitlines()[0]}): no fragility"
                         + ("" if status else ", no state"))
    try:
        if journal is not None and not status:
            from ..state.runtime import EstateState

            st = EstateState(loaded.estate, journal, clock=lambda: now)
            status = {v.name: v.to_json() for v in st.views(now)}
        configs: dict[str, BotConfig] = {b.name: b for b in loaded.estate.bots}
        extra = [n for n in status if n not in configs]  # auto-registered, or the agent's estate differs
        bots = list(configs.values()) + [_config_of(n, status[n]) for n in extra]
        current = {n: (s["state"], s.get("state_since") or now) for n, s in status.items() if s.get("state")}
        frag = estate_fragility(journal, [b.name for b in bots], now, current) if journal is not None else {}
    finally:
        if journal is not None:
            journal.close()

    findings = Governance(loaded, lambda: bots).refresh()
    for b in bots:
        s = status.get(b.name, {})
        f = frag.get(b.name)
        failed = failed_checks(findings.get(b.name, []))
        inv.rows.append({
            "bot": b.name, "registered": b.name in configs,
            "owner": b.owner, "team": b.team, "platform": b.platform, "lifecycle": b.lifecycle,
            "criticality": b.criticality, "state": s.get("state"), "last_run": iso(s.get("last_run_end")),
            "last_success": iso(s.get("last_success")), "success_ratio": _success_ratio(s),
            "scheduled": s["scheduled"] if "scheduled" in s else bool(b.schedule or b.every),
            "fragility": round(f.score, 4) if f else None,
            "governance_findings": sum(failed.values()),
            "pid": None, "user": None, "command": None,
            "fragility_components": f.to_json()["components"] if f else None,
            "failed_checks": [c for c in CHECKS if failed[c]],
        })
    for p in unregistered or []:
        inv.rows.append({
            "bot": p.get("name") or p.get("runtime") or "?", "registered": False,
            "owner": None, "team": None, "platform": p.get("platform"), "lifecycle": None, "criticality": None,
            "state": "running", "last_run": None, "last_success": None, "success_ratio": None, "scheduled": None,
            "fragility": None, "governance_findings": None,
            "pid": p.get("pid"), "user": p.get("user"), "command": p.get("cmdline"),  # redacted by the agent
            "fragility_components": None, "failed_checks": None,
        })
    for p in control_plane:
        inv.rows.append({
            "bot": p.get("process") or "?", "registered": False,
            "owner": None, "team": None, "platform": p.get("platform"), "lifecycle": None, "criticality": None,
            "state": None, "last_run": iso(p.get("last_seen")), "last_success": None, "success_ratio": None,
            "scheduled": None, "fragility": None, "governance_findings": None,
            "pid": None, "user": None, "command": f"{p.get('connection')}: folder {p.get('folder')}",
            "fragility_components": None, "failed_checks": None,
        })
    return inv


def _config_of(name: str, status: dict) -> BotConfig:
    """A bot the agent knows and the estate file does not (registered from a control plane):
    its platform, team and owner as the agent has them."""
    try:
        return BotConfig(name=name, platform=status.get("platform") or "other", team=status.get("team"),
                         owner=status.get("owner"))
    except ValueError:
        return BotConfig(name=name)


def _success_ratio(status: dict) -> float | None:
    """Successful runs over all runs the agent has on record for the bot (None: no run)."""
    runs = status.get("runs_total") or 0
    if not runs:
        return None
    failed = status.get("failures") or {}
    return round(1 - sum(failed.values()) / runs, 4) if isinstance(failed, dict) else None


def to_csv(rows: list[dict]) -> str:
    """Every cell through csv_cell: process names, command lines and estate fields may hold
    formulas or terminal escapes."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([csv_cell(_cell(c, r.get(c))) for c in COLUMNS])
    return out.getvalue()


def _cell(col: str, v):
    if col == "registered":
        return "yes" if v else "no"
    if col == "scheduled" and v is not None:
        return "yes" if v else "no"
    if col in ("fragility", "success_ratio") and v is not None:
        return f"{v:.3f}"
    return v


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)
