"""Governance checks per bot: owner, runbook, lifecycle, certification, alert routing, secrets.

Each check gives `Finding`s; a failed one (`ok=False`) is what the CoE acts on. Findings that
point at something in a file name the file and line, never the text there: a plaintext secret
is reported as its type (from detect-secrets) and where it is, and its value is never kept.

Checks (docs/governance.md):

- `owner`, `runbook`, `lifecycle`: declared in the estate file.
- `certified`: bots with lifecycle `certified` or `production`, or criticality `high`, have a
  certification record (`certified: {by: NAME, date: DATE}`) that has not lapsed (`until:`).
- `team_routed`: the bot's team has a route in the Alertmanager configuration named by
  `agent.alert_routing` (default: the example shipped in botwatch.alerts).
- `plaintext_secret`: no credential in the bot's source files (`source:`), its estate entry,
  its `watch.process.cmdline` pattern or a literal `ping_key`. Files and the estate entry are
  scanned with detect-secrets; the command-line pattern also with botwatch's own redaction
  rules (the ones that mask secrets such as `--password X` before anything is stored), which
  detect-secrets does not look for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator

import yaml

from .config import BotConfig, LoadedEstate
from .redact import redact
from .sources.base import PeriodicTask

log = logging.getLogger("botwatch.governance")

CHECKS = ("owner", "runbook", "lifecycle", "certified", "team_routed", "plaintext_secret")
MAX_FILES = 2000  # per bot source
MAX_FILE_BYTES = 2 * 1024 * 1024  # larger files are not scanned (noted)
MAX_CACHE = 50_000  # scanned files remembered
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                       ".mypy_cache", ".pytest_cache"})


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

    def to_json(self) -> dict:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "file": self.file, "line": self.line}


def failed_checks(findings: Iterable[Finding]) -> dict[str, int]:
    """check -> 1 if any finding of it failed, else 0; every check present."""
    out = dict.fromkeys(CHECKS, 0)
    for f in findings:
        if not f.ok:
            out[f.check] = 1
    return out


# --- alert routing ---------------------------------------------------------------------------

class RoutingError(Exception):
    """The alert routing file cannot be read: `FILE:LINE: message`."""


@dataclass(frozen=True)
class RoutingTeams:
    """The teams an Alertmanager configuration routes: literal `team` values and regexes."""

    source: str
    names: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()

    def routes(self, team: str) -> bool:
        if team in self.names:
            return True
        # Alertmanager anchors its regex matchers: the whole value must match
        return any(re.fullmatch(p, team) for p in self.patterns)


_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        import json

        try:
            return json.loads('"' + v[1:-1].replace('"', '\\"') + '"') if v[0] == "'" else json.loads(v)
        except ValueError:
            return v[1:-1]
    return v


def _split_matchers(s: str) -> list[str]:
    """`team="a"` or `{team="a", severity="b"}`: the single matchers (commas inside quotes kept)."""
    s = s.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    parts, cur, quote = [], "", None
    for ch in s:
        if quote:
            cur += ch
            if ch == quote and not cur.endswith("\\" + quote):
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def routing_teams_from(data: object, source: str) -> RoutingTeams:
    """Collect the positive `team` matchers of every route (`matchers`, `match`, `match_re`)."""
    names: set[str] = set()
    patterns: list[str] = []

    def add(op: str, value: str) -> None:
        if op == "=":
            names.add(value)
        elif op == "=~":
            try:
                re.compile(value)
            except re.error:
                return
            patterns.append(value)

    def walk(route: object) -> None:
        if not isinstance(route, dict):
            return
        for m in route.get("matchers") or []:
            if not isinstance(m, str):
                continue
            for single in _split_matchers(m):
                mm = _MATCHER.match(single)
                if mm and mm.group(1) == "team":
                    add(mm.group(2), _unquote(mm.group(3)))
        match = route.get("match")
        if isinstance(match, dict) and isinstance(match.get("team"), str):
            add("=", match["team"])
        match_re = route.get("match_re")
        if isinstance(match_re, dict) and isinstance(match_re.get("team"), str):
            add("=~", match_re["team"])
        for child in route.get("routes") or []:
            walk(child)

    if isinstance(data, dict):
        walk(data.get("route"))
    return RoutingTeams(source, frozenset(names), tuple(patterns))


def load_routing_teams(path: str | os.PathLike | None) -> RoutingTeams:
    """From an Alertmanager configuration file; None: the example shipped in botwatch.alerts."""
    if path is None:
        ref = resources.files("botwatch.alerts") / "alertmanager.yml"
        source, text = "botwatch.alerts/alertmanager.yml (shipped example)", ref.read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RoutingError(f"{source}:0: cannot read the alert routing file: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RoutingError(f"{source}:{mark.line + 1 if mark else 1}: YAML syntax error: "
                           f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("route"), dict):
        raise RoutingError(f"{source}:1: not an Alertmanager configuration (no 'route')")
    return routing_teams_from(data, source)


def routing_for(estate: LoadedEstate) -> RoutingTeams:
    p = estate.estate.agent.alert_routing
    return load_routing_teams(estate.resolve(p) if p else None)


# --- where each bot sits in the estate file ----------------------------------------------------

@dataclass(frozen=True)
class EstateEntry:
    """A bot's entry in the estate file: its lines and every string value with its line."""

    file: str
    first: int  # 1-based, inclusive
    last: int
    strings: tuple[tuple[str, str, int], ...]  # (dotted key, value, line)
    lines: tuple[str, ...] = ()  # the whole estate file (shared by every entry)


def estate_entries(estate: LoadedEstate) -> dict[str, EstateEntry]:
    """bot name -> its entry, read from the estate file (empty when there is no file)."""
    if estate.path is None:
        return {}
    try:
        text = Path(estate.path).read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    all_lines = tuple(text.splitlines())
    bots = _child(root, "bots")
    out: dict[str, EstateEntry] = {}
    if not isinstance(bots, yaml.SequenceNode):
        return out
    for node in bots.value:
        name = _child(node, "name")
        if not isinstance(name, yaml.ScalarNode):
            continue
        strings: list[tuple[str, str, int]] = []
        _strings(node, "", strings)
        out[name.value] = EstateEntry(str(estate.path), node.start_mark.line + 1, _last_line(node), tuple(strings),
                                      all_lines)
    return out


def _last_line(node) -> int:
    """The 1-based line where the node's last value ends (a block mapping's own end mark is the
    start of whatever follows it)."""
    if isinstance(node, yaml.ScalarNode):
        end = node.end_mark
        return max(node.start_mark.line + 1, end.line + (1 if end.column else 0))
    children = [v for kv in node.value for v in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
    return max([node.start_mark.line + 1] + [_last_line(c) for c in children])


def _child(node, key: str):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _strings(node, path: str, out: list) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _strings(v, f"{path}.{k.value}" if path else str(k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _strings(item, f"{path}[{i}]", out)
    elif isinstance(node, yaml.ScalarNode) and isinstance(node.value, str):
        out.append((path, node.value, node.start_mark.line + 1))


# --- secrets ------------------------------------------------------------------------------------

@dataclass
class SourceScan:
    """What a scan of a bot's source found: (file, line, secret type), and what it left out."""

    hits: list[tuple[str, int, str]] = field(default_factory=list)
    scanned: int = 0
    notes: list[str] = field(default_factory=list)


class SecretScanner:
    """detect-secrets over files, cached by (path, mtime, size) so that periodic checks are cheap.

    detect-secrets keeps its settings in module globals, so scans are serialised by a lock.
    Only the type and line number of a hit are kept, never the secret.
    """

    _lock = threading.Lock()

    def __init__(self, max_files: int = MAX_FILES, max_file_bytes: int = MAX_FILE_BYTES):
        self.max_files, self.max_file_bytes = max_files, max_file_bytes
        self._cache: dict[str, tuple[int, int, tuple[tuple[int, str], ...]]] = {}
        self._text_cache: dict[str, tuple[tuple[int, str], ...]] = {}  # sha256 of the text -> hits
        self.files_scanned = 0  # cache misses, for tests and self-monitoring

    def scan_paths(self, paths: list[Path]) -> SourceScan:
        result = SourceScan()
        files: list[Path] = []
        too_many = False
        for p in paths:
            if not p.exists():
                result.notes.append(f"source {p} not found")
                continue
            for f in _walk(p):
                if len(files) >= self.max_files:
                    too_many = True
                    break
                files.append(f)
        if too_many:
            result.notes.append(f"only the first {self.max_files} files scanned")
        large = binary = 0
        todo: list[tuple[Path, os.stat_result]] = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            if st.st_size > self.max_file_bytes:
                large += 1
                continue
            cached = self._cache.get(str(f))
            if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
                result.scanned += 1
                result.hits += [(str(f), line, kind) for line, kind in cached[2]]
                continue
            if _is_binary(f):
                binary += 1
                continue
            todo.append((f, st))
        if todo:
            for (f, st), hits in zip(todo, self._scan_files([f for f, _ in todo])):
                if len(self._cache) >= MAX_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[str(f)] = (st.st_mtime_ns, st.st_size, hits)
                result.scanned += 1
                result.hits += [(str(f), line, kind) for line, kind in hits]
        if large:
            result.notes.append(f"{large} file(s) over {self.max_file_bytes // 1024} KiB not scanned")
        if binary:
            result.notes.append(f"{binary} binary file(s) not scanned")
        return result

    def scan_text(self, text: str, suffix: str = ".yaml") -> tuple[tuple[int, str], ...]:
        """Scan text that is in no file of its own (an estate entry) through a private temporary file."""
        key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if key in self._text_cache:
            return self._text_cache[key]
        fd, name = tempfile.mkstemp(prefix="botwatch-gov-", suffix=suffix)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            hits = self._scan_files([Path(name)])[0]
            if len(self._text_cache) >= 10_000:
                self._text_cache.clear()
            self._text_cache[key] = hits
            return hits
        finally:
            try:
                os.unlink(name)
            except OSError:
                pass

    def _scan_files(self, files: list[Path]) -> list[tuple[tuple[int, str], ...]]:
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings

        out = []
        with self._lock, default_settings():
            for f in files:
                self.files_scanned += 1
                try:
                    hits = {(s.line_number, s.type) for s in scan_file(str(f))}
                except Exception:  # a scanner problem with one file must not stop the checks
                    log.warning("secret scan of %s failed", f, exc_info=True)
                    hits = set()
                out.append(tuple(sorted(hits)))
        return out


def _walk(p: Path) -> Iterator[Path]:
    if p.is_file():
        yield p
        return
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for n in sorted(names):
            f = Path(root) / n
            if f.is_file() and not f.is_symlink():
                yield f


def _is_binary(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            return b"\0" in fh.read(8192)
    except OSError:
        return True


# --- the checks -------------------------------------------------------------------------------

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
        rendering = "\n".join(entry.lines[entry.first - 1:entry.last]) + "\n"
        for offset_line, kind in scanner.scan_text(rendering):
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
    if bot.source:
        scan = scanner.scan_paths([estate.resolve(s) for s in bot.source])
        for file, line, kind in scan.hits:
            add(file, line, f"{kind} in a source file")
        notes, scanned = scan.notes, scan.scanned
    if found:
        return [Finding("plaintext_secret", False, what, file or None, line or None)
                for (file, line), what in sorted(found.items())]
    detail = (f"no plaintext credential found (estate entry and {scanned} source file(s) scanned)" if bot.source
              else "no plaintext credential in the estate entry; no `source:` declared, no code scanned")
    if notes:
        detail += "; " + "; ".join(notes)
    return [Finding("plaintext_secret", True, detail, entry.file if entry else None, entry.first if entry else None)]


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
        self.running_secrets = running_secrets or dict  # bot -> pid, from the agent's process sweep
        self.clock = clock
        self.scanner = SecretScanner()
        self._lock = threading.Lock()
        self._findings: dict[str, list[Finding]] | None = None
        self.computed_at: float | None = None
        self.errors_total = 0

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
        entries = estate_entries(self.estate)
        running = self.running_secrets()
        out: dict[str, list[Finding]] = {}
        for bot in self.bots():
            try:
                out[bot.name] = check_bot(bot, self.estate, routing, scanner=self.scanner,
                                          entry=entries.get(bot.name), routing_error=error,
                                          running_secret_pid=running.get(bot.name))
            except Exception:  # one bot's problem must not hide the others' findings
                self.errors_total += 1
                log.exception("governance checks of bot %s failed", bot.name)
        self._findings, self.computed_at = out, self.clock()
        return out


class GovernanceRefresher(PeriodicTask):
    """Re-runs the governance checks every `interval` seconds, off the scrape path."""

    thread_name = "botwatch-governance"

    def __init__(self, governance: Governance, interval: float):
        super().__init__(interval)
        self.governance = governance

    def poll_once(self) -> None:
        found = self.governance.refresh()
        failed = sum(1 for fs in found.values() for f in fs if not f.ok)
        log.info("governance: %d bot(s) checked, %d finding(s)", len(found), failed)


def governance_for_state(state, estate: LoadedEstate | None = None) -> Governance:
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
