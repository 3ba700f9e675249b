"""The agent's dependency index: every bot's dependencies, read from its sources in the
background (off the request path) and read again only for a bot whose files changed.

A bot's files are known by their fingerprint: the path, modification time and size of each file
under its sources. A refresh that finds the same fingerprint keeps what it read last time (it
stats the files, it reads none). An extraction that fails is logged, counted and shown as the
bot's problem; it never stops the agent nor hides the other bots.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..sources.base import PeriodicTask
from . import _files
from .applications import Application, applications
from .estate import BotDependencies, bot_dependencies, impact_answer
from .model import Problem

if TYPE_CHECKING:
    from ..config.estate import BotConfig, LoadedEstate

log = logging.getLogger("botwatch.deps")

Fingerprint = tuple[tuple[str, ...], tuple[tuple[str, int, int], ...]]


@dataclass
class _Cached:
    fingerprint: Fingerprint | None  # None: not known, read again next time
    found: BotDependencies
    applications: list[Application]


class DependencyIndex:
    """Every bot's dependencies, as of the latest `refresh()`. `bots`: the bots to read (the
    estate file's by default)."""

    def __init__(self, estate: LoadedEstate, bots: Callable[[], list[BotConfig]] | None = None, *,
                 clock: Callable[[], float] = time.time):
        self.estate = estate
        self.bots = bots or (lambda: list(estate.estate.bots))
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._latest: dict[str, BotDependencies] | None = None
        self._applications: dict[str, list[Application]] | None = None
        self._duplicates: dict[str, int] | None = None  # bot with a source -> its duplicate candidate pairs
        self.refreshed_at: float | None = None
        self.reads_total = 0  # bots whose sources were read (not taken from the cache)
        self.errors_total = 0  # extractions that raised

    @property
    def latest(self) -> dict[str, BotDependencies] | None:
        """Bot -> its dependencies as last read, or None before the first refresh (never reads: for pages)."""
        return self._latest

    @property
    def latest_applications(self) -> dict[str, list[Application]] | None:
        """Bot -> the applications and sites it uses, as last read (botwatch.deps.applications)."""
        return self._applications

    @property
    def latest_duplicate_counts(self) -> dict[str, int] | None:
        """Bot (with a `source:`) -> in how many duplicate candidate pairs it is, as of the latest
        refresh (botwatch.deps.duplicates); None before the first."""
        return self._duplicates

    def current(self) -> dict[str, BotDependencies]:
        """The latest, read now when nothing has been read yet (a refresh under way is waited for)."""
        latest = self._latest
        if latest is None:
            with self._lock:
                latest = self._latest if self._latest is not None else self._refresh()
        return latest

    def refresh(self) -> dict[str, BotDependencies]:
        with self._lock:
            return self._refresh()

    def impact(self, text: str, kinds: tuple[str, ...] = ()) -> dict[str, Any]:
        """`botwatch impact --json`'s answer over the latest dependencies."""
        found = self.current()
        bots = self.bots()
        return impact_answer(bots, [found[b.name] for b in bots if b.source and b.name in found], text, kinds)

    def _refresh(self) -> dict[str, BotDependencies]:
        out: dict[str, BotDependencies] = {}
        apps: dict[str, list[Application]] = {}
        bots = self.bots()
        changed = self._duplicates is None or set(self._cache) != {b.name for b in bots}
        for bot in bots:
            fingerprint: Fingerprint | None
            try:
                fingerprint = self._fingerprint(bot)
            except OSError as exc:  # a folder that vanished mid-walk: read it, and again next time
                fingerprint = None
                log.warning("dependencies of bot %s: %s", bot.name, exc)
            cached = self._cache.get(bot.name)
            if fingerprint is not None and cached is not None and cached.fingerprint == fingerprint:
                out[bot.name], apps[bot.name] = cached.found, cached.applications
                continue
            out[bot.name] = self._read(bot)
            apps[bot.name] = applications(out[bot.name].extraction.dependencies)
            self._cache[bot.name] = _Cached(fingerprint, out[bot.name], apps[bot.name])
            changed = True
        for gone in set(self._cache) - set(out):
            del self._cache[gone]
        if changed:  # pairs are scored anew only when some bot's sources (or the bots) changed
            self._duplicates = self._duplicate_counts(bots, out)
        self._latest, self._applications, self.refreshed_at = out, apps, self.clock()
        return out

    def _duplicate_counts(self, bots: list[BotConfig], found: dict[str, BotDependencies]) -> dict[str, int]:
        from .duplicates import Schedule, duplicates

        read = [b for b in bots if b.source and b.name in found]
        counts = {b.name: 0 for b in read}
        try:
            pairs = duplicates([found[b.name] for b in read],
                               {b.name: Schedule(b.schedule, b.every, b.timezone) for b in read})
        except Exception:  # the counts are left at 0 rather than stop the refresh
            self.errors_total += 1
            log.exception("scoring duplicate candidates failed")
            return counts
        for pair in pairs:
            counts[pair.bot_a] += 1
            counts[pair.bot_b] += 1
        return counts

    def _read(self, bot: BotConfig) -> BotDependencies:
        self.reads_total += 1
        try:
            return bot_dependencies(self.estate, bot)
        except Exception as exc:  # one bot's sources must not stop the agent nor hide the others
            self.errors_total += 1
            log.exception("reading the dependencies of bot %s failed", bot.name)
            failed = BotDependencies(bot.name, list(bot.source or []))
            failed.extraction.problems.append(Problem(", ".join(bot.source or []), 0,
                                                      f"not read: {type(exc).__name__}: {exc}"))
            return failed

    def _fingerprint(self, bot: BotConfig) -> Fingerprint:
        sources = tuple(bot.source or ())
        files: list[tuple[str, int, int]] = []
        for s in sources:
            path = self.estate.resolve(s)
            if not path.exists():
                files.append((str(path), -1, -1))
                continue
            for f in _files(path):
                st = os.stat(f)
                files.append((str(f), st.st_mtime_ns, st.st_size))
        return sources, tuple(files)


class DependencyRefresher(PeriodicTask):
    """Refreshes the dependency index every `interval` seconds, off the request path."""

    thread_name = "botwatch-dependencies"

    def __init__(self, index: DependencyIndex, interval: float):
        super().__init__(interval)
        self.index = index

    def poll_once(self) -> None:
        reads, errors = self.index.reads_total, self.index.errors_total
        found = self.index.refresh()
        log.info("dependencies: %d bot(s), %d read again, %d failed", len(found),
                 self.index.reads_total - reads, self.index.errors_total - errors)
