"""Log watching: bots' log files (or globs) read as they grow, into events.

Each bot's `watch.logs` entry names a file or a glob (relative paths are relative to the
estate file) and a format; a parser per (bot, entry) turns lines into events (see
`botwatch.parsers`). The watcher:

- finds the files: a missing file or a glob's new matches are picked up when they appear; a
  glob's `**` does not descend into links to folders (`expand_glob`), so a symlink loop cannot
  trap it, and a folder it cannot look into is logged and counted, the rest read on;
- follows each entry's files with a `Tailer` (botwatch.sources.tailer): every complete line
  once, across rotation by rename and create and by copytruncate, including a file written
  and rotated away between two polls;
- decodes the lines with the entry's `encoding` (bad bytes replaced; BOM, UTF-16 and UTF-32,
  CRLF or LF as the tailer found them) and feeds them to the parser; a whole-file format
  (Robot Framework's output.xml) is parsed when its file changed and has settled;
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
import json
import logging
import os
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import get_args

from ..config.estate import LoadedEstate, LogSpec
from ..state.journal import Journal, JournalError
from ..parsers.base import IncompleteFile, ParseError, make_parser
from ..state.runtime import EstateState
from .base import Source
from .tailer import CHUNK, COMPRESSED, Position, Tailer, identify, norm_path, regular_file_stat

log = logging.getLogger("botwatch.sources.logs")

ROTATED = "#rotated"
PARSER_STATE = "#parser"
_REPORT_EVERY = 300.0  # seconds between two log lines about the same problem
MAX_WATCHED_DIRS = 32  # folders watched for file-system events (watchdog: a thread each); the rest polled

# CHUNK (the tailer's read size) stays importable from here, where it was defined before
__all__ = ["LogWatcher", "MAX_WATCHED_DIRS", "expand_glob", "CHUNK"]


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


def _lines(text: str) -> list[str]:
    """The lines of `text`, CRLF or LF (a file may mix them), without their endings. Only LF
    ends a line: other characters that str.splitlines() knows may be inside a log entry."""
    if "\r" not in text:
        return text.split("\n")
    lines = text.split("\r\n")
    if len(lines) - 1 == text.count("\n"):  # CRLF throughout
        return lines
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


@dataclass(eq=False)
class _Document:
    """A file of a whole-file format: parsed when it changed and has settled."""

    stored: tuple | None = None  # (identity, size) parsed, as the journal has it
    seen: tuple | None = None  # the version seen on the previous poll
    checked: tuple | None = None  # the version parsed, or that failed: again when it changes


class _Target:
    """One log entry of one bot: its parser and the files it matches, followed by its tailer
    (line formats) or parsed whole as documents (whole-file formats)."""

    def __init__(self, bot: str, spec, pattern: str, parser, index: int = 0):
        self.bot, self.spec, self.pattern, self.parser = bot, spec, pattern, parser
        # keys of the bot's first log entry are `BOT:PATH`; a second entry that matches the same
        # file keeps its own place in it
        self.prefix = bot if index == 0 else f"{bot}[{index}]"
        self.source = getattr(parser, "source", f"log:{spec.format}")
        self.whole = not hasattr(parser, "feed")
        self.is_glob = glob.has_magic(pattern)
        self.tail: Tailer | None = None  # line formats (set by the watcher)
        self.documents: dict[str, _Document] = {}  # whole-file formats, by normalised path
        self.loaded = False
        self.state_key = f"{self.prefix}{PARSER_STATE}:{spec.format}:{pattern}"
        self.saved_state: str | None = None

    def key(self, home: str, retired: bool = False) -> str:
        """The journal key of the position in the file at `home` (or in the newest file rotated
        away from it)."""
        return f"{self.prefix}:{norm_path(home)}" + (ROTATED if retired else "")

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
                target = _Target(bot.name, spec, pattern, parser, index)
                if not target.whole:
                    target.tail = self._tailer(target)
                self.targets.append(target)
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
        if t.tail is None:
            return self._poll_whole(t, paths)
        lines = t.tail.poll(paths)
        if t.tail.pending:
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
        if not t.is_glob and t.tail is not None:
            t.tail.adopt(t.pattern)
        t.loaded = True

    def _expand(self, t: _Target) -> list[tuple[str, os.stat_result]]:
        if t.is_glob:
            problems: list[tuple[str, OSError]] = []
            names = [p for p in expand_glob(t.pattern, problems) if not p.lower().endswith(COMPRESSED)]
            for folder, exc in problems:
                # one bot's unreadable folder: said (every few minutes) and counted once, the rest read on
                if self._report((id(t), "glob", folder, type(exc).__name__), "bot %s: cannot look into %s for %s "
                                "(%s); the files found elsewhere are read", t.bot, folder, t.pattern, exc):
                    self.state.count_parse_error(t.source)
        else:
            names = [t.pattern]
        out = []
        for p in names:
            st = regular_file_stat(p)
            if st is not None:
                out.append((p, st))
        return out

    # -- reading through the tailer --------------------------------------------------------
    def _tailer(self, t: _Target) -> Tailer:
        """The tailer of a line format's files: its positions in the journal, its lines to the parser."""
        return Tailer(None if t.is_glob else t.pattern, t.spec.encoding,
                      position_key=t.key, load_position=partial(self._load_position, t),
                      is_complete=partial(self._complete, t), consume=partial(self._consume, t),
                      warn=partial(self._warn_about, t), idle_flush=self.idle_flush,
                      retire_after=self.retire_after, label=f"bot {t.bot}", log=log)

    def _load_position(self, t: _Target, key: str) -> Position | None:
        """Where the journal says the tailer was (first sight of a path); _Abort when it cannot say."""
        if self.journal is None:
            return None
        try:
            return self.journal.offset(key)
        except Exception as exc:
            self._report((id(t), "load"), "bot %s: cannot read the journal (%s); trying again", t.bot, exc)
            raise _Abort() from None

    def _warn_about(self, t: _Target, key: tuple, msg: str, *args) -> bool:
        return self._report((id(t), *key), "bot %s: " + msg, t.bot, *args)

    def _consume(self, t: _Target, data: bytes, encoding: str, positions: dict[str, Position], moved: bool) -> int:
        """Feed a chunk of complete lines to the parser and commit the events they gave with the
        positions they advance to (and the parser's runs in progress). Raises _Abort on a journal
        error, the parser restored to where it was."""
        before = json.dumps(t.parser.snapshot(), sort_keys=True, ensure_ascii=False)
        events, errors, count = self._feed(t, data, encoding)
        offsets = dict(positions)
        after = json.dumps(t.parser.snapshot(), sort_keys=True, ensure_ascii=False)
        if after != (t.saved_state or "{}"):
            offsets[t.state_key] = ("json:" + after, 1)
        if moved or (t.tail is not None and t.tail.pending) or t.state_key in offsets:
            self._commit(t, events, offsets, restore=before)
        if errors:
            self.state.count_parse_error(t.source, errors)
        return count

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
        pending = t.tail.pending if t.tail is not None else {}
        batch = {**pending, **offsets}
        try:
            self.state.apply(events, offsets=batch)
        except Exception as exc:
            if restore is not None:
                t.parser.restore(json.loads(restore))
            self._report((id(t), "commit"), "bot %s: cannot record what %s says (%s); reading it again later",
                         t.bot, t.pattern, exc)
            raise _Abort() from None
        pending.clear()
        state = offsets.get(t.state_key)
        if state is not None:
            t.saved_state = state[0][5:]

    # -- whole-file formats ----------------------------------------------------------------
    def _poll_whole(self, t: _Target, paths: list[tuple[str, os.stat_result]]) -> int:
        """Formats written as one document: parse a file when it changed and has settled."""
        present = set()
        for path, st in paths:
            home = norm_path(path)
            present.add(home)
            f = t.documents.get(home)
            if f is None:
                f = t.documents[home] = _Document()
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
        for home in [h for h in t.documents if h not in present]:
            del t.documents[home]
        return 0
