"""Log watching: bots' log files (or globs) read as they grow, into events.

Each bot's `watch.logs` entry names a file or a glob (relative paths are relative to the
estate file) and a format; a parser per (bot, entry) turns lines into events (see
`botwatch.parsers`). The watcher:

- reads every complete line once: a last line without its line ending waits until the writer
  ends it (unless the parser can tell it is whole, e.g. a complete JSON entry, or the file has
  been quiet for `idle_flush` seconds);
- follows rotation by rename and create (the file is recognised by its identity, device and
  inode plus a hash of its first 512 bytes, wherever it was moved in its folder; what was
  written to it is read to the end before the new file) and by copytruncate (a file smaller
  than what was read, or whose first bytes changed, starts again from 0; the copy is found by
  its first bytes and its unread end is read); a file written and rotated away between two
  polls (same name family, changed after anything of that path we read) is read whole;
- picks up files that appear later (a missing file, a glob's new matches); a glob's `**` does
  not descend into links to folders (`expand_glob`), so a symlink loop cannot trap it, and a
  folder it cannot look into is logged and counted, the rest read on;
- decodes with the entry's `encoding` (bad bytes replaced, BOM stripped, UTF-16 and UTF-32
  handled), CRLF or LF;
- stores where it is in each file, together with the runs its parsers hold open, in the
  journal, in the same transaction as the events the lines gave: a restarted agent neither
  reads a line twice nor skips one. If the journal cannot be written nothing is advanced and
  the same lines are read again on the next poll.

watchdog's file-system events trigger a poll; a periodic poll (`poll_interval`) runs anyway,
since such events can be missed (network shares, some editors, rotated files). A line a parser
cannot read is counted in `botwatch_agent_parse_errors_total{source}` and skipped; a file
that cannot be read is logged. Nothing here raises into the agent.

Journal keys (table checkpoints, source `logs`, through Journal.offset/set_offset): `BOT:PATH` is the file at PATH (identity, offset);
`BOT:PATH#rotated` the newest file rotated away from PATH that is still being read;
`BOT#parser:FORMAT:PATTERN` holds the parser's runs in progress (as JSON in the identity).
A bot's second and later log entries use `BOT[i]` instead of `BOT`.
"""

from __future__ import annotations

import codecs
import fnmatch
import glob
import hashlib
import json
import logging
import os
import re
import stat as statmod
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from ..config import LoadedEstate, LogSpec
from ..journal import Journal, JournalError
from ..parsers.base import IncompleteFile, ParseError, make_parser
from ..state import EstateState
from .base import Source

log = logging.getLogger("botwatch.sources.logs")

HEAD_BYTES = 512  # identity: a hash of the first bytes of a file, besides device and inode
CHUNK = 8 << 20  # bytes read (and committed, with one sync to disk) at a time
ROTATED = "#rotated"
PARSER_STATE = "#parser"
_COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst", ".7z", ".lz4", ".z", ".tgz")
_REPORT_EVERY = 300.0  # seconds between two log lines about the same problem
MAX_WATCHED_DIRS = 32  # folders watched for file-system events (watchdog: a thread each); the rest polled


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells a file from the one that replaced it at the same path."""

    dev: int
    ino: int  # 0 where the file system has none
    n: int  # bytes hashed
    digest: str

    def __str__(self) -> str:
        return f"{self.dev}:{self.ino}:{self.n}:{self.digest}"

    @classmethod
    def parse(cls, text: str) -> "tuple[Identity, int | None] | None":
        """(identity, modification time when last read) from the journal's form, see `_saved`."""
        try:
            dev, ino, n, digest, *rest = text.split(":")
            mtime = int(rest[0]) if rest and rest[0] else None
            return cls(int(dev), int(ino), int(n), digest), mtime
        except (ValueError, AttributeError, IndexError):
            return None


def _saved(ident: Identity | None, mtime: int | None) -> str:
    """A file's identity as the journal keeps it, with its modification time when last read
    (which tells the generations written after it from older ones)."""
    if ident is None:
        return ""
    return f"{ident}:{'' if mtime is None else mtime}"


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:24]


def _head(path: str, n: int) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def identify(path: str, st: os.stat_result) -> Identity | None:
    head = _head(path, min(HEAD_BYTES, st.st_size))
    if head is None:
        return None
    return Identity(st.st_dev, st.st_ino, len(head), _digest(head))


def _same_inode(ident: Identity, st: os.stat_result) -> bool:
    if not ident.ino or not st.st_ino:
        return True  # no inode to compare: the first bytes decide
    return (ident.dev, ident.ino) == (st.st_dev, st.st_ino)


def _head_matches(ident: Identity, path: str, st: os.stat_result) -> bool:
    if st.st_size < ident.n:
        return False
    head = _head(path, ident.n)
    return head is not None and len(head) == ident.n and _digest(head) == ident.digest


def _same_family(base: str, name: str) -> bool:
    """Is `name` a rotated generation of the file `base` (bot.log.1, bot.log-20240501,
    bot.1.log, bot_2024-05-01.log)?"""
    b, n = base.lower(), name.lower()
    if n.startswith(b) and len(n) > len(b):
        return True
    stem, ext = os.path.splitext(b)
    return bool(stem) and re.fullmatch(re.escape(stem) + r"[.\-_][\dT.\-_]+" + re.escape(ext), n) is not None


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _stat(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st if statmod.S_ISREG(st.st_mode) else None


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _entries(folder: str, problems: list) -> list[os.DirEntry]:
    """The entries of `folder`; a folder that cannot be listed is added to `problems` as
    (folder, error), unless it is simply not there (a log folder that appears later)."""
    try:
        with os.scandir(folder or os.curdir) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        problems.append((folder or os.curdir, exc))
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink() or bool(getattr(entry, "is_junction", lambda: False)())
    except OSError:
        return True


def _below(top: str, problems: list, files: bool = False) -> list[str]:
    """`top` and every folder under it (and their files, with `files`), without entering links
    to folders (nor Windows junctions): a loop (a/loop -> ..) or a link out of the tree is not
    followed."""
    found, stack = [top], [top]
    while stack:
        folder = stack.pop()
        for e in _entries(folder, problems):
            if _hidden(e.name):
                continue
            path = os.path.join(folder, e.name)
            if _is_dir(e) and not _is_link(e):
                found.append(path)
                stack.append(path)
            elif files:
                found.append(path)
    return found


def expand_glob(pattern: str, problems: list) -> list[str]:
    """What glob.glob(pattern, recursive=True) matches (the same rules: `*` and `?` within a
    name, names starting with a dot only when the pattern part does, `**` any depth of
    folders), except that `**` does not descend into links to folders, as pathlib's and
    watchdog's recursive walks do not; so a symlink loop cannot trap it. Folders that cannot
    be listed are added to `problems` as (folder, error)."""
    path = Path(pattern)
    parts = list(path.parts[1:] if path.anchor else path.parts)
    parts = [p for i, p in enumerate(parts) if not (p == "**" and i and parts[i - 1] == "**")]  # `**/**` is `**`
    folders = [path.anchor]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            folders = list(dict.fromkeys(p for f in folders for p in _below(f, problems, files=last)))
        elif glob.has_magic(part):
            folders = [os.path.join(f, e.name) for f in folders for e in _entries(f, problems)
                       if (not _hidden(e.name) or _hidden(part)) and fnmatch.fnmatch(e.name, part)
                       and (last or _is_dir(e))]
        else:
            folders = [os.path.join(f, part) for f in folders]
    return folders


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str
    bom: bytes
    newline: bytes

    @property
    def unit(self) -> int:
        return len(self.newline)


def _codec(encoding: str, head: bytes) -> _Codec:
    try:
        enc = codecs.lookup(encoding).name
    except LookupError:
        enc = "utf-8"
    boms = {"utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
            "utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")),
            "utf-8": ((codecs.BOM_UTF8, "utf-8"),)}
    family = "utf-8" if enc in ("utf-8", "utf-8-sig") else enc[:6] if enc.startswith(("utf-16", "utf-32")) else None
    name = "utf-8" if enc == "utf-8-sig" else enc
    if family in ("utf-16", "utf-32") and enc == family:
        name = family + "-le"  # no BOM: little-endian, as Windows writes it
    bom = b""
    for mark, codec_name in boms.get(family, ()):
        if head.startswith(mark) and (enc in (family, "utf-8-sig") or enc == codec_name):
            bom, name = mark, codec_name
            break
    return _Codec(name, bom, "\n".encode(name))


def _lines(text: str) -> list[str]:
    """The lines of `text`, CRLF or LF (a file may mix them), without their endings. Only LF
    ends a line: other characters that str.splitlines() knows may be inside a log entry."""
    if "\r" not in text:
        return text.split("\n")
    lines = text.split("\r\n")
    if len(lines) - 1 == text.count("\n"):  # CRLF throughout
        return lines
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _line_end(body: bytes, newline: bytes) -> int:
    """Index just past the last newline of `body` (aligned to the code unit), 0 if none."""
    unit = len(newline)
    i = body.rfind(newline)
    while i >= 0 and i % unit:
        i = body.rfind(newline, 0, i + unit - 1)
    return i + unit if i >= 0 else 0


@dataclass(eq=False)
class _File:
    """One file being read."""

    home: str  # the watched path it belongs to (its journal key)
    path: str  # where it is now (a rotated file is elsewhere)
    ident: Identity | None
    offset: int = 0
    retired: bool = False
    checked: tuple | None = None  # (ino, size, mtime) when its identity was last confirmed
    done: tuple | None = None  # (size, mtime) when it was last read to the end
    tail: tuple | None = None  # where an unterminated last line waits, and since when
    tail_since: float = 0.0
    changed_at: float = field(default_factory=time.monotonic)
    codec: _Codec | None = None
    mtime: int | None = None  # its modification time when it was last read (this process)
    stored: tuple | None = None  # whole-file formats: (identity, size) parsed
    seen: tuple | None = None  # whole-file formats: the version seen on the previous poll


class _Target:
    """One log entry of one bot: its parser and the files it matches."""

    def __init__(self, bot: str, spec, pattern: str, parser, index: int = 0):
        self.bot, self.spec, self.pattern, self.parser = bot, spec, pattern, parser
        # keys of the bot's first log entry are `BOT:PATH`; a second entry that matches the same
        # file keeps its own place in it
        self.prefix = bot if index == 0 else f"{bot}[{index}]"
        self.source = getattr(parser, "source", f"log:{spec.format}")
        self.whole = not hasattr(parser, "feed")
        self.is_glob = glob.has_magic(pattern)
        self.files: dict[str, _File] = {}  # active files by normalised home path
        self.retired: dict[str, list[_File]] = {}  # rotated away from a home, oldest first
        self.known: set[str] = set()  # homes whose journal entries were read
        # per home: the newest modification time of anything of it we read (a rotated file
        # changed after it, that we do not follow, was written and rotated between two polls)
        self.seen_ns: dict[str, int] = {}
        self.forgotten: deque[tuple[int, int]] = deque(maxlen=256)  # (dev, ino) of rotated files read and let go
        self.loaded = False
        self.state_key = f"{self.prefix}{PARSER_STATE}:{spec.format}:{pattern}"
        self.saved_state: str | None = None
        self.pending: dict[str, tuple[str, int]] = {}  # journal changes to commit with the next batch

    def key(self, home: str, retired: bool = False) -> str:
        return f"{self.prefix}:{_norm(home)}" + (ROTATED if retired else "")

    def watch_dirs(self) -> list[tuple[str, bool]]:
        if not self.is_glob:
            return [(os.path.dirname(self.pattern) or ".", False)]
        parts = Path(self.pattern).parts
        static: list[str] = []
        for part in parts[:-1]:
            if glob.has_magic(part):
                return [(str(Path(*static)) if static else ".", True)]
            static.append(part)
        return [(str(Path(*static)) if static else ".", False)]


class _Abort(Exception):
    """The journal refused a batch: stop this target until the next poll."""


class LogWatcher(Source):
    """Reads the bots' logs into the estate state (see the module docstring)."""

    name = "logs"
    event_labels = error_labels = tuple(f"log:{fmt}" for fmt in get_args(LogSpec.model_fields["format"].annotation))
    config_keys = ("bots[].watch.logs",)

    @classmethod
    def wanted(cls, loaded: LoadedEstate) -> bool:
        return any(b.watch and b.watch.logs for b in loaded.estate.bots)

    @classmethod
    def from_estate(cls, loaded: LoadedEstate, state: EstateState, journal: Journal | None, **deps) -> "LogWatcher":
        return cls(loaded, state, journal)

    def __init__(self, loaded: LoadedEstate, state: EstateState, journal: Journal | None, *,
                 poll_interval: float = 1.0, use_watchdog: bool = True, idle_flush: float = 10.0,
                 retire_after: float = 30.0):
        super().__init__(state, journal, interval=poll_interval)
        self.use_watchdog = use_watchdog
        self.idle_flush, self.retire_after = idle_flush, max(retire_after, idle_flush)
        self.targets: list[_Target] = []
        for bot in loaded.estate.bots:
            for index, spec in enumerate(bot.watch.logs if bot.watch else []):
                pattern = str(loaded.resolve(spec.path))
                try:
                    codecs.lookup(spec.encoding)
                except LookupError:
                    log.error("bot %s: unknown encoding %r for %s: it is read as UTF-8", bot.name, spec.encoding,
                              pattern)
                try:
                    parser = make_parser(bot, spec, state.classifier)
                except KeyError:
                    log.error("bot %s: log format %r is not available; %s is not watched", bot.name, spec.format,
                              pattern)
                    continue
                except Exception:
                    log.exception("bot %s: cannot make a %r parser for %s", bot.name, spec.format, pattern)
                    continue
                self.targets.append(_Target(bot.name, spec, pattern, parser, index))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._observer = None
        self._handler = None
        self._watched: set[tuple[str, bool]] = set()
        self._reported: dict[tuple, float] = {}
        self._capped = False  # MAX_WATCHED_DIRS reached (said once)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def poll_interval(self) -> float:
        return self.interval

    def on_start(self) -> None:
        if self.use_watchdog:
            self._start_observer()

    def on_stop(self, timeout: float) -> None:
        self._wake.set()
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout)
            except Exception:
                log.debug("stopping the file-system observer failed", exc_info=True)
            self._observer = None

    def on_crash(self, exc: BaseException) -> None:
        # the whole watcher failed (not one file, which poll_once counts): each format watched
        for source in sorted({t.source for t in self.targets}):
            self.state.count_parse_error(source)

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            log.warning("watchdog is not installed: log files are polled every %ss", self.poll_interval)
            return
        wake = self._wake

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                # our own reads show up as opened / closed_no_write: those must not wake us
                if event.event_type in ("modified", "created", "moved", "deleted", "closed"):
                    wake.set()

        try:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._handler = _Wake()
        except Exception as exc:
            log.warning("file-system events unavailable (%s): log files are polled every %ss", exc,
                        self.poll_interval)
            self._observer = None

    def _ensure_watches(self) -> None:
        if self._observer is None:
            return
        for t in self.targets:
            for d, recursive in t.watch_dirs():
                if (d, recursive) in self._watched or not os.path.isdir(d):
                    continue
                if len(self._watched) >= MAX_WATCHED_DIRS:
                    # watchdog runs a thread (and an inotify instance) per directory: past the
                    # cap, folders are only polled, every poll_interval, which is still on time
                    if not self._capped:
                        self._capped = True
                        log.info("more than %d log folders: the others are polled every %ss, without "
                                 "file-system events", MAX_WATCHED_DIRS, self.poll_interval)
                    return
                try:
                    self._observer.schedule(self._handler, d, recursive=recursive)
                    self._watched.add((d, recursive))
                except Exception as exc:
                    self._report(("watch", d), "cannot watch %s for changes (%s): polling it", d, exc)

    def poll(self) -> None:
        self._ensure_watches()
        self.poll_once()

    def wait(self, seconds: float) -> bool:
        """Until the next poll: `seconds`, or sooner when a file-system event wakes it."""
        if self._wake.wait(seconds) and not self.stopped.is_set():
            self.stopped.wait(0.05)  # let a burst of writes settle
        self._wake.clear()
        return self.stopped.is_set()

    # -- polling ---------------------------------------------------------------------------
    def poll_once(self) -> int:
        """Read everything new in every watched log; returns the number of lines read."""
        lines = 0
        with self._lock:
            for t in self.targets:
                try:
                    lines += self._poll(t)
                except _Abort:
                    continue
                except Exception as exc:
                    if self._report((id(t), "poll", repr(exc)), "bot %s: reading %s failed: %r", t.bot, t.pattern, exc):
                        self.state.count_parse_error(t.source)
                    log.debug("log watcher failure", exc_info=True)
        return lines

    def _report(self, what: tuple, msg: str, *args) -> bool:
        """Log a problem, at most every few minutes; True the first time it is seen."""
        now = time.monotonic()
        last = self._reported.get(what)
        if last is None or now - last > _REPORT_EVERY:
            log.warning(msg, *args)
            self._reported[what] = now
            if len(self._reported) > 10_000:
                self._reported.clear()
        return last is None

    def _poll(self, t: _Target) -> int:
        if not t.loaded:
            self._load(t)
        paths = self._expand(t)
        if t.whole:
            return self._poll_whole(t, paths)
        present: dict[str, tuple[str, os.stat_result]] = {}
        for path, st in paths:
            home = _norm(path)
            present[home] = (path, st)
            if home not in t.known:
                self._adopt(t, path)
        lost: list[_File] = []
        for home, f in list(t.files.items()):
            cur = present.get(home)
            if cur is None or not self._still(f, *cur):
                lost.append(t.files.pop(home))
        # Homes whose file is not the one read on the last poll (rotated, gone, or new): a file
        # may have been written there and rotated away in between. Watermarks before any read.
        unsettled = {_norm(f.home): (f.home, t.seen_ns.get(_norm(f.home))) for f in lost}
        if not t.is_glob and _norm(t.pattern) not in t.files:
            unsettled.setdefault(_norm(t.pattern), (t.pattern, t.seen_ns.get(_norm(t.pattern))))
        lines = 0
        for home in list(t.retired):
            for r in list(t.retired.get(home, ())):
                lines += self._follow_retired(t, r)
        for f in lost:
            lines += self._relocate(t, f, present)
        for path, mark in unsettled.values():
            if mark is not None:
                lines += self._read_missed(t, path, mark, present)
        for home, (path, st) in present.items():
            if home not in t.files:
                t.files[home] = _File(home=path, path=path, ident=None)
        order = sorted(t.files.items(), key=lambda kv: (present[kv[0]][1].st_mtime_ns, kv[0]))
        for home, f in order:
            st = present[home][1]
            if f.done == (st.st_size, st.st_mtime_ns) and f.tail is None:
                continue  # unchanged since it was read to the end
            lines += self._read(t, f)
        if t.pending:
            self._commit(t, [], {})
        return lines

    def _load(self, t: _Target) -> None:
        """The parser's runs in progress and, for a plain path, its file entries, from the journal."""
        if self.journal is not None and not t.whole:
            try:
                saved = self.journal.offset(t.state_key)
            except Exception as exc:
                self._report((id(t), "load"), "bot %s: cannot read the journal (%s); trying again", t.bot, exc)
                raise _Abort() from None
            if saved and saved[0].startswith("json:"):
                try:
                    t.parser.restore(json.loads(saved[0][5:]))
                    t.saved_state = saved[0][5:]
                except Exception as exc:
                    log.warning("bot %s: the saved state of the %s parser is unreadable (%s): starting afresh",
                                t.bot, t.spec.format, exc)
            started = t.parser.open_runs()
            if started:
                try:
                    self.state.apply(started)
                except JournalError as exc:
                    self._report((id(t), "load"), "bot %s: cannot record runs in progress (%s)", t.bot, exc)
                    raise _Abort() from None
        if not t.is_glob and not t.whole:
            self._adopt(t, t.pattern)
        t.loaded = True

    def _adopt(self, t: _Target, path: str) -> None:
        """First sight of a watched path: where the journal says we were in it."""
        home = _norm(path)
        if self.journal is not None:
            try:
                main = self.journal.offset(t.key(path))
                rot = self.journal.offset(t.key(path, retired=True))
            except Exception as exc:
                self._report((id(t), "load"), "bot %s: cannot read the journal (%s); trying again", t.bot, exc)
                raise _Abort() from None
            if rot and rot[0] and (parsed := Identity.parse(rot[0])) is not None:
                r = _File(home=path, path=path, ident=parsed[0], offset=rot[1], retired=True, mtime=parsed[1])
                t.retired.setdefault(home, []).append(r)
            if main and main[0] and (parsed := Identity.parse(main[0])) is not None:
                t.files[home] = _File(home=path, path=path, ident=parsed[0], offset=main[1], mtime=parsed[1])
        marks = [f.mtime for f in [t.files.get(home), *t.retired.get(home, ())] if f is not None and f.mtime]
        # Nothing read of it yet: files rotated from now on are ours (a second back, as file
        # systems stamp times coarsely); older ones were there before the bot was watched.
        t.seen_ns[home] = max(marks) if marks else time.time_ns() - 1_000_000_000
        t.known.add(home)

    def _expand(self, t: _Target) -> list[tuple[str, os.stat_result]]:
        if t.is_glob:
            problems: list[tuple[str, OSError]] = []
            names = [p for p in expand_glob(t.pattern, problems) if not p.lower().endswith(_COMPRESSED)]
            for folder, exc in problems:
                # one bot's unreadable folder: said (every few minutes) and counted once, the rest read on
                if self._report((id(t), "glob", folder, type(exc).__name__), "bot %s: cannot look into %s for %s "
                                "(%s); the files found elsewhere are read", t.bot, folder, t.pattern, exc):
                    self.state.count_parse_error(t.source)
        else:
            names = [t.pattern]
        out = []
        for p in names:
            st = _stat(p)
            if st is not None:
                out.append((p, st))
        return out

    # -- identity and rotation -------------------------------------------------------------
    @staticmethod
    def _still(f: _File, path: str, st: os.stat_result) -> bool:
        """Is the file at `path` still the one we were reading (not replaced, not truncated)?"""
        if f.ident is None:
            return True
        if not _same_inode(f.ident, st) or st.st_size < f.offset:
            return False
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if f.checked == sig:
            return True
        if _head_matches(f.ident, path, st):
            f.checked = sig
            return True
        return False

    def _find(self, f: _File, paths: list[str]) -> tuple[str, os.stat_result, bool] | None:
        """Where the file `f` is now among `paths`: (path, stat, is_a_copy)."""
        ident = f.ident
        if ident is None:
            return None
        copy: tuple[str, os.stat_result, bool] | None = None
        for p in paths:
            st = _stat(p)
            if st is None:
                continue
            if ident.ino and st.st_ino and st.st_dev == ident.dev and st.st_ino == ident.ino:
                if st.st_size >= f.offset and _head_matches(ident, p, st):
                    return p, st, False
                continue  # the same file, truncated: not where the unread lines are
            if ident.n and st.st_size >= max(f.offset, ident.n) and _head_matches(ident, p, st):
                if copy is None or st.st_mtime_ns > copy[1].st_mtime_ns:
                    copy = (p, st, True)
        return copy

    @staticmethod
    def _siblings(f: _File) -> list[str]:
        """Candidates for a rotated file: the files of its folder (and of the home's folder)."""
        out: list[str] = []
        seen: set[str] = set()
        for d in {os.path.dirname(f.path) or ".", os.path.dirname(f.home) or "."}:
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.lower().endswith(_COMPRESSED) or e.path in seen:
                            continue
                        seen.add(e.path)
                        out.append(e.path)
            except OSError:
                continue
        return out

    def _relocate(self, t: _Target, f: _File, present: dict[str, tuple[str, os.stat_result]]) -> int:
        """`f` is no longer at its home: moved to another watched path, rotated away, or gone."""
        old_home = f.home
        t.pending[t.key(old_home)] = ("", 0)
        free = [p for h, (p, _) in present.items() if h not in t.files]
        found = self._find(f, free)
        if found is not None:
            path, st, is_copy = found
            if is_copy:
                f.ident = Identity(st.st_dev, st.st_ino, f.ident.n, f.ident.digest)
            log.debug("bot %s: %s is now %s (%s)", t.bot, old_home, path, "a copy" if is_copy else "moved")
            f.home = f.path = path
            f.checked = f.done = f.tail = None
            t.files[_norm(path)] = f
            t.pending[t.key(path)] = (_saved(f.ident, f.mtime), f.offset)
            return 0
        found = self._find(f, [p for p in self._siblings(f) if _norm(p) not in present])
        if found is None:
            log.info("bot %s: %s was replaced and the old file is gone; reading the new one", t.bot, old_home)
            return 0
        path, st, is_copy = found
        log.debug("bot %s: %s was rotated to %s (%s) at offset %d of %d", t.bot, old_home, path,
                  "a copy" if is_copy else "moved", f.offset, st.st_size)
        if is_copy:
            f.ident = Identity(st.st_dev, st.st_ino, f.ident.n, f.ident.digest)
        f.path, f.retired = path, True
        f.checked = f.done = f.tail = None
        f.changed_at = time.monotonic()
        t.retired.setdefault(_norm(old_home), []).append(f)
        t.pending[t.key(old_home, retired=True)] = (_saved(f.ident, f.mtime), f.offset)
        return self._read(t, f)

    def _read_missed(self, t: _Target, home: str, after_ns: int,
                     present: dict[str, tuple[str, os.stat_result]]) -> int:
        """Files written at `home` and rotated away between two polls (same name family,
        changed after anything of `home` we read, not followed): read whole, oldest first."""
        lines = 0
        for p, st in self._generations(t, home, after_ns, present):
            g = _File(home=home, path=p, ident=identify(p, st), retired=True)
            if g.ident is None:
                continue
            log.debug("bot %s: %s was written and rotated between two polls", t.bot, p)
            t.retired.setdefault(_norm(home), []).append(g)
            t.pending[t.key(home, retired=True)] = (_saved(g.ident, None), 0)
            lines += self._read(t, g)
        return lines

    def _generations(self, t: _Target, home: str, after_ns: int,
                     present: dict[str, tuple[str, os.stat_result]]) -> list[tuple[str, os.stat_result]]:
        tracked_paths = {_norm(x.path) for x in t.files.values()}
        tracked_inodes = {(x.ident.dev, x.ident.ino) for x in t.files.values() if x.ident and x.ident.ino}
        tracked_inodes.update(t.forgotten)
        for group in t.retired.values():
            tracked_paths |= {_norm(x.path) for x in group}
            tracked_inodes |= {(x.ident.dev, x.ident.ino) for x in group if x.ident and x.ident.ino}
        base = os.path.basename(home)
        out = []
        for p in self._siblings(_File(home=home, path=home, ident=None)):
            n = _norm(p)
            if n in present or n in tracked_paths or not _same_family(base, os.path.basename(p)):
                continue
            st = _stat(p)
            if st is None or st.st_mtime_ns <= after_ns or (st.st_ino and (st.st_dev, st.st_ino) in tracked_inodes):
                continue
            out.append((p, st))
        return sorted(out, key=lambda ps: (ps[1].st_mtime_ns, ps[0]))

    def _follow_retired(self, t: _Target, r: _File) -> int:
        """Read what is still written to a rotated file; forget it once it is quiet."""
        st = _stat(r.path)
        if st is None or not self._still(r, r.path, st):
            found = self._find(r, self._siblings(r)) if r.ident is not None else None
            if found is None:
                self._drop_retired(t, r)
                return 0
            r.path, st, is_copy = found
            if is_copy:
                r.ident = Identity(st.st_dev, st.st_ino, r.ident.n, r.ident.digest)
            r.checked = None
        lines = self._read(t, r)
        if r.done is not None and r.tail is None and time.monotonic() - r.changed_at >= self.retire_after:
            self._drop_retired(t, r)
        return lines

    def _drop_retired(self, t: _Target, r: _File) -> None:
        if r.ident is not None and r.ident.ino:
            t.forgotten.append((r.ident.dev, r.ident.ino))
        home = _norm(r.home)
        group = t.retired.get(home, [])
        newest = bool(group) and group[-1] is r
        if r in group:
            group.remove(r)
        if not group:
            t.retired.pop(home, None)
        if newest:
            t.pending[t.key(r.home, retired=True)] = (
                (_saved(group[-1].ident, group[-1].mtime), group[-1].offset) if group else ("", 0))

    # -- reading ---------------------------------------------------------------------------
    def _read(self, t: _Target, f: _File) -> int:
        """Read `f` from its offset to the end, feeding complete lines to the parser and
        committing each chunk's events with the new offset. Raises _Abort on a journal error."""
        total = 0
        while True:
            try:
                fh = open(f.path, "rb")
            except OSError as exc:
                self._report((id(t), "open", f.path, type(exc).__name__), "bot %s: cannot read %s: %s", t.bot, f.path,
                             exc)
                return total
            with fh:
                st = os.fstat(fh.fileno())
                size = st.st_size
                if f.ident is None:
                    head = fh.read(min(HEAD_BYTES, size))
                    f.ident = Identity(st.st_dev, st.st_ino, len(head), _digest(head))
                if size < f.offset:
                    return total  # truncated meanwhile: the next poll sees it
                sig = (size, st.st_mtime_ns)
                if f.done == sig:
                    return total
                if f.codec is None:
                    fh.seek(0)
                    f.codec = _codec(t.spec.encoding, fh.read(4))
                fh.seek(f.offset)
                data = fh.read(CHUNK)
                ident = f.ident
                if ident.n < HEAD_BYTES and size > ident.n and f.offset + len(data) > ident.n:
                    fh.seek(0)
                    head = fh.read(HEAD_BYTES)
                    if _digest(head[:ident.n]) == ident.digest:
                        ident = Identity(ident.dev, ident.ino, len(head), _digest(head))
            codec = f.codec
            skip = len(codec.bom) if f.offset == 0 and codec.bom and data.startswith(codec.bom) else 0
            body = data[skip:]
            cut = _line_end(body, codec.newline)
            at_eof = len(data) < CHUNK
            if cut == 0 and not at_eof:
                cut = len(body) - len(body) % codec.unit  # one line longer than a chunk: taken as it is
            tail = body[cut:] if at_eof else b""
            waiting = False
            if tail:
                text = tail.decode(codec.name, "replace").rstrip("\r")
                now = time.monotonic()
                where = (f.offset + skip + cut, size, st.st_mtime_ns)
                whole = len(body) - len(body) % codec.unit
                if self._complete(t, text):
                    cut = whole
                elif f.tail == where and now - f.tail_since >= self.idle_flush:
                    cut = whole  # quiet long enough: the writer will not end this line
                else:
                    if f.tail != where:
                        f.tail, f.tail_since = where, now
                    waiting = True
            consumed = skip + cut
            new_offset = f.offset + consumed
            before = json.dumps(t.parser.snapshot(), sort_keys=True, ensure_ascii=False)
            events, errors, count = self._feed(t, body[:cut], codec.name)
            offsets = {t.key(f.home, f.retired): (_saved(ident, st.st_mtime_ns), new_offset)}
            if f.retired and t.retired.get(_norm(f.home), [f])[-1] is not f:
                offsets = {}  # the journal follows only the newest rotated file of a path
            after = json.dumps(t.parser.snapshot(), sort_keys=True, ensure_ascii=False)
            if after != (t.saved_state or "{}"):
                offsets[t.state_key] = ("json:" + after, 1)
            if consumed or ident != f.ident or f.mtime is None or t.pending or t.state_key in offsets:
                self._commit(t, events, offsets, restore=before)
            if errors:
                self.state.count_parse_error(t.source, errors)
            f.offset, f.ident, f.mtime = new_offset, ident, st.st_mtime_ns
            home = _norm(f.home)
            if st.st_mtime_ns > t.seen_ns.get(home, 0):
                t.seen_ns[home] = st.st_mtime_ns
            total += count
            if consumed:
                f.changed_at = time.monotonic()
            if not waiting:
                f.tail = None
            if at_eof:
                f.done = None if waiting else sig
                return total

    @staticmethod
    def _complete(t: _Target, text: str) -> bool:
        try:
            return bool(t.parser.is_complete(text))
        except Exception:
            return False

    def _feed(self, t: _Target, data: bytes, encoding: str) -> tuple[list, int, int]:
        if encoding == "utf-8" and hasattr(t.parser, "feed_raw_lines"):
            # the parser sets aside the lines that cannot matter before they are decoded (split
            # at LF alone, the fastest split: a line may keep the CR of its CRLF)
            fed = t.parser.feed_raw_lines(data.split(b"\n"))
        else:
            fed = t.parser.feed_lines(_lines(data.decode(encoding, "replace")))
        if fed.failure is not None:
            exc = fed.failure
            self._report((id(t), "parser", type(exc).__name__), "bot %s: the %s parser failed on a line of %s: %r",
                         t.bot, t.spec.format, t.pattern, exc)
        return fed.events, fed.errors, fed.lines

    def _commit(self, t: _Target, events: list, offsets: dict, restore: str | None = None) -> None:
        """Apply events with the offsets they advance (and pending journal changes) at once."""
        batch = {**t.pending, **offsets}
        try:
            self.state.apply(events, offsets=batch)
        except Exception as exc:
            if restore is not None:
                t.parser.restore(json.loads(restore))
            self._report((id(t), "commit"), "bot %s: cannot record what %s says (%s); reading it again later",
                         t.bot, t.pattern, exc)
            raise _Abort() from None
        t.pending.clear()
        state = offsets.get(t.state_key)
        if state is not None:
            t.saved_state = state[0][5:]

    # -- whole-file formats ----------------------------------------------------------------
    def _poll_whole(self, t: _Target, paths: list[tuple[str, os.stat_result]]) -> int:
        """Formats written as one document: parse a file when it changed and has settled."""
        present = set()
        for path, st in paths:
            home = _norm(path)
            present.add(home)
            f = t.files.get(home)
            if f is None:
                f = t.files[home] = _File(home=path, path=path, ident=None)
                if self.journal is not None:
                    try:
                        saved = self.journal.offset(t.key(path))
                    except Exception:
                        saved = None
                    if saved and saved[0]:
                        f.stored = tuple(saved)
            version = (st.st_ino, st.st_size, st.st_mtime_ns)
            if f.checked == version:
                continue  # parsed, or failed, in this version
            if f.seen != version:
                f.seen = version  # still changing: wait until it has settled for one poll
                continue
            ident = identify(path, st)
            if ident is None:
                continue
            if f.stored == (str(ident), st.st_size):
                f.checked = version  # parsed before (by an earlier agent)
                continue
            try:
                events = t.parser.parse_file(Path(path))
            except (IncompleteFile, ET.ParseError):
                f.checked = version  # being written: again when it changes
                continue
            except ParseError as exc:
                f.checked = version
                self.state.count_parse_error(t.source)
                self._report((id(t), "file", path), "bot %s: %s is not a %s log: %s", t.bot, path, t.spec.format, exc)
                continue
            except Exception as exc:
                f.checked = version
                self.state.count_parse_error(t.source)
                self._report((id(t), "file", path), "bot %s: reading %s failed: %r", t.bot, path, exc)
                continue
            self._commit(t, events, {t.key(path): (str(ident), st.st_size)})
            f.stored, f.checked = (str(ident), st.st_size), version
        for home in [h for h in t.files if h not in present]:
            del t.files[home]
        return 0
