"""The governance checks of a bot and their findings, and the findings of the whole estate.

Each check gives `Finding`s; a failed one (`ok=False`) is what the CoE acts on. Findings that
point at something in a file name the file and line, never the text there.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Callable, Iterable

from ..config.estate import BotConfig, LoadedEstate
from ..core.extras import MissingExtra
from ..core.redact import redact
from .entries import EstateEntry, estate_entries
from .routing import RoutingError, RoutingTeams, routing_for
from .secrets import SCANNING, SecretScanner

if TYPE_CHECKING:
    from ..state.runtime import EstateState

log = logging.getLogger("botwatch.governance")

CHECKS = ("owner", "runbook", "lifecycle", "certified", "team_routed", "plaintext_secret")


@dataclass(frozen=True)
class Finding:
    """One check of one bot. `file`/`line` say where to look or fix; `detail` never holds a secret."""

    check: str
    ok: bool
    detail: str
    file: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_json(self) -> dict[str, str | bool | int | None]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "file": self.file, "line": self.line}


def failed_checks(findings: Iterable[Finding]) -> dict[str, int]:
    """check -> 1 if any finding of it failed, else 0; every check present."""
    out = dict.fromkeys(CHECKS, 0)
    for f in findings:
        if not f.ok:
            out[f.check] = 1
    return out


# --- the checks of one bot ----------------------------------------------------------------------

def check_bot(bot: BotConfig, estate: LoadedEstate, routing: RoutingTeams | None, *,
              scanner: SecretScanner | None = None, entry: EstateEntry | None = None,
              today: date | None = None, routing_error: str | None = None,
              running_secret_pid: int | None = None) -> list[Finding]:
    """Every check of one bot. `entry` is the bot's place in the estate file (estate_entries);
    `running_secret_pid`: a running process of the bot whose command line holds a credential."""
    if entry is None:
        entry = estate_entries(estate).get(bot.name)
    scanner = scanner or SecretScanner()
    today = today or date.today()
    file = entry.file if entry else None

    def line_of(key: str) -> int | None:
        if entry is None:
            return None
        for k, _, ln in entry.strings:
            if k == key or k.startswith(key + ".") or k.startswith(key + "["):
                return ln
        return entry.first

    def at(check: str, ok: bool, detail: str, key: str | None = None) -> Finding:
        return Finding(check, ok, detail, file, (line_of(key) if key else (entry.first if entry else None)))

    where = "the estate file" if entry else "no estate entry (auto-registered bot)"
    out = [
        at("owner", True, f"owner {bot.owner}", "owner") if bot.owner else
        at("owner", False, f"no owner: add `owner:` to the bot in {where}"),
        at("runbook", True, f"runbook {bot.runbook}", "runbook") if bot.runbook else
        at("runbook", False, f"no runbook: add `runbook:` (a URL or path) in {where}"),
        at("lifecycle", True, f"lifecycle {bot.lifecycle}", "lifecycle") if bot.lifecycle else
        at("lifecycle", False, "no lifecycle: declare `lifecycle:` prototype, certified or production"),
        _certified(bot, today, at),
        _team_routed(bot, routing, routing_error, at),
    ]
    out += _secrets(bot, estate, entry, scanner, running_secret_pid)
    return out


def _certified(bot: BotConfig, today: date, at: Callable[..., Finding]) -> Finding:
    why = [w for w, yes in ((f"lifecycle {bot.lifecycle}", bot.lifecycle in ("certified", "production")),
                            ("criticality high", bot.criticality == "high")) if yes]
    c = bot.certified
    if c is not None and c.until is not None and c.until < today:
        return at("certified", not why, f"certification by {c.by} lapsed on {c.until.isoformat()}"
                  + (f" ({' and '.join(why)} needs it)" if why else ""), "certified")
    if c is not None:
        return at("certified", True, f"certified by {c.by} on {c.date.isoformat()}"
                  + (f", until {c.until.isoformat()}" if c.until else ""), "certified")
    if why:
        return at("certified", False, f"no certification record, but {' and '.join(why)}: record "
                  "`certified: {by: NAME, date: YYYY-MM-DD}` once IT has certified it")
    return at("certified", True, "certification not required (not production, criticality not high)")


def _team_routed(bot: BotConfig, routing: RoutingTeams | None, error: str | None,
                 at: Callable[..., Finding]) -> Finding:
    if routing is None:
        return at("team_routed", False, f"alert routing not readable: {error or 'unknown error'}", "team")
    if not bot.team:
        return at("team_routed", False, f"no team: its alerts reach no team (routing {routing.source})")
    if routing.routes(bot.team):
        return at("team_routed", True, f"team {bot.team} is routed in {routing.source}", "team")
    return at("team_routed", False, f"team {bot.team} has no route in {routing.source}", "team")


def _secrets(bot: BotConfig, estate: LoadedEstate, entry: EstateEntry | None,
             scanner: SecretScanner, running_secret_pid: int | None = None) -> list[Finding]:
    found: dict[tuple[str, int], str] = {}  # (file, line) -> what, first finder wins

    def add(file: str, line: int, what: str) -> None:
        found.setdefault((file, line), what)

    if entry is not None:
        for key, value, line in entry.strings:
            if key == "ping_key" or key.endswith(".ping_key"):
                if not value.startswith(("env:", "file:")):
                    add(entry.file, line, "literal ping_key in the estate file (use env:NAME or file:PATH)")
            elif key == "watch.process.cmdline" and redact(value) != value:
                add(entry.file, line, "credential in the command line pattern")
        # the entry alone, its line numbers shifted back to the file's: scanning only its own lines
        # keeps a refresh linear in the estate's size (blanking the rest was quadratic)
        for offset_line, kind in scanner.scan_text(entry_text(entry)) if scanner.available else ():
            line = offset_line + entry.first - 1
            if not _is_ping_key_line(entry, line):
                add(entry.file, line, f"{kind} in the estate entry")
    elif bot.watch and bot.watch.process and bot.watch.process.cmdline:
        if redact(bot.watch.process.cmdline) != bot.watch.process.cmdline:
            add("", 0, "credential in the command line pattern")
    if running_secret_pid is not None:
        add("", 0, f"credential in the command line of its running process {running_secret_pid}")
    notes: list[str] = []
    scanned = 0
    if bot.source and scanner.available:
        scan = scanner.scan_paths([estate.resolve(s) for s in bot.source])
        for file, line, kind in scan.hits:
            add(file, line, f"{kind} in a source file")
        notes, scanned = scan.notes, scan.scanned
    if found:
        return [Finding("plaintext_secret", False, what, file or None, line or None)
                for (file, line), what in sorted(found.items())]
    if not scanner.available:
        detail = (f"not scanned: {MissingExtra('governance', SCANNING)} (only literal ping keys and credentials in "
                  "command lines were looked for)")
    elif bot.source:
        detail = f"no plaintext credential found (estate entry and {scanned} source file(s) scanned)"
    else:
        detail = "no plaintext credential in the estate entry; no `source:` declared, no code scanned"
    if notes:
        detail += "; " + "; ".join(notes)
    return [Finding("plaintext_secret", True, detail, entry.file if entry else None, entry.first if entry else None)]


def entry_text(entry: EstateEntry) -> str:
    """The bot's entry alone, as it is scanned for secrets (its line 1 is the entry's first)."""
    return "\n".join(entry.lines[entry.first - 1:entry.last]) + "\n"


def _is_ping_key_line(entry: EstateEntry, line: int) -> bool:
    """ping_key lines are judged by the literal-key rule above (env:/file: references are fine)."""
    return any(ln == line and (k == "ping_key" or k.endswith(".ping_key")) for k, _, ln in entry.strings)


# --- the whole estate, kept fresh --------------------------------------------------------------

class Governance:
    """The findings of every bot, recomputed at most every `interval` seconds (or on `refresh`).

    The agent refreshes in a background thread; `findings()` computes on first use when nothing
    has been computed yet (tests, one-shot commands). Source scans are cached per file."""

    def __init__(self, estate: LoadedEstate, bots: Callable[[], list[BotConfig]] | None = None, *,
                 clock: Callable[[], float] = time.time,
                 running_secrets: Callable[[], dict[str, int]] | None = None):
        self.estate = estate
        self.bots = bots or (lambda: list(estate.estate.bots))
        # bot -> pid, from the agent's process sweep
        self.running_secrets: Callable[[], dict[str, int]] = running_secrets or dict
        self.clock = clock
        # in a subprocess per refresh: detect-secrets is not kept in a long-lived agent's memory
        self.scanner = SecretScanner(isolated=True)
        self._lock = threading.Lock()
        self._findings: dict[str, list[Finding]] | None = None
        self.computed_at: float | None = None
        self.errors_total = 0
        self._said_scanning_off = False  # logged once

    def refresh(self) -> dict[str, list[Finding]]:
        with self._lock:
            return self._refresh()

    def findings(self) -> dict[str, list[Finding]]:
        current = self._findings
        if current is None:
            with self._lock:  # a refresh under way (the agent's first) is waited for, not repeated
                current = self._findings if self._findings is not None else self._refresh()
        return current

    @property
    def latest(self) -> dict[str, list[Finding]] | None:
        """The findings last computed, or None before the first run (never computes: for pages)."""
        return self._findings

    def _refresh(self) -> dict[str, list[Finding]]:
        routing, error = None, None
        try:
            routing = routing_for(self.estate)
        except RoutingError as exc:
            error = str(exc)
            log.warning("governance: %s", exc)
        if not self.scanner.available and not self._said_scanning_off:
            self._said_scanning_off = True
            log.warning("governance: plaintext_secret checks no file: %s", MissingExtra("governance", SCANNING))
        entries = estate_entries(self.estate)
        running = self.running_secrets()
        bots = self.bots()
        if self.scanner.available:
            try:  # one scanner start for the whole estate; check_bot then reads the caches only
                self.scanner.prefetch([entry_text(e) for b in bots if (e := entries.get(b.name)) is not None],
                                      [self.estate.resolve(s) for b in bots for s in (b.source or ())])
            except Exception:
                log.exception("governance: scanning the estate for secrets failed")
        out: dict[str, list[Finding]] = {}
        self.scanner.cache_only = True
        try:
            for bot in bots:
                try:
                    out[bot.name] = check_bot(bot, self.estate, routing, scanner=self.scanner,
                                              entry=entries.get(bot.name), routing_error=error,
                                              running_secret_pid=running.get(bot.name))
                except Exception:  # one bot's problem must not hide the others' findings
                    self.errors_total += 1
                    log.exception("governance checks of bot %s failed", bot.name)
        finally:
            self.scanner.cache_only = False
        self._findings, self.computed_at = out, self.clock()
        return out


def governance_for_state(state: EstateState, estate: LoadedEstate | None = None) -> Governance:
    """Governance of every bot the state knows (auto-registered ones too); without a loaded
    estate file, relative paths resolve against the working directory."""
    def bots() -> list[BotConfig]:
        with state.lock:
            return [b.cfg for b in state.bots.values()]

    def running_secrets() -> dict[str, int]:
        with state.lock:
            return dict(state.cmdline_secrets)

    return Governance(estate or LoadedEstate(state.estate, None), bots, clock=state.clock,
                      running_secrets=running_secrets)
